package e2e

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/jwtauth/jwttest"
	"github.com/marketplace/usersvc/test/containers"
)

func TestMain(m *testing.M) { containers.Main(m) }

// suiteStart bounds the timestamps the service may put in its answers and
// events.
var suiteStart = time.Now()

// Documentation ranges (RFC 5737) the static geolocator places in a country;
// nothing is ever sent to them, they only appear in X-Forwarded-For.
const (
	frenchAddr = "203.0.113.5"
	swissAddr  = "198.51.100.7"
	// unmappedAddr is in no GEO_STATIC range: "location unknown".
	unmappedAddr = "192.0.2.1"
)

// serviceOptions are the settings a test chooses for its service container.
type serviceOptions struct {
	// geoStatic is GEO_STATIC (GEO_PROVIDER is always static).
	geoStatic string
	// trustedProxies is TRUSTED_PROXIES; empty trusts no peer.
	trustedProxies string
	// issuer, when set, runs the service with AUTH_MODE=jwt against its
	// JWKS; every request then carries issuer's token unless it says
	// otherwise (see call.with). Unset: AUTH_MODE=none.
	issuer *issuer
}

// service is one container of the service's image, on a database and a
// topic of its own, with what the test expects of it: the events its
// successful mutations must have produced and the secrets that must never
// come out of it.
type service struct {
	base  string // http://127.0.0.1:port
	topic string
	db    containers.Database
	svc   *containers.Service
	// token is sent as a bearer token by default; actor is its sub, which
	// the events of the mutations it makes must name ("": null).
	token  string
	actor  string
	issuer *issuer

	mu       sync.Mutex
	secrets  []string // plaintext passwords sent, the database password
	expected []expectedEvent
	answered int // HTTP answers received
}

// startService starts a service container for t and removes it when t
// ends, after checking that its log holds no secret.
func startService(t *testing.T, opts serviceOptions) *service {
	t.Helper()
	env := containers.Shared(t)
	s := &service{db: containers.NewDatabase(t), topic: containers.NewTopic(t, 3)}
	dbURL, err := url.Parse(s.db.URL)
	if err != nil {
		t.Fatalf("parse DATABASE_URL: %v", err)
	}
	if pw, ok := dbURL.User.Password(); ok && pw != "" {
		s.secrets = append(s.secrets, pw)
	}
	vars := map[string]string{
		"DATABASE_URL":  s.db.URL,
		"EVENT_BUS":     "kafka",
		"KAFKA_BROKERS": strings.Join(env.KafkaBrokers(), ","),
		"KAFKA_TOPIC":   s.topic,
		"GEO_PROVIDER":  "static",
		"GEO_STATIC":    opts.geoStatic,
		// The most verbose level: no line at any level may carry a secret.
		"LOG_LEVEL":  "debug",
		"LOG_FORMAT": "json",
	}
	if opts.trustedProxies != "" {
		vars["TRUSTED_PROXIES"] = opts.trustedProxies
	}
	if opts.issuer != nil {
		vars["AUTH_MODE"] = "jwt"
		vars["AUTH_JWKS_URL"] = opts.issuer.jwks.URL()
		vars["AUTH_ISSUER"] = jwttest.Issuer
		vars["AUTH_AUDIENCE"] = jwttest.Audience
		s.issuer = opts.issuer
		s.token, s.actor = s.tokenFor(t, defaultSub, defaultScopes), defaultSub
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	began := time.Now()
	svc, err := containers.StartService(ctx, vars)
	if err != nil {
		t.Fatalf("start service: %v", err)
	}
	s.svc, s.base = svc, svc.URL()
	t.Logf("service %s ready on %s in %v (database %s, topic %s)", svc.Image, s.base, time.Since(began).Round(time.Millisecond), s.db.Name, s.topic)
	// Registered after NewDatabase's cleanup, so it runs before the
	// database is dropped: the hashes are still there to look for.
	t.Cleanup(func() {
		s.checkLogs(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.Terminate(ctx); err != nil {
			t.Errorf("terminate service: %v", err)
		}
	})
	return s
}

// password returns a distinct plaintext password and remembers it as a
// secret.
func (s *service) password(label string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	pw := fmt.Sprintf("pw-%s-%d-%s", label, len(s.secrets), "Qx7!vR2#")
	s.secrets = append(s.secrets, pw)
	return pw
}

// leaks returns a description of each secret found in text: an argon2 PHC
// string, a known plaintext password or the database password.
func (s *service) leaks(text string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	if strings.Contains(text, "$argon2") {
		found = append(found, "an argon2 hash ($argon2...)")
	}
	for _, secret := range s.secrets {
		if strings.Contains(text, secret) {
			found = append(found, fmt.Sprintf("the secret %q", secret))
		}
	}
	return found
}

// storedHashes reads the password hashes of the service's users from its
// database, to look for them elsewhere and to know they are argon2id.
func (s *service) storedHashes(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := containers.Shared(t).MySQL.Root().QueryContext(ctx, "SELECT password_hash FROM `"+s.db.Name+"`.users")
	if err != nil {
		t.Fatalf("read the stored hashes: %v", err)
	}
	defer rows.Close()
	var hashes []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return hashes
}

// checkLogs reads the container's log and fails t when it holds a secret
// or a stored hash (whole or its digest alone). It also checks that the log
// is the service's: one access line per answer at least.
func (s *service) checkLogs(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.svc.Container().Logs(ctx)
	if err != nil {
		t.Errorf("read the service's log: %v", err)
		return
	}
	defer r.Close()
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Errorf("read the service's log: %v", err)
		return
	}
	logs := string(raw)
	s.mu.Lock()
	answered := s.answered
	s.mu.Unlock()
	if got := strings.Count(logs, `"msg":"http request"`); got < answered {
		t.Errorf("the service logged %d access lines for %d answers: this is not its log", got, answered)
	}
	// Under AUTH_MODE=jwt the access log names the caller.
	if s.actor != "" && !strings.Contains(logs, `"sub":"`+s.actor+`"`) {
		t.Errorf("no access line names the caller's sub %q", s.actor)
	}
	for _, leak := range s.leaks(logs) {
		t.Errorf("the service's log contains %s", leak)
	}
	for _, h := range s.storedHashes(t) {
		digest := h[strings.LastIndex(h, "$")+1:]
		if strings.Contains(logs, h) || strings.Contains(logs, digest) {
			t.Errorf("the service's log contains a stored password hash")
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("service log (%d bytes, %d access lines) checked for secrets", len(raw), strings.Count(logs, `"msg":"http request"`))
	}
}
