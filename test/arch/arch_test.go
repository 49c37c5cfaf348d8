// Package arch holds the architecture boundary test: the core (domain,
// ports, app) must not depend on adapters, the composition root or
// infrastructure libraries, directly or through another package.
package arch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/marketplace/usersvc"

// forbidden are import-path roots the core may not reach: a root matches
// itself and every package below it.
var forbidden = []string{
	module + "/adapters",
	module + "/cmd",
	module + "/test",
	"github.com/gin-gonic",
	"gorm.io",
	"github.com/confluentinc",
	"database/sql", // and database/sql/driver
	"net/http",     // and net/http/httptest, net/http/httputil, ...
	"github.com/go-sql-driver",
	"github.com/glebarez",
	"modernc.org",
	"github.com/twmb",
	"github.com/IBM/sarama",
	"go.opentelemetry.io", // tracing is an adapter concern (adapters/tracing, ports.TraceContext)
}

// pkg is one node of the import graph, as `go list -json` reports it.
type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Error      *struct{ Err string }
}

// graph maps import paths to packages.
type graph map[string]pkg

// violation is a forbidden dependency of a core package, with the import
// chain that leads to it.
type violation struct {
	Pkg   string
	Chain []string // Pkg, ..., the offending package
	Rule  string
}

func (v violation) String() string {
	return fmt.Sprintf("%s: %s (%s)", v.Pkg, v.Rule, strings.Join(v.Chain, " -> "))
}

func under(path, root string) bool {
	return path == root || strings.HasPrefix(path, root+"/")
}

func underAny(path string, roots ...string) bool {
	return slices.ContainsFunc(roots, func(r string) bool { return under(path, r) })
}

// standard reports whether path is in the standard library. "C", cgo's
// pseudo-package, is no package at all and counts as standard.
func standard(g graph, path string) bool { return path == "C" || g[path].Standard }

// rule decides whether dep may be reached from a core package; it returns
// the broken rule's description, or "" when dep is allowed.
func rule(g graph, core, dep string) string {
	switch {
	case underAny(dep, forbidden...):
		return "imports an adapter or infrastructure package"
	case under(core, module+"/domain") && !standard(g, dep) && !under(dep, module+"/domain"):
		return "domain may import only the standard library"
	case under(core, module+"/ports") && !standard(g, dep) && !underAny(dep, module+"/domain", module+"/ports"):
		return "ports may import only the standard library and domain"
	}
	return ""
}

// check walks, breadth first, everything each core package imports
// directly or transitively, and reports every forbidden package reached
// with the shortest chain that reaches it.
func check(g graph) []violation {
	var out []violation
	for _, core := range sortedKeys(g) {
		if !underAny(core, module+"/domain", module+"/ports", module+"/app") {
			continue
		}
		parent := map[string]string{core: ""}
		queue := []string{core}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			for _, dep := range g[p].Imports {
				if _, seen := parent[dep]; seen {
					continue
				}
				parent[dep] = p
				if r := rule(g, core, dep); r != "" {
					out = append(out, violation{Pkg: core, Chain: chain(parent, dep), Rule: r})
					continue // one report per offending package; what lies beyond it is its own problem
				}
				queue = append(queue, dep)
			}
		}
	}
	return out
}

func chain(parent map[string]string, last string) []string {
	var c []string
	for p := last; p != ""; p = parent[p] {
		c = append(c, p)
	}
	slices.Reverse(c)
	return c
}

func sortedKeys(g graph) []string {
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// loadGraph asks the go command for the non-test import graph of the core
// and all its dependencies (go list without -test ignores _test.go files).
// Extra flags (e.g. -overlay) go before the patterns.
func loadGraph(t *testing.T, flags ...string) graph {
	t.Helper()
	args := append([]string{"list", "-deps", "-json=ImportPath,Standard,Imports,Error"}, flags...)
	args = append(args, module+"/domain/...", module+"/ports/...", module+"/app/...")
	cmd := exec.Command(goCommand(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		g[p.ImportPath] = p
	}
	return g
}

func goCommand(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the import graph: %v", err)
	}
	return goTool
}

func TestCoreImportsNoInfrastructure(t *testing.T) {
	g := loadGraph(t)
	// Guard against a vacuous pass: the core packages and their known
	// dependencies must be in the graph that was checked.
	for _, want := range []string{module + "/domain", module + "/ports", module + "/app", module + "/app/apptest", "net/mail", "context"} {
		if _, ok := g[want]; !ok {
			t.Fatalf("%s missing from the import graph; the check would prove nothing", want)
		}
	}
	if !g["context"].Standard || g[module+"/domain"].Standard {
		t.Fatal("go list did not report which packages are standard")
	}
	for _, v := range check(g) {
		t.Error(v)
	}
}

// TestCheckCatchesViolations runs the checker on made-up graphs, so a
// broken checker cannot pass the real graph by accident.
func TestCheckCatchesViolations(t *testing.T) {
	std := func(path string, imports ...string) pkg {
		return pkg{ImportPath: path, Standard: true, Imports: imports}
	}
	mod := func(path string, imports ...string) pkg { return pkg{ImportPath: path, Imports: imports} }
	build := func(pkgs ...pkg) graph {
		g := graph{}
		for _, p := range pkgs {
			g[p.ImportPath] = p
		}
		return g
	}
	clean := []pkg{
		std("context"), std("net/mail", "strings"), std("strings"), std("net/http", "context"),
		std("database/sql/driver"), std("database/sql", "database/sql/driver"), std("net/http/httptest", "net/http"),
		mod(module+"/domain", "net/mail"),
		mod(module+"/ports", module+"/domain", "context"),
		mod(module+"/app", module+"/domain", module+"/ports", "github.com/google/wire"),
		mod(module+"/app/apptest", module+"/domain", module+"/ports"),
		mod("github.com/google/wire", "strings"),
		// Adapters may use anything: they are not checked.
		mod(module+"/adapters/httpapi", module+"/app", "net/http", "github.com/gin-gonic/gin"),
		mod("github.com/gin-gonic/gin", "net/http"),
	}
	with := func(extra ...pkg) graph {
		g := build(clean...)
		for _, p := range extra {
			if old, ok := g[p.ImportPath]; ok {
				p.Imports = append(slices.Clone(old.Imports), p.Imports...)
				p.Standard = old.Standard
			}
			g[p.ImportPath] = p
		}
		return g
	}
	tests := []struct {
		name string
		g    graph
		// violations, as "pkg: last package of the chain"; every core
		// package that reaches a forbidden one is reported
		want []string
	}{
		{name: "clean graph", g: with()},
		{name: "domain imports a third-party module",
			g:    with(mod(module+"/domain", "github.com/google/uuid"), mod("github.com/google/uuid")),
			want: []string{module + "/domain: github.com/google/uuid", module + "/ports: github.com/google/uuid"}},
		{name: "domain imports net/http, standard but infrastructure",
			g:    with(mod(module+"/domain", "net/http")),
			want: []string{module + "/domain: net/http", module + "/ports: net/http", module + "/app: net/http", module + "/app/apptest: net/http"}},
		{name: "ports import database/sql/driver",
			g:    with(mod(module+"/ports", "database/sql/driver")),
			want: []string{module + "/ports: database/sql/driver", module + "/app: database/sql/driver", module + "/app/apptest: database/sql/driver"}},
		{name: "ports import a module outside the core",
			g:    with(mod(module+"/ports", "golang.org/x/sync/errgroup"), mod("golang.org/x/sync/errgroup")),
			want: []string{module + "/ports: golang.org/x/sync/errgroup"}},
		{name: "app imports an adapter",
			g:    with(mod(module+"/app", module+"/adapters/gormstore"), mod(module+"/adapters/gormstore", "gorm.io/gorm"), mod("gorm.io/gorm")),
			want: []string{module + "/app: " + module + "/adapters/gormstore"}},
		{name: "app reaches net/http/httptest through a harmless-looking module",
			g:    with(mod(module+"/app", "github.com/acme/helpers"), mod("github.com/acme/helpers", "net/http/httptest")),
			want: []string{module + "/app: net/http/httptest"}},
		{name: "apptest imports gin",
			g:    with(mod(module+"/app/apptest", "github.com/gin-gonic/gin")),
			want: []string{module + "/app/apptest: github.com/gin-gonic/gin"}},
		{name: "domain reaches infrastructure through a subpackage, reported for every core package above it",
			g: with(mod(module+"/domain", module+"/domain/sub"), mod(module+"/domain/sub", "github.com/confluentinc/confluent-kafka-go/v2/kafka"),
				mod("github.com/confluentinc/confluent-kafka-go/v2/kafka")),
			want: []string{
				module + "/domain: github.com/confluentinc/confluent-kafka-go/v2/kafka",
				module + "/domain/sub: github.com/confluentinc/confluent-kafka-go/v2/kafka",
				module + "/ports: github.com/confluentinc/confluent-kafka-go/v2/kafka",
				module + "/app: github.com/confluentinc/confluent-kafka-go/v2/kafka",
				module + "/app/apptest: github.com/confluentinc/confluent-kafka-go/v2/kafka",
			}},
		{name: "each listed infrastructure root is caught",
			g: with(mod(module+"/app", "github.com/go-sql-driver/mysql", "github.com/glebarez/sqlite", "modernc.org/sqlite",
				"github.com/twmb/franz-go/pkg/kgo", "github.com/IBM/sarama", module+"/cmd/usersvc", "database/sql"),
				mod("github.com/go-sql-driver/mysql"), mod("github.com/glebarez/sqlite"), mod("modernc.org/sqlite"),
				mod("github.com/twmb/franz-go/pkg/kgo"), mod("github.com/IBM/sarama"), mod(module+"/cmd/usersvc")),
			want: []string{
				module + "/app: github.com/go-sql-driver/mysql", module + "/app: github.com/glebarez/sqlite",
				module + "/app: modernc.org/sqlite", module + "/app: github.com/twmb/franz-go/pkg/kgo",
				module + "/app: github.com/IBM/sarama", module + "/app: " + module + "/cmd/usersvc",
				module + "/app: database/sql",
			}},
		{name: "a shared prefix is not a match",
			g: with(mod(module+"/app", "gorm.iox/lib", "net/httpx", module+"/adaptersx"),
				mod("gorm.iox/lib"), std("net/httpx"), mod(module+"/adaptersx"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, v := range check(tc.g) {
				got = append(got, v.Pkg+": "+v.Chain[len(v.Chain)-1])
				if v.Chain[0] != v.Pkg {
					t.Errorf("chain %v does not start at %s", v.Chain, v.Pkg)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("violations:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestCheckCatchesARealViolation adds, through a go list overlay (the tree
// is not touched), a domain file importing net/http and a ports file
// importing a third-party module, and expects both to be caught.
func TestCheckCatchesARealViolation(t *testing.T) {
	out, err := exec.Command(goCommand(t), "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	dir := t.TempDir()
	probes := map[string]string{
		filepath.Join(root, "domain", "zz_arch_probe.go"): "package domain\n\nimport _ \"net/http/httptest\"\n",
		filepath.Join(root, "ports", "zz_arch_probe.go"):  "package ports\n\nimport _ \"github.com/google/wire\"\n",
	}
	overlay := map[string]map[string]string{"Replace": {}}
	for target, src := range probes {
		file := filepath.Join(dir, filepath.Base(filepath.Dir(target))+".go")
		if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		overlay["Replace"][target] = file
	}
	overlayJSON, err := json.Marshal(overlay)
	if err != nil {
		t.Fatal(err)
	}
	overlayFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayFile, overlayJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, v := range check(loadGraph(t, "-overlay="+overlayFile)) {
		found[v.Pkg+": "+v.Chain[len(v.Chain)-1]] = true
	}
	for _, want := range []string{
		module + "/domain: net/http/httptest",
		module + "/app: net/http/httptest", // transitively, through domain
		module + "/ports: github.com/google/wire",
	} {
		if !found[want] {
			t.Errorf("violation %q not caught; got %v", want, found)
		}
	}
}

func TestViolationShowsTheChain(t *testing.T) {
	g := graph{
		module + "/app":  {ImportPath: module + "/app", Imports: []string{"github.com/a/b"}},
		"github.com/a/b": {ImportPath: "github.com/a/b", Imports: []string{"github.com/c/d"}},
		"github.com/c/d": {ImportPath: "github.com/c/d", Imports: []string{"net/http"}},
		"net/http":       {ImportPath: "net/http", Standard: true},
	}
	vs := check(g)
	want := module + "/app: imports an adapter or infrastructure package (" + module + "/app -> github.com/a/b -> github.com/c/d -> net/http)"
	if len(vs) != 1 || vs[0].String() != want {
		t.Errorf("got %v, want [%s]", vs, want)
	}
}
