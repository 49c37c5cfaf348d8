package cli

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The README's configuration table is the operators' reference: it must
// list exactly the variables the binary reads, with the same defaults.
func TestReadmeConfigurationTableMatchesTheBinary(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "## Configuration")
	if start < 0 {
		t.Fatal("README.md has no \"## Configuration\" section")
	}
	section := readme[start:]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	row := regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)` \\| ([^|]+) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		documented[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
	}
	for _, v := range Variables {
		def, ok := documented[v.Name]
		if !ok {
			t.Errorf("README's configuration table lacks %s", v.Name)
			continue
		}
		want := v.Default
		if want == "" {
			want = "empty"
		}
		if def != want {
			t.Errorf("README gives %s the default %q; the binary uses %q", v.Name, def, want)
		}
		delete(documented, v.Name)
	}
	var extra []string
	for name := range documented {
		extra = append(extra, name)
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("README documents variables the binary does not read: %v", extra)
	}
}

// Every variable the README names anywhere must exist (in the binary, or as
// one of the test or build knobs it documents).
func TestReadmeNamesOnlyRealVariables(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	buildKnobs := map[string]bool{
		"USERS_TEST_MYSQL_IMAGE": true, "USERS_TEST_KAFKA_IMAGE": true, "USERS_TEST_POSTGRES_IMAGE": true, "TEST_IMAGES": true,
		"USERSVC_BENCH_ROWS": true, "USERS_TEST_RABBITMQ_IMAGE": true, "USERS_TEST_REDIS_IMAGE": true,
		"USERSVC_TEST_MYSQL_URL": true, "USERSVC_TEST_POSTGRES_URL": true, "USERSVC_TEST_AMQP_URL": true, "USERSVC_TEST_REDIS_URL": true,
		"USERSVC_TEST_KAFKA_BROKERS": true, "DOCKER_HOST": true, "GO_VERSION": true, "GOLANGCI_LINT_VERSION": true,
	}
	name := regexp.MustCompile("`([A-Z][A-Z0-9]*_[A-Z0-9_]+)(=[^`]*)?`")
	for _, m := range name.FindAllStringSubmatch(string(raw), -1) {
		if !KnownVariable(m[1]) && !buildKnobs[m[1]] {
			t.Errorf("README names %s, which nothing reads", m[1])
		}
	}
	for _, cmd := range []string{"make run", "make test"} {
		if !strings.Contains(string(raw), cmd) {
			t.Errorf("README does not show %q", cmd)
		}
	}
}

// TestOWASPTableCitesRealTests keeps the README's OWASP table true: every
// test it names as evidence exists in the tree.
func TestOWASPTableCitesRealTests(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "### OWASP API Security Top 10")
	if start < 0 {
		t.Fatal("README has no OWASP API Security Top 10 section")
	}
	section := text[start:]
	if end := strings.Index(section[4:], "\n### "); end >= 0 {
		section = section[:end+4]
	}
	for i := 1; i <= 10; i++ {
		if !strings.Contains(section, fmt.Sprintf("| API%d ", i)) {
			t.Errorf("the table has no row for API%d", i)
		}
	}
	cited := regexp.MustCompile("`(Test[A-Za-z0-9_]+)`").FindAllStringSubmatch(section, -1)
	if len(cited) < 10 {
		t.Fatalf("the table cites %d tests, want at least one per risk", len(cited))
	}
	defined := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(`)
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cited {
		if !defined[m[1]] {
			t.Errorf("the OWASP table cites %s, which no test file defines", m[1])
		}
	}
}
