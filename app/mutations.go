// Package app holds the use cases: one type per operation, each
// orchestrating the domain and the ports. It owns transaction boundaries and
// knows nothing of HTTP, SQL or Kafka.
package app

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Mutations runs a user change and appends its event in the same
// transaction, then wakes the relay. Every mutating use case goes through it,
// which is what makes "one event per committed mutation" hold.
type Mutations struct {
	uow      ports.UnitOfWork
	clock    ports.Clock
	notifier ports.OutboxNotifier
	traces   ports.TraceContext
}

// NewMutations wires the transaction runner. traces may be nil (no trace
// context is stored with the events).
func NewMutations(uow ports.UnitOfWork, clock ports.Clock, notifier ports.OutboxNotifier, traces ports.TraceContext) *Mutations {
	return &Mutations{uow: uow, clock: clock, notifier: notifier, traces: traces}
}

// change is what a mutation did inside its transaction. A zero Action means
// nothing changed: no event, nothing to notify.
type change struct {
	Action  domain.Action
	User    domain.User
	Changed []string
}

// run executes fn in a transaction and, when fn reports a change, appends
// its event before the commit. fn reads the time through now, after taking
// its locks: a writer that waited for a row must not stamp its change
// earlier than the writer it waited for. The event occurs at that time.
func (m *Mutations) run(ctx context.Context, fn func(ctx context.Context, tx ports.Tx, now func() time.Time) (change, error)) (change, error) {
	var c change
	err := m.uow.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
		var at time.Time // read once per attempt: Do may retry fn
		now := func() time.Time {
			if at.IsZero() {
				at = m.clock.Now().UTC()
			}
			return at
		}
		var err error
		if c, err = fn(ctx, tx, now); err != nil || c.Action == "" {
			return err
		}
		ev := domain.NewEvent(newEventID(now()), c.Action, c.User, c.Changed, now())
		ev.Actor = actor(ctx)
		msg, err := ev.Message()
		if err != nil {
			return fmt.Errorf("encode %s event of user %d: %w", c.Action, c.User.ID, err)
		}
		if m.traces != nil {
			msg.TraceParent, msg.TraceState = m.traces.Inject(ctx)
		}
		if err := tx.AppendMessage(ctx, msg); err != nil {
			return fmt.Errorf("append %s event of user %d: %w", c.Action, c.User.ID, err)
		}
		return nil
	})
	if err != nil {
		return change{}, err
	}
	if c.Action != "" {
		m.notifier.Notify()
	}
	return c, nil
}

// actor is who asked for the change: the authenticated caller's subject,
// or nil when nobody authenticated.
func actor(ctx context.Context) *string {
	if p, ok := domain.PrincipalFrom(ctx); ok {
		return p.Actor()
	}
	return nil
}

// newEventID returns a UUIDv7: time-ordered, so consumers that keep seen
// ids can index them cheaply.
func newEventID(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:]) // documented never to return an error since Go 1.24
	ms := uint64(now.UnixMilli())
	// The low 48 bits of the time, cut in two on purpose.
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32)) //nolint:gosec // G115: truncation intended
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))     //nolint:gosec // G115: truncation intended
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
