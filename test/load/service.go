package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/adapters/cli"
	"github.com/marketplace/usersvc/adapters/eventbus"
	"github.com/marketplace/usersvc/adapters/geoprovider"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/httpapi"
	"github.com/marketplace/usersvc/adapters/jwtauth"
	"github.com/marketplace/usersvc/adapters/metrics"
	"github.com/marketplace/usersvc/adapters/ratelimit"
	"github.com/marketplace/usersvc/adapters/sysclock"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

const eventTopic = "users-events"

// broker is an in-process Kafka-protocol broker (kfake) on 127.0.0.1. Its
// log lives in a temporary directory rather than in memory, so the events
// of a long run do not count in this process's RSS as if the service held
// them.
type broker struct {
	cluster *kfake.Cluster
	dir     string
}

func startBroker(partitions int32) (*broker, error) {
	dir, err := os.MkdirTemp("", "usersvc-load-kfake-")
	if err != nil {
		return nil, err
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, eventTopic), kfake.DataDir(dir))
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	return &broker{cluster: c, dir: dir}, nil
}

func (b *broker) Addr() string { return b.cluster.ListenAddrs()[0] }

func (b *broker) Close() {
	b.cluster.Close()
	os.RemoveAll(b.dir)
}

// newHasher is the production hasher (argon2id with OWASP's parameters,
// GOMAXPROCS at once), or a cheap one for the smoke test.
func newHasher(cheap bool) *argon2id.Hasher {
	if cheap {
		return argon2id.New(argon2id.Cheap, 0)
	}
	return argon2id.ProvideOWASP()
}

// service is usersvc assembled as cmd/usersvc/wire_gen.go assembles it,
// from a configuration read like the binary reads its environment, served
// by a net/http server on 127.0.0.1. Two thin decorators time events from
// commit to broker acknowledgement; they cost an atomic load while off.
type service struct {
	URL   string
	store *gormstore.Store
	relay *app.Relay
	lag   *lagTracker
	probe *relayProbe
	conns connCounter

	srv      *http.Server
	served   chan error
	stop     func()
	relayEnd chan error
	cleanups []func()

	// handlerFor builds the HTTP handler over the service's use cases for
	// a configuration (authentication, rate limits); env and logger are the
	// service's own.
	handlerFor func(context.Context, cli.Config) (http.Handler, func(), error)
	env        map[string]string
	logger     *slog.Logger
}

// serviceEnv is the environment the in-process service runs with.
func serviceEnv(databaseURL, brokers string) map[string]string {
	return map[string]string{
		"HTTP_ADDR":             "127.0.0.1:0",
		"DATABASE_URL":          databaseURL,
		"MIGRATE":               "true",
		"GEO_PROVIDER":          "static",
		"GEO_STATIC":            "127.0.0.0/8=CH",
		"GEO_ALLOWED_COUNTRIES": "CH",
		"EVENT_BUS":             "kafka",
		"KAFKA_BROKERS":         brokers,
		"KAFKA_TOPIC":           eventTopic,
		"LOG_LEVEL":             "info",
		"LOG_FORMAT":            "json",
		"AUTH_MODE":             "none",
		"ADMIN_ADDR":            "",
		// Every simulated client is 127.0.0.1: one address.
		"RATE_LIMIT_CREATE":   "off",
		"RATE_LIMIT_PASSWORD": "off",
	}
}

// startService wires and starts the service. Logs are formatted as in
// production (JSON, info level: one access line per request) and then
// discarded, so their cost counts but no terminal I/O does.
func startService(ctx context.Context, env map[string]string, cheapHash bool) (_ *service, err error) {
	cfg, err := cli.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: cfg.LogLevel}))
	s := &service{lag: newLagTracker(), probe: newRelayProbe(), env: env}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// The order of cmd/usersvc/wire_gen.go, where the dependencies allow.
	hashCfg := cli.HashConfig(cfg)
	if cheapHash {
		hashCfg.Params = argon2id.Cheap
	}
	hasher := argon2id.NewPool(hashCfg)
	store, cleanup, err := gormstore.Provide(ctx, cli.StoreConfig(cfg, logger))
	if err != nil {
		return nil, err
	}
	s.cleanups = append(s.cleanups, cleanup)
	s.store = store
	if cfg.Migrate {
		if err := store.Migrate(ctx); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	pub, cleanup, err := eventbus.Provide(cli.BusConfig(cfg), logger, io.Discard, nil)
	if err != nil {
		return nil, err
	}
	s.cleanups = append(s.cleanups, cleanup)
	clock := sysclock.Clock{}
	s.relay = app.NewRelay(timedOutbox{store, s.probe}, timedLock{store, s.probe}, trackingPublisher{pub, s.lag, s.probe}, clock, cli.RelayConfig(cfg, logger))
	m, err := metrics.Provide(store, s.relay)
	if err != nil {
		return nil, err
	}
	geo, cleanup, err := geoprovider.Provide(cli.GeoConfig(cfg), m)
	if err != nil {
		return nil, err
	}
	s.cleanups = append(s.cleanups, cleanup)
	verify := app.NewVerifyCredentials(cli.ValidationRules(cfg), store, hasher, clock, m, cli.VerifyConfig(cfg, logger))
	users := app.ProvideUsers(cli.ValidationRules(cfg), cli.CountryPolicy(cfg), geo, hasher, store, trackingUnitOfWork{store, s.lag}, clock, s.relay, nil, verify)
	readiness := httpapi.ReadinessCheck(httpapi.NewReadiness(store))
	// The handler's authentication and rate limits come from a
	// configuration, so that serveWithAuth can put the same use cases
	// behind a second listener with AUTH_MODE=jwt.
	s.handlerFor = func(ctx context.Context, cfg cli.Config) (http.Handler, func(), error) {
		auth, cleanupAuth, err := jwtauth.Provide(ctx, cli.AuthConfig(cfg, logger), m)
		if err != nil {
			return nil, nil, err
		}
		limits, cleanupLimits, err := ratelimit.Provide(ctx, cli.RateLimitConfig(cfg))
		if err != nil {
			cleanupAuth()
			return nil, nil, err
		}
		h := httpapi.NewHandler(users, readiness, cli.ServeHTTPConfig(cfg, logger, m, cli.CursorKey(cfg, store), auth, limits, nil))
		return h, func() { cleanupLimits(); cleanupAuth() }, nil
	}
	s.logger = logger
	handler, cleanup, err := s.handlerFor(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.cleanups = append(s.cleanups, cleanup)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, err
	}
	s.srv = httpapi.NewServer(handler, logger)
	s.srv.ConnState = s.conns.track
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	s.stop, s.relayEnd, s.served = stopRelay, make(chan error, 1), make(chan error, 1)
	go func() { s.relayEnd <- s.relay.Run(relayCtx) }()
	go func() { s.served <- s.srv.Serve(ln) }()
	s.URL = "http://" + ln.Addr().String()
	return s, nil
}

// Close shuts down in the binary's order: server, relay, then the
// cleanups (publisher flush, database, geolocator) in reverse.
func (s *service) Close() {
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = s.srv.Shutdown(ctx)
		cancel()
		if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "load: HTTP server:", err)
		}
	}
	if s.stop != nil {
		s.stop()
		if err := <-s.relayEnd; err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "load: relay:", err)
		}
	}
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
}

// waitForRelay waits until the outbox has no unpublished message.
func (s *service) waitForRelay(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		s.relay.Notify()
		n, _, err := s.store.Backlog(ctx)
		if err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("outbox still holds %d unpublished events after %v: %w", n, timeout, errors.Join(err, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// connCounter follows the server's open connections and their peak.
type connCounter struct {
	open, peak atomic.Int64
}

func (c *connCounter) track(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		n := c.open.Add(1)
		for {
			p := c.peak.Load()
			if n <= p || c.peak.CompareAndSwap(p, n) {
				return
			}
		}
	case http.StateClosed, http.StateHijacked:
		c.open.Add(-1)
	}
}

// lagTracker measures, while on, the time from a mutation's commit to the
// broker's acknowledgement of its event. Commit and acknowledgement may be
// seen in either order (the relay can publish before the committing
// goroutine records its clock), so whichever comes second takes the sample.
type lagTracker struct {
	on      atomic.Bool
	mu      sync.Mutex
	commits map[string]time.Time
	acks    map[string]time.Time
	hist    *Histogram
}

func newLagTracker() *lagTracker {
	return &lagTracker{commits: map[string]time.Time{}, acks: map[string]time.Time{}, hist: &Histogram{}}
}

// start begins a measurement with a fresh histogram.
func (t *lagTracker) start() {
	t.mu.Lock()
	t.commits, t.acks, t.hist = map[string]time.Time{}, map[string]time.Time{}, &Histogram{}
	t.mu.Unlock()
	t.on.Store(true)
}

// stop ends the measurement: it returns the samples and how many committed
// events were never acknowledged.
func (t *lagTracker) stop() (*Histogram, int) {
	t.on.Store(false)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hist, len(t.commits)
}

// pending is the number of committed events not yet acknowledged.
func (t *lagTracker) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.commits)
}

func (t *lagTracker) committed(ids []string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		if ack, ok := t.acks[id]; ok {
			delete(t.acks, id)
			t.hist.Record(ack.Sub(at))
			continue
		}
		t.commits[id] = at
	}
}

func (t *lagTracker) acked(msgs []domain.Message, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		if c, ok := t.commits[m.EventID]; ok {
			delete(t.commits, m.EventID)
			t.hist.Record(at.Sub(c))
			continue
		}
		t.acks[m.EventID] = at
	}
}

// trackingUnitOfWork notes the event ids a transaction appended and the
// time its commit returned.
type trackingUnitOfWork struct {
	ports.UnitOfWork
	t *lagTracker
}

func (u trackingUnitOfWork) Do(ctx context.Context, fn func(ctx context.Context, tx ports.Tx) error) error {
	if !u.t.on.Load() {
		return u.UnitOfWork.Do(ctx, fn)
	}
	var ids []string
	err := u.UnitOfWork.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
		ids = ids[:0] // a retried transaction starts over
		return fn(ctx, recordingTx{Tx: tx, ids: &ids})
	})
	if err == nil && len(ids) > 0 {
		u.t.committed(ids, time.Now())
	}
	return err
}

type recordingTx struct {
	ports.Tx
	ids *[]string
}

func (t recordingTx) AppendMessage(ctx context.Context, m domain.Message) error {
	if err := t.Tx.AppendMessage(ctx, m); err != nil {
		return err
	}
	*t.ids = append(*t.ids, m.EventID)
	return nil
}

// trackingPublisher notes when the broker acknowledged each message, and
// times the calls.
type trackingPublisher struct {
	ports.EventPublisher
	t     *lagTracker
	probe *relayProbe
}

func (p trackingPublisher) Publish(ctx context.Context, msgs []domain.Message) (int, error) {
	defer p.probe.time(&p.probe.Publish)()
	p.probe.Messages.Add(uint64(len(msgs)))
	n, err := p.EventPublisher.Publish(ctx, msgs)
	if p.t.on.Load() && n > 0 {
		p.t.acked(msgs[:min(n, len(msgs))], time.Now())
	}
	return n, err
}

// relayProbe times each port call the relay makes, so that a slow relay
// shows which step is slow (lock, read, publish, mark, backlog).
type relayProbe struct {
	Lock, Read, Publish, Mark, Backlog *Histogram
	Messages                           atomic.Uint64
	mu                                 sync.Mutex
}

func newRelayProbe() *relayProbe {
	p := &relayProbe{}
	p.reset()
	return p
}

func (p *relayProbe) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Lock, p.Read, p.Publish, p.Mark, p.Backlog = &Histogram{}, &Histogram{}, &Histogram{}, &Histogram{}, &Histogram{}
	p.Messages.Store(0)
}

// time returns the function that records the call's duration in *h.
func (p *relayProbe) time(h **Histogram) func() {
	start := time.Now()
	return func() {
		p.mu.Lock()
		dst := *h
		p.mu.Unlock()
		dst.Record(time.Since(start))
	}
}

// RelaySteps summarises a relayProbe: calls and latency of each step.
type RelaySteps struct {
	Cycles   uint64          `json:"cycles"`
	Messages uint64          `json:"messages"`
	Steps    map[string]Step `json:"steps"`
}

// Step is one kind of port call.
type Step struct {
	Calls uint64 `json:"calls"`
	P50   Millis `json:"p50_ms"`
	P99   Millis `json:"p99_ms"`
}

func (p *relayProbe) summary() RelaySteps {
	p.mu.Lock()
	defer p.mu.Unlock()
	step := func(h *Histogram) Step {
		return Step{Calls: h.Count(), P50: Millis(h.Quantile(0.5)), P99: Millis(h.Quantile(0.99))}
	}
	return RelaySteps{
		Cycles:   p.Lock.Count(),
		Messages: p.Messages.Load(),
		Steps: map[string]Step{
			"lock": step(p.Lock), "read": step(p.Read), "publish": step(p.Publish),
			"mark": step(p.Mark), "backlog": step(p.Backlog),
		},
	}
}

func (r RelaySteps) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d cycles, %d messages published", r.Cycles, r.Messages)
	for _, name := range []string{"lock", "read", "publish", "mark", "backlog"} {
		s := r.Steps[name]
		fmt.Fprintf(&b, "; %s %d calls p50 %v p99 %v ms", name, s.Calls, s.P50, s.P99)
	}
	return b.String()
}

type timedOutbox struct {
	ports.Outbox
	probe *relayProbe
}

func (o timedOutbox) PendingMessages(ctx context.Context, afterSeq int64, limit int) ([]domain.Message, error) {
	defer o.probe.time(&o.probe.Read)()
	return o.Outbox.PendingMessages(ctx, afterSeq, limit)
}

func (o timedOutbox) MarkPublished(ctx context.Context, seqs []int64, at time.Time) error {
	defer o.probe.time(&o.probe.Mark)()
	return o.Outbox.MarkPublished(ctx, seqs, at)
}

func (o timedOutbox) Backlog(ctx context.Context) (int64, time.Time, error) {
	defer o.probe.time(&o.probe.Backlog)()
	return o.Outbox.Backlog(ctx)
}

type timedLock struct {
	ports.RelayLock
	probe *relayProbe
}

func (l timedLock) TryLock(ctx context.Context) (context.Context, func(), bool, error) {
	defer l.probe.time(&l.probe.Lock)()
	return l.RelayLock.TryLock(ctx)
}
