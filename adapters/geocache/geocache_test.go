package geocache

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// countingGeolocator is a fake provider that counts its calls per address.
// Addresses absent from answers are unknown; fail makes every call fail;
// gate, when set, holds each call until it is closed.
type countingGeolocator struct {
	answers map[netip.Addr]domain.Location
	fail    atomic.Bool
	gate    chan struct{}

	mu      sync.Mutex
	calls   map[netip.Addr]int
	ctxErrs []error // ctx.Err() seen by each call once released
}

var errOutage = errors.New("provider outage")

func newCounting(answers map[string]string) *countingGeolocator {
	g := &countingGeolocator{answers: map[netip.Addr]domain.Location{}, calls: map[netip.Addr]int{}}
	for ip, cc := range answers {
		g.answers[netip.MustParseAddr(ip)] = domain.LocationIn(cc)
	}
	return g
}

func (g *countingGeolocator) Locate(ctx context.Context, ip netip.Addr) (domain.Location, error) {
	g.mu.Lock()
	g.calls[ip]++
	g.mu.Unlock()
	if g.gate != nil {
		<-g.gate
	}
	g.mu.Lock()
	g.ctxErrs = append(g.ctxErrs, ctx.Err())
	g.mu.Unlock()
	if g.fail.Load() {
		return domain.UnknownLocation, domain.Unavailable(domain.DependencyGeolocation, errOutage)
	}
	return g.answers[ip], nil
}

func (g *countingGeolocator) Calls(ip string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[netip.MustParseAddr(ip)]
}

func (g *countingGeolocator) TotalCalls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.calls {
		n += c
	}
	return n
}

func newCache(t *testing.T, inner *countingGeolocator, opts Options) *Cache {
	t.Helper()
	c, err := New(inner, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func locate(t *testing.T, c *Cache, ip string) (domain.Location, error) {
	t.Helper()
	return c.Locate(context.Background(), netip.MustParseAddr(ip))
}

func mustLocate(t *testing.T, c *Cache, ip string, want domain.Location) {
	t.Helper()
	got, err := locate(t, c, ip)
	if err != nil {
		t.Fatalf("Locate(%s): %v", ip, err)
	}
	if got != want {
		t.Fatalf("Locate(%s) = %+v, want %+v", ip, got, want)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	cases := []struct {
		name  string
		inner ports.Geolocator
		opts  Options
	}{
		{"negative size", newCounting(nil), Options{Size: -1}},
		{"negative TTL", newCounting(nil), Options{TTL: -time.Second}},
		{"nil inner", nil, Options{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.inner, tc.opts); err == nil {
				t.Fatal("New accepted bad options")
			}
		})
	}
}

func TestHitCostsNoCall(t *testing.T) {
	inner := newCounting(map[string]string{"2.16.92.0": "CH"})
	obs := NewCounters()
	c := newCache(t, inner, Options{Provider: "fake", Observer: obs})
	for range 5 {
		mustLocate(t, c, "2.16.92.0", domain.LocationIn("CH"))
	}
	// The IPv4-mapped form is the same address and shares the entry.
	mustLocate(t, c, "::ffff:2.16.92.0", domain.LocationIn("CH"))
	if n := inner.TotalCalls(); n != 1 {
		t.Fatalf("provider called %d times, want 1", n)
	}
	if obs.Hits() != 5 || obs.Misses() != 1 {
		t.Fatalf("hits=%d misses=%d, want 5 and 1", obs.Hits(), obs.Misses())
	}
	got := obs.Lookups()
	if len(got) != 1 || got[LookupKey{"fake", OutcomeLocated}].Count != 1 {
		t.Fatalf("lookups = %+v, want one fake/located", got)
	}
}

func TestUnknownLocationIsCached(t *testing.T) {
	inner := newCounting(nil)
	obs := NewCounters()
	c := newCache(t, inner, Options{Provider: "fake", Observer: obs})
	mustLocate(t, c, "127.0.0.1", domain.UnknownLocation)
	mustLocate(t, c, "127.0.0.1", domain.UnknownLocation)
	if n := inner.Calls("127.0.0.1"); n != 1 {
		t.Fatalf("provider called %d times, want 1", n)
	}
	if got := obs.Lookups()[LookupKey{"fake", OutcomeUnknown}].Count; got != 1 {
		t.Fatalf("unknown lookups = %d, want 1", got)
	}
}

func TestTTLExpiry(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	inner := newCounting(map[string]string{"2.16.92.0": "CH"})
	c := newCache(t, inner, Options{TTL: time.Hour, Clock: clock})

	steps := []struct {
		name      string
		advance   time.Duration
		wantCalls int
	}{
		{"first lookup asks the provider", 0, 1},
		{"fresh entry is a hit", 59 * time.Minute, 1},
		{"last instant before expiry is a hit", time.Minute - time.Nanosecond, 1},
		{"at expiry the provider is asked again", time.Nanosecond, 2},
		{"refreshed entry is a hit", 30 * time.Minute, 2},
		{"refreshed entry expires a TTL after the refresh", 30 * time.Minute, 3},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		mustLocate(t, c, "2.16.92.0", domain.LocationIn("CH"))
		if n := inner.TotalCalls(); n != s.wantCalls {
			t.Fatalf("%s: provider calls = %d, want %d", s.name, n, s.wantCalls)
		}
	}
}

func TestDefaultTTLIs24h(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	inner := newCounting(map[string]string{"2.16.92.0": "CH"})
	c := newCache(t, inner, Options{Clock: clock})
	mustLocate(t, c, "2.16.92.0", domain.LocationIn("CH"))
	clock.Advance(24*time.Hour - time.Second)
	mustLocate(t, c, "2.16.92.0", domain.LocationIn("CH"))
	if n := inner.TotalCalls(); n != 1 {
		t.Fatalf("provider calls before 24h = %d, want 1", n)
	}
	clock.Advance(time.Second)
	mustLocate(t, c, "2.16.92.0", domain.LocationIn("CH"))
	if n := inner.TotalCalls(); n != 2 {
		t.Fatalf("provider calls after 24h = %d, want 2", n)
	}
}

func TestLRUEviction(t *testing.T) {
	inner := newCounting(map[string]string{"192.0.2.1": "CH", "192.0.2.2": "FR", "192.0.2.3": "ES"})
	c := newCache(t, inner, Options{Size: 2})
	mustLocate(t, c, "192.0.2.1", domain.LocationIn("CH"))
	mustLocate(t, c, "192.0.2.2", domain.LocationIn("FR"))
	mustLocate(t, c, "192.0.2.1", domain.LocationIn("CH")) // .1 becomes the most recent
	mustLocate(t, c, "192.0.2.3", domain.LocationIn("ES")) // evicts .2, the least recent
	if c.Len() != 2 {
		t.Fatalf("cache holds %d entries, want 2", c.Len())
	}
	mustLocate(t, c, "192.0.2.1", domain.LocationIn("CH"))
	mustLocate(t, c, "192.0.2.3", domain.LocationIn("ES"))
	mustLocate(t, c, "192.0.2.2", domain.LocationIn("FR"))
	want := map[string]int{"192.0.2.1": 1, "192.0.2.2": 2, "192.0.2.3": 1}
	for ip, n := range want {
		if got := inner.Calls(ip); got != n {
			t.Errorf("provider calls for %s = %d, want %d", ip, got, n)
		}
	}
}

func TestFailuresAreNotCached(t *testing.T) {
	inner := newCounting(map[string]string{"2.16.92.0": "CH"})
	obs := NewCounters()
	c := newCache(t, inner, Options{Provider: "fake", Observer: obs})
	inner.fail.Store(true)
	for i := range 2 {
		_, err := locate(t, c, "2.16.92.0")
		if !errors.Is(err, domain.ErrUnavailable) || !errors.Is(err, errOutage) {
			t.Fatalf("attempt %d: err = %v, want the provider's unavailable error", i, err)
		}
	}
	inner.fail.Store(false)
	mustLocate(t, c, "2.16.92.0", domain.LocationIn("CH"))
	mustLocate(t, c, "2.16.92.0", domain.LocationIn("CH"))
	if n := inner.TotalCalls(); n != 3 {
		t.Fatalf("provider calls = %d, want 3 (two failures retried, then one cached success)", n)
	}
	lookups := obs.Lookups()
	if lookups[LookupKey{"fake", OutcomeError}].Count != 2 || lookups[LookupKey{"fake", OutcomeLocated}].Count != 1 {
		t.Fatalf("lookups = %+v, want 2 errors and 1 located", lookups)
	}
}

func TestExpiredEntryIsNotServedWhenRefreshFails(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	inner := newCounting(map[string]string{"2.16.92.0": "CH"})
	c := newCache(t, inner, Options{TTL: time.Minute, Clock: clock})
	mustLocate(t, c, "2.16.92.0", domain.LocationIn("CH"))
	clock.Advance(time.Minute)
	inner.fail.Store(true)
	if _, err := locate(t, c, "2.16.92.0"); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("err = %v, want unavailable (stale answers must not hide an outage)", err)
	}
}

// waitFor polls cond for up to two seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrentLookupsShareOneCall(t *testing.T) {
	const n = 100
	inner := newCounting(map[string]string{"2.16.92.0": "CH"})
	inner.gate = make(chan struct{})
	obs := NewCounters()
	c := newCache(t, inner, Options{Observer: obs})

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			loc, err := locate(t, c, "2.16.92.0")
			if err == nil && loc != domain.LocationIn("CH") {
				err = errors.New("wrong location " + loc.CountryCode)
			}
			errs <- err
		})
	}
	// Hold the one provider call until every caller has missed the cache
	// and had time to join it.
	waitFor(t, "all callers to miss", func() bool { return obs.Misses() == n })
	time.Sleep(20 * time.Millisecond)
	close(inner.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if calls := inner.TotalCalls(); calls != 1 {
		t.Fatalf("provider called %d times for %d concurrent lookups, want 1", calls, n)
	}
}

func TestCancelledCallerDoesNotFailOthers(t *testing.T) {
	inner := newCounting(map[string]string{"2.16.92.0": "CH"})
	inner.gate = make(chan struct{})
	obs := NewCounters()
	c := newCache(t, inner, Options{Observer: obs})
	ip := netip.MustParseAddr("2.16.92.0")

	leaderCtx, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := c.Locate(leaderCtx, ip)
		leaderErr <- err
	}()
	waitFor(t, "the leader's provider call", func() bool { return inner.TotalCalls() == 1 })

	type result struct {
		loc domain.Location
		err error
	}
	follower := make(chan result, 1)
	go func() {
		loc, err := c.Locate(context.Background(), ip)
		follower <- result{loc, err}
	}()
	waitFor(t, "the follower to miss", func() bool { return obs.Misses() == 2 })

	cancel()
	select {
	case err := <-leaderErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("leader err = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancelled leader kept waiting for the provider")
	}

	close(inner.gate)
	r := <-follower
	if r.err != nil || r.loc != domain.LocationIn("CH") {
		t.Fatalf("follower got %+v, %v; want Switzerland", r.loc, r.err)
	}
	if calls := inner.TotalCalls(); calls != 1 {
		t.Fatalf("provider calls = %d, want 1", calls)
	}
	inner.mu.Lock()
	seen := inner.ctxErrs[0]
	inner.mu.Unlock()
	if seen != nil {
		t.Fatalf("provider saw ctx error %v; the shared call must not inherit one caller's cancellation", seen)
	}
	// The answer was cached although the leader went away.
	mustLocate(t, c, "2.16.92.0", domain.LocationIn("CH"))
	if calls := inner.TotalCalls(); calls != 1 {
		t.Fatalf("provider calls after the hit = %d, want 1", calls)
	}
}

func TestNopObserver(t *testing.T) {
	inner := newCounting(map[string]string{"2.16.92.0": "CH"})
	c := newCache(t, inner, Options{}) // no observer: must not panic
	mustLocate(t, c, "2.16.92.0", domain.LocationIn("CH"))
	mustLocate(t, c, "2.16.92.0", domain.LocationIn("CH"))
}

func TestCountersLatency(t *testing.T) {
	obs := NewCounters()
	obs.ObserveLookup("ipapi", OutcomeLocated, 10*time.Millisecond)
	obs.ObserveLookup("ipapi", OutcomeLocated, 30*time.Millisecond)
	obs.ObserveLookup("ipapi", OutcomeError, time.Second)
	got := obs.Lookups()
	want := map[LookupKey]LookupStats{
		{"ipapi", OutcomeLocated}: {Count: 2, Total: 40 * time.Millisecond, Max: 30 * time.Millisecond},
		{"ipapi", OutcomeError}:   {Count: 1, Total: time.Second, Max: time.Second},
	}
	if len(got) != len(want) {
		t.Fatalf("lookups = %+v, want %+v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%+v = %+v, want %+v", k, got[k], v)
		}
	}
	// The snapshot is a copy.
	got[LookupKey{"ipapi", OutcomeError}] = LookupStats{}
	if obs.Lookups()[LookupKey{"ipapi", OutcomeError}].Count != 1 {
		t.Fatal("Lookups returned the live map")
	}
}

// The addresses of one IPv6 /64 are one client: fifty sign-ups from fifty
// of its addresses, refused because the /64 is in France, cost one provider
// call per TTL, not fifty. IPv4 addresses stay apart.
func TestBlocksAndRefusalsAreCached(t *testing.T) {
	inner := newCounting(map[string]string{"2001:db8:f2:1::1": "FR", "198.51.100.1": "CH", "198.51.100.2": "CH"})
	// Every address of the /64 answers France, as a provider would.
	for i := 2; i <= 50; i++ {
		inner.answers[netip.MustParseAddr("2001:db8:f2:1::"+strconv.FormatInt(int64(i), 16))] = domain.LocationIn("FR")
	}
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c, err := New(inner, Options{TTL: time.Hour, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := domain.NewCountryPolicy([]string{"CH"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	locateAll := func() {
		t.Helper()
		for i := 1; i <= 50; i++ {
			loc, err := c.Locate(ctx, netip.MustParseAddr("2001:db8:f2:1::"+strconv.FormatInt(int64(i), 16)))
			if err != nil {
				t.Fatal(err)
			}
			if policy.Check(loc) == nil {
				t.Fatalf("address %d of the French /64 allowed: %v", i, loc)
			}
		}
	}
	locateAll()
	if got := inner.TotalCalls(); got != 1 {
		t.Fatalf("50 refused lookups from one /64 cost %d provider calls, want 1", got)
	}
	clock.Advance(time.Hour + time.Second)
	locateAll()
	if got := inner.TotalCalls(); got != 2 {
		t.Fatalf("after the TTL: %d provider calls in all, want 2", got)
	}
	for _, ip := range []string{"198.51.100.1", "198.51.100.2"} {
		if _, err := c.Locate(ctx, netip.MustParseAddr(ip)); err != nil {
			t.Fatal(err)
		}
	}
	if got := inner.TotalCalls(); got != 4 {
		t.Errorf("two IPv4 addresses cost %d more calls, want 2 (each its own client)", got-2)
	}
}
