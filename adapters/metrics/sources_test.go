package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/geocache"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/ipapi"
	"github.com/marketplace/usersvc/adapters/metrics"
	"github.com/marketplace/usersvc/adapters/staticgeo"
	"github.com/marketplace/usersvc/app"
)

// fakeRelay hands out whatever Stats the test sets, like app.Relay's
// snapshot.
type fakeRelay struct {
	mu sync.Mutex
	s  app.RelayStats
}

func (f *fakeRelay) set(s app.RelayStats) {
	f.mu.Lock()
	f.s = s
	f.mu.Unlock()
}

func (f *fakeRelay) Stats() app.RelayStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func openStore(t *testing.T) *gormstore.Store {
	t.Helper()
	store, err := gormstore.Open(context.Background(), gormstore.Config{URL: "sqlite://:memory:"})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

func TestDBPoolStats(t *testing.T) {
	store := openStore(t) // in memory: a pool of exactly one connection
	m, err := metrics.Provide(store, &fakeRelay{})
	if err != nil {
		t.Fatalf("Provide: %v", err)
	}
	url := serveMetrics(t, m)
	db := store.DB()
	ctx := context.Background()
	var held interface{ Close() error }

	steps := []struct {
		name string
		act  func(t *testing.T)
		want map[string]float64 // go_sql_<key>{db_name="usersvc"}
	}{
		{"idle pool", func(*testing.T) {}, map[string]float64{
			"max_open_connections": 1, "open_connections": 1, "in_use_connections": 0,
			"idle_connections": 1, "wait_count_total": 0,
		}},
		{"connection held", func(t *testing.T) {
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatalf("take the connection: %v", err)
			}
			held = conn
		}, map[string]float64{"open_connections": 1, "in_use_connections": 1, "idle_connections": 0, "wait_count_total": 0}},
		{"a caller waited for it", func(t *testing.T) {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
			defer cancel()
			if err := db.PingContext(wctx); err == nil {
				t.Fatal("ping got a connection the test holds")
			}
		}, map[string]float64{"in_use_connections": 1, "wait_count_total": 1}},
		{"connection released", func(t *testing.T) {
			if err := held.Close(); err != nil {
				t.Fatalf("release the connection: %v", err)
			}
		}, map[string]float64{"open_connections": 1, "in_use_connections": 0, "idle_connections": 1, "wait_count_total": 1}},
	}
	for _, s := range steps {
		s.act(t)
		got := scrape(t, url)
		for key, want := range s.want {
			if v := got.value(t, "go_sql_"+key, labels{"db_name": metrics.DBName}); v != want {
				t.Errorf("%s: go_sql_%s = %v, want %v", s.name, key, v, want)
			}
		}
		if s.name == "a caller waited for it" {
			if v := got.value(t, "go_sql_wait_duration_seconds_total", labels{"db_name": metrics.DBName}); v < 0.02 {
				t.Errorf("%s: go_sql_wait_duration_seconds_total = %v, want at least the 30ms wait less slack", s.name, v)
			}
		}
	}
}

func TestRelayStatsReadAtScrapeTime(t *testing.T) {
	relay := &fakeRelay{}
	m := metrics.New()
	if err := m.RegisterRelayStats(relay); err != nil {
		t.Fatalf("RegisterRelayStats: %v", err)
	}
	url := serveMetrics(t, m)
	checked := time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)

	cases := []struct {
		name  string
		stats app.RelayStats
		// want holds the expected series; absent lists those that must not appear.
		want   map[string]float64
		absent []string
	}{
		{
			name:   "before the first backlog check",
			stats:  app.RelayStats{},
			want:   map[string]float64{"usersvc_events_published_total": 0, "usersvc_events_publish_failures_total": 0},
			absent: []string{"usersvc_outbox_backlog", "usersvc_outbox_oldest_unpublished_age_seconds", "usersvc_outbox_last_check_timestamp_seconds"},
		},
		{
			name:  "backlog during an outage",
			stats: app.RelayStats{Backlog: 7, OldestAge: 90*time.Second + 250*time.Millisecond, CheckedAt: checked, Published: 42, FailedAttempts: 3},
			want: map[string]float64{
				"usersvc_outbox_backlog":                        7,
				"usersvc_outbox_oldest_unpublished_age_seconds": 90.25,
				"usersvc_outbox_last_check_timestamp_seconds":   float64(checked.Unix()) + 0.5,
				"usersvc_events_published_total":                42,
				"usersvc_events_publish_failures_total":         3,
			},
		},
		{
			name:  "drained",
			stats: app.RelayStats{Backlog: 0, OldestAge: 0, CheckedAt: checked.Add(time.Minute), Published: 49, FailedAttempts: 3},
			want: map[string]float64{
				"usersvc_outbox_backlog":                        0,
				"usersvc_outbox_oldest_unpublished_age_seconds": 0,
				"usersvc_events_published_total":                49,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			relay.set(tc.stats)
			got := scrape(t, url)
			for name, want := range tc.want {
				if v := got.value(t, name, nil); v != want {
					t.Errorf("%s = %v, want %v", name, v, want)
				}
			}
			for _, name := range tc.absent {
				if _, ok := got[name]; ok {
					t.Errorf("%s present, want absent until the relay has checked", name)
				}
			}
		})
	}
}

func TestGeoObserverThroughTheCache(t *testing.T) {
	m := metrics.New()
	static, err := staticgeo.Parse("127.0.0.0/8=CH,::1/128=CH")
	if err != nil {
		t.Fatalf("static geolocator: %v", err)
	}
	staticCache, err := geocache.New(static, geocache.Options{Provider: "static", Observer: m})
	if err != nil {
		t.Fatalf("static cache: %v", err)
	}
	// ipapi.co answering 500 on loopback: a provider failure, never cached.
	// (A public address: the client answers reserved ones without a call.)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	t.Cleanup(down.Close)
	remote, err := ipapi.New(ipapi.Config{BaseURL: down.URL})
	if err != nil {
		t.Fatalf("ipapi client: %v", err)
	}
	remoteCache, err := geocache.New(remote, geocache.Options{Provider: "ipapi", Observer: m})
	if err != nil {
		t.Fatalf("ipapi cache: %v", err)
	}

	lookups := []struct {
		name    string
		cache   *geocache.Cache
		ip      string
		wantErr bool
	}{
		{"first Swiss lookup misses", staticCache, "127.0.0.1", false},
		{"second Swiss lookup hits", staticCache, "127.0.0.1", false},
		{"IPv6 loopback misses", staticCache, "::1", false},
		{"unplaced address misses", staticCache, "192.0.2.10", false},
		{"unplaced address hits: unknown is cached", staticCache, "192.0.2.10", false},
		{"provider failure misses", remoteCache, "85.195.24.1", true},
		{"failure is not cached: misses again", remoteCache, "85.195.24.1", true},
	}
	for _, l := range lookups {
		_, err := l.cache.Locate(context.Background(), netip.MustParseAddr(l.ip))
		if (err != nil) != l.wantErr {
			t.Fatalf("%s: Locate(%s) error %v, want error %v", l.name, l.ip, err, l.wantErr)
		}
	}
	// Outside the cache's vocabulary: folded so the label set stays closed.
	m.ObserveLookup("static", "surprise", time.Millisecond)

	got := scrape(t, serveMetrics(t, m))
	cases := []struct {
		name  string
		lbl   labels
		count float64
	}{
		{"located by static", labels{"provider": "static", "outcome": geocache.OutcomeLocated}, 2},
		{"unknown to static", labels{"provider": "static", "outcome": geocache.OutcomeUnknown}, 1},
		{"ipapi failures", labels{"provider": "ipapi", "outcome": geocache.OutcomeError}, 2},
		{"foreign outcome folded", labels{"provider": "static", "outcome": "other"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if v := got.value(t, "usersvc_geo_lookups_total", tc.lbl); v != tc.count {
				t.Errorf("usersvc_geo_lookups_total%v = %v, want %v", tc.lbl, v, tc.count)
			}
			if h := got.histogram(t, "usersvc_geo_lookup_duration_seconds", tc.lbl); float64(h.GetSampleCount()) != tc.count {
				t.Errorf("usersvc_geo_lookup_duration_seconds%v count = %d, want %v", tc.lbl, h.GetSampleCount(), tc.count)
			}
		})
	}
	if n := len(got["usersvc_geo_lookups_total"].GetMetric()); n != len(cases) {
		t.Errorf("usersvc_geo_lookups_total has %d series, want %d: %s", n, len(cases), got.describe("usersvc_geo_lookups_total"))
	}
	if v := got.value(t, "usersvc_geo_cache_hits_total", nil); v != 2 {
		t.Errorf("usersvc_geo_cache_hits_total = %v, want 2", v)
	}
	if v := got.value(t, "usersvc_geo_cache_misses_total", nil); v != 5 {
		t.Errorf("usersvc_geo_cache_misses_total = %v, want 5", v)
	}
}

func TestHandlerExposesRuntimeAndProcess(t *testing.T) {
	got := scrape(t, serveMetrics(t, metrics.New()))
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_start_time_seconds", "process_open_fds"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing from /metrics", name)
		}
	}
	// Series are exported before their first observation only when they
	// have no labels: nothing of the API appears before traffic.
	for name := range got {
		if strings.HasPrefix(name, "http_requests_total") || strings.HasPrefix(name, "usersvc_geo_lookups") {
			t.Errorf("%s exported before any observation", name)
		}
	}
}

func TestRegistrationErrors(t *testing.T) {
	store := openStore(t)
	cases := []struct {
		name string
		do   func(m *metrics.Metrics) error
	}{
		{"nil pool", func(m *metrics.Metrics) error { return m.RegisterDBStats(nil) }},
		{"nil relay", func(m *metrics.Metrics) error { return m.RegisterRelayStats(nil) }},
		{"second pool", func(m *metrics.Metrics) error {
			if err := m.RegisterDBStats(store.DB()); err != nil {
				return nil // the first must succeed; a nil here fails the case
			}
			return m.RegisterDBStats(store.DB())
		}},
		{"second relay", func(m *metrics.Metrics) error {
			if err := m.RegisterRelayStats(metrics.RelayStatsFunc(func() app.RelayStats { return app.RelayStats{} })); err != nil {
				return nil
			}
			return m.RegisterRelayStats(&fakeRelay{})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(metrics.New()); err == nil {
				t.Error("registration succeeded, want an error")
			}
		})
	}
}
