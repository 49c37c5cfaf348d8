// Package metrics is the observability adapter: it exports the service's
// Prometheus metrics at GET /metrics with github.com/prometheus/client_golang,
// from a private registry (never the global one, so tests and several
// instances in one process do not collide).
//
// Series (every label value is bounded; see the label notes):
//
//	Name                                            Type       Labels                  Meaning
//	http_requests_total                             counter    method, route, status   HTTP requests answered
//	http_request_duration_seconds                   histogram  method, route, status   time from the first middleware to the answer
//	http_requests_in_flight                         gauge      -                       requests being served now
//	go_sql_max_open_connections                     gauge      db_name                 pool limit (0: unlimited)
//	go_sql_open_connections                         gauge      db_name                 connections open, in use or idle
//	go_sql_in_use_connections                       gauge      db_name                 connections in use
//	go_sql_idle_connections                         gauge      db_name                 idle connections
//	go_sql_wait_count_total                         counter    db_name                 times a caller waited for a connection
//	go_sql_wait_duration_seconds_total              counter    db_name                 total time spent waiting for a connection
//	go_sql_max_idle_closed_total                    counter    db_name                 connections closed by SetMaxIdleConns
//	go_sql_max_idle_time_closed_total               counter    db_name                 connections closed by SetConnMaxIdleTime
//	go_sql_max_lifetime_closed_total                counter    db_name                 connections closed by SetConnMaxLifetime
//	usersvc_outbox_backlog                          gauge      -                       unpublished outbox messages at the relay's last check
//	usersvc_outbox_oldest_unpublished_age_seconds   gauge      -                       age of the oldest of them at that check (0 when none)
//	usersvc_outbox_last_check_timestamp_seconds     gauge      -                       Unix time of that check
//	usersvc_events_published_total                  counter    -                       events the broker acknowledged (this process)
//	usersvc_events_publish_failures_total           counter    -                       relay drain attempts that failed (read, publish or mark)
//	usersvc_geo_lookups_total                       counter    provider, outcome       geolocation provider calls
//	usersvc_geo_lookup_duration_seconds             histogram  provider, outcome       geolocation provider latency
//	usersvc_geo_cache_hits_total                    counter    -                       lookups answered from the cache
//	usersvc_geo_cache_misses_total                  counter    -                       lookups the cache could not answer
//	usersvc_credential_checks_total                 counter    outcome                 credential checks: success, failure, locked (refused during a lockout), lockout (a failure that started one), rehashed (hash upgraded)
//	go_*, process_*                                 various    -                       Go runtime and process collectors
//
// Labels: method is one of the standard HTTP methods or "OTHER"; route is
// the Gin route template ("/api/v1/users/:id", never the raw path) or
// "unmatched" for 404 and 405 answers; status is the numeric code; db_name
// is "usersvc"; provider is the GEO_PROVIDER name (ipapi, mmdb, static);
// outcome is located, unknown or error. The three outbox gauges appear
// once the relay has measured its backlog.
package metrics

import (
	"database/sql"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/marketplace/usersvc/adapters/buildinfo"
	"github.com/marketplace/usersvc/adapters/geocache"
	"github.com/marketplace/usersvc/adapters/jwtauth"
	"github.com/marketplace/usersvc/app"
)

// namespace prefixes the service's own series.
const namespace = "usersvc"

// DBName is the db_name label of the connection pool series.
const DBName = "usersvc"

// ProviderSet provides *Metrics with the pool and relay collectors
// attached, and makes it the geolocation cache's Observer (use it instead
// of geocache.ProviderSet). Wire wants a binding next to the provider of
// its concrete type, so the composition root binds the two sources:
//
//	wire.Bind(new(metrics.StoreDB), new(*gormstore.Store)),
//	wire.Bind(new(metrics.RelayStatsSource), new(*app.Relay)),
var ProviderSet = wire.NewSet(
	Provide,
	wire.Bind(new(geocache.Observer), new(*Metrics)),
	wire.Bind(new(jwtauth.Observer), new(*Metrics)),
	wire.Bind(new(app.CredentialsObserver), new(*Metrics)),
)

// StoreDB is a store exposing its connection pool (*gormstore.Store).
type StoreDB interface {
	DB() *sql.DB
}

// RelayStatsSource is what the outbox collector reads at scrape time;
// *app.Relay implements it.
type RelayStatsSource interface {
	Stats() app.RelayStats
}

// RelayStatsFunc adapts a function to RelayStatsSource.
type RelayStatsFunc func() app.RelayStats

// Stats calls f.
func (f RelayStatsFunc) Stats() app.RelayStats { return f() }

var (
	_ geocache.Observer       = (*Metrics)(nil)
	_ app.CredentialsObserver = (*Metrics)(nil)
	_ RelayStatsSource        = (*app.Relay)(nil)
)

// Metrics owns the registry and the series the service updates itself.
// It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	httpInFlight prometheus.Gauge

	geoLookups  *prometheus.CounterVec
	geoDuration *prometheus.HistogramVec
	geoHits     prometheus.Counter
	geoMisses   prometheus.Counter

	authMetrics
	credentialChecks *prometheus.CounterVec
}

// Buckets, in seconds. HTTP answers range from sub-millisecond probes to
// multi-second creations (argon2id plus a provider call bounded by
// GEO_TIMEOUT); provider calls range from microseconds (static, mmdb) to
// the timeout (ipapi).
var (
	httpBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	geoBuckets  = []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5}
)

// New returns metrics on a fresh registry holding the Go runtime and
// process collectors, the HTTP series and the geolocation series. Attach
// the pool and the relay with RegisterDBStats and RegisterRelayStats.
func New() *Metrics {
	httpLabels := []string{"method", "route", "status"}
	geoLabels := []string{"provider", "outcome"}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests answered, by method, route template and status code.",
		}, httpLabels),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method, route template and status code.",
			Buckets: httpBuckets,
		}, httpLabels),
		httpInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		geoLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "geo_lookups_total",
			Help:      "Geolocation provider calls, by provider and outcome (located, unknown, error).",
		}, geoLabels),
		geoDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "geo_lookup_duration_seconds",
			Help:      "Geolocation provider latency, by provider and outcome.",
			Buckets:   geoBuckets,
		}, geoLabels),
		geoHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "geo_cache_hits_total",
			Help:      "Geolocation lookups answered from the cache.",
		}),
		geoMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "geo_cache_misses_total",
			Help:      "Geolocation lookups the cache could not answer.",
		}),
		authMetrics: newAuthMetrics(),
		credentialChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "credential_checks_total",
			Help:      "Credential checks and their effects, by outcome (success, failure, locked, lockout, rehashed).",
		}, []string{"outcome"}),
	}
	// Fixed, distinct names on a fresh registry: registration cannot fail.
	m.reg.MustRegister(
		buildInfoGauge(buildinfo.Read()),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.httpInFlight,
		m.geoLookups, m.geoDuration, m.geoHits, m.geoMisses,
		m.credentialChecks,
	)
	m.reg.MustRegister(m.collectors()...)
	for _, o := range credentialOutcomes {
		m.credentialChecks.WithLabelValues(o) // every series from the start, at 0
	}
	return m
}

// buildInfoGauge is usersvc_build_info{version,revision,goversion} 1, the
// labels `usersvc version` prints, so dashboards can tell builds apart.
func buildInfoGauge(info buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "usersvc_build_info",
		Help: "Build of the running binary (always 1): module version, VCS revision and Go version, as `usersvc version` prints them.",
		ConstLabels: prometheus.Labels{
			"version": info.Version, "revision": info.Revision, "goversion": info.GoVersion,
		},
	})
	g.Set(1)
	return g
}

// Provide is New with the store's connection pool and the relay attached,
// for Wire.
func Provide(store StoreDB, relay RelayStatsSource) (*Metrics, error) {
	m := New()
	if err := m.RegisterDBStats(store.DB()); err != nil {
		return nil, err
	}
	if err := m.RegisterRelayStats(relay); err != nil {
		return nil, err
	}
	return m, nil
}

// RegisterDBStats exports the pool statistics of db (go_sql_* series,
// db_name="usersvc"), read at scrape time. It fails if a pool is already
// registered.
func (m *Metrics) RegisterDBStats(db *sql.DB) error {
	if db == nil {
		return errors.New("register database pool metrics: nil *sql.DB")
	}
	if err := m.reg.Register(collectors.NewDBStatsCollector(db, DBName)); err != nil {
		return fmt.Errorf("register database pool metrics: %w", err)
	}
	return nil
}

// RegisterRelayStats exports the outbox relay's statistics, read from src
// at scrape time. It fails if a relay is already registered.
func (m *Metrics) RegisterRelayStats(src RelayStatsSource) error {
	if src == nil {
		return errors.New("register outbox relay metrics: nil source")
	}
	if err := m.reg.Register(newRelayCollector(src)); err != nil {
		return fmt.Errorf("register outbox relay metrics: %w", err)
	}
	return nil
}

// Handler serves the registry in the Prometheus exposition formats, for
// GET /metrics. A collector that fails is reported as HTTP 500 rather
// than as a silently partial scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// credentialOutcomes are the outcome label values of credential checks.
var credentialOutcomes = []string{app.CheckSucceeded, app.CheckFailed, app.CheckLocked, app.LockoutStarted, app.HashUpgraded}

// ObserveCredentials counts one credential check outcome
// (app.CredentialsObserver); unknown outcomes count as "other".
func (m *Metrics) ObserveCredentials(outcome string) {
	for _, o := range credentialOutcomes {
		if o == outcome {
			m.credentialChecks.WithLabelValues(outcome).Inc()
			return
		}
	}
	m.credentialChecks.WithLabelValues(outcomeOther).Inc()
}
