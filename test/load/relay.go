package main

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/marketplace/usersvc/domain"
)

// RelayResult is the relay's drain rate: outbox rows written straight to
// the table, then published by the running relay.
type RelayResult struct {
	Events     int           `json:"events"`
	Insert     time.Duration `json:"insert_ns"`
	Drain      time.Duration `json:"drain_ns"`
	EventsPerS float64       `json:"events_per_s"`
	CPU        CPUShare      `json:"cpu"`
	Relay      RelaySteps    `json:"relay_steps"`
}

// relayThroughput commits n update events for seeded users in one
// transaction (batched multi-row inserts, so the relay sees none before the
// commit), wakes the relay and times until it has marked them all
// published. The outbox must be empty before.
func relayThroughput(ctx context.Context, svc *service, db *sql.DB, dialect string, pop population, n int, nonce string, timeout time.Duration) (*RelayResult, error) {
	if err := svc.waitForRelay(ctx, timeout); err != nil {
		return nil, err
	}
	start := time.Now()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	const batch = 1000
	now := time.Now().UTC().Truncate(time.Microsecond)
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		var sb strings.Builder
		sb.WriteString("INSERT INTO outbox (event_id, event_type, msg_key, payload, occurred_at, created_at) VALUES ")
		args := make([]any, 0, (hi-lo)*6)
		for i := lo; i < hi; i++ {
			if i > lo {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?)")
			m, err := syntheticEvent(pop, i, nonce, now)
			if err != nil {
				return nil, err
			}
			args = append(args, m.EventID, m.Type, m.Key, m.Payload, m.OccurredAt, now)
		}
		if _, err := tx.ExecContext(ctx, rebind(dialect, sb.String()), args...); err != nil {
			return nil, fmt.Errorf("insert outbox rows %d-%d: %w", lo, hi-1, err)
		}
	}
	published := svc.relay.Stats().Published
	// Reset before the commit: a poll tick right after it may read and
	// publish the rows before this goroutine runs again.
	svc.probe.reset()
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	committed := time.Now()
	cpu0 := readCPU()
	svc.relay.Notify()
	want := published + uint64(n)
	deadline := time.Now().Add(timeout)
	for svc.relay.Stats().Published < want {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("relay published %d of %d events in %v", svc.relay.Stats().Published-published, n, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	drain := time.Since(committed)
	return &RelayResult{
		Events:     n,
		Insert:     committed.Sub(start),
		Drain:      drain,
		EventsPerS: float64(n) / drain.Seconds(),
		CPU:        readCPU().since(cpu0),
		Relay:      svc.probe.summary(),
	}, nil
}

// syntheticEvent is the update event of seeded user i, as the service
// would have written it.
func syntheticEvent(pop population, i int, nonce string, at time.Time) (domain.Message, error) {
	id := pop.MinID + int64(i%pop.Users)
	first := "First" + strconv.Itoa(int(id-pop.MinID)%firstNames)
	last := lastName(int(id-pop.MinID) % pop.LastNames)
	u := domain.User{
		ID: id, FirstName: first, LastName: last, Address: "Relay Street " + strconv.Itoa(i),
		Email:     strings.ToLower(first + "." + last + "." + strconv.FormatInt(id-pop.MinID, 10) + "@example.com"),
		Version:   2,
		CreatedAt: seedEpoch, UpdatedAt: at,
	}
	m, err := domain.NewEvent("relay-"+nonce+"-"+strconv.Itoa(i), domain.ActionUpdate, u, []string{domain.FieldAddress}, at).Message()
	if err != nil {
		return domain.Message{}, fmt.Errorf("encode synthetic event: %w", err)
	}
	return m, nil
}

// LagResult is the event lag from commit to broker acknowledgement under a
// steady rate of mutations.
type LagResult struct {
	Rate       float64       `json:"mutations_per_s"`
	Duration   time.Duration `json:"duration_ns"`
	Mutations  uint64        `json:"mutations"`
	Errors     uint64        `json:"errors"`
	Missed     uint64        `json:"missed"`
	Events     uint64        `json:"events"`
	Unacked    int           `json:"unacked"`
	Lag        Latency       `json:"lag"`
	RequestP99 Millis        `json:"request_p99_ms"`
	CPU        CPUShare      `json:"cpu"`
	Relay      RelaySteps    `json:"relay_steps"`
}

// eventLag sends address patches (each one mutation, one event) at rate
// per second for d, open loop, and measures each event from its commit to
// the broker's acknowledgement. It has enough workers (and keep-alive
// connections) for half a second of requests in flight, so that slow
// answers do not lower the rate.
func eventLag(ctx context.Context, svc *service, e *env, rate float64, d time.Duration, minWorkers int, settle time.Duration) (*LagResult, error) {
	if err := svc.waitForRelay(ctx, settle); err != nil {
		return nil, err
	}
	workers := max(minWorkers, int(rate/2))
	cl, err := newClient(svc.URL, workers)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	e2 := *e
	e2.client = cl
	svc.lag.start()
	svc.probe.reset()
	res := openLoop(ctx, rate, d, workers, 7, e2.servicePatch)
	deadline := time.Now().Add(settle)
	for svc.lag.pending() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	hist, unacked := svc.lag.stop()
	return &LagResult{
		Rate:       rate,
		Duration:   d,
		Mutations:  res.Requests,
		Errors:     res.Errors,
		Missed:     res.Missed,
		Events:     hist.Count(),
		Unacked:    unacked,
		Lag:        hist.Summary(),
		RequestP99: Millis(res.latency.Quantile(0.99)),
		CPU:        res.CPU,
		Relay:      svc.probe.summary(),
	}, nil
}
