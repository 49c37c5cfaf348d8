package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/rabbitmq"
)

// authSettings are the variables AUTH_MODE=jwt (the default) requires;
// env supplies them unless the test sets them itself.
var authSettings = map[string]string{
	"AUTH_JWKS_URL": "https://id.example.com/realms/marketplace/protocol/openid-connect/certs",
	"AUTH_ISSUER":   "https://id.example.com/realms/marketplace",
	"AUTH_AUDIENCE": "usersvc",
}

// bare serves exactly vars.
func bare(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// env is bare with the development event bus (EVENT_BUS=log) unless vars
// choose a bus or brokers (the default bus needs KAFKA_BROKERS), and with
// authSettings unless vars set them.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		_, bus := vars["EVENT_BUS"]
		_, brokers := vars["KAFKA_BROKERS"]
		if k == "EVENT_BUS" && !ok && !bus && !brokers {
			return "log", true
		}
		if a, isAuth := authSettings[k]; isAuth && !ok {
			return a, true
		}
		return v, ok
	}
}

// withAuth is vars plus authSettings, so that only the rest is judged.
func withAuth(vars map[string]string) map[string]string {
	all := map[string]string{}
	for k, v := range authSettings {
		all[k] = v
	}
	for k, v := range vars {
		all[k] = v
	}
	return all
}

// noAuth is env without authSettings.
func noAuth(vars map[string]string) func(string) (string, bool) {
	all := map[string]string{"EVENT_BUS": "log"}
	for k, v := range vars {
		all[k] = v
	}
	return bare(all)
}

// The security review's finding: an empty environment used to start with
// every event on stdout. The default is Kafka, which refuses to start
// without brokers; only an explicit EVENT_BUS=log writes to stdout.
func TestLoadRefusesTheStdoutFallback(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"nothing set", nil, "KAFKA_BROKERS"},
		{"brokers empty", map[string]string{"KAFKA_BROKERS": ""}, "KAFKA_BROKERS"},
		{"auto", map[string]string{"EVENT_BUS": "auto"}, "EVENT_BUS"},
		{"auto with brokers", map[string]string{"EVENT_BUS": "auto", "KAFKA_BROKERS": "127.0.0.1:9092"}, "EVENT_BUS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(bare(withAuth(tc.env)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load(%v) = %v; want an error naming %s", tc.env, err, tc.want)
			}
		})
	}
	c, err := Load(bare(withAuth(map[string]string{"KAFKA_BROKERS": "127.0.0.1:9092"})))
	if err != nil || c.EventBus != "kafka" {
		t.Fatalf("Load with brokers only = %q, %v; want the kafka bus", c.EventBus, err)
	}
	c, err = Load(bare(withAuth(map[string]string{"EVENT_BUS": "log"})))
	if err != nil || c.EventBus != "log" {
		t.Fatalf("Load with EVENT_BUS=log = %q, %v", c.EventBus, err)
	}
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.DatabaseURL != "sqlite://users.db" || !c.Migrate || len(c.TrustedProxies) != 0 ||
		c.PasswordMinLen != 8 || c.LogLevel != slog.LevelInfo || c.LogFormat != "json" || c.GeoProvider != "ipapi" ||
		c.GeoTimeout != 2*time.Second || c.GeoCacheSize != 10000 || c.GeoCacheTTL != 24*time.Hour ||
		c.KafkaTopic != "users-events" || c.EventSource != "usersvc" || c.ShutdownTimeout != 20*time.Second ||
		c.DBMaxOpenConns != 0 || c.AuthMode != AuthJWT || c.AdminAddr != "127.0.0.1:9090" ||
		strings.Join(c.AuthAlgorithms, ",") != "RS256,ES256,EdDSA" || c.AuthLeeway != 30*time.Second || c.AuthRefresh != 15*time.Minute {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestAuthSettings(t *testing.T) {
	tests := []struct {
		name    string
		lookup  func(string) (string, bool)
		wantErr string // empty: loads
		check   func(t *testing.T, c Config)
	}{
		{name: "jwt by default refuses to start without settings", lookup: noAuth(nil),
			wantErr: "AUTH_MODE=jwt needs AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE (or set AUTH_MODE=none"},
		{name: "names only what is missing", lookup: noAuth(map[string]string{"AUTH_JWKS_URL": "file:///etc/jwks.json", "AUTH_AUDIENCE": "usersvc"}),
			wantErr: "AUTH_MODE=jwt needs AUTH_ISSUER (or set AUTH_MODE=none"},
		{name: "none needs nothing", lookup: noAuth(map[string]string{"AUTH_MODE": "none"}),
			check: func(t *testing.T, c Config) {
				if c.AuthMode != AuthNone || !AuthConfig(c, nil).Disabled {
					t.Errorf("AUTH_MODE=none: %+v", c)
				}
			}},
		{name: "unknown mode", lookup: env(map[string]string{"AUTH_MODE": "basic"}), wantErr: "invalid AUTH_MODE"},
		{name: "JWKS URL of another scheme", lookup: env(map[string]string{"AUTH_JWKS_URL": "ftp://id/jwks"}), wantErr: "AUTH_JWKS_URL must be"},
		{name: "JWKS file", lookup: env(map[string]string{"AUTH_JWKS_URL": "file:///etc/usersvc/jwks.json"})},
		{name: "unknown algorithm", lookup: env(map[string]string{"AUTH_ALGORITHMS": "RS256,RS257"}), wantErr: "invalid AUTH_ALGORITHMS"},
		{name: "only refused algorithms", lookup: env(map[string]string{"AUTH_ALGORITHMS": "HS256,none"}), wantErr: "invalid AUTH_ALGORITHMS"},
		{name: "none and HS* listed are dropped", lookup: env(map[string]string{"AUTH_ALGORITHMS": "HS256, none ,ES256,HS512,PS256"}),
			check: func(t *testing.T, c Config) {
				if got := strings.Join(c.AuthAlgorithms, ","); got != "ES256,PS256" {
					t.Errorf("algorithms %q", got)
				}
			}},
		{name: "negative leeway", lookup: env(map[string]string{"AUTH_LEEWAY": "-1s"}), wantErr: "invalid AUTH_LEEWAY"},
		{name: "zero refresh", lookup: env(map[string]string{"AUTH_JWKS_REFRESH": "0s"}), wantErr: "invalid AUTH_JWKS_REFRESH"},
		{name: "admin listener off", lookup: env(map[string]string{"ADMIN_ADDR": ""}),
			check: func(t *testing.T, c Config) {
				if c.AdminAddr != "" {
					t.Errorf("ADMIN_ADDR %q", c.AdminAddr)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.lookup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("Load = %v; want one line containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestLoadRejectsBadValuesNamingTheVariable(t *testing.T) {
	for _, tc := range []struct {
		name, value string
	}{
		{"MIGRATE", "perhaps"},
		{"TRUSTED_PROXIES", "10.0.0.0/8,not-a-cidr"},
		{"PASSWORD_MIN_LENGTH", "0"},
		{"PASSWORD_MIN_LENGTH", "129"},
		{"LOG_LEVEL", "loud"},
		{"LOG_FORMAT", "xml"},
		{"GEO_PROVIDER", "maxmind"},
		{"GEO_ALLOWED_COUNTRIES", "CH,XX"},
		{"GEO_ALLOWED_COUNTRIES", ""},
		{"GEO_TIMEOUT", "-1s"},
		{"GEO_TIMEOUT", "2"},
		{"GEO_CACHE_SIZE", "many"},
		{"KAFKA_TOPIC", ""},
		{"HTTP_ADDR", ""},
		{"SHUTDOWN_TIMEOUT", "0s"},
		{"DB_MAX_OPEN_CONNS", "-1"},
		{"PUBLIC_URL", "users.example.com"},
		{"PUBLIC_URL", "https://users.example.com/api"},
		{"DB_MAX_OPEN_CONNS", "lots"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{tc.name: tc.value}))
			if err == nil || !strings.HasPrefix(err.Error(), "invalid "+tc.name+" ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Load(%s=%q) error = %v; want one line naming the variable", tc.name, tc.value, err)
			}
		})
	}
}

func TestSecretsAreNotEchoed(t *testing.T) {
	_, err := Load(env(map[string]string{"DATABASE_URL": ""}))
	if err == nil || !strings.Contains(err.Error(), "(value hidden)") {
		t.Fatalf("error for a bad DATABASE_URL = %v; want the value hidden", err)
	}
}

func TestTrustedProxiesAcceptCIDRsAndAddresses(t *testing.T) {
	c, err := Load(env(map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,::1"}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.TrustedProxies {
		got = append(got, p.String())
	}
	if strings.Join(got, ",") != "10.0.0.0/8,192.168.1.7/32,::1/128" {
		t.Fatalf("prefixes = %v", got)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"--help"}, env(nil), &out, io.Discard, Commands{}); code != 0 {
		t.Fatalf("--help exit status %d", code)
	}
	for _, v := range Variables {
		if !strings.Contains(out.String(), v.Name) {
			t.Errorf("--help does not list %s", v.Name)
		}
	}
	for _, cmd := range []string{"serve", "migrate", "events tail"} {
		if !strings.Contains(out.String(), cmd) {
			t.Errorf("--help does not show the %q command", cmd)
		}
	}
}

func TestRunDispatches(t *testing.T) {
	var called string
	var from bool
	cmds := Commands{
		Serve:   func(context.Context, Config) error { called = "serve"; return nil },
		Migrate: func(context.Context, Config) error { called = "migrate"; return nil },
		Tail: func(_ context.Context, _ Config, fromBeginning bool, _ io.Writer) error {
			called, from = "tail", fromBeginning
			return nil
		},
	}
	withKafka := env(map[string]string{"KAFKA_BROKERS": "127.0.0.1:9092"})
	for _, tc := range []struct {
		name     string
		args     []string
		lookup   func(string) (string, bool)
		wantCode int
		want     string
		wantFrom bool
	}{
		{"no arguments serve", nil, env(nil), 0, "serve", false},
		{"serve", []string{"serve"}, env(nil), 0, "serve", false},
		{"migrate", []string{"migrate"}, env(nil), 0, "migrate", false},
		{"events tail", []string{"events", "tail"}, withKafka, 0, "tail", false},
		{"events tail from the beginning", []string{"events", "tail", "--from-beginning"}, withKafka, 0, "tail", true},
		{"events tail without brokers", []string{"events", "tail"}, env(nil), 1, "", false},
		{"serve without brokers", []string{"serve"}, bare(nil), 1, "", false},
		{"events tail on rabbitmq", []string{"events", "tail"}, env(map[string]string{"EVENT_BUS": "rabbitmq"}), 0, "tail", false},
		{"unknown command", []string{"frobnicate"}, env(nil), 2, "", false},
		{"events without tail", []string{"events"}, env(nil), 2, "", false},
		{"bad flag", []string{"events", "tail", "--nope"}, withKafka, 2, "", false},
		{"bad configuration", []string{"serve"}, env(map[string]string{"LOG_FORMAT": "xml"}), 1, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called, from = "", false
			var stderr bytes.Buffer
			code := Run(context.Background(), tc.args, tc.lookup, io.Discard, &stderr, cmds)
			if code != tc.wantCode || called != tc.want || from != tc.wantFrom {
				t.Fatalf("Run(%v) = %d, called %q (from %v), stderr %q", tc.args, code, called, from, stderr.String())
			}
		})
	}
}

// Settings only an adapter understands are checked at start-up too, in one
// line naming the variable, without connecting anywhere.
func TestLoadRunsTheAdaptersChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unknown database scheme", map[string]string{"DATABASE_URL": "oracle://scott:tiger@db/users"}, "DATABASE_URL"},
		{"mmdb without a database file", map[string]string{"GEO_PROVIDER": "mmdb"}, "GEOIP_DB_PATH"},
		{"mmdb file missing", map[string]string{"GEO_PROVIDER": "mmdb", "GEOIP_DB_PATH": "/nonexistent/country.mmdb"}, "GEOIP_DB_PATH"},
		{"static mapping malformed", map[string]string{"GEO_PROVIDER": "static", "GEO_STATIC": "127.0.0.0/8"}, "GEO_STATIC"},
		{"static mapping to an unknown country", map[string]string{"GEO_PROVIDER": "static", "GEO_STATIC": "127.0.0.0/8=XX"}, "GEO_STATIC"},
		{"malformed librdkafka settings", map[string]string{"KAFKA_BROKERS": "127.0.0.1:9092", "KAFKA_CONFIG": "no-equals-sign"}, "KAFKA_CONFIG"},
		{"unknown event bus", map[string]string{"EVENT_BUS": "nats"}, "EVENT_BUS"},
		{"ipapi over plain http to a remote host", map[string]string{"IPAPI_BASE_URL": "http://ipapi.co"}, "IPAPI_BASE_URL"},
		{"kafka certificate verification off", map[string]string{"KAFKA_BROKERS": "127.0.0.1:9092", "KAFKA_CONFIG": "security.protocol=SSL,enable.ssl.certificate.verification=false"}, "KAFKA_CONFIG"},
		{"kafka host-name verification off", map[string]string{"KAFKA_BROKERS": "127.0.0.1:9092", "KAFKA_CONFIG": "security.protocol=SSL,ssl.endpoint.identification.algorithm=none"}, "KAFKA_CONFIG"},
		{"kafka bus without brokers", map[string]string{"EVENT_BUS": "kafka"}, "KAFKA_BROKERS"},
		{"rabbitmq URL of another scheme", map[string]string{"EVENT_BUS": "rabbitmq", "AMQP_URL": "http://scott:tiger@mq:5672/"}, "AMQP_URL"},
		{"rabbitmq reserved exchange", map[string]string{"EVENT_BUS": "rabbitmq", "EVENT_EXCHANGE": "amq.topic"}, "EVENT_EXCHANGE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Load(%v) = %v; want one line naming %s", tc.env, err, tc.want)
			}
			if strings.Contains(err.Error(), "tiger") {
				t.Fatalf("error shows the database password: %v", err)
			}
		})
	}
}

func TestStoreConfigCarriesThePoolSize(t *testing.T) {
	c, err := Load(env(map[string]string{"DB_MAX_OPEN_CONNS": "7", "DATABASE_URL": "sqlite://:memory:"}))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	sc := StoreConfig(c, logger)
	if sc.MaxOpenConns != 7 || sc.URL != "sqlite://:memory:" || sc.Logger != logger {
		t.Errorf("StoreConfig = %+v", sc)
	}
}

func TestHTTPConfigCarriesThePublicURL(t *testing.T) {
	c, err := Load(env(map[string]string{"PUBLIC_URL": "https://users.example.com"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := HTTPConfig(c, slog.New(slog.DiscardHandler)).PublicURL; got == nil || got.String() != "https://users.example.com" {
		t.Errorf("HTTPConfig().PublicURL = %v", got)
	}
	c, err = Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := HTTPConfig(c, slog.New(slog.DiscardHandler)).PublicURL; got != nil {
		t.Errorf("PublicURL without the variable = %v, want none", got)
	}
}

func TestFileVariants(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/db"
	if err := os.WriteFile(path, []byte("sqlite://from-file.db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{"DATABASE_URL_FILE": path}))
	if err != nil || c.DatabaseURL != "sqlite://from-file.db" {
		t.Fatalf("Load with DATABASE_URL_FILE = %q, %v", c.DatabaseURL, err)
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
	}{
		{"both set", map[string]string{"DATABASE_URL": "sqlite://x.db", "DATABASE_URL_FILE": path}},
		{"missing file", map[string]string{"IPAPI_KEY_FILE": dir + "/none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(env(tc.vars)); err == nil || !strings.Contains(err.Error(), "_FILE") {
				t.Fatalf("Load = %v, want an error naming the _FILE variable", err)
			}
		})
	}
}

// Hash parameters weaker than every OWASP argon2id minimum stop the
// service at start-up; equivalent configurations are accepted.
func TestPasswordHashParametersAgainstOWASP(t *testing.T) {
	for _, tc := range []struct {
		memory, iterations string
		ok                 bool
	}{
		{"9216", "4", true}, {"19456", "2", true}, {"47104", "1", true}, {"7168", "5", true}, {"65536", "3", true},
		{"9216", "3", false}, {"19455", "2", false}, {"4096", "10", false}, {"47103", "1", false},
	} {
		t.Run(tc.memory+"x"+tc.iterations, func(t *testing.T) {
			c, err := Load(env(map[string]string{"PASSWORD_HASH_MEMORY": tc.memory, "PASSWORD_HASH_ITERATIONS": tc.iterations}))
			if tc.ok {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if p := HashConfig(c).Params; fmt.Sprint(p.MemoryKiB) != tc.memory || fmt.Sprint(p.Iterations) != tc.iterations {
					t.Errorf("HashConfig params %+v", p)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "PASSWORD_HASH_MEMORY") || !strings.Contains(err.Error(), "OWASP") {
				t.Fatalf("Load = %v; want a refusal naming the variables and OWASP", err)
			}
		})
	}
}

// LOGIN_LOG_KEY keys the email_hash of credential-check log lines: set (in
// the environment or a mounted file), every process gets the same key; a
// short one stops the start-up without echoing it; unset leaves the key to
// the use case (random per process).
func TestLoginLogKey(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	file := t.TempDir() + "/login-log-key"
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"unset", nil, ""},
		{"from the environment", map[string]string{"LOGIN_LOG_KEY": key}, key},
		{"from a file", map[string]string{"LOGIN_LOG_KEY_FILE": file}, key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(env(tc.vars))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(VerifyConfig(c, slog.New(slog.DiscardHandler)).LogKey); got != tc.want {
				t.Errorf("VerifyConfig().LogKey = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("too short", func(t *testing.T) {
		short := "short-log-key-of-31-characters!"
		_, err := Load(env(map[string]string{"LOGIN_LOG_KEY": short}))
		if err == nil || !strings.HasPrefix(err.Error(), "invalid LOGIN_LOG_KEY ") || !strings.Contains(err.Error(), "at least 32") {
			t.Fatalf("Load with a %d-character key = %v; want it refused, naming the variable", len(short), err)
		}
		if strings.Contains(err.Error(), short) {
			t.Errorf("the error echoes the key: %v", err)
		}
	})
	t.Run("both set", func(t *testing.T) {
		if _, err := Load(env(map[string]string{"LOGIN_LOG_KEY": key, "LOGIN_LOG_KEY_FILE": file})); err == nil || !strings.Contains(err.Error(), "LOGIN_LOG_KEY_FILE") {
			t.Fatalf("Load with both = %v, want an error naming LOGIN_LOG_KEY_FILE", err)
		}
	})
}

// AMQP_CONFIRM_TIMEOUT reaches the event bus configuration (which hands it
// to the RabbitMQ publisher); its default is the adapter's.
func TestBusConfigCarriesTheConfirmTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want time.Duration
	}{
		{"set", map[string]string{"EVENT_BUS": "rabbitmq", "AMQP_CONFIRM_TIMEOUT": "7s"}, 7 * time.Second},
		{"default", map[string]string{"EVENT_BUS": "rabbitmq"}, rabbitmq.DefaultConfirmTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := BusConfig(c).AMQPConfirmTimeout; got != tc.want {
				t.Errorf("AMQPConfirmTimeout = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := Load(env(map[string]string{"AMQP_CONFIRM_TIMEOUT": "0s"})); err == nil || !strings.Contains(err.Error(), "AMQP_CONFIRM_TIMEOUT") {
		t.Errorf("AMQP_CONFIRM_TIMEOUT=0s: %v, want an error naming it", err)
	}
}
