// Package portability checks, on Linux, what keeps the Makefile and the
// scripts it runs everywhere working on macOS and other non-GNU systems:
// no getent, no GNU-only flags, the development profile for `make run`
// only, one pin of the Go version, and `make test` stopping at once
// without Docker. (Nothing here runs on macOS itself; see the README.)
package portability

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// portableFiles run on every platform (test/images/build.sh is Linux-only:
// it needs debootstrap and chroot).
func portableFiles(t *testing.T) []string {
	t.Helper()
	mks, err := filepath.Glob(filepath.Join(repoRoot(t), "mk", "*.mk"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"Makefile", "test/images/ensure-docker.sh", "test/images/registry.sh"}
	for _, m := range mks {
		files = append(files, "mk/"+filepath.Base(m))
	}
	return files
}

func TestNoGNUOnlyCommands(t *testing.T) {
	gnuOnly := []struct{ what, pattern string }{
		{"getent (macOS has none)", `\bgetent\b`},
		{"sed -i without a suffix (BSD sed takes one)", `\bsed\s+(-[a-zA-Z]*\s+)*-i\b`},
		{"sed -r (BSD: -E)", `\bsed\s+(-[a-zA-Z]*\s+)*-r\b`},
		{"date's %N (BSD date prints N)", `\bdate\b[^\n]*%N`},
		{"date -d (BSD: -j -f)", `\bdate\s+-d\b`},
		{"readlink -f (macOS before 12.3 has none)", `\breadlink\s+-f\b`},
		{"grep -P (BSD grep has none)", `\bgrep\s+(-[a-zA-Z]*\s+)*-[a-zA-Z]*P`},
		{"xargs -r", `\bxargs\s+-r\b`},
		{"stat -c (BSD: -f)", `\bstat\s+-c\b`},
	}
	for _, f := range portableFiles(t) {
		body := read(t, f)
		for _, g := range gnuOnly {
			re := regexp.MustCompile(g.pattern)
			for i, line := range strings.Split(body, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "#") {
					continue
				}
				if re.MatchString(line) {
					t.Errorf("%s:%d uses %s: %s", f, i+1, g.what, strings.TrimSpace(line))
				}
			}
		}
	}
}

// pathWithout is a PATH of one directory holding links to every command of
// the current PATH except the excluded ones, plus the given stand-ins.
func pathWithout(t *testing.T, exclude []string, standIns map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	skip := map[string]bool{}
	for _, e := range exclude {
		skip[e] = true
	}
	for name, body := range standIns {
		skip[name] = true
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range filepath.SplitList(os.Getenv("PATH")) {
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			name := e.Name()
			if skip[name] {
				continue
			}
			if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
				continue // an earlier PATH entry wins
			}
			_ = os.Symlink(filepath.Join(p, name), filepath.Join(dir, name))
		}
	}
	return dir
}

func runMake(t *testing.T, path string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-C", repoRoot(t), "--no-print-directory"}, args...)...)
	env := []string{"PATH=" + path, "HOME=" + t.TempDir()}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOTOOLCHAIN=") || strings.HasPrefix(kv, "GOCACHE=") || strings.HasPrefix(kv, "GOMODCACHE=") || strings.HasPrefix(kv, "GOPATH=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The development profile reaches `make run` and no other target, and
// neither needs getent.
func TestRunProfileOnlyForRunWithoutGetent(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is needed for this test")
	}
	path := pathWithout(t, []string{"getent"}, nil)
	if _, err := exec.LookPath(filepath.Join(path, "getent")); err == nil {
		t.Fatal("getent is still on the test PATH")
	}
	printenv := filepath.Join(t.TempDir(), "printenv.sh")
	script := "#!/bin/sh\necho \"EVENT_BUS=$EVENT_BUS GEO_PROVIDER=$GEO_PROVIDER GEO_STATIC=$GEO_STATIC LOG_FORMAT=$LOG_FORMAT AUTH_MODE=$AUTH_MODE\"\n"
	if err := os.WriteFile(printenv, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := runMake(t, path, "run", "GO="+printenv, "BIN="+printenv)
	if err != nil {
		t.Fatalf("make run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "EVENT_BUS=log GEO_PROVIDER=static GEO_STATIC=127.0.0.0/8=CH,::1/128=CH LOG_FORMAT=text AUTH_MODE=none") {
		t.Errorf("make run did not get the development profile:\n%s", out)
	}
	out, err = runMake(t, path, "build", "GO="+printenv)
	if err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	if !strings.Contains(out, "EVENT_BUS= GEO_PROVIDER= GEO_STATIC= LOG_FORMAT= AUTH_MODE=") {
		t.Errorf("make build got (part of) the development profile:\n%s", out)
	}
	if strings.Contains(out, "getent") {
		t.Errorf("make looked for getent:\n%s", out)
	}
	out, err = runMake(t, path, "help")
	if err != nil || !strings.Contains(out, "test-unit") {
		t.Errorf("make help: %v\n%s", err, out)
	}
}

// Without a Docker engine `make test` stops before any test runs, saying
// that Docker is needed and why.
func TestMakeTestWithoutDockerStopsAtOnce(t *testing.T) {
	calls := filepath.Join(t.TempDir(), "go-calls")
	fakeGo := filepath.Join(t.TempDir(), "go")
	if err := os.WriteFile(fakeGo, []byte("#!/bin/sh\necho \"$@\" >>"+calls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// docker answers nothing, and this is not root: nothing may be
	// installed or started.
	path := pathWithout(t, []string{"getent", "dockerd"}, map[string]string{
		"docker": "exit 1",
		"id":     `[ "$1" = -u ] && echo 1000 || exec /usr/bin/id "$@"`,
	})
	began := time.Now()
	out, err := runMake(t, path, "test", "GO="+fakeGo)
	if err == nil {
		t.Fatalf("make test passed without Docker:\n%s", out)
	}
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("make test took %v to give up", took)
	}
	for _, want := range []string{"no Docker engine answers", "needs a Docker engine", "MySQL, PostgreSQL, RabbitMQ and Kafka", "make test-unit"} {
		if !strings.Contains(out, want) {
			t.Errorf("the message lacks %q:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile(calls); strings.Contains(string(b), "test") {
		t.Errorf("go test ran before the Docker check failed:\n%s", b)
	}
}

// go.mod's toolchain line is the one pin: the Dockerfile's default agrees,
// and the Makefile, .ci/run and build.sh read it instead of naming a version.
func TestOneToolchainPin(t *testing.T) {
	m := regexp.MustCompile(`(?m)^toolchain go(\d+\.\d+\.\d+)$`).FindStringSubmatch(read(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no toolchain line")
	}
	version := m[1]
	if d := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindStringSubmatch(read(t, "deploy/Dockerfile")); d == nil || d[1] != version {
		t.Errorf("deploy/Dockerfile's GO_VERSION default is %v, go.mod's toolchain %s", d, version)
	}
	for _, f := range []string{"Makefile", ".ci/run", "test/images/build.sh"} {
		body := read(t, f)
		if !strings.Contains(body, "s/^toolchain //p") {
			t.Errorf("%s does not read go.mod's toolchain line", f)
		}
		if regexp.MustCompile(`go1\.\d+\.\d+`).MatchString(body) {
			t.Errorf("%s names a Go version of its own", f)
		}
	}
}
