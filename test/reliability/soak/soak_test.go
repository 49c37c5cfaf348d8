// Package soak_test runs the service under a bounded stream of mixed
// traffic with the outbox relay publishing, then checks what must hold
// after any amount of traffic: one event per successful mutation, in order
// per user; no 5xx; heap in use flat after warm-up; goroutines back to
// their baseline once the service stops.
//
// The run lasts USERSVC_SOAK_DURATION (default 10s, 3s with -short);
// `make soak` runs it for a minute.
package soak_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/logpublisher"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/eventschema"
	"github.com/marketplace/usersvc/test/reliability/stack"
)

// DurationEnv sets the length of the run.
const DurationEnv = "USERSVC_SOAK_DURATION"

// Tolerances. Heap in use is compared between the first and the last third
// of the samples taken after warm-up; goroutines after the stop against the
// count before the start.
const (
	workers          = 4
	maxLiveUsers     = 300
	warmUpFraction   = 0.3
	heapGrowthRatio  = 0.25
	heapGrowthFloor  = 4 << 20
	goroutineSlack   = 2
	sampleEvery      = 500 * time.Millisecond
	secretPassword   = "soak-password-"
	drainTimeout     = 30 * time.Second
	goroutineTimeout = 10 * time.Second
)

func TestSoak(t *testing.T) {
	duration := stack.DurationFromEnv(t, DurationEnv, 10*time.Second, 3*time.Second)
	runtime.GC()
	baseline := runtime.NumGoroutine()

	events := &eventCounter{users: map[int64]string{}}
	logs := &logScanner{}
	s := stack.Start(t, stack.Options{
		DatabaseURL: "sqlite://" + filepath.Join(t.TempDir(), "soak.db"),
		Relay:       true,
		Publisher:   logpublisher.New(events),
		RelayConfig: app.RelayConfig{PollInterval: 200 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		LogWriter:   logs,
	})

	tr := &traffic{s: s, live: map[int64]int64{}}
	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()
	samples := make([]memSample, 0, int(duration/sampleEvery)+8)
	var monitor sync.WaitGroup
	monitor.Go(func() { samples = sampleMemory(ctx, samples) })
	var wg sync.WaitGroup
	began := time.Now()
	for w := range workers {
		wg.Go(func() { tr.run(ctx, rand.New(rand.NewPCG(uint64(w), uint64(began.UnixNano())))) })
	}
	wg.Wait()
	monitor.Wait()
	elapsed := time.Since(began)

	s.WaitDrained(t, drainTimeout)
	s.Stop()

	t.Logf("%v of traffic: %d requests (%.0f/s), statuses %v", elapsed.Round(time.Millisecond), tr.requests.Load(),
		float64(tr.requests.Load())/elapsed.Seconds(), tr.statusSummary())
	t.Logf("latency p50 %v, p99 %v, max %v", tr.latency.quantile(0.50), tr.latency.quantile(0.99), tr.latency.maxSeen())
	created, updated, deleted := tr.created.Load(), tr.updated.Load(), tr.deleted.Load()
	t.Logf("mutations: %d creates, %d updates, %d deletes; events: %d creates, %d updates, %d deletes",
		created, updated, deleted, events.count(domain.ActionCreate), events.count(domain.ActionUpdate), events.count(domain.ActionDelete))

	if n := tr.serverErrors.Load(); n > 0 {
		t.Errorf("%d answers were 5xx or transport errors; first: %s", n, tr.firstFailure())
	}
	if tr.requests.Load() < 100 {
		t.Fatalf("only %d requests in %v: the run did not load the service", tr.requests.Load(), elapsed)
	}
	for _, c := range []struct {
		action domain.Action
		want   int64
	}{{domain.ActionCreate, created}, {domain.ActionUpdate, updated}, {domain.ActionDelete, deleted}} {
		if got := events.count(c.action); got != c.want {
			t.Errorf("%d %s events for %d successful %s mutations", got, c.action, c.want, c.action)
		}
	}
	if v := events.violations(); len(v) > 0 {
		t.Errorf("per-user order broken %d times, first: %s", len(v), v[0])
	}
	if logs.leaked.Load() {
		t.Error("a log line contains a password or a hash")
	}
	checkHeap(t, samples)
	checkGoroutines(t, baseline)
}

// traffic is the mixed workload and its tallies.
type traffic struct {
	s *stack.Stack

	mu   sync.Mutex
	live map[int64]int64 // id -> the number its email was made from

	seq                       atomic.Int64
	requests                  atomic.Int64
	created, updated, deleted atomic.Int64
	serverErrors              atomic.Int64
	statuses                  [600]atomic.Int64
	failure                   atomic.Pointer[string]
	latency                   histogram
}

// run sends requests until ctx ends. Requests themselves are not tied to
// ctx: one in flight at the end completes, so that every mutation the
// service committed is counted.
func (tr *traffic) run(stop context.Context, rng *rand.Rand) {
	ctx := context.WithoutCancel(stop)
	for stop.Err() == nil {
		n := tr.seq.Add(1)
		switch p := rng.IntN(100); {
		case p < 25:
			tr.create(ctx, n)
		case p < 40:
			tr.read(ctx, rng)
		case p < 55:
			tr.list(ctx, rng)
		case p < 70:
			tr.patch(ctx, rng, n)
		case p < 75:
			tr.replace(ctx, rng, n)
		case p < 80:
			tr.stalePatch(ctx, rng)
		case p < 85:
			tr.duplicate(ctx, rng)
		case p < 95:
			tr.delete(ctx, rng)
		default:
			tr.send(ctx, stack.JSON(http.MethodPost, "/api/v1/users", `{"email":"nope"}`), http.StatusBadRequest)
		}
	}
}

func userBody(n int64, first string) string {
	return fmt.Sprintf(`{"first_name":%q,"last_name":"Soak","email":"soak%d@example.ch","password":"%s%d","address":"Street %d"}`,
		first, n, secretPassword, n, n)
}

func (tr *traffic) create(ctx context.Context, n int64) {
	tr.mu.Lock()
	full := len(tr.live) >= maxLiveUsers
	tr.mu.Unlock()
	if full {
		return
	}
	if res, got := tr.send(ctx, stack.JSON(http.MethodPost, "/api/v1/users", userBody(n, "Ada")), http.StatusCreated); got == 0 {
		tr.created.Add(1)
		tr.remember(res, n)
	}
}

// pick returns a live user id (0 when none).
func (tr *traffic) pick(rng *rand.Rand) (id, n int64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.live) == 0 {
		return 0, 0
	}
	k := rng.IntN(len(tr.live))
	for id, n := range tr.live {
		if k == 0 {
			return id, n
		}
		k--
	}
	return 0, 0
}

func path(id int64) string { return fmt.Sprintf("/api/v1/users/%d", id) }

func (tr *traffic) read(ctx context.Context, rng *rand.Rand) {
	if id, _ := tr.pick(rng); id != 0 {
		tr.send(ctx, stack.Request{Method: http.MethodGet, Path: path(id)}, http.StatusOK, http.StatusNotFound)
	}
}

func (tr *traffic) list(ctx context.Context, rng *rand.Rand) {
	q := []string{"", "?page_size=50", "?search=soak1", "?ordering=-created_at,email", "?last_name=Soak&page_size=5&page=2", "?since_id=100"}[rng.IntN(6)]
	tr.send(ctx, stack.Request{Method: http.MethodGet, Path: "/api/v1/users" + q}, http.StatusOK, http.StatusNotFound)
}

// patch changes the address to a value never used before, so every 200 is
// a mutation.
func (tr *traffic) patch(ctx context.Context, rng *rand.Rand, n int64) {
	if id, _ := tr.pick(rng); id != 0 {
		body := fmt.Sprintf(`{"address":"Patched %d"}`, n)
		if _, got := tr.send(ctx, stack.JSON(http.MethodPatch, path(id), body), http.StatusOK, http.StatusNotFound); got == 0 {
			tr.updated.Add(1)
		}
	}
}

func (tr *traffic) replace(ctx context.Context, rng *rand.Rand, n int64) {
	if id, orig := tr.pick(rng); id != 0 {
		body := userBody(orig, fmt.Sprintf("Replaced%d", n)) // keeps the user's own email
		if _, got := tr.send(ctx, stack.JSON(http.MethodPut, path(id), body), http.StatusOK, http.StatusNotFound); got == 0 {
			tr.updated.Add(1)
		}
	}
}

func (tr *traffic) stalePatch(ctx context.Context, rng *rand.Rand) {
	if id, _ := tr.pick(rng); id != 0 {
		req := stack.JSON(http.MethodPatch, path(id), `{"address":"never"}`)
		req.Header = http.Header{"If-Match": {`"999999"`}}
		tr.send(ctx, req, http.StatusPreconditionFailed, http.StatusNotFound)
	}
}

// duplicate creates a user with a live user's email: 400, unless that user
// was deleted meanwhile, and then it is a creation like any other.
func (tr *traffic) duplicate(ctx context.Context, rng *rand.Rand) {
	if id, orig := tr.pick(rng); id != 0 {
		res, got := tr.send(ctx, stack.JSON(http.MethodPost, "/api/v1/users", userBody(orig, "Twin")), http.StatusBadRequest, http.StatusCreated)
		if got == 1 {
			tr.created.Add(1)
			tr.remember(res, orig)
		}
	}
}

func (tr *traffic) delete(ctx context.Context, rng *rand.Rand) {
	id, _ := tr.pick(rng)
	if id == 0 {
		return
	}
	if _, got := tr.send(ctx, stack.Request{Method: http.MethodDelete, Path: path(id)}, http.StatusNoContent, http.StatusNotFound); got == 0 {
		tr.deleted.Add(1)
		tr.mu.Lock()
		delete(tr.live, id)
		tr.mu.Unlock()
	}
}

// send performs r and tallies it. It returns the index in expected of the
// status received; -1 when the answer was none of them (a failure). The first expected status is the success
// case; others are races with another worker (a user deleted meanwhile).
func (tr *traffic) send(ctx context.Context, r stack.Request, expected ...int) (stack.Response, int) {
	res, err := tr.s.Send(ctx, r)
	tr.requests.Add(1)
	if err == nil && res.Status < 500 {
		tr.statuses[res.Status].Add(1)
		tr.latency.observe(res.Elapsed)
		for i, e := range expected {
			if res.Status == e {
				return res, i
			}
		}
	}
	tr.serverErrors.Add(1)
	msg := fmt.Sprintf("%s %s: %v %d %s", r.Method, r.Path, err, res.Status, res.Body)
	tr.failure.CompareAndSwap(nil, &msg)
	return res, -1
}

// remember records a created user and the number its email was made from.
func (tr *traffic) remember(res stack.Response, n int64) {
	var u struct{ ID int64 }
	_ = json.Unmarshal(res.Body, &u)
	tr.mu.Lock()
	tr.live[u.ID] = n
	tr.mu.Unlock()
}

func (tr *traffic) statusSummary() map[int]int64 {
	out := map[int]int64{}
	for i := range tr.statuses {
		if n := tr.statuses[i].Load(); n > 0 {
			out[i] = n
		}
	}
	return out
}

func (tr *traffic) firstFailure() string {
	if p := tr.failure.Load(); p != nil {
		return *p
	}
	return ""
}

// eventCounter is the publisher's writer: it reads each event line as it is
// written, counts it, and checks each user's sequence (create, updates with
// non-decreasing updated_at, delete) keeping state only for live users.
type eventCounter struct {
	mu      sync.Mutex
	byType  [3]int64
	users   map[int64]string // id -> updated_at of the last event
	broken  []string
	pending []byte
}

func (e *eventCounter) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending = append(e.pending, p...)
	for {
		i := bytes.IndexByte(e.pending, '\n')
		if i < 0 {
			break
		}
		e.observe(e.pending[:i])
		e.pending = e.pending[i+1:]
	}
	return len(p), nil
}

func (e *eventCounter) observe(line []byte) {
	var ev domain.EventBody
	if err := json.Unmarshal(line, &ev); err != nil {
		e.fail(fmt.Sprintf("not an event: %q", line))
		return
	}
	if err := eventschema.Validate(line); err != nil {
		e.fail(err.Error())
	}
	if bytes.Contains(line, []byte(secretPassword)) || bytes.Contains(line, []byte(stack.HashMarker)) {
		e.fail("event " + ev.ID + " carries a password or a hash")
	}
	id := ev.Data.ID
	last, known := e.users[id]
	switch ev.Action {
	case domain.ActionCreate:
		e.byType[0]++
		if known {
			e.fail(fmt.Sprintf("user %d created twice", id))
		}
		e.users[id] = ev.Data.UpdatedAt
	case domain.ActionUpdate:
		e.byType[1]++
		if !known || ev.Data.UpdatedAt < last {
			e.fail(fmt.Sprintf("user %d: update at %s after %q", id, ev.Data.UpdatedAt, last))
		}
		e.users[id] = ev.Data.UpdatedAt
	case domain.ActionDelete:
		e.byType[2]++
		if !known {
			e.fail(fmt.Sprintf("user %d deleted before its creation", id))
		}
		delete(e.users, id)
	default:
		e.fail("unknown action " + string(ev.Action))
	}
}

func (e *eventCounter) fail(msg string) {
	if len(e.broken) < 10 {
		e.broken = append(e.broken, msg)
	}
}

func (e *eventCounter) count(a domain.Action) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.byType[map[domain.Action]int{domain.ActionCreate: 0, domain.ActionUpdate: 1, domain.ActionDelete: 2}[a]]
}

func (e *eventCounter) violations() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.broken...)
}

// logScanner receives the service's log records and keeps none of them:
// it only remembers whether one carried a password or a hash.
type logScanner struct{ leaked atomic.Bool }

func (l *logScanner) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(secretPassword)) || bytes.Contains(p, []byte(stack.HashMarker)) {
		l.leaked.Store(true)
	}
	return len(p), nil
}

type memSample struct {
	at         time.Duration
	heapInuse  uint64
	goroutines int
}

// sampleMemory measures heap in use after a collection, until ctx ends.
func sampleMemory(ctx context.Context, samples []memSample) []memSample {
	start := time.Now()
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return samples
		case <-tick.C:
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if len(samples) < cap(samples) {
			samples = append(samples, memSample{at: time.Since(start), heapInuse: ms.HeapInuse, goroutines: runtime.NumGoroutine()})
		}
	}
}

func checkHeap(t *testing.T, samples []memSample) {
	t.Helper()
	summary, err := heapVerdict(samples)
	t.Log(summary)
	if err != nil {
		t.Error(err)
	}
}

// heapVerdict compares heap in use between the first and the last third of
// the samples taken after warm-up.
func heapVerdict(samples []memSample) (string, error) {
	steady := samples[int(float64(len(samples))*warmUpFraction):]
	if len(steady) < 3 {
		return "", fmt.Errorf("only %d memory samples after warm-up", len(steady))
	}
	third := len(steady) / 3
	first, last := mean(steady[:third]), mean(steady[len(steady)-third:])
	peak := 0
	for _, s := range samples {
		peak = max(peak, s.goroutines)
	}
	growth := int64(last) - int64(first)
	limit := max(int64(float64(first)*heapGrowthRatio), heapGrowthFloor)
	summary := fmt.Sprintf("heap in use after warm-up: %.1f MiB at first, %.1f MiB at last (%+.1f MiB, limit %+.1f MiB); %d samples; goroutines peak %d",
		mib(first), mib(last), float64(growth)/(1<<20), float64(limit)/(1<<20), len(samples), peak)
	if growth > limit {
		return summary, fmt.Errorf("heap in use grew by %.1f MiB after warm-up (limit %.1f MiB)", float64(growth)/(1<<20), float64(limit)/(1<<20))
	}
	return summary, nil
}

// TestHeapVerdictCatchesGrowth shows that the soak's memory check fails on
// a steady leak and passes on noise.
func TestHeapVerdictCatchesGrowth(t *testing.T) {
	series := func(f func(i int) uint64) []memSample {
		out := make([]memSample, 40)
		for i := range out {
			out[i] = memSample{heapInuse: f(i)}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		s    []memSample
		ok   bool
	}{
		{"flat", series(func(int) uint64 { return 20 << 20 }), true},
		{"noise", series(func(i int) uint64 { return 20<<20 + uint64(i%3)<<20 }), true},
		{"warm-up growth only", series(func(i int) uint64 { return uint64(min(i, 10)) * 4 << 20 }), true},
		{"leak of 1 MiB per sample", series(func(i int) uint64 { return 20<<20 + uint64(i)<<20 }), false},
	} {
		if _, err := heapVerdict(tc.s); (err == nil) != tc.ok {
			t.Errorf("%s: verdict %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func mean(s []memSample) uint64 {
	var sum uint64
	for _, x := range s {
		sum += x.heapInuse
	}
	return sum / uint64(len(s))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func checkGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(goroutineTimeout)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline+goroutineSlack {
			t.Logf("goroutines: %d before the start, %d after the stop", baseline, n)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before the start, still %d after the stop:\n%s", baseline, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// histogram counts latencies in fixed buckets, so a long run costs no
// memory.
type histogram struct {
	buckets [len(bounds) + 1]atomic.Int64
	maxNS   atomic.Int64
}

var bounds = [...]time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second,
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(bounds) && d > bounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	for {
		m := h.maxNS.Load()
		if int64(d) <= m || h.maxNS.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) string {
	var total int64
	for i := range h.buckets {
		total += h.buckets[i].Load()
	}
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if float64(seen) >= q*float64(total) {
			if i == len(bounds) {
				return "> " + bounds[len(bounds)-1].String()
			}
			return "≤ " + bounds[i].String()
		}
	}
	return "n/a"
}

func (h *histogram) maxSeen() time.Duration { return time.Duration(h.maxNS.Load()) }
