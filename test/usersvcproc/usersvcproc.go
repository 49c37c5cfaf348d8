// Package usersvcproc builds cmd/usersvc and runs it as a process, the way
// an operator does, for tests of the binary itself (start-up, signals,
// output).
package usersvcproc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/test/syncbuf"
)

// Build compiles cmd/usersvc into dir with the go command on the PATH (so
// with the toolchain the caller runs) and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "usersvc")
	out, err := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "github.com/marketplace/usersvc/cmd/usersvc").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/usersvc: %w\n%s", err, out)
	}
	return bin, nil
}

var (
	once     sync.Once
	built    string
	buildErr error
)

// Binary builds cmd/usersvc once per test process, into a temporary
// directory the system cleans up, and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		dir, err := os.MkdirTemp("", "usersvc-bin-")
		if err != nil {
			buildErr = err
			return
		}
		built, buildErr = Build(context.Background(), dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// Process is a running `usersvc serve` with its output captured.
type Process struct {
	// Base is the service's URL, http://127.0.0.1:port.
	Base           string
	Stdout, Stderr *syncbuf.Buffer
	cmd            *exec.Cmd
	exited         chan struct{}
	err            error // the exit, once exited is closed
}

// Start runs `binary serve` listening on a free loopback port, with env
// after this process's environment, and waits up to ready for /readyz to
// answer 200. The test's cleanup kills it if it is still running.
// Authentication is off (AUTH_MODE=none) and so is the admin listener
// (ADMIN_ADDR empty, so parallel processes do not fight for its port)
// unless env says otherwise.
func Start(t testing.TB, binary string, ready time.Duration, env ...string) *Process {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	p := &Process{Base: "http://" + addr, Stdout: &syncbuf.Buffer{}, Stderr: &syncbuf.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binary, "serve")
	// Later entries win (os/exec keeps the last value of a name). Every
	// client of these tests is 127.0.0.1, one address the default rate
	// limits would throttle; a test about the limits sets its own.
	p.cmd.Env = append(append(os.Environ(), "HTTP_ADDR="+addr, "AUTH_MODE=none", "ADMIN_ADDR=",
		"RATE_LIMIT_CREATE=off", "RATE_LIMIT_PASSWORD=off"), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.Stdout, p.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	deadline := time.Now().Add(ready)
	for {
		res, err := http.Get(p.Base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("usersvc not ready within %v: %v\nstderr:\n%s", ready, err, p.Stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits for the process to exit and returns how it ended (an
// *exec.ExitError unless it exited with 0); it may be called repeatedly.
func (p *Process) Wait() error {
	<-p.exited
	return p.err
}
