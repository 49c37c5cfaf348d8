package containers

import (
	"context"
	"errors"
	"net"
	"strings"
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

// TestReadinessExplainsAnUnreachableServer: a server whose address
// refuses every connection until the deadline gets the hint about the
// engine's host network; one that fails otherwise does not.
func TestReadinessExplainsAnUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close() // nothing listens there now: connections are refused
	for _, tc := range []struct {
		name  string
		check func(context.Context) error
		hint  bool
	}{
		{"connection refused", func(ctx context.Context) error {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", closed)
			if err == nil {
				_ = c.Close()
			}
			return err
		}, true},
		{"another failure", func(context.Context) error { return errors.New("access denied for user root") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := readiness{what: "test server", timeout: 300 * time.Millisecond, check: tc.check}
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
