// Package stack assembles the real service in process for the reliability
// suites: the Gin adapter served over real HTTP on 127.0.0.1 with the
// production server limits, the use cases, a GORM store (in-memory SQLite by
// default, or any DATABASE_URL), argon2id, a geolocator and, when asked, the
// outbox relay with a publisher. Logs and (with the default publisher)
// events are captured in buffers, so that a test can search everything the
// service said.
package stack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/httpapi"
	"github.com/marketplace/usersvc/adapters/logpublisher"
	"github.com/marketplace/usersvc/adapters/staticgeo"
	"github.com/marketplace/usersvc/adapters/sysclock"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/test/syncbuf"
)

// DefaultGeo locates loopback in Switzerland, like `make run`.
const DefaultGeo = "127.0.0.0/8=CH,::1/128=CH"

// Persistence is what the use cases get from the store; Options.Wrap may
// interpose a fault injector.
type Persistence struct {
	Reader     ports.UserReader
	UnitOfWork ports.UnitOfWork
}

// Options shape a Stack. The zero value is a complete service on a private
// in-memory SQLite database, loopback located in Switzerland, no trusted
// proxy, cheap argon2id and no relay.
type Options struct {
	// DatabaseURL is a DATABASE_URL; empty means sqlite://:memory:.
	DatabaseURL string
	// StatementTimeout and LockLease are DB_STATEMENT_TIMEOUT and
	// DB_LOCK_LEASE; zero takes the store's defaults.
	StatementTimeout, LockLease time.Duration
	// Geolocator places clients; nil uses the static table GeoStatic.
	Geolocator ports.Geolocator
	// GeoStatic is a staticgeo table; empty means DefaultGeo.
	GeoStatic string
	// AllowedCountries is GEO_ALLOWED_COUNTRIES; empty means CH.
	AllowedCountries []string
	// TrustedProxies is TRUSTED_PROXIES; empty trusts no peer.
	TrustedProxies string
	// Hasher hashes passwords; nil uses argon2id with argon2id.Cheap. The
	// credentials route is served when it also tells which hashes need an
	// upgrade (app.Hasher), as argon2id's does.
	Hasher ports.PasswordHasher
	// LoginPolicy is the credentials check's lockout; the zero value is
	// the service's defaults (5 failures in 15m, locked 15m).
	LoginPolicy domain.LoginPolicy
	// Relay runs the outbox relay, publishing to Publisher (nil: JSON lines
	// into Stack.Events, the logpublisher adapter) with RelayConfig.
	Relay       bool
	Publisher   ports.EventPublisher
	RelayConfig app.RelayConfig
	// Wrap, when set, interposes between the use cases and the store.
	Wrap func(Persistence) Persistence
	// LogWriter receives the JSON log records, at debug level so that
	// everything is searched; nil means Stack.Logs. A long run passes a
	// writer that inspects lines without keeping them.
	LogWriter io.Writer
	// Auth authenticates API requests (httpapi.Config.Auth); nil: off.
	Auth httpapi.Authenticator
}

// Stack is a running service.
type Stack struct {
	// URL is the server's base URL (http://127.0.0.1:port).
	URL       string
	Store     *gormstore.Store
	Readiness *httpapi.Readiness
	// Relay is nil unless Options.Relay.
	Relay *app.Relay
	// Logs holds every log record as a JSON line.
	Logs *Buffer
	// Events holds the default publisher's JSON lines.
	Events *Buffer
	// Handler is the HTTP API itself, for callers that skip the network
	// (fuzzing through httptest.ResponseRecorder).
	Handler http.Handler
	// Client does not follow redirects: none is expected, and one would
	// hide the answer under test.
	Client *http.Client

	server    *httptest.Server
	stopRelay func()
	stopOnce  sync.Once
}

// Start builds and serves the service; it stops when t ends.
func Start(t testing.TB, opts Options) *Stack {
	t.Helper()
	s, err := start(opts)
	if err != nil {
		t.Fatalf("start service: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func start(opts Options) (*Stack, error) {
	ctx := context.Background()
	if opts.DatabaseURL == "" {
		opts.DatabaseURL = "sqlite://:memory:"
	}
	store, err := gormstore.Open(ctx, gormstore.Config{
		URL: opts.DatabaseURL, StatementTimeout: opts.StatementTimeout, LockLease: opts.LockLease,
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	fail := func(err error) (*Stack, error) {
		_ = store.Close()
		return nil, err
	}
	if err := store.Migrate(ctx); err != nil {
		return fail(fmt.Errorf("migrate: %w", err))
	}
	geo := opts.Geolocator
	if geo == nil {
		spec := opts.GeoStatic
		if spec == "" {
			spec = DefaultGeo
		}
		if geo, err = staticgeo.Parse(spec); err != nil {
			return fail(fmt.Errorf("static geolocation: %w", err))
		}
	}
	if len(opts.AllowedCountries) == 0 {
		opts.AllowedCountries = []string{"CH"}
	}
	policy, err := domain.NewCountryPolicy(opts.AllowedCountries)
	if err != nil {
		return fail(err)
	}
	trusted, err := httpapi.ParseTrustedProxies(opts.TrustedProxies)
	if err != nil {
		return fail(err)
	}
	hasher := opts.Hasher
	if hasher == nil {
		hasher = argon2id.New(argon2id.Cheap, 0)
	}

	s := &Stack{Store: store, Logs: &Buffer{}, Events: &Buffer{}, stopRelay: func() {}}
	logw := opts.LogWriter
	if logw == nil {
		logw = s.Logs
	}
	logger := slog.New(slog.NewJSONHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))

	persistence := Persistence{Reader: store, UnitOfWork: store}
	if opts.Wrap != nil {
		persistence = opts.Wrap(persistence)
	}
	var notifier ports.OutboxNotifier = noopNotifier{}
	if opts.Relay {
		pub := opts.Publisher
		if pub == nil {
			pub = logpublisher.New(s.Events)
		}
		cfg := opts.RelayConfig
		if cfg.Logger == nil {
			cfg.Logger = logger
		}
		s.Relay = app.NewRelay(store, store, pub, sysclock.Clock{}, cfg)
		notifier = s.Relay
	}
	rules := domain.NewRules(0)
	users := app.NewUsers(rules, policy, geo, hasher, persistence.Reader, persistence.UnitOfWork, sysclock.Clock{}, notifier, nil)
	if h, ok := hasher.(app.Hasher); ok {
		login := opts.LoginPolicy
		if login == (domain.LoginPolicy{}) {
			login = domain.LoginPolicy{MaxFailures: 5, Window: 15 * time.Minute, Lockout: 15 * time.Minute}
		}
		users.Verify = app.NewVerifyCredentials(rules, store, h, sysclock.Clock{}, nil, app.VerifyConfig{Policy: login, Logger: logger})
	}
	s.Readiness = httpapi.NewReadiness(store)
	handler := httpapi.NewHandler(users, httpapi.ReadinessCheck(s.Readiness), httpapi.Config{
		TrustedProxies: trusted,
		Logger:         logger,
		Auth:           opts.Auth,
	})

	s.Handler = handler
	srv := httptest.NewUnstartedServer(handler)
	// The production server's limits, so hostile requests meet them too.
	srv.Config = httpapi.NewServer(handler, logger)
	srv.Start()
	s.server = srv
	s.URL = srv.URL
	s.Client = &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if s.Relay != nil {
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Relay.Run(rctx) }()
		s.stopRelay = func() { cancel(); <-done }
	}
	return s, nil
}

// Addr is the server's host:port.
func (s *Stack) Addr() string { return s.server.Listener.Addr().String() }

// Stop shuts the service down in the composition root's order: HTTP
// server, relay, database. It is safe to call more than once.
func (s *Stack) Stop() {
	s.stopOnce.Do(func() {
		s.server.Close()
		s.Client.CloseIdleConnections()
		s.stopRelay()
		_ = s.Store.Close()
	})
}

// WaitDrained waits until the outbox holds no unpublished event.
func (s *Stack) WaitDrained(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, _, err := s.Store.Backlog(context.Background())
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained within %v: %d pending (err %v)", within, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type noopNotifier struct{}

func (noopNotifier) Notify() {}

// Buffer collects output written from many goroutines.
type Buffer = syncbuf.Buffer
