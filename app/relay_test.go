package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
)

// fakeOutbox is an in-memory ports.Outbox.
type fakeOutbox struct {
	mu        sync.Mutex
	rows      []outboxRow // in Seq order
	nextSeq   int64
	marks     [][]int64 // every MarkPublished call
	purges    []time.Time
	markedCtx []error // ctx.Err() seen by each MarkPublished
	readErrs  int     // PendingMessages fails this many times
}

type outboxRow struct {
	msg         domain.Message
	publishedAt time.Time
}

func (o *fakeOutbox) add(key string, at time.Time) domain.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.nextSeq++
	m := domain.Message{Seq: o.nextSeq, EventID: fmt.Sprintf("ev-%d", o.nextSeq), Type: "users.user.updated", Key: key, OccurredAt: at, Payload: []byte(`{}`)}
	o.rows = append(o.rows, outboxRow{msg: m})
	return m
}

func (o *fakeOutbox) PendingMessages(_ context.Context, afterSeq int64, limit int) ([]domain.Message, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.readErrs > 0 {
		o.readErrs--
		return nil, errors.New("database is away")
	}
	var out []domain.Message
	for _, r := range o.rows {
		if r.publishedAt.IsZero() && r.msg.Seq > afterSeq && len(out) < limit {
			out = append(out, r.msg)
		}
	}
	return out, nil
}

func (o *fakeOutbox) MarkPublished(ctx context.Context, seqs []int64, at time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.marks = append(o.marks, slices.Clone(seqs))
	o.markedCtx = append(o.markedCtx, ctx.Err())
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for i := range o.rows {
		if slices.Contains(seqs, o.rows[i].msg.Seq) {
			o.rows[i].publishedAt = at
		}
	}
	return nil
}

func (o *fakeOutbox) PurgePublished(_ context.Context, before time.Time) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.purges = append(o.purges, before)
	kept := o.rows[:0]
	var n int64
	for _, r := range o.rows {
		if !r.publishedAt.IsZero() && r.publishedAt.Before(before) {
			n++
			continue
		}
		kept = append(kept, r)
	}
	o.rows = kept
	return n, nil
}

func (o *fakeOutbox) Backlog(context.Context) (int64, time.Time, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var n int64
	var oldest time.Time
	for _, r := range o.rows {
		if r.publishedAt.IsZero() {
			if n == 0 {
				oldest = r.msg.OccurredAt
			}
			n++
		}
	}
	return n, oldest, nil
}

func (o *fakeOutbox) pending() int {
	n, _, _ := o.Backlog(context.Background())
	return int(n)
}

func (o *fakeOutbox) rowCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.rows)
}

// fakeLock is a ports.RelayLock that is free or held elsewhere.
type fakeLock struct {
	mu       sync.Mutex
	heldByUs bool
	busy     bool // another replica holds it
	tries    int
}

func (l *fakeLock) TryLock(context.Context) (func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tries++
	if l.busy || l.heldByUs {
		return nil, false, nil
	}
	l.heldByUs = true
	return func() {
		l.mu.Lock()
		l.heldByUs = false
		l.mu.Unlock()
	}, true, nil
}

func (l *fakeLock) triesSoFar() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tries
}

// fakePublisher records every Publish call; script, when set, decides each
// call's outcome (acked count and error) by call number.
type fakePublisher struct {
	mu        sync.Mutex
	calls     [][]domain.Message
	delivered []domain.Message // acknowledged messages, in order, duplicates included
	script    func(call int, msgs []domain.Message) (int, error)
	block     chan struct{} // when set, Publish acks `blockAck` then waits on ctx
	blockAck  int
}

func (p *fakePublisher) Publish(ctx context.Context, msgs []domain.Message) (int, error) {
	p.mu.Lock()
	p.calls = append(p.calls, slices.Clone(msgs))
	call := len(p.calls)
	acked, err := len(msgs), error(nil)
	if p.script != nil {
		acked, err = p.script(call, msgs)
	}
	if p.block != nil {
		acked = min(p.blockAck, len(msgs))
		p.delivered = append(p.delivered, msgs[:acked]...)
		p.mu.Unlock()
		close(p.block)
		<-ctx.Done()
		return acked, ctx.Err()
	}
	p.delivered = append(p.delivered, msgs[:acked]...)
	p.mu.Unlock()
	return acked, err
}

func (p *fakePublisher) snapshot() (calls [][]domain.Message, delivered []domain.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls), slices.Clone(p.delivered)
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

var relayT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// relayHarness runs a relay over fakes and stops it at the end of the test.
type relayHarness struct {
	relay  *Relay
	outbox *fakeOutbox
	lock   *fakeLock
	pub    *fakePublisher
	sleeps *sleepRecorder
	cancel context.CancelFunc
	done   chan error
}

type sleepRecorder struct {
	mu sync.Mutex
	ds []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) {
	s.mu.Lock()
	s.ds = append(s.ds, d)
	s.mu.Unlock()
}

func (s *sleepRecorder) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ds)
}

func newRelayHarness(t *testing.T, cfg RelayConfig, outbox *fakeOutbox, lock *fakeLock, pub *fakePublisher) *relayHarness {
	t.Helper()
	h := &relayHarness{outbox: outbox, lock: lock, pub: pub, sleeps: &sleepRecorder{}, done: make(chan error, 1)}
	h.relay = NewRelay(outbox, lock, pub, fixedClock{relayT0}, cfg)
	h.relay.sleep = h.sleeps.sleep // backoff without waiting
	return h
}

func (h *relayHarness) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.relay.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
}

func (h *relayHarness) stop(t *testing.T) {
	t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Run returned %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// seqs lists the sequence numbers of msgs.
func seqs(msgs []domain.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// assertEveryMessageOnceInOrder checks that the first delivery of each
// message follows Seq order and that none is missing.
func assertEveryMessageOnceInOrder(t *testing.T, delivered []domain.Message, want int) (duplicates int) {
	t.Helper()
	seen := map[int64]bool{}
	var firsts []int64
	for _, m := range delivered {
		if seen[m.Seq] {
			duplicates++
			continue
		}
		seen[m.Seq] = true
		firsts = append(firsts, m.Seq)
	}
	if len(firsts) != want {
		t.Fatalf("delivered %d distinct messages, want %d", len(firsts), want)
	}
	if !slices.IsSorted(firsts) {
		t.Fatalf("first deliveries out of Seq order: %v", firsts)
	}
	return duplicates
}

func TestRelayPublishesInSeqOrderInBatches(t *testing.T) {
	outbox := &fakeOutbox{}
	for i := range 1203 {
		outbox.add(strconv.Itoa(i%7), relayT0)
	}
	h := newRelayHarness(t, RelayConfig{PollInterval: time.Hour, BatchSize: 500}, outbox, &fakeLock{}, &fakePublisher{})
	h.start(t)
	waitFor(t, "the outbox to drain", 5*time.Second, func() bool { return outbox.pending() == 0 })

	calls, delivered := h.pub.snapshot()
	if got := len(calls); got != 3 {
		t.Errorf("Publish called %d times, want 3 (500+500+203)", got)
	}
	for i, c := range calls {
		if len(c) > 500 {
			t.Errorf("call %d carried %d messages, over the batch size", i, len(c))
		}
	}
	if dups := assertEveryMessageOnceInOrder(t, delivered, 1203); dups != 0 {
		t.Errorf("%d duplicates without any failure", dups)
	}
	waitFor(t, "stats to count every message", time.Second, func() bool { return h.relay.Stats().Published == 1203 })
}

func TestRelayMarksOnlyTheAcknowledgedPrefix(t *testing.T) {
	outbox := &fakeOutbox{}
	for range 5 {
		outbox.add("1", relayT0)
	}
	pub := &fakePublisher{script: func(call int, msgs []domain.Message) (int, error) {
		if call == 1 {
			return 3, errors.New("broker refused message 4")
		}
		return len(msgs), nil
	}}
	h := newRelayHarness(t, RelayConfig{PollInterval: time.Hour}, outbox, &fakeLock{}, pub)
	h.start(t)
	waitFor(t, "the outbox to drain", 5*time.Second, func() bool { return outbox.pending() == 0 })

	outbox.mu.Lock()
	marks := slices.Clone(outbox.marks)
	outbox.mu.Unlock()
	want := [][]int64{{1, 2, 3}, {4, 5}}
	if !slices.EqualFunc(marks, want, slices.Equal) {
		t.Errorf("MarkPublished calls = %v, want %v", marks, want)
	}
	calls, _ := pub.snapshot()
	if got := seqs(calls[1]); !slices.Equal(got, []int64{4, 5}) {
		t.Errorf("retry sent %v, want it to start at the first unacknowledged message [4 5]", got)
	}
}

func TestRelayRetriesWithCappedBackoffWithoutLossOrReorder(t *testing.T) {
	const failures = 9
	outbox := &fakeOutbox{}
	for i := range 40 {
		outbox.add(strconv.Itoa(i%3), relayT0)
	}
	pub := &fakePublisher{script: func(call int, msgs []domain.Message) (int, error) {
		if call <= failures {
			// Each failing call acknowledges a little, as a broker would
			// before going away: the relay must resume after that prefix.
			return min(call%3, len(msgs)), fmt.Errorf("broker down (call %d)", call)
		}
		return len(msgs), nil
	}}
	cfg := RelayConfig{PollInterval: time.Hour, BatchSize: 16, MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond}
	h := newRelayHarness(t, cfg, outbox, &fakeLock{}, pub)
	h.start(t)
	waitFor(t, "the outbox to drain", 5*time.Second, func() bool { return outbox.pending() == 0 })

	calls, delivered := pub.snapshot()
	if dups := assertEveryMessageOnceInOrder(t, delivered, 40); dups != 0 {
		t.Errorf("%d duplicates: acknowledged messages were sent again", dups)
	}
	// Every call starts at the first message not yet acknowledged.
	acked := map[int64]bool{}
	for i, c := range calls {
		first := c[0].Seq
		for s := int64(1); s < first; s++ {
			if !acked[s] {
				t.Fatalf("call %d starts at seq %d while seq %d was never acknowledged", i+1, first, s)
			}
		}
		n := len(c)
		if i < failures {
			n = min((i+1)%3, len(c))
		}
		for _, m := range c[:n] {
			acked[m.Seq] = true
		}
	}

	sleeps := h.sleeps.all()
	if len(sleeps) != failures {
		t.Fatalf("slept %d times, want one backoff per failure (%d): %v", len(sleeps), failures, sleeps)
	}
	base := []time.Duration{10, 20, 40, 80, 80, 80, 80, 80, 80}
	for i, d := range sleeps {
		b := base[i] * time.Millisecond
		if d < b/2 || d > b {
			t.Errorf("backoff %d = %v, want within [%v, %v]", i+1, d, b/2, b)
		}
	}
	if got := h.relay.Stats().FailedAttempts; got != failures {
		t.Errorf("FailedAttempts = %d, want %d", got, failures)
	}
}

func TestRelayBackoffSchedule(t *testing.T) {
	r := NewRelay(&fakeOutbox{}, &fakeLock{}, &fakePublisher{}, fixedClock{relayT0},
		RelayConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	r.jitter = func(d time.Duration) time.Duration { return d }
	tests := []struct {
		name     string
		failures int
		want     time.Duration
	}{
		{"first failure waits the minimum", 1, 100 * time.Millisecond},
		{"second doubles", 2, 200 * time.Millisecond},
		{"fourth", 4, 800 * time.Millisecond},
		{"fifth reaches the cap", 5, time.Second},
		{"many failures stay at the cap", 500, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.backoff(tc.failures); got != tc.want {
				t.Errorf("backoff(%d) = %v, want %v", tc.failures, got, tc.want)
			}
		})
	}
}

func TestRelayJitterStaysWithinHalfToFull(t *testing.T) {
	for range 1000 {
		if d := halfJitter(time.Second); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("halfJitter(1s) = %v, outside [500ms, 1s]", d)
		}
	}
}

func TestRelayRetriesAfterOutboxReadFailure(t *testing.T) {
	outbox := &fakeOutbox{readErrs: 2}
	outbox.add("1", relayT0)
	h := newRelayHarness(t, RelayConfig{PollInterval: time.Hour}, outbox, &fakeLock{}, &fakePublisher{})
	h.start(t)
	waitFor(t, "the outbox to drain", 5*time.Second, func() bool { return outbox.pending() == 0 })
	if got := len(h.sleeps.all()); got != 2 {
		t.Errorf("backed off %d times, want 2", got)
	}
}

func TestRelayWakesOnNotifyWithoutWaitingForThePoll(t *testing.T) {
	outbox := &fakeOutbox{}
	lock := &fakeLock{}
	h := newRelayHarness(t, RelayConfig{PollInterval: time.Hour}, outbox, lock, &fakePublisher{})
	h.start(t)
	// The first drain happens at start; wait for it so the next one can
	// only come from Notify (the poll is an hour away).
	waitFor(t, "the first drain", time.Second, func() bool { return lock.triesSoFar() >= 1 })
	outbox.add("1", relayT0)
	h.relay.Notify()
	h.relay.Notify() // coalesces, never blocks
	waitFor(t, "the notified message to be published", 2*time.Second, func() bool { return outbox.pending() == 0 })
}

func TestRelayPollsForRowsWrittenElsewhere(t *testing.T) {
	outbox := &fakeOutbox{}
	lock := &fakeLock{}
	h := newRelayHarness(t, RelayConfig{PollInterval: 10 * time.Millisecond}, outbox, lock, &fakePublisher{})
	h.start(t)
	waitFor(t, "the first drain", time.Second, func() bool { return lock.triesSoFar() >= 1 })
	outbox.add("1", relayT0) // no Notify: another process wrote it
	waitFor(t, "the polled message to be published", 2*time.Second, func() bool { return outbox.pending() == 0 })
}

func TestRelayPublishesNothingWithoutTheLock(t *testing.T) {
	outbox := &fakeOutbox{}
	outbox.add("1", relayT0.Add(-time.Minute))
	outbox.add("2", relayT0)
	lock := &fakeLock{busy: true}
	pub := &fakePublisher{}
	h := newRelayHarness(t, RelayConfig{PollInterval: 5 * time.Millisecond}, outbox, lock, pub)
	h.start(t)
	h.relay.Notify()
	waitFor(t, "several lock attempts", 2*time.Second, func() bool { return lock.triesSoFar() >= 5 })
	if calls, _ := pub.snapshot(); len(calls) != 0 {
		t.Fatalf("published %d batches without holding the lock", len(calls))
	}
	if got := len(h.sleeps.all()); got != 0 {
		t.Errorf("backed off %d times: a busy lock is not a failure", got)
	}
	st := h.relay.Stats()
	if st.Backlog != 2 || st.OldestAge != time.Minute {
		t.Errorf("Stats = %+v, want backlog 2 and oldest age 1m measured even without the lock", st)
	}
}

func TestRelayPurgesRowsOlderThanRetention(t *testing.T) {
	outbox := &fakeOutbox{}
	outbox.add("1", relayT0)
	// Two rows published long ago and one recently.
	outbox.rows = append(outbox.rows,
		outboxRow{msg: domain.Message{Seq: 100}, publishedAt: relayT0.Add(-3 * time.Hour)},
		outboxRow{msg: domain.Message{Seq: 101}, publishedAt: relayT0.Add(-2 * time.Hour)},
		outboxRow{msg: domain.Message{Seq: 102}, publishedAt: relayT0.Add(-10 * time.Minute)},
	)
	h := newRelayHarness(t, RelayConfig{PollInterval: time.Hour, Retention: time.Hour}, outbox, &fakeLock{}, &fakePublisher{})
	h.start(t)
	waitFor(t, "a purge", 2*time.Second, func() bool {
		outbox.mu.Lock()
		defer outbox.mu.Unlock()
		return len(outbox.purges) > 0
	})
	outbox.mu.Lock()
	before := outbox.purges[0]
	outbox.mu.Unlock()
	if want := relayT0.Add(-time.Hour); !before.Equal(want) {
		t.Errorf("PurgePublished(before=%v), want now-retention = %v", before, want)
	}
	// Left: the message just published (at relayT0) and the recent one.
	if got := outbox.rowCount(); got != 2 {
		t.Errorf("%d rows left after purge, want 2", got)
	}
}

func TestRelayPurgeIsThrottled(t *testing.T) {
	outbox := &fakeOutbox{}
	h := newRelayHarness(t, RelayConfig{PollInterval: time.Millisecond, PurgeInterval: time.Hour}, outbox, &fakeLock{}, &fakePublisher{})
	h.start(t)
	waitFor(t, "many drains", 2*time.Second, func() bool { return h.lock.triesSoFar() >= 20 })
	outbox.mu.Lock()
	n := len(outbox.purges)
	outbox.mu.Unlock()
	if n != 1 {
		t.Errorf("purged %d times within one PurgeInterval (fixed clock), want 1", n)
	}
}

func TestRelayStopsOnCancelAndMarksWhatWasAcknowledged(t *testing.T) {
	outbox := &fakeOutbox{}
	for range 5 {
		outbox.add("1", relayT0)
	}
	pub := &fakePublisher{block: make(chan struct{}), blockAck: 2}
	h := newRelayHarness(t, RelayConfig{PollInterval: time.Hour}, outbox, &fakeLock{}, pub)
	h.start(t)
	<-pub.block // Publish is in flight, 2 messages acknowledged
	h.stop(t)   // fails the test if Run does not return

	outbox.mu.Lock()
	defer outbox.mu.Unlock()
	if len(outbox.marks) != 1 || !slices.Equal(outbox.marks[0], []int64{1, 2}) {
		t.Fatalf("MarkPublished calls = %v, want one for [1 2]", outbox.marks)
	}
	if outbox.markedCtx[0] != nil {
		t.Errorf("MarkPublished got a cancelled context (%v): acknowledged messages would be sent again", outbox.markedCtx[0])
	}
}

func TestRelayRunReturnsWhenCancelledWhileIdle(t *testing.T) {
	h := newRelayHarness(t, RelayConfig{PollInterval: time.Hour}, &fakeOutbox{}, &fakeLock{}, &fakePublisher{})
	h.start(t)
	waitFor(t, "the first drain", time.Second, func() bool { return h.lock.triesSoFar() >= 1 })
	h.stop(t)
}

func TestRelayConfigDefaults(t *testing.T) {
	got := RelayConfig{}.withDefaults()
	if got.PollInterval != time.Second || got.BatchSize != 500 || got.Retention != 24*time.Hour ||
		got.MinBackoff != DefaultMinBackoff || got.MaxBackoff != DefaultMaxBackoff || got.Logger == nil {
		t.Errorf("defaults = %+v", got)
	}
	if c := (RelayConfig{MinBackoff: time.Minute, MaxBackoff: time.Second}).withDefaults(); c.MaxBackoff != time.Minute {
		t.Errorf("MaxBackoff below MinBackoff should be raised to it, got %v", c.MaxBackoff)
	}
}

func TestRelayFlushPublishesWhatIsPendingAfterRun(t *testing.T) {
	outbox := &fakeOutbox{}
	h := newRelayHarness(t, RelayConfig{PollInterval: time.Hour}, outbox, &fakeLock{}, &fakePublisher{})
	h.start(t)
	h.stop(t)
	for i := range 3 {
		outbox.add(strconv.Itoa(i), relayT0) // committed after the relay stopped, no Notify
	}
	if err := h.relay.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, delivered := h.pub.snapshot()
	if dups := assertEveryMessageOnceInOrder(t, delivered, 3); dups != 0 || outbox.pending() != 0 {
		t.Fatalf("after Flush: %d duplicates, %d pending", dups, outbox.pending())
	}
}
