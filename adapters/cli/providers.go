package cli

import (
	"context"
	"log/slog"

	"github.com/gin-gonic/gin"
	"github.com/google/wire"

	"github.com/marketplace/usersvc/adapters/apidocs"
	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/adapters/eventbus"
	"github.com/marketplace/usersvc/adapters/geoprovider"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/httpapi"
	"github.com/marketplace/usersvc/adapters/jwtauth"
	"github.com/marketplace/usersvc/adapters/metrics"
	"github.com/marketplace/usersvc/adapters/ratelimit"
	"github.com/marketplace/usersvc/adapters/tracing"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
)

// ProviderSet hands each part of the configuration to the component that
// reads it, so that adapters never see the environment themselves.
var ProviderSet = wire.NewSet(TracedStoreConfig, HashConfig, VerifyConfig, AuthConfig, ServeHTTPConfig, RateLimitConfig, CursorKey, TracedGeoConfig, BusConfig, RelayConfig, ValidationRules, CountryPolicy, TracingConfig)

// StoreConfig is the persistence configuration.
func StoreConfig(c Config, logger *slog.Logger) gormstore.Config {
	return gormstore.Config{
		URL: c.DatabaseURL, TLS: c.DatabaseTLS, MaxOpenConns: c.DBMaxOpenConns, Logger: logger,
		StatementTimeout: c.DBStatementTimeout, LockLease: c.DBLockLease, SlowThreshold: c.DBSlowQuery,
	}
}

// TracingConfig is the part of the OTEL_* variables that decides whether spans are exported.
func TracingConfig(c Config) tracing.Config { return c.Tracing }

// TracedStoreConfig is StoreConfig with a span per statement when tracing is on.
func TracedStoreConfig(c Config, logger *slog.Logger, tr *tracing.Provider) gormstore.Config {
	s := StoreConfig(c, logger)
	if tr.Enabled() {
		s.Tracing = tr.TracerProvider()
	}
	return s
}

// HashConfig sizes the password hashing pool.
func HashConfig(c Config) argon2id.Config {
	p := argon2id.OWASP
	p.MemoryKiB, p.Iterations, p.Parallelism = uint32(c.HashMemoryKiB), uint32(c.HashIterations), uint8(c.HashParallelism) //nolint:gosec // G115: bounded by the variables' validation (intIn)
	return argon2id.Config{Params: p, Queue: c.HashQueue}
}

// VerifyConfig is the credentials check's lockout and logging.
func VerifyConfig(c Config, logger *slog.Logger) app.VerifyConfig {
	return app.VerifyConfig{
		Policy: domain.LoginPolicy{MaxFailures: c.LoginMaxFailures, Window: c.LoginWindow, Lockout: c.LoginLockout},
		LogKey: []byte(c.LoginLogKey), // empty: NewVerifyCredentials draws one
		Logger: logger,
	}
}

// cursorKeyName names the cursor key in the store's shared keys.
const cursorKeyName = "list-cursor"

// CursorKey is the key that signs list cursors: CURSOR_SECRET, or else a
// random key kept in the database, which every replica on it shares (a key
// of each process would make one replica refuse another's cursors).
func CursorKey(c Config, store *gormstore.Store) httpapi.CursorKeyFunc {
	if c.CursorSecret != "" {
		return func(context.Context) ([]byte, error) { return []byte(c.CursorSecret), nil }
	}
	return func(ctx context.Context) ([]byte, error) { return store.SharedKey(ctx, cursorKeyName) }
}

// AuthConfig is the bearer-token authentication's configuration.
func AuthConfig(c Config, logger *slog.Logger) jwtauth.Config {
	return jwtauth.Config{
		Disabled:   c.AuthMode == AuthNone,
		JWKSURL:    c.AuthJWKSURL,
		Issuer:     c.AuthIssuer,
		Audience:   c.AuthAudience,
		Algorithms: c.AuthAlgorithms,
		Leeway:     c.AuthLeeway,
		Refresh:    c.AuthRefresh,
		Logger:     logger,
	}
}

// HTTPConfig is the HTTP adapter's configuration, without authentication
// (see InstrumentedHTTPConfig for the service's).
func HTTPConfig(c Config, logger *slog.Logger) httpapi.Config {
	return httpapi.Config{
		TrustedProxies: c.TrustedProxies,
		PublicURL:      c.PublicURL,
		RequestTimeout: c.RequestTimeout,
		MaxPageOffset:  c.MaxPageOffset,
		Logger:         logger,
		LogClientIP:    c.LogClientIP,
		Debug:          c.LogLevel <= slog.LevelDebug,
		Routes:         []func(gin.IRoutes){apidocs.Register},
	}
}

// InstrumentedHTTPConfig is the service's HTTP configuration: HTTPConfig
// with the cursor key, authentication (unless AUTH_MODE=none), request and
// refusal metrics, /metrics on the admin listener only, and a server span
// per request when tracing is on (tr may be nil).
func InstrumentedHTTPConfig(c Config, logger *slog.Logger, m *metrics.Metrics, cursorKey httpapi.CursorKeyFunc, auth *jwtauth.Authenticator, tr *tracing.Provider) httpapi.Config {
	h := HTTPConfig(c, logger)
	if tr.Enabled() {
		h.Tracing = &httpapi.Tracing{Provider: tr.TracerProvider(), Propagator: tr.Propagator()}
	}
	h.CursorKey = cursorKey
	if !auth.Disabled() {
		h.Auth = auth
	}
	h.AuthObserver = m
	h.Middleware = append(h.Middleware, m.GinMiddleware())
	h.AdminRoutes = append(h.AdminRoutes, func(r gin.IRoutes) { r.GET("/metrics", gin.WrapH(m.Handler())) })
	return h
}

// ServeHTTPConfig is InstrumentedHTTPConfig with the rate limits.
func ServeHTTPConfig(c Config, logger *slog.Logger, m *metrics.Metrics, cursorKey httpapi.CursorKeyFunc, auth *jwtauth.Authenticator, limits *ratelimit.Limiters, tr *tracing.Provider) httpapi.Config {
	h := InstrumentedHTTPConfig(c, logger, m, cursorKey, auth, tr)
	h.CreateLimit, h.PasswordLimit = limits.Create, limits.Password
	return h
}

// RateLimitConfig is the rate limiters' configuration.
func RateLimitConfig(c Config) ratelimit.Config {
	return ratelimit.Config{Create: c.RateLimitCreate, Password: c.RateLimitPassword, RedisURL: c.RateLimitRedisURL}
}

// GeoConfig is the geolocation configuration.
func GeoConfig(c Config) geoprovider.Config {
	return geoprovider.Config{
		Provider:     c.GeoProvider,
		IPAPIBaseURL: c.IPAPIBaseURL,
		IPAPIKey:     c.IPAPIKey,
		Timeout:      c.GeoTimeout,
		DBPath:       c.GeoIPDBPath,
		Static:       c.GeoStatic,
		CacheSize:    c.GeoCacheSize,
		CacheTTL:     c.GeoCacheTTL,
	}
}

// TracedGeoConfig is GeoConfig with a client span per provider request when
// tracing is on.
func TracedGeoConfig(c Config, tr *tracing.Provider) geoprovider.Config {
	g := GeoConfig(c)
	if tr.Enabled() {
		g.Tracing = tr.TracerProvider()
	}
	return g
}

// BusConfig is the event bus configuration.
func BusConfig(c Config) eventbus.Config {
	return eventbus.Config{
		Bus:     c.EventBus,
		Brokers: c.KafkaBrokers, Topic: c.KafkaTopic, Extra: c.KafkaConfig, NoTombstones: !c.KafkaTombstones,
		AMQPURL: c.AMQPURL, AMQPTLS: c.AMQPTLS, Exchange: c.EventExchange, AMQPConfirmTimeout: c.AMQPConfirmTimeout,
		Source: c.EventSource,
	}
}

// RelayConfig is the outbox relay's configuration.
func RelayConfig(c Config, logger *slog.Logger) app.RelayConfig {
	return app.RelayConfig{PollInterval: c.OutboxPoll, Retention: c.OutboxRetention, Logger: logger}
}

// ValidationRules are the user validation rules.
func ValidationRules(c Config) domain.Rules { return domain.NewRules(c.PasswordMinLen) }

// CountryPolicy is the country policy.
func CountryPolicy(c Config) domain.CountryPolicy { return c.GeoAllowed }
