// Package cli is the command-line adapter: it reads the configuration from
// the environment, validates it, documents it (usersvc --help) and
// dispatches the sub-commands.
package cli

import (
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/adapters/eventbus"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/httpapi"
	"github.com/marketplace/usersvc/adapters/jwtauth"
	"github.com/marketplace/usersvc/adapters/rabbitmq"
	"github.com/marketplace/usersvc/adapters/ratelimit"
	"github.com/marketplace/usersvc/adapters/redact"
	"github.com/marketplace/usersvc/adapters/tlsfiles"
	"github.com/marketplace/usersvc/adapters/tracing"
	"github.com/marketplace/usersvc/domain"
)

// Config is the whole validated configuration.
type Config struct {
	HTTPAddr           string
	DatabaseURL        string
	DatabaseTLS        tlsfiles.Files
	DBMaxOpenConns     int
	DBStatementTimeout time.Duration
	DBSlowQuery        time.Duration
	DBLockLease        time.Duration
	Migrate            bool
	TrustedProxies     []netip.Prefix
	PublicURL          *url.URL
	RequestTimeout     time.Duration
	RateLimitCreate    ratelimit.Limit
	RateLimitPassword  ratelimit.Limit
	RateLimitRedisURL  string
	PasswordMinLen     int
	HashQueue          int
	HashMemoryKiB      int
	HashIterations     int
	HashParallelism    int
	LoginMaxFailures   int
	LoginWindow        time.Duration
	LoginLockout       time.Duration
	LoginLogKey        string
	LogLevel           slog.Level
	LogFormat          string
	LogClientIP        httpapi.ClientIPLog
	ShutdownTimeout    time.Duration
	DrainDelay         time.Duration
	CursorSecret       string
	MaxPageOffset      int

	GeoProvider     string
	GeoStatic       string
	GeoAllowed      domain.CountryPolicy
	GeoAllowedCodes string
	IPAPIBaseURL    string
	IPAPIKey        string
	GeoTimeout      time.Duration
	GeoIPDBPath     string
	GeoCacheSize    int
	GeoCacheTTL     time.Duration
	EventBus        string
	KafkaBrokers    string
	KafkaTopic      string
	KafkaConfig     string
	KafkaTombstones bool
	AMQPURL         string
	AMQPTLS         tlsfiles.Files
	// AMQPConfirmTimeout (AMQP_CONFIRM_TIMEOUT) bounds the relay's wait for
	// RabbitMQ's publisher confirms.
	AMQPConfirmTimeout time.Duration
	EventExchange      string
	EventSource        string
	OutboxPoll         time.Duration
	OutboxRetention    time.Duration

	AuthMode       string
	AuthJWKSURL    string
	AuthIssuer     string
	AuthAudience   string
	AuthAlgorithms []string
	AuthLeeway     time.Duration
	AuthRefresh    time.Duration
	AdminAddr      string

	Tracing tracing.Config
}

// Variable documents one environment variable and stores its parsed value.
type Variable struct {
	Name    string
	Default string
	Help    string
	Secret  bool // never echoed back (start-up summary, errors)
	set     func(c *Config, v string) error
}

// Variables lists every variable the binary reads, in --help order. The
// README's table and the deployment manifests are checked against it.
var Variables = []Variable{
	{Name: "HTTP_ADDR", Default: ":8080", Help: "address the HTTP server listens on",
		set: func(c *Config, v string) error { c.HTTPAddr = v; return nonEmpty(v) }},
	{Name: "DATABASE_URL", Default: "sqlite://users.db", Secret: true, //nolint:gosec // G101: the help text's user:pass is a placeholder
		Help: "sqlite://FILE, sqlite://:memory:, mysql://user:pass@host:3306/db?param=value or postgres://user:pass@host:5432/db?sslmode=disable",
		set:  func(c *Config, v string) error { c.DatabaseURL = v; return nonEmpty(v) }},
	{Name: "DATABASE_URL_FILE", Default: "", Help: "file holding DATABASE_URL (a mounted secret); setting both is an error",
		set: func(*Config, string) error { return nil }},
	{Name: "DATABASE_TLS_CA", Default: "", Help: "MySQL: PEM file of the CA that signed the server's certificate; when any DATABASE_TLS_* is set, TLS is required and the server's certificate and host name are verified (PostgreSQL: the URL's sslrootcert with sslmode=verify-full)",
		set: func(c *Config, v string) error { c.DatabaseTLS.CA = v; return nil }},
	{Name: "DATABASE_TLS_CERT", Default: "", Help: "MySQL: PEM client certificate, with DATABASE_TLS_KEY (PostgreSQL: the URL's sslcert)",
		set: func(c *Config, v string) error { c.DatabaseTLS.Cert = v; return nil }},
	{Name: "DATABASE_TLS_KEY", Default: "", Help: "MySQL: PEM private key of DATABASE_TLS_CERT (PostgreSQL: the URL's sslkey)",
		set: func(c *Config, v string) error { c.DatabaseTLS.Key = v; return nil }},
	{Name: "DB_MAX_OPEN_CONNS", Default: "0", Help: "most database connections this process opens; 0: 20 for MySQL and PostgreSQL, 8 for an SQLite file (1 in memory)",
		set: func(c *Config, v string) (err error) { c.DBMaxOpenConns, err = intIn(v, 0, 10000); return }},
	{Name: "DB_STATEMENT_TIMEOUT", Default: "5s", Help: "bound on every database call (a query, a transaction, an outbox batch, the wait for a pooled connection, so there is no separate pool timeout); past it the call fails as unavailable (503), so a database that stops answering cannot hold requests or the relay",
		set: func(c *Config, v string) (err error) { c.DBStatementTimeout, err = positiveDuration(v); return }},
	{Name: "DB_LOCK_LEASE", Default: "15s", Help: "how long the relay's (and migrations') database lock outlives a replica that stopped answering; another replica's relay takes over publishing after it, and a cut-off replica's open transaction frees its row locks (at least 3s)",
		set: func(c *Config, v string) (err error) { c.DBLockLease, err = durationAtLeast(v, 3*time.Second); return }},
	{Name: "DB_SLOW_QUERY_THRESHOLD", Default: "200ms", Help: "a database statement slower than this is logged at WARN (its SQL with placeholders, never values)",
		set: func(c *Config, v string) (err error) { c.DBSlowQuery, err = positiveDuration(v); return }},
	{Name: "MIGRATE", Default: "true", Help: "apply the embedded schema migrations at start-up",
		set: func(c *Config, v string) (err error) { c.Migrate, err = strconv.ParseBool(v); return }},
	{Name: "TRUSTED_PROXIES", Default: "", Help: "comma-separated CIDRs whose X-Forwarded-For/-Proto/-Host are believed",
		set: func(c *Config, v string) (err error) { c.TrustedProxies, err = parsePrefixes(v); return }},
	{Name: "PUBLIC_URL", Default: "", Help: "scheme://host[:port] clients reach the service at; when set, every link in an answer names it, whatever Host or X-Forwarded-Host the request carried",
		set: func(c *Config, v string) (err error) { c.PublicURL, err = httpapi.ParsePublicURL(v); return }},
	{Name: "REQUEST_TIMEOUT", Default: httpapi.DefaultRequestTimeout.String(), Help: "how long one API request may take, its body's arrival included; past it the work stops and the answer is 503 (408 while the body is still arriving); at most 25s",
		set: func(c *Config, v string) (err error) {
			c.RequestTimeout, err = durationIn(v, time.Millisecond, httpapi.MaxRequestTimeout)
			return
		}},
	{Name: "CURSOR_SECRET", Default: "", Secret: true, Help: "key (at least 32 characters) that signs the cursors of list links; every replica needs the same; empty: a random key the first replica stores in the database, shared by all",
		set: func(c *Config, v string) error {
			c.CursorSecret = v
			if v != "" && len(v) < 32 {
				return fmt.Errorf("must be at least 32 characters")
			}
			return nil
		}},
	{Name: "PAGINATION_MAX_OFFSET", Default: strconv.Itoa(domain.MaxPageOffset), Help: "deepest row page-number mode reaches (page × page_size); deeper requests get 400 pointing at cursor pagination; 0: no limit",
		set: func(c *Config, v string) (err error) { c.MaxPageOffset, err = intIn(v, 0, 1<<31-1); return }},
	{Name: "RATE_LIMIT_CREATE", Default: "10/m", Help: "creations allowed per client address (IPv6: per /64): N/PERIOD[,burst=B] with PERIOD s, m, h or a duration (burst defaults to N), or off; over it: 429 with Retry-After",
		set: func(c *Config, v string) (err error) { c.RateLimitCreate, err = ratelimit.ParseLimit(v); return }},
	{Name: "RATE_LIMIT_PASSWORD", Default: "5/m", Help: "writes carrying a password (PUT, PATCH) allowed per client address (IPv6: per /64), same syntax as RATE_LIMIT_CREATE",
		set: func(c *Config, v string) (err error) { c.RateLimitPassword, err = ratelimit.ParseLimit(v); return }},
	{Name: "RATE_LIMIT_REDIS_URL", Default: "", Secret: true, Help: "redis:// or rediss:// URL; when set, the rate limits are counted in Redis and shared by every replica; empty: each replica counts on its own, in memory",
		set: func(c *Config, v string) error { c.RateLimitRedisURL = v; return ratelimit.ValidateRedisURL(v) }},
	{Name: "PASSWORD_MIN_LENGTH", Default: strconv.Itoa(domain.DefaultPasswordMinLength), Help: "minimum password length in characters (1-128)",
		set: func(c *Config, v string) (err error) {
			c.PasswordMinLen, err = intIn(v, 1, domain.MaxPasswordLength)
			return
		}},
	{Name: "PASSWORD_HASH_QUEUE", Default: strconv.Itoa(argon2id.DefaultQueue), Help: "password hashes and checks that may wait for a busy hashing slot (one slot per CPU); past that the answer is 503 at once",
		set: func(c *Config, v string) (err error) { c.HashQueue, err = intIn(v, 0, 100000); return }},
	{Name: "PASSWORD_HASH_MEMORY", Default: strconv.Itoa(int(argon2id.OWASP.MemoryKiB)), Help: "argon2id memory per hash in KiB; with PASSWORD_HASH_ITERATIONS at least one of OWASP's minimums (e.g. 19456 with 2, 9216 with 4)",
		set: func(c *Config, v string) (err error) { c.HashMemoryKiB, err = intIn(v, 1, 1<<20); return }},
	{Name: "PASSWORD_HASH_ITERATIONS", Default: strconv.Itoa(int(argon2id.OWASP.Iterations)), Help: "argon2id passes over the memory",
		set: func(c *Config, v string) (err error) { c.HashIterations, err = intIn(v, 1, 100); return }},
	{Name: "PASSWORD_HASH_PARALLELISM", Default: strconv.Itoa(int(argon2id.OWASP.Parallelism)), Help: "argon2id lanes (degree of parallelism)",
		set: func(c *Config, v string) (err error) { c.HashParallelism, err = intIn(v, 1, 255); return }},
	{Name: "LOGIN_MAX_FAILURES", Default: "5", Help: "failed credential checks of one email within LOGIN_FAILURE_WINDOW that lock it out; 0 turns the lockout off",
		set: func(c *Config, v string) (err error) { c.LoginMaxFailures, err = intIn(v, 0, 1000000); return }},
	{Name: "LOGIN_FAILURE_WINDOW", Default: "15m", Help: "window in which failed credential checks of one email are counted",
		set: func(c *Config, v string) (err error) { c.LoginWindow, err = positiveDuration(v); return }},
	{Name: "LOGIN_LOCKOUT", Default: "15m", Help: "how long after its last failure a locked-out email is refused (429)",
		set: func(c *Config, v string) (err error) { c.LoginLockout, err = positiveDuration(v); return }},
	{Name: "LOGIN_LOG_KEY", Default: "", Secret: true, Help: "key (at least 32 characters) of the email_hash that names an email in credential-check log lines; the same on every replica and across restarts lets one account's attempts be followed; empty: a random key per process (lines of different replicas or restarts cannot be matched)",
		set: func(c *Config, v string) error {
			c.LoginLogKey = v
			if v != "" && len(v) < minLoginLogKey {
				return fmt.Errorf("must be at least %d characters", minLoginLogKey)
			}
			return nil
		}},
	{Name: "LOGIN_LOG_KEY_FILE", Default: "", Help: "file holding LOGIN_LOG_KEY (a mounted secret); setting both is an error",
		set: func(*Config, string) error { return nil }},
	{Name: "LOG_LEVEL", Default: "info", Help: "debug, info, warn or error",
		set: func(c *Config, v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
	{Name: "LOG_FORMAT", Default: "json", Help: "json or text",
		set: func(c *Config, v string) error { c.LogFormat = v; return oneOf(v, "json", "text") }},
	{Name: "LOG_CLIENT_IP", Default: string(httpapi.ClientIPTruncated), Help: "client address in access log lines: full, truncated (IPv4 /24, IPv6 /48) or none",
		set: func(c *Config, v string) (err error) { c.LogClientIP, err = httpapi.ParseClientIPLog(v); return }},
	{Name: "SHUTDOWN_TIMEOUT", Default: "20s", Help: "how long in-flight requests may finish after SIGTERM",
		set: func(c *Config, v string) (err error) { c.ShutdownTimeout, err = positiveDuration(v); return }},
	{Name: "SHUTDOWN_DRAIN_DELAY", Default: "0s", Help: "after SIGTERM, how long /readyz answers 503 while requests are still served, so load balancers stop routing first",
		set: func(c *Config, v string) (err error) { c.DrainDelay, err = nonNegativeDuration(v); return }},
	// Read by the Go runtime before main, which refuses a malformed value;
	// listed so that --help, the README and the manifests' checks know it.
	{Name: "GOMEMLIMIT", Default: "", Help: "soft memory limit of the Go runtime, e.g. 48MiB (the GC works harder instead of growing the heap past it); empty: none",
		set: func(*Config, string) error { return nil }},

	{Name: "GEO_PROVIDER", Default: "ipapi", Help: "where client addresses are located: ipapi, mmdb or static",
		set: func(c *Config, v string) error { c.GeoProvider = v; return oneOf(v, "ipapi", "mmdb", "static") }},
	{Name: "GEO_STATIC", Default: "127.0.0.0/8=CH,::1/128=CH", Help: "static provider's CIDR=COUNTRY list",
		set: func(c *Config, v string) error { c.GeoStatic = v; return nil }},
	{Name: "GEO_ALLOWED_COUNTRIES", Default: "CH", Help: "ISO 3166-1 alpha-2 codes users may be created from",
		set: func(c *Config, v string) (err error) {
			c.GeoAllowedCodes = v
			c.GeoAllowed, err = domain.NewCountryPolicy(strings.Split(v, ","))
			return
		}},
	{Name: "IPAPI_BASE_URL", Default: "https://ipapi.co", Help: "ipapi.co endpoint",
		set: func(c *Config, v string) error { c.IPAPIBaseURL = v; return nonEmpty(v) }},
	{Name: "IPAPI_KEY", Default: "", Secret: true, Help: "ipapi.co API key, sent as the key parameter when set",
		set: func(c *Config, v string) error { c.IPAPIKey = v; return nil }},
	{Name: "IPAPI_KEY_FILE", Default: "", Help: "file holding IPAPI_KEY (a mounted secret); setting both is an error",
		set: func(*Config, string) error { return nil }},
	{Name: "GEO_TIMEOUT", Default: "2s", Help: "timeout of one geolocation lookup",
		set: func(c *Config, v string) (err error) { c.GeoTimeout, err = positiveDuration(v); return }},
	{Name: "GEOIP_DB_PATH", Default: "", Help: "MaxMind DB country file for GEO_PROVIDER=mmdb",
		set: func(c *Config, v string) error { c.GeoIPDBPath = v; return nil }},
	{Name: "GEO_CACHE_SIZE", Default: "10000", Help: "clients (IPv4 addresses, IPv6 /64s) kept in the geolocation cache (LRU)",
		set: func(c *Config, v string) (err error) { c.GeoCacheSize, err = intIn(v, 1, 10_000_000); return }},
	{Name: "GEO_CACHE_TTL", Default: "24h", Help: "how long a geolocation answer is cached",
		set: func(c *Config, v string) (err error) { c.GeoCacheTTL, err = positiveDuration(v); return }},

	{Name: "EVENT_BUS", Default: eventbus.BusKafka, Help: "where events go: kafka (needs KAFKA_BROKERS), rabbitmq, or log (stdout, development only; make run sets it)",
		set: func(c *Config, v string) error {
			c.EventBus = v
			if v == "auto" {
				return fmt.Errorf("auto is no longer accepted (it fell back to stdout without KAFKA_BROKERS): set kafka with KAFKA_BROKERS, or log for development")
			}
			return oneOf(v, eventbus.Buses...)
		}},
	{Name: "KAFKA_BROKERS", Default: "", Help: "comma-separated Kafka bootstrap servers; required with EVENT_BUS=kafka (the default)",
		set: func(c *Config, v string) error { c.KafkaBrokers = v; return nil }},
	{Name: "KAFKA_TOPIC", Default: "users-events", Help: "topic the events are published to",
		set: func(c *Config, v string) error { c.KafkaTopic = v; return nonEmpty(v) }},
	{Name: "KAFKA_CONFIG", Default: "", Secret: true, Help: "extra librdkafka settings, key=value,key=value (SASL, TLS...)",
		set: func(c *Config, v string) error { c.KafkaConfig = v; return nil }},
	{Name: "KAFKA_CONFIG_FILE", Default: "", Help: "file holding KAFKA_CONFIG (a mounted secret); setting both is an error",
		set: func(*Config, string) error { return nil }},
	{Name: "KAFKA_TOMBSTONES", Default: "true", Help: "follow each delete event with a tombstone (same key, null value) so a compacted topic forgets the user",
		set: func(c *Config, v string) (err error) { c.KafkaTombstones, err = strconv.ParseBool(v); return }},
	{Name: "AMQP_URL", Default: rabbitmq.DefaultURL, Secret: true, Help: "RabbitMQ broker for EVENT_BUS=rabbitmq, amqp:// or amqps://user:pass@host:port/vhost",
		set: func(c *Config, v string) error { c.AMQPURL = v; return nonEmpty(v) }},
	{Name: "AMQP_URL_FILE", Default: "", Help: "file holding AMQP_URL (a mounted secret); setting both is an error",
		set: func(*Config, string) error { return nil }},
	{Name: "AMQP_TLS_CA", Default: "", Help: "PEM file of the CA that signed the RabbitMQ broker's certificate (amqps:// only; default: the system's roots)",
		set: func(c *Config, v string) error { c.AMQPTLS.CA = v; return nil }},
	{Name: "AMQP_TLS_CERT", Default: "", Help: "PEM client certificate for amqps://, with AMQP_TLS_KEY",
		set: func(c *Config, v string) error { c.AMQPTLS.Cert = v; return nil }},
	{Name: "AMQP_TLS_KEY", Default: "", Help: "PEM private key of AMQP_TLS_CERT",
		set: func(c *Config, v string) error { c.AMQPTLS.Key = v; return nil }},
	{Name: "AMQP_CONFIRM_TIMEOUT", Default: "30s", Help: "longest wait for RabbitMQ's confirms of one batch; past it the connection is given up on and the batch retried, and the relay lock moves to another replica when this one's route to the broker died",
		set: func(c *Config, v string) (err error) { c.AMQPConfirmTimeout, err = positiveDuration(v); return }},
	{Name: "EVENT_EXCHANGE", Default: rabbitmq.DefaultExchange, Help: "RabbitMQ topic exchange the events are published to (declared durable by the service)",
		set: func(c *Config, v string) error { c.EventExchange = v; return nonEmpty(v) }},
	{Name: "EVENT_SOURCE", Default: "usersvc", Help: "CloudEvents source attribute (Kafka ce_source, RabbitMQ cloudEvents:source)",
		set: func(c *Config, v string) error { c.EventSource = v; return nonEmpty(v) }},
	{Name: "OUTBOX_POLL_INTERVAL", Default: "1s", Help: "how often the relay looks for events written by other replicas",
		set: func(c *Config, v string) (err error) { c.OutboxPoll, err = positiveDuration(v); return }},
	{Name: "OUTBOX_RETENTION", Default: "24h", Help: "how long published events stay in the outbox table",
		set: func(c *Config, v string) (err error) { c.OutboxRetention, err = positiveDuration(v); return }},

	{Name: "AUTH_MODE", Default: AuthJWT, Help: "jwt: every API request needs a valid OAuth2 bearer token; none: no authentication (development only, logged as a warning)",
		set: func(c *Config, v string) error { c.AuthMode = v; return oneOf(v, AuthJWT, AuthNone) }},
	{Name: "AUTH_JWKS_URL", Default: "", Help: "where the token signing keys are: https://… or http://… (a JWKS document) or file:///path/jwks.json",
		set: func(c *Config, v string) error { c.AuthJWKSURL = v; return nil }},
	{Name: "AUTH_ISSUER", Default: "", Help: "the exact iss every token must carry",
		set: func(c *Config, v string) error { c.AuthIssuer = v; return nil }},
	{Name: "AUTH_AUDIENCE", Default: "", Help: "a value the token's aud (string or array) must contain",
		set: func(c *Config, v string) error { c.AuthAudience = v; return nil }},
	{Name: "AUTH_ALGORITHMS", Default: strings.Join(jwtauth.DefaultAlgorithms, ","), Help: "accepted token alg values (" + strings.Join(jwtauth.SupportedAlgorithms, ",") + "); none and HS* are refused even if listed",
		set: func(c *Config, v string) (err error) { c.AuthAlgorithms, err = parseAlgorithms(v); return }},
	{Name: "AUTH_LEEWAY", Default: "30s", Help: "clock skew allowed on a token's exp, nbf and iat",
		set: func(c *Config, v string) (err error) { c.AuthLeeway, err = nonNegativeDuration(v); return }},
	{Name: "AUTH_JWKS_REFRESH", Default: "15m", Help: "how often the signing keys are fetched again (and at once, at most every 10s, for a token naming an unknown kid)",
		set: func(c *Config, v string) (err error) { c.AuthRefresh, err = positiveDuration(v); return }},
	{Name: "ADMIN_ADDR", Default: "127.0.0.1:9090", Help: "address of the admin listener (/metrics, /healthz, /readyz, /debug/pprof/); empty: none",
		set: func(c *Config, v string) error { c.AdminAddr = v; return nil }},

	// OpenTelemetry's standard variables. The SDK reads them itself (the
	// sampler, the service name and the resource attributes only there);
	// listed so that --help, the README and the manifests know them, and so
	// that a bad value stops the service at start-up rather than being
	// ignored.
	{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Default: "", Help: "OTLP collector base URL spans are exported to, e.g. http://otel-collector:4318; empty: tracing off, at no cost",
		set: func(c *Config, v string) error { c.Tracing.Endpoint = v; return absoluteURL(v) }},
	{Name: "OTEL_EXPORTER_OTLP_PROTOCOL", Default: tracing.ProtocolHTTP, Help: "OTLP transport: http/protobuf or grpc",
		set: func(c *Config, v string) error {
			c.Tracing.Protocol = v
			return oneOf(v, tracing.ProtocolHTTP, tracing.ProtocolGRPC)
		}},
	{Name: "OTEL_SERVICE_NAME", Default: tracing.ServiceName, Help: "service.name of the spans",
		set: func(*Config, string) error { return nil }},
	{Name: "OTEL_RESOURCE_ATTRIBUTES", Default: "", Help: "extra resource attributes of the spans, key=value,key=value (e.g. deployment.environment.name=prod)",
		set: func(*Config, string) error { return nil }},
	{Name: "OTEL_TRACES_SAMPLER", Default: "parentbased_always_on", Help: "which requests are traced: " + strings.Join(tracing.Samplers, ", ") + "; parentbased_* follow a trusted caller's decision",
		set: func(_ *Config, v string) error { return oneOf(v, tracing.Samplers...) }},
	{Name: "OTEL_TRACES_SAMPLER_ARG", Default: "", Help: "ratio of traces kept by the traceidratio samplers, 0 to 1 (empty: 1)",
		set: func(_ *Config, v string) error { return ratio(v) }},
	{Name: "OTEL_SDK_DISABLED", Default: "false", Help: "true turns tracing off whatever the endpoint",
		set: func(c *Config, v string) (err error) { c.Tracing.Disabled, err = strconv.ParseBool(v); return }},
}

// absoluteURL accepts "" or a scheme://host URL.
func absoluteURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an http:// or https:// URL such as http://otel-collector:4318")
	}
	return nil
}

// ratio accepts "" or a number from 0 to 1.
func ratio(v string) error {
	if v == "" {
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		return fmt.Errorf("must be a number from 0 to 1")
	}
	return nil
}

// AUTH_MODE values.
const (
	AuthJWT  = "jwt"
	AuthNone = "none"
)

// parseAlgorithms reads AUTH_ALGORITHMS. "none" and HS* may be listed (an
// operator copying an issuer's list) but are never accepted; an unknown
// name is a typo worth refusing to start for.
func parseAlgorithms(v string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
		case strings.EqualFold(a, "none"), strings.HasPrefix(a, "HS"):
		case slices.Contains(jwtauth.SupportedAlgorithms, a):
			out = append(out, a)
		default:
			return nil, fmt.Errorf("unknown algorithm %q (supported: %s)", a, strings.Join(jwtauth.SupportedAlgorithms, ","))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("needs at least one of %s", strings.Join(jwtauth.SupportedAlgorithms, ","))
	}
	return out, nil
}

// validateAuth refuses to start unprotected by accident: with AUTH_MODE=jwt
// the three settings that say whose tokens to accept are required.
func (c Config) validateAuth() error {
	if c.AuthMode != AuthJWT {
		return nil
	}
	var missing []string
	for _, v := range []struct{ name, value string }{
		{"AUTH_JWKS_URL", c.AuthJWKSURL}, {"AUTH_ISSUER", c.AuthIssuer}, {"AUTH_AUDIENCE", c.AuthAudience},
	} {
		if v.value == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("AUTH_MODE=jwt needs %s (or set AUTH_MODE=none to run without authentication, for development only)", strings.Join(missing, ", "))
	}
	u, err := url.Parse(c.AuthJWKSURL)
	if err != nil || !(u.Scheme == "https" || u.Scheme == "http") || u.Host == "" {
		if err != nil || u.Scheme != "file" || u.Path == "" {
			return fmt.Errorf("AUTH_JWKS_URL must be https://…, http://… or file:///path")
		}
	}
	return nil
}

// Load builds the configuration from lookup (os.LookupEnv in production).
// The first bad value is reported as one line naming its variable.
func Load(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	for _, v := range Variables {
		raw, ok, err := lookupWithFile(lookup, v.Name)
		if err != nil {
			return Config{}, err
		}
		if !ok {
			raw = v.Default
		}
		raw = strings.TrimSpace(raw)
		if err := v.set(&c, raw); err != nil {
			shown := strconv.Quote(raw)
			if v.Secret {
				shown = "(value hidden)"
			}
			return Config{}, fmt.Errorf("invalid %s %s: %w", v.Name, shown, err)
		}
	}
	if err := c.validateAdapters(); err != nil {
		// One line, however many problems an adapter reported.
		return Config{}, fmt.Errorf("invalid configuration: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return c, nil
}

// FileVariables are the secret-bearing variables that may instead be read
// from a mounted file named by NAME_FILE (a Kubernetes Secret volume, a
// Docker secret), so the value never sits in the process environment.
var FileVariables = []string{"DATABASE_URL", "AMQP_URL", "KAFKA_CONFIG", "IPAPI_KEY", "LOGIN_LOG_KEY"}

// minLoginLogKey is LOGIN_LOG_KEY's shortest length: a short key would let
// whoever reads the logs confirm guessed emails by brute force.
const minLoginLogKey = 32

// lookupWithFile reads name, or the file named by name_FILE; setting both
// is an error, as is an unreadable file. One trailing newline is dropped.
func lookupWithFile(lookup func(string) (string, bool), name string) (string, bool, error) {
	raw, ok := lookup(name)
	if !slices.Contains(FileVariables, name) {
		return raw, ok, nil
	}
	path, fromFile := lookup(name + "_FILE")
	if !fromFile || strings.TrimSpace(path) == "" {
		return raw, ok, nil
	}
	if ok {
		return "", false, fmt.Errorf("invalid %s_FILE: %s is set too; set one of them", name, name)
	}
	b, err := os.ReadFile(strings.TrimSpace(path))
	if err != nil {
		return "", false, fmt.Errorf("invalid %s_FILE: %w", name, err)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), true, nil
}

// KnownVariable reports whether name is read by the binary.
func KnownVariable(name string) bool {
	for _, v := range Variables {
		if v.Name == name {
			return true
		}
	}
	return false
}

// VariableNames returns the sorted names of every variable.
func VariableNames() []string {
	names := make([]string, len(Variables))
	for i, v := range Variables {
		names[i] = v.Name
	}
	sort.Strings(names)
	return names
}

func nonEmpty(v string) error {
	if v == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}

func oneOf(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
}

func intIn(v string, min, max int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("must be an integer from %d to %d", min, max)
	}
	return n, nil
}

func positiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("must be a positive duration such as 500ms, 2s or 24h")
	}
	return d, nil
}

func durationAtLeast(v string, least time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < least {
		return 0, fmt.Errorf("must be a duration of at least %v", least)
	}
	return d, nil
}

func durationIn(v string, min, max time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < min || d > max {
		return 0, fmt.Errorf("must be a duration from %s to %s, such as 500ms or 10s", min, max)
	}
	return d, nil
}

func nonNegativeDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("must be a duration such as 0s, 5s or 1m")
	}
	return d, nil
}

func parsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			addr, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR or an IP address", item)
			}
			out = append(out, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", item)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// validateAdapters lets each adapter check its own settings without
// connecting anywhere; their messages name the variables to fix.
func (c Config) validateAdapters() error {
	if err := argon2id.ValidateParams(HashConfig(c).Params); err != nil {
		return fmt.Errorf("PASSWORD_HASH_MEMORY, PASSWORD_HASH_ITERATIONS, PASSWORD_HASH_PARALLELISM: %w", err)
	}
	if _, err := gormstore.Parse(c.DatabaseURL, c.DatabaseTLS); err != nil {
		return err
	}
	if err := GeoConfig(c).Validate(); err != nil {
		return err
	}
	if err := BusConfig(c).Validate(); err != nil {
		return err
	}
	return c.validateAuth()
}

// RedactURL hides the password and password-like parameters of a URL
// such as DATABASE_URL for logs.
func RedactURL(raw string) string { return redact.URL(raw) }
