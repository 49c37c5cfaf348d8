package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/test/usersvcproc"
)

// version and --version print the build information; the Go version is the
// toolchain's that built the binary.
func TestVersion(t *testing.T) {
	bin := usersvcproc.Binary(t)
	line := regexp.MustCompile(`^usersvc \S+ \(revision \S+, (go\S+)\)\n$`)
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("usersvc %v: %v", args, err)
		}
		m := line.FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("usersvc %v printed %q", args, out)
		}
		if m[1] != runtime.Version() {
			t.Errorf("usersvc %v names %s, built with %s", args, m[1], runtime.Version())
		}
	}
}

// Every command's --help exits 0 and shows that command's usage, without
// loading the configuration (a bad variable does not get in the way).
func TestEveryCommandsHelpExitsZero(t *testing.T) {
	bin := usersvcproc.Binary(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "usersvc migrate status"},
		{[]string{"-h"}, "usersvc version"},
		{[]string{"help"}, "Configuration"},
		{[]string{"serve", "--help"}, "Usage: usersvc [serve]"},
		{[]string{"migrate", "--help"}, "Usage: usersvc migrate\n"},
		{[]string{"migrate", "status", "--help"}, "Usage: usersvc migrate status"},
		{[]string{"events", "--help"}, "Usage: usersvc events tail"},
		{[]string{"events", "tail", "--help"}, "Usage: usersvc events tail"},
		{[]string{"version", "--help"}, "Usage: usersvc version"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			cmd := exec.Command(bin, c.args...)
			cmd.Env = []string{"HTTP_ADDR=not an address", "DATABASE_URL=nope://"}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("exit: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, out)
			}
		})
	}
}

// migrate status lists the pending migrations of an empty database, and
// none pending after migrate.
func TestMigrateStatus(t *testing.T) {
	bin := usersvcproc.Binary(t)
	env := []string{"EVENT_BUS=log", "AUTH_MODE=none", "DATABASE_URL=sqlite://" + filepath.Join(t.TempDir(), "users.db")}
	status := func() string {
		cmd := exec.Command(bin, "migrate", "status")
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				stderr = ee.Stderr
			}
			t.Fatalf("migrate status: %v\n%s", err, stderr)
		}
		return string(out)
	}
	before := status()
	if !regexp.MustCompile(`(?m)^1\s+pending\s+-\s+00001_\S+\.sql$`).MatchString(before) ||
		!regexp.MustCompile(`(?m)^0 applied, [1-9]\d* pending$`).MatchString(before) {
		t.Fatalf("before migrate:\n%s", before)
	}
	cmd := exec.Command(bin, "migrate")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	after := status()
	if !regexp.MustCompile(`(?m)^1\s+applied\s+\d{4}-\d\d-\d\dT\S+\s+00001_\S+\.sql$`).MatchString(after) ||
		!regexp.MustCompile(`(?m)^[1-9]\d* applied, 0 pending$`).MatchString(after) {
		t.Fatalf("after migrate:\n%s", after)
	}
}
