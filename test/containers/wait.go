package containers

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/testcontainers/testcontainers-go/wait"
)

// readiness is a wait strategy that calls check from the test process until
// it succeeds: a real client request (SQL or Kafka metadata) on 127.0.0.1,
// which works the same for upstream and local images, whatever they log and
// whether or not they have a shell. It gives up at once when the container
// stops running.
type readiness struct {
	what    string
	timeout time.Duration
	check   func(ctx context.Context) error
}

var _ wait.Strategy = readiness{}

func (r readiness) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		state, err := target.State(ctx)
		if err == nil && !state.Running {
			return fmt.Errorf("%s: container %s (exit code %d) before it was ready (last check: %v)", r.what, state.Status, state.ExitCode, last) //nolint:errorlint // last may be nil; shown, not matched
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		err = r.check(attempt)
		cancelAttempt()
		if err == nil {
			return nil
		}
		if last == nil || ctx.Err() == nil {
			// A check cut short by the deadline says only that; the
			// one before says why the server did not answer.
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v: %w%s", r.what, r.timeout, last, unreachableHint(last))
		case <-tick.C:
		}
	}
}

// unreachableHint explains a server that ran to the deadline while its
// address refused every connection: the usual cause is an engine whose
// host network is not this machine's.
func unreachableHint(last error) string {
	if !errors.Is(last, syscall.ECONNREFUSED) {
		return ""
	}
	return " (the container ran, but nothing answered on this machine's 127.0.0.1: if the Docker engine runs in a VM, " +
		"as Docker Desktop and Colima do, its host network must be this machine's, e.g. Docker Desktop's " +
		"\"Enable host networking\" (Settings, Resources, Network); see test/containers/doc.go)"
}
