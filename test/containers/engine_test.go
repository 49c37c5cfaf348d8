package containers

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"
	"github.com/testcontainers/testcontainers-go/wait"
)

func TestHostNetworkProblem(t *testing.T) {
	for _, tc := range []struct {
		name    string
		options []string
		problem bool
	}{
		{"rootful engine", []string{"name=seccomp,profile=default", "name=cgroupns"}, false},
		{"no security options", nil, false},
		{"rootless Docker", []string{"name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hostNetworkProblem(system.Info{SecurityOptions: tc.options})
			if (got != "") != tc.problem {
				t.Fatalf("hostNetworkProblem = %q, want a problem: %v", got, tc.problem)
			}
		})
	}
}

// runningTarget is a container that keeps running; only State is called.
type runningTarget struct{ wait.StrategyTarget }

func (runningTarget) State(context.Context) (*container.State, error) {
	return &container.State{Running: true, Status: "running"}, nil
}

// refused is what dialling a port nobody listens on returns.
func refused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// TestReadinessExplainsAnUnreachableServer: a server whose address
// refuses every connection until the deadline gets the hint about the
// engine's host network, also when the deadline cuts the last check short;
// one that fails otherwise does not.
func TestReadinessExplainsAnUnreachableServer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(ctx context.Context, call int) error // call counts from 0
		hint  bool
	}{
		{"connection refused", func(context.Context, int) error { return refused() }, true},
		{"refused, then a check the deadline cuts short", func(ctx context.Context, call int) error {
			if call == 0 {
				return refused()
			}
			<-ctx.Done()
			return ctx.Err()
		}, true},
		{"another failure", func(context.Context, int) error { return errors.New("access denied for user root") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			r := readiness{what: "test server", timeout: 300 * time.Millisecond, check: func(ctx context.Context) error {
				defer func() { calls++ }()
				return tc.check(ctx, calls)
			}}
			err := r.WaitUntilReady(context.Background(), runningTarget{})
			if err == nil {
				t.Fatal("ready, want a timeout")
			}
			if got := strings.Contains(err.Error(), "host network must be this machine's"); got != tc.hint {
				t.Fatalf("error %q: hint given %v, want %v", err, got, tc.hint)
			}
		})
	}
}
