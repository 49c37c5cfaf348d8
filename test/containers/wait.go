package containers

import (
	"context"
	"fmt"
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
		last = r.check(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v: %w", r.what, r.timeout, last)
		case <-tick.C:
		}
	}
}
