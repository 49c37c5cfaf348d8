package app

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
)

// fakeOutbox is an in-memory ports.Outbox.
type fakeOutbox struct {
	mu        sync.Mutex
	rows      []outboxRow // in Seq order
	nextSeq   int64
	reads     int
	marks     [][]int64 // every MarkPublished call
	purges    []time.Time
	backlogs  int     // Backlog calls
	markedCtx []error // ctx.Err() seen by each MarkPublished
	readErrs  int     // PendingMessages fails this many times

	// onRead and onMark, when set, run at the start of each call (numbered
	// from 1), outside the lock; an error they return fails the call.
	onRead func(call int, afterSeq int64) error
	onMark func(call int, seqs []int64) error

	marking concurrency // of MarkPublished calls
}

// concurrency counts the calls of a method that run at once.
type concurrency struct {
	mu        sync.Mutex
	now, most int
}

// enter records the start of a call and returns what records its end.
func (c *concurrency) enter() (leave func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now++
	c.most = max(c.most, c.now)
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.now--
	}
}

// counts tells how many calls run now and how many ran at most at once.
func (c *concurrency) counts() (now, most int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now, c.most
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

// addLate stores a message with a Seq taken earlier, as a transaction that
// committed after later ones does.
func (o *fakeOutbox) addLate(seq int64, key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := domain.Message{Seq: seq, EventID: fmt.Sprintf("ev-%d", seq), Type: "users.user.updated", Key: key, OccurredAt: relayT0, Payload: []byte(`{}`)}
	i, _ := slices.BinarySearchFunc(o.rows, seq, func(r outboxRow, seq int64) int { return cmp.Compare(r.msg.Seq, seq) })
	o.rows = slices.Insert(o.rows, i, outboxRow{msg: m})
}

// hook sets onRead and onMark (nil: none).
func (o *fakeOutbox) hook(onRead func(call int, afterSeq int64) error, onMark func(call int, seqs []int64) error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.onRead, o.onMark = onRead, onMark
}

func (o *fakeOutbox) PendingMessages(_ context.Context, afterSeq int64, limit int) ([]domain.Message, error) {
	o.mu.Lock()
	o.reads++
	call, hook := o.reads, o.onRead
	o.mu.Unlock()
	if hook != nil {
		if err := hook(call, afterSeq); err != nil {
			return nil, err
		}
	}
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
	o.marks = append(o.marks, slices.Clone(seqs))
	o.markedCtx = append(o.markedCtx, ctx.Err())
	call, hook := len(o.marks), o.onMark
	o.mu.Unlock()
	defer o.marking.enter()()
	if hook != nil {
		if err := hook(call, seqs); err != nil {
			return err
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
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
	o.backlogs++
	return o.backlog()
}

func (o *fakeOutbox) backlog() (int64, time.Time, error) {
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
	o.mu.Lock()
	defer o.mu.Unlock()
	n, _, _ := o.backlog()
	return int(n)
}

// pendingSeqs lists the unpublished messages' Seqs.
func (o *fakeOutbox) pendingSeqs() []int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []int64
	for _, r := range o.rows {
		if r.publishedAt.IsZero() {
			out = append(out, r.msg.Seq)
		}
	}
	return out
}

// markCalls returns every MarkPublished call's seqs, and how many calls
// run now and ran at most at once.
func (o *fakeOutbox) markCalls() (marks [][]int64, running, maxRunning int) {
	o.mu.Lock()
	marks = slices.Clone(o.marks)
	o.mu.Unlock()
	running, maxRunning = o.marking.counts()
	return marks, running, maxRunning
}

func (o *fakeOutbox) backlogCalls() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.backlogs
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
	lose     context.CancelFunc // ends the current holder's held context
}

func (l *fakeLock) TryLock(ctx context.Context) (context.Context, func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tries++
	if l.busy || l.heldByUs {
		return nil, nil, false, nil
	}
	l.heldByUs = true
	held, lose := context.WithCancel(ctx)
	l.lose = lose
	return held, func() {
		lose()
		l.mu.Lock()
		l.heldByUs = false
		l.mu.Unlock()
	}, true, nil
}

// loseHold makes the current holder lose the lock, as one cut off from the
// database does (its held context ends).
func (l *fakeLock) loseHold() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lose != nil {
		l.lose()
	}
}

func (l *fakeLock) triesSoFar() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tries
}

// fakePublisher records every Publish call; script, when set, decides each
// call's outcome (acked count and error) by call number, outside the lock.
type fakePublisher struct {
	mu        sync.Mutex
	calls     [][]domain.Message
	delivered []domain.Message // acknowledged messages, in order, duplicates included
	script    func(call int, msgs []domain.Message) (int, error)
	block     chan struct{} // when set, Publish acks `blockAck` then waits on ctx
	blockAck  int

	publishing concurrency
}

func (p *fakePublisher) Publish(ctx context.Context, msgs []domain.Message) (int, error) {
	p.mu.Lock()
	p.calls = append(p.calls, slices.Clone(msgs))
	call, script := len(p.calls), p.script
	p.mu.Unlock()
	defer p.publishing.enter()()
	acked, err := len(msgs), error(nil)
	if script != nil {
		acked, err = script(call, msgs)
	}
	p.mu.Lock()
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

func (p *fakePublisher) setScript(script func(call int, msgs []domain.Message) (int, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.script = script
}

func (p *fakePublisher) mostInFlight() int {
	_, most := p.publishing.counts()
	return most
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

// A relay that loses its lock mid-drain (cut off from the database: another
// replica takes over after the lease) publishes nothing more until it holds
// the lock again.
func TestRelayStopsPublishingWhenItLosesTheLock(t *testing.T) {
	outbox := &fakeOutbox{}
	for i := range 30 {
		outbox.add(strconv.Itoa(i%3), relayT0)
	}
	lock := &fakeLock{}
	pub := &fakePublisher{}
	var mu sync.Mutex
	triesAt := map[int]int{} // Publish call -> TryLock calls made before it
	pub.setScript(func(call int, msgs []domain.Message) (int, error) {
		mu.Lock()
		triesAt[call] = lock.triesSoFar()
		mu.Unlock()
		if call == 1 {
			lock.loseHold()
		}
		return len(msgs), nil
	})
	h := newRelayHarness(t, RelayConfig{PollInterval: time.Hour, BatchSize: 10}, outbox, lock, pub)
	h.start(t)
	waitFor(t, "the outbox to drain", 5*time.Second, func() bool { return outbox.pending() == 0 })

	calls, delivered := h.pub.snapshot()
	mu.Lock()
	defer mu.Unlock()
	if len(calls) < 2 || triesAt[2] <= triesAt[1] {
		t.Errorf("after losing the lock during Publish call 1, call 2 came without taking the lock again (TryLock calls before each: %v)", triesAt)
	}
	assertEveryMessageOnceInOrder(t, delivered, 30)
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

// rendezvous lets fakes running on the relay's goroutines wait for each
// other: signal marks a named point as reached, wait blocks until it is
// (false after 5 s, which the caller turns into a failure).
type rendezvous struct {
	mu     sync.Mutex
	points map[string]chan struct{}
}

func (r *rendezvous) point(name string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.points == nil {
		r.points = map[string]chan struct{}{}
	}
	c, ok := r.points[name]
	if !ok {
		c = make(chan struct{})
		r.points[name] = c
	}
	return c
}

func (r *rendezvous) signal(name string) {
	c := r.point(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-c:
	default:
		close(c)
	}
}

func (r *rendezvous) wait(name string) bool {
	select {
	case <-r.point(name):
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

// waitOrFail makes a fake's call wait until another call reached a point:
// an error when it never does, which shows the two were not concurrent.
func (r *rendezvous) waitOrFail(what, name string) error {
	if !r.wait(name) {
		return fmt.Errorf("%s never overlapped with %s", what, name)
	}
	return nil
}

func publishStarted(call int) string { return fmt.Sprintf("publish %d started", call) }

// signalPublishes is a publisher script that acknowledges everything and
// signals each call's start.
func signalPublishes(ev *rendezvous) func(int, []domain.Message) (int, error) {
	return func(call int, msgs []domain.Message) (int, error) {
		ev.signal(publishStarted(call))
		return len(msgs), nil
	}
}

// assertNoDrainGoroutine fails when a goroutine the drain started is still
// alive (it may take a moment to exit after handing over its result).
func assertNoDrainGoroutine(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("(*Relay).drain")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a drain goroutine outlived the drain:\n%s", buf[:n])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func messagesWithKeys(outbox *fakeOutbox, n, keys int) {
	for i := range n {
		outbox.add(strconv.Itoa(i%keys), relayT0)
	}
}

// TestRelayMarksBehindThePublishOfTheNextBatch: each batch's mark runs
// while the next batch is published (the fake mark waits for that publish
// to start, so a relay that marks before reading on fails), yet Publish
// calls never overlap, marks never overlap, and both follow Seq order.
func TestRelayMarksBehindThePublishOfTheNextBatch(t *testing.T) {
	tests := []struct {
		name         string
		n, batchSize int
		wantCalls    int
	}{
		{"three batches, the last one short", 1203, 500, 3},
		{"whole batches, ended by an empty read", 1000, 500, 2},
		{"one message per batch", 7, 1, 7},
		{"a single short batch", 3, 10, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outbox := &fakeOutbox{}
			messagesWithKeys(outbox, tc.n, 7)
			ev := &rendezvous{}
			outbox.hook(nil, func(call int, _ []int64) error {
				if call < tc.wantCalls {
					return ev.waitOrFail(fmt.Sprintf("mark %d", call), publishStarted(call+1))
				}
				return nil
			})
			pub := &fakePublisher{script: signalPublishes(ev)}
			r := NewRelay(outbox, &fakeLock{}, pub, fixedClock{relayT0}, RelayConfig{BatchSize: tc.batchSize})
			if err := r.Flush(context.Background()); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			marks, running, maxRunning := outbox.markCalls()
			if running != 0 {
				t.Errorf("%d marks still running after the drain returned", running)
			}
			assertNoDrainGoroutine(t)

			calls, delivered := pub.snapshot()
			if len(calls) != tc.wantCalls {
				t.Errorf("Publish called %d times, want %d", len(calls), tc.wantCalls)
			}
			if dups := assertEveryMessageOnceInOrder(t, delivered, tc.n); dups != 0 {
				t.Errorf("%d duplicates without any failure", dups)
			}
			published := make([][]int64, len(calls))
			for i, c := range calls {
				published[i] = seqs(c)
			}
			if !slices.EqualFunc(marks, published, slices.Equal) {
				t.Errorf("marks %v, want one per Publish call, the same seqs in the same order", marks)
			}
			if got := pub.mostInFlight(); got != 1 {
				t.Errorf("%d Publish calls ran at once, want 1", got)
			}
			if maxRunning != 1 {
				t.Errorf("%d marks ran at once, want 1 (batch n+1 is marked after batch n)", maxRunning)
			}
			if got := outbox.pending(); got != 0 {
				t.Errorf("%d messages left pending", got)
			}
			if got := r.Stats().Published; got != uint64(tc.n) {
				t.Errorf("Stats().Published = %d, want %d", got, tc.n)
			}
		})
	}
}

// TestRelayPipelinedFailureStopsTheDrainWithoutLoss: a failure while a mark
// is in flight stops the drain once that mark ended, returns the error,
// marks only what the broker acknowledged after marks that succeeded, and
// a second drain then delivers every message, first deliveries in order
// (duplicates allowed, counted here exactly).
func TestRelayPipelinedFailureStopsTheDrainWithoutLoss(t *testing.T) {
	var (
		errMark   = errors.New("mark failed")
		errBroker = errors.New("broker refused")
		errRead   = errors.New("read failed")
	)
	// 12 messages in batches of 4: [1-4] [5-8] [9-12]. Mark calls 1 to
	// overlap wait until the next batch's Publish started (its read, when
	// that read fails), so the failure happens while they run.
	tests := []struct {
		name                               string
		readFails, markFails, publishFails int // the call that fails (0: none)
		publishAcks                        int // what the failing Publish acknowledged
		shutdown                           bool
		overlap                            int
		wantErrs                           []error
		wantCalls                          int     // Publish calls of the failing drain
		wantMarked                         []int64 // marked when it returned
		wantDups                           int     // duplicates once a second drain is done
	}{
		{
			name: "mark of batch 1 fails while batch 2 is published", markFails: 1, overlap: 1,
			wantErrs: []error{errMark}, wantCalls: 2,
			wantDups: 8, // batch 2 was acknowledged but stays unmarked behind batch 1
		},
		{
			name: "mark of batch 2 fails while batch 3 is published", markFails: 2, overlap: 2,
			wantErrs: []error{errMark}, wantCalls: 3, wantMarked: []int64{1, 2, 3, 4}, wantDups: 8,
		},
		{
			name: "publish of batch 2 fails while batch 1 is being marked", publishFails: 2, publishAcks: 1, overlap: 1,
			wantErrs: []error{errBroker}, wantCalls: 2, wantMarked: []int64{1, 2, 3, 4, 5},
		},
		{
			name: "mark of batch 1 and publish of batch 2 both fail", markFails: 1, publishFails: 2, publishAcks: 2, overlap: 1,
			wantErrs: []error{errMark, errBroker}, wantCalls: 2,
			wantDups: 6, // batch 1 and the acknowledged half of batch 2
		},
		{
			name: "read of batch 2 fails while batch 1 is being marked", readFails: 2, overlap: 1,
			wantErrs: []error{errRead}, wantCalls: 1, wantMarked: []int64{1, 2, 3, 4},
		},
		{
			name: "shutdown while batch 1 is being marked and batch 2 published", publishFails: 2, publishAcks: 2, shutdown: true, overlap: 1,
			wantErrs: []error{context.Canceled}, wantCalls: 2,
			wantMarked: []int64{1, 2, 3, 4, 5, 6}, // both marks outlive the cancelled context
		},
	}
	readStarted := func(call int) string { return fmt.Sprintf("read %d started", call) }
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outbox := &fakeOutbox{}
			messagesWithKeys(outbox, 12, 3)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ev := &rendezvous{}
			outbox.hook(func(call int, _ int64) error {
				ev.signal(readStarted(call))
				if call == tc.readFails {
					return errRead
				}
				return nil
			}, func(call int, _ []int64) error {
				if call <= tc.overlap {
					next := publishStarted(call + 1)
					if tc.readFails == call+1 {
						next = readStarted(call + 1)
					}
					if err := ev.waitOrFail(fmt.Sprintf("mark %d", call), next); err != nil {
						return err
					}
				}
				if call == tc.markFails {
					return errMark
				}
				return nil
			})
			pub := &fakePublisher{script: func(call int, msgs []domain.Message) (int, error) {
				ev.signal(publishStarted(call))
				switch {
				case call != tc.publishFails:
					return len(msgs), nil
				case tc.shutdown:
					cancel()
					return tc.publishAcks, context.Canceled
				default:
					return tc.publishAcks, errBroker
				}
			}}
			r := NewRelay(outbox, &fakeLock{}, pub, fixedClock{relayT0}, RelayConfig{BatchSize: 4})

			err := r.Flush(ctx)
			for _, want := range tc.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("Flush = %v, want an error matching %v", err, want)
				}
			}
			if err == nil {
				t.Fatal("Flush = nil after a failure")
			}
			marks, running, maxRunning := outbox.markCalls()
			if running != 0 {
				t.Errorf("%d marks still running after the drain returned", running)
			}
			assertNoDrainGoroutine(t)
			if calls, _ := pub.snapshot(); len(calls) != tc.wantCalls {
				t.Errorf("Publish called %d times, want %d", len(calls), tc.wantCalls)
			}
			var marked []int64
			pending := outbox.pendingSeqs()
			for s := int64(1); s <= 12; s++ {
				if !slices.Contains(pending, s) {
					marked = append(marked, s)
				}
			}
			if !slices.Equal(marked, tc.wantMarked) {
				t.Errorf("marked %v (mark calls %v), want %v", marked, marks, tc.wantMarked)
			}
			if got := r.Stats().Published; got != uint64(len(tc.wantMarked)) {
				t.Errorf("Stats().Published = %d, want %d", got, len(tc.wantMarked))
			}

			// Once the fault is gone, the next drain delivers the rest.
			outbox.hook(nil, nil)
			pub.setScript(nil)
			if err := r.Flush(context.Background()); err != nil {
				t.Fatalf("second Flush: %v", err)
			}
			_, delivered := pub.snapshot()
			if dups := assertEveryMessageOnceInOrder(t, delivered, 12); dups != tc.wantDups {
				t.Errorf("%d duplicates, want %d", dups, tc.wantDups)
			}
			if got := outbox.pending(); got != 0 {
				t.Errorf("%d messages left pending", got)
			}
			if got := r.Stats().Published; got != 12 {
				t.Errorf("Stats().Published = %d after both drains, want 12", got)
			}
			if got := pub.mostInFlight(); got != 1 || maxRunning > 1 {
				t.Errorf("at most %d Publish calls and %d marks ran at once, want 1 each", got, maxRunning)
			}
		})
	}
}

// TestRelayDrainWaitsForTheMarkInFlight: the drain does not return (and
// Flush does not) while the last batch's mark runs.
func TestRelayDrainWaitsForTheMarkInFlight(t *testing.T) {
	outbox := &fakeOutbox{}
	messagesWithKeys(outbox, 4, 1)
	release := make(chan struct{})
	outbox.hook(nil, func(int, []int64) error { <-release; return nil })
	r := NewRelay(outbox, &fakeLock{}, &fakePublisher{}, fixedClock{relayT0}, RelayConfig{BatchSize: 4})
	done := make(chan error, 1)
	go func() { done <- r.Flush(context.Background()) }()
	waitFor(t, "the mark to start", 2*time.Second, func() bool { _, running, _ := outbox.markCalls(); return running == 1 })
	select {
	case err := <-done:
		t.Fatalf("Flush returned (%v) while the mark was still running", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := outbox.pending(); got != 0 {
		t.Errorf("%d messages pending after Flush", got)
	}
	assertNoDrainGoroutine(t)
}

// TestRelayPublishesALateCommitOnTheNextCycle: a transaction that took a
// lower Seq commits after the drain read past it; the drain does not go
// back for it, and the next cycle (the commit's Notify) publishes it.
func TestRelayPublishesALateCommitOnTheNextCycle(t *testing.T) {
	outbox := &fakeOutbox{}
	for _, seq := range []int64{1, 3, 4} {
		outbox.addLate(seq, "k")
	}
	var relay *Relay
	outbox.hook(func(call int, afterSeq int64) error {
		if call == 2 { // the drain reads after seq 3
			outbox.addLate(2, "k")
			relay.Notify()
		}
		return nil
	}, nil)
	h := newRelayHarness(t, RelayConfig{PollInterval: time.Hour, BatchSize: 2}, outbox, &fakeLock{}, &fakePublisher{})
	relay = h.relay
	h.start(t)
	waitFor(t, "the late message to be published", 2*time.Second, func() bool { return outbox.pending() == 0 && outbox.rowCount() == 4 })

	calls, _ := h.pub.snapshot()
	got := make([][]int64, len(calls))
	for i, c := range calls {
		got[i] = seqs(c)
	}
	if want := [][]int64{{1, 3}, {4}, {2}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Publish calls %v, want %v", got, want)
	}
	waitFor(t, "stats to count every message", time.Second, func() bool { return h.relay.Stats().Published == 4 })
}

// TestRelayMeasuresTheBacklogOnPollsAndFailuresOnly: Backlog (two queries)
// runs at start, after a failed attempt and after a poll tick's drain, not
// after every drain a commit wakes.
func TestRelayMeasuresTheBacklogOnPollsAndFailuresOnly(t *testing.T) {
	tests := []struct {
		name      string
		readErrs  int // failed attempts at start
		notified  int // drains woken by Notify afterwards
		wantCalls int
	}{
		{"only at start when commits wake every drain", 0, 20, 1},
		{"after every failed attempt", 3, 0, 3},
		{"after failures, not after the notified drains that follow", 2, 10, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outbox := &fakeOutbox{readErrs: tc.readErrs}
			outbox.add("1", relayT0)
			h := newRelayHarness(t, RelayConfig{PollInterval: time.Hour}, outbox, &fakeLock{}, &fakePublisher{})
			h.start(t)
			waitFor(t, "the first message to be published", 2*time.Second, func() bool { return outbox.pending() == 0 })
			for i := range tc.notified {
				outbox.add(strconv.Itoa(i), relayT0)
				h.relay.Notify()
				waitFor(t, "a notified drain", 2*time.Second, func() bool { return outbox.pending() == 0 })
			}
			h.stop(t)
			if got := outbox.backlogCalls(); got != tc.wantCalls {
				t.Errorf("Backlog called %d times, want %d", got, tc.wantCalls)
			}
			if got := h.relay.Stats().FailedAttempts; got != uint64(tc.readErrs) {
				t.Errorf("FailedAttempts = %d, want %d", got, tc.readErrs)
			}
		})
	}
}

// TestRelayBacklogFollowsThePollWhileIdle: with no commit to wake it, the
// relay still measures every poll, so the metric shows rows that another
// process wrote and nobody publishes (the lock is held elsewhere).
func TestRelayBacklogFollowsThePollWhileIdle(t *testing.T) {
	outbox := &fakeOutbox{}
	h := newRelayHarness(t, RelayConfig{PollInterval: 5 * time.Millisecond}, outbox, &fakeLock{busy: true}, &fakePublisher{})
	h.start(t)
	waitFor(t, "the first check", time.Second, func() bool { return !h.relay.Stats().CheckedAt.IsZero() })
	outbox.add("1", relayT0.Add(-time.Minute))
	outbox.add("2", relayT0)
	waitFor(t, "the backlog to show both rows", 2*time.Second, func() bool {
		st := h.relay.Stats()
		return st.Backlog == 2 && st.OldestAge == time.Minute
	})
	calls := outbox.backlogCalls()
	waitFor(t, "more polls to measure again", 2*time.Second, func() bool { return outbox.backlogCalls() >= calls+3 })
}

// connectingPublisher is a fakePublisher that is also a
// ports.BrokerConnector, failing to connect while down is set.
type connectingPublisher struct {
	*fakePublisher
	down     atomic.Bool
	attempts atomic.Int32
}

var errBrokerUnreachable = errors.New("broker unreachable")

func (p *connectingPublisher) Connect(context.Context) error {
	p.attempts.Add(1)
	if p.down.Load() {
		return errBrokerUnreachable
	}
	return nil
}

// A relay whose publisher cannot reach the broker fails before taking the
// relay lock, so that a replica cut off from the broker alone leaves the
// lock to the others; once it connects again it publishes.
func TestRelayConnectsBeforeTakingTheLock(t *testing.T) {
	outbox := &fakeOutbox{}
	for range 3 {
		outbox.add("1", relayT0)
	}
	lock := &fakeLock{}
	pub := &connectingPublisher{fakePublisher: &fakePublisher{}}
	pub.down.Store(true)
	relay := NewRelay(outbox, lock, pub, fixedClock{relayT0}, RelayConfig{})

	err := relay.Flush(context.Background())
	if !errors.Is(err, errBrokerUnreachable) {
		t.Fatalf("Flush with the broker unreachable = %v, want the connection error", err)
	}
	if tries := lock.triesSoFar(); tries != 0 {
		t.Errorf("the relay tried the lock %d times while it could not connect, want 0", tries)
	}
	if calls, _ := pub.snapshot(); len(calls) != 0 {
		t.Errorf("Publish called %d times while the broker was unreachable", len(calls))
	}

	pub.down.Store(false)
	if err := relay.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after the broker is back: %v", err)
	}
	if tries := lock.triesSoFar(); tries != 1 {
		t.Errorf("TryLock called %d times, want 1", tries)
	}
	_, delivered := pub.snapshot()
	assertEveryMessageOnceInOrder(t, delivered, 3)
	if got := pub.attempts.Load(); got != 2 {
		t.Errorf("Connect called %d times, want once per cycle (2)", got)
	}
}
