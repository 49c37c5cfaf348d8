package jwtauth

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/marketplace/usersvc/adapters/jwtauth/jwttest"
	"github.com/marketplace/usersvc/domain"
)

// fetches records the key-set fetches an authenticator reports.
type fetches struct {
	mu      sync.Mutex
	results []string
	last    time.Time
}

func (f *fetches) ObserveKeySetFetch(result string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results = append(f.results, result)
	if !at.IsZero() {
		f.last = at
	}
}

func (f *fetches) count(result string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.results {
		if r == result {
			n++
		}
	}
	return n
}

func start(t *testing.T, cfg Config) *Authenticator {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = jwttest.Issuer
	}
	if cfg.Audience == "" {
		cfg.Audience = jwttest.Audience
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a, stop, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(stop)
	return a
}

func waitReady(t *testing.T, a *Authenticator) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for a.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("key set never fetched")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func reasonOf(err error) domain.AuthReason {
	var ae *domain.AuthError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return ""
}

// keys of every type the issuer may use, shared by the table below.
type keys struct{ rsa, ec, ed, rsa2 jwttest.Key }

func newKeys(t *testing.T) keys {
	return keys{
		rsa:  jwttest.NewKey(t, "rsa-1", "RS256"),
		ec:   jwttest.NewKey(t, "ec-1", "ES256"),
		ed:   jwttest.NewKey(t, "ed-1", "EdDSA"),
		rsa2: jwttest.NewKey(t, "rsa-2", "RS256"),
	}
}

func with(c jwttest.Claims, kv ...any) jwttest.Claims {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func TestAuthenticate(t *testing.T) {
	k := newKeys(t)
	srv := jwttest.NewServer(t, k.rsa, k.ec, k.ed)
	// HS256 and none are listed on purpose: they must stay refused.
	a := start(t, Config{JWKSURL: srv.URL(), Algorithms: []string{"RS256", "ES256", "EdDSA", "HS256", "none"}})
	waitReady(t, a)

	now := time.Now()
	valid := func() jwttest.Claims { return jwttest.Valid("billing", "users:read users:write") }
	pubDER, err := x509.MarshalPKIXPublicKey(k.rsa.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	tamper := func(tok string) string {
		parts := strings.Split(tok, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = []byte(strings.Replace(string(payload), `"users:read users:write"`, `"users:delete users:write"`, 1))
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		return strings.Join(parts, ".")
	}

	tests := []struct {
		name       string
		token      string
		want       domain.AuthReason // empty: accepted
		wantScopes []domain.Scope
		wantClient string
	}{
		{name: "RS256", token: jwttest.Mint(t, k.rsa, valid()),
			wantScopes: []domain.Scope{domain.ScopeUsersRead, domain.ScopeUsersWrite}, wantClient: "billing-client"},
		{name: "ES256 P-256", token: jwttest.Mint(t, k.ec, valid()),
			wantScopes: []domain.Scope{domain.ScopeUsersRead, domain.ScopeUsersWrite}},
		{name: "EdDSA Ed25519", token: jwttest.Mint(t, k.ed, valid()),
			wantScopes: []domain.Scope{domain.ScopeUsersRead, domain.ScopeUsersWrite}},
		{name: "scp as array", token: jwttest.Mint(t, k.rsa, with(valid(), "scope", nil, "scp", []string{"users:delete", "openid"})),
			wantScopes: []domain.Scope{domain.ScopeUsersDelete, "openid"}},
		{name: "scp as string", token: jwttest.Mint(t, k.rsa, with(valid(), "scope", nil, "scp", "users:read credentials:verify")),
			wantScopes: []domain.Scope{domain.ScopeUsersRead, domain.ScopeCredentialsVerify}},
		{name: "no scope at all", token: jwttest.Mint(t, k.rsa, with(valid(), "scope", nil)), wantScopes: []domain.Scope{}},
		{name: "azp names the client", token: jwttest.Mint(t, k.rsa, with(valid(), "client_id", nil, "azp", "billing-azp")),
			wantScopes: []domain.Scope{domain.ScopeUsersRead, domain.ScopeUsersWrite}, wantClient: "billing-azp"},
		{name: "aud as a string", token: jwttest.Mint(t, k.rsa, with(valid(), "aud", jwttest.Audience)),
			wantScopes: []domain.Scope{domain.ScopeUsersRead, domain.ScopeUsersWrite}},
		{name: "exp just past, within leeway", token: jwttest.Mint(t, k.rsa, with(valid(), "exp", now.Add(-10*time.Second).Unix())),
			wantScopes: []domain.Scope{domain.ScopeUsersRead, domain.ScopeUsersWrite}},
		{name: "nbf just ahead, within leeway", token: jwttest.Mint(t, k.rsa, with(valid(), "nbf", now.Add(10*time.Second).Unix())),
			wantScopes: []domain.Scope{domain.ScopeUsersRead, domain.ScopeUsersWrite}},
		{name: "no kid, but several keys", token: jwttest.MintHeader(t, k.rsa, map[string]any{"kid": nil}, valid()), want: domain.AuthUnknownKey},

		{name: "alg none", token: jwttest.MintWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, k.rsa.KID, valid()),
			want: domain.AuthAlgorithm},
		{name: "HS256 keyed by the RSA public key", token: jwttest.MintWith(t, jwt.SigningMethodHS256, pubPEM, k.rsa.KID, valid()),
			want: domain.AuthAlgorithm},
		{name: "HS256 keyed by the DER public key", token: jwttest.MintWith(t, jwt.SigningMethodHS256, pubDER, k.rsa.KID, valid()),
			want: domain.AuthAlgorithm},
		{name: "RS384 not in the allow-list", token: jwttest.MintWith(t, jwt.SigningMethodRS384, k.rsa.Private, k.rsa.KID, valid()),
			want: domain.AuthAlgorithm},
		{name: "alg does not fit the key named", token: jwttest.MintWith(t, jwt.SigningMethodES256, k.ec.Private, k.rsa.KID, valid()),
			want: domain.AuthAlgorithm},
		{name: "unknown alg", token: forgeHeader(jwttest.Mint(t, k.rsa, valid()), `{"alg":"XS999","kid":"rsa-1"}`),
			want: domain.AuthAlgorithm},
		{name: "tampered payload", token: tamper(jwttest.Mint(t, k.rsa, valid())), want: domain.AuthSignature},
		{name: "signed by a key not published, known kid", token: jwttest.Mint(t, jwttest.Key{KID: k.rsa.KID, Alg: "RS256", Private: k.rsa2.Private}.WithMethod(), valid()),
			want: domain.AuthSignature},
		{name: "other audience", token: jwttest.Mint(t, k.rsa, with(valid(), "aud", []string{"orders"})), want: domain.AuthAudience},
		{name: "no audience", token: jwttest.Mint(t, k.rsa, with(valid(), "aud", nil)), want: domain.AuthAudience},
		{name: "other issuer", token: jwttest.Mint(t, k.rsa, with(valid(), "iss", "https://evil.invalid/")), want: domain.AuthIssuer},
		{name: "issuer differs by a slash", token: jwttest.Mint(t, k.rsa, with(valid(), "iss", jwttest.Issuer+"/")), want: domain.AuthIssuer},
		{name: "expired", token: jwttest.Mint(t, k.rsa, with(valid(), "exp", now.Add(-2*time.Minute).Unix())), want: domain.AuthExpired},
		{name: "no exp", token: jwttest.Mint(t, k.rsa, with(valid(), "exp", nil)), want: domain.AuthMalformed},
		{name: "not yet valid (nbf)", token: jwttest.Mint(t, k.rsa, with(valid(), "nbf", now.Add(2*time.Minute).Unix())), want: domain.AuthNotYetValid},
		{name: "issued in the future (iat)", token: jwttest.Mint(t, k.rsa, with(valid(), "iat", now.Add(2*time.Minute).Unix())), want: domain.AuthNotYetValid},
		{name: "unknown kid", token: jwttest.Mint(t, jwttest.Key{KID: "nobody", Alg: "RS256", Private: k.rsa2.Private}.WithMethod(), valid()),
			want: domain.AuthUnknownKey},
		{name: "no sub", token: jwttest.Mint(t, k.rsa, with(valid(), "sub", nil)), want: domain.AuthMalformed},
		{name: "scp of numbers", token: jwttest.Mint(t, k.rsa, with(valid(), "scp", []int{1, 2})), want: domain.AuthMalformed},
		{name: "empty", token: "", want: domain.AuthMalformed},
		{name: "three segments of garbage", token: "abc.def.ghi", want: domain.AuthMalformed},
		{name: "two segments", token: "eyJhbGciOiJSUzI1NiJ9.e30", want: domain.AuthMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Authenticate(context.Background(), tt.token)
			if tt.want != "" {
				if !errors.Is(err, domain.ErrUnauthenticated) || reasonOf(err) != tt.want {
					t.Fatalf("Authenticate = %+v, %v; want reason %s", p, err, tt.want)
				}
				if tt.token != "" && strings.Contains(err.Error(), tt.token) {
					t.Error("error echoes the token")
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if p.Subject != "billing" || p.Anonymous {
				t.Errorf("principal %+v", p)
			}
			if !slices.Equal(p.Scopes, tt.wantScopes) {
				t.Errorf("scopes %q, want %q", p.Scopes, tt.wantScopes)
			}
			if tt.wantClient != "" && p.ClientID != tt.wantClient {
				t.Errorf("client %q, want %q", p.ClientID, tt.wantClient)
			}
		})
	}
}

// forgeHeader replaces a token's header, keeping payload and signature.
func forgeHeader(tok, header string) string {
	parts := strings.Split(tok, ".")
	parts[0] = base64.RawURLEncoding.EncodeToString([]byte(header))
	return strings.Join(parts, ".")
}

func TestOnlyKeyWhenNoKID(t *testing.T) {
	k := newKeys(t)
	srv := jwttest.NewServer(t, k.ec)
	a := start(t, Config{JWKSURL: srv.URL()})
	waitReady(t, a)
	tok := jwttest.MintHeader(t, k.ec, map[string]any{"kid": nil}, jwttest.Valid("svc", "users:read"))
	if p, err := a.Authenticate(context.Background(), tok); err != nil || p.Subject != "svc" {
		t.Fatalf("no kid, one key: %+v, %v", p, err)
	}
}

func TestRotationFetchesUnknownKIDOnceAt10s(t *testing.T) {
	k := newKeys(t)
	srv := jwttest.NewServer(t, k.rsa)
	a := start(t, Config{JWKSURL: srv.URL(), Refresh: time.Hour})
	waitReady(t, a)
	before := srv.Hits()

	// The issuer rotates a new key in and signs with it at once.
	srv.SetKeys(k.rsa, k.ed)
	if _, err := a.Authenticate(context.Background(), jwttest.Mint(t, k.ed, jwttest.Valid("svc", "users:read"))); err != nil {
		t.Fatalf("token of the rotated-in key: %v", err)
	}
	if got := srv.Hits() - before; got != 1 {
		t.Fatalf("%d fetches for the new kid, want 1", got)
	}
	// Garbage kids right after: no further fetch within 10 s.
	for i := range 20 {
		forged := jwttest.Mint(t, jwttest.Key{KID: "garbage-" + string(rune('a'+i)), Alg: "RS256", Private: k.rsa2.Private}.WithMethod(), jwttest.Valid("svc", ""))
		if _, err := a.Authenticate(context.Background(), forged); reasonOf(err) != domain.AuthUnknownKey {
			t.Fatalf("garbage kid: %v", err)
		}
	}
	if got := srv.Hits() - before; got != 1 {
		t.Fatalf("%d fetches after garbage kids, want still 1", got)
	}
	// Keys rotated out stay usable until the next fetch; the old key still works.
	if _, err := a.Authenticate(context.Background(), jwttest.Mint(t, k.rsa, jwttest.Valid("svc", ""))); err != nil {
		t.Fatalf("old key: %v", err)
	}
}

func TestRefreshKeepsKeysThroughOutageAndGarbage(t *testing.T) {
	k := newKeys(t)
	srv := jwttest.NewServer(t, k.rsa)
	obs := &fetches{}
	a := start(t, Config{JWKSURL: srv.URL(), Refresh: 20 * time.Millisecond, Observer: obs})
	waitReady(t, a)

	for _, spoil := range []struct {
		name string
		do   func()
	}{
		{"outage", func() { srv.Fail(http.StatusServiceUnavailable) }},
		{"garbage", func() { srv.Answer([]byte("<html>oops</html>")) }},
		{"empty set", func() { srv.Answer([]byte(`{"keys":[]}`)) }},
		{"huge body", func() { srv.Answer([]byte(`{"keys":[` + strings.Repeat(" ", 2<<20) + `]}`)) }},
	} {
		t.Run(spoil.name, func(t *testing.T) {
			errs := obs.count(FetchError)
			spoil.do()
			deadline := time.Now().Add(5 * time.Second)
			for obs.count(FetchError) < errs+2 {
				if time.Now().After(deadline) {
					t.Fatal("no failed refresh observed")
				}
				time.Sleep(5 * time.Millisecond)
			}
			// A fresh token (not cached) still verifies with the kept key.
			if _, err := a.Authenticate(context.Background(), jwttest.Mint(t, k.rsa, jwttest.Valid("svc-"+spoil.name, ""))); err != nil {
				t.Fatalf("after %s: %v", spoil.name, err)
			}
			if a.Ready(context.Background()) != nil {
				t.Fatal("not ready after a later failure")
			}
			srv.Fail(0)
			srv.Answer(nil)
		})
	}
	if obs.count(FetchSuccess) == 0 || obs.last.IsZero() {
		t.Fatalf("successes not observed: %+v", obs.results)
	}
}

func TestNotReadyUntilFirstFetch(t *testing.T) {
	k := newKeys(t)
	for _, tc := range []struct {
		name  string
		spoil func(*jwttest.Server)
	}{
		{"down", func(s *jwttest.Server) { s.Fail(http.StatusBadGateway) }},
		{"garbage", func(s *jwttest.Server) { s.Answer([]byte("garbage")) }},
		{"huge body", func(s *jwttest.Server) { s.Answer([]byte(strings.Repeat("{", 2<<20))) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := jwttest.NewServer(t, k.rsa)
			tc.spoil(srv)
			a := start(t, Config{JWKSURL: srv.URL()})
			deadline := time.Now().Add(3 * time.Second)
			for srv.Hits() == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			tok := jwttest.Mint(t, k.rsa, jwttest.Valid("svc", "users:read"))
			if err := a.Ready(context.Background()); !errors.Is(err, domain.ErrUnavailable) {
				t.Fatalf("Ready before any key: %v", err)
			}
			if _, err := a.Authenticate(context.Background(), tok); !errors.Is(err, domain.ErrUnavailable) || errors.Is(err, domain.ErrUnauthenticated) {
				t.Fatalf("Authenticate before any key: %v, want unavailable", err)
			}
			// A malformed token is still the caller's fault.
			if _, err := a.Authenticate(context.Background(), "abc.def.ghi"); reasonOf(err) != domain.AuthMalformed {
				t.Fatalf("malformed token before any key: %v, want malformed", err)
			}
			// The endpoint recovers: retried within seconds, not at the next refresh.
			srv.Fail(0)
			srv.Answer(nil)
			waitReady(t, a)
			if _, err := a.Authenticate(context.Background(), tok); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
		})
	}
}

func TestFileJWKS(t *testing.T) {
	k := newKeys(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwttest.JWKS(t, k.ed, k.rsa), 0o600); err != nil {
		t.Fatal(err)
	}
	a := start(t, Config{JWKSURL: "file://" + path})
	waitReady(t, a)
	if _, err := a.Authenticate(context.Background(), jwttest.Mint(t, k.ed, jwttest.Valid("svc", ""))); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{JWKSURL: "ftp://x/jwks", Issuer: "i", Audience: "a"},
		{JWKSURL: "https:///nohost", Issuer: "i", Audience: "a"},
		{JWKSURL: "file://", Issuer: "i", Audience: "a"},
		{JWKSURL: "https://id/jwks", Audience: "a"},
		{JWKSURL: "https://id/jwks", Issuer: "i"},
		{JWKSURL: "https://id/jwks", Issuer: "i", Audience: "a", Algorithms: []string{"HS256", "none"}},
	} {
		if _, _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestDisabledIsAnonymous(t *testing.T) {
	a, stop, err := New(context.Background(), Config{Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	p, err := a.Authenticate(context.Background(), "")
	if err != nil || !p.Anonymous || p.Actor() != nil || p.Authorize(domain.OpDeleteUser) != nil {
		t.Fatalf("disabled: %+v, %v", p, err)
	}
	if a.Ready(context.Background()) != nil {
		t.Fatal("disabled is not ready")
	}
}

func TestCache(t *testing.T) {
	k := newKeys(t)
	srv := jwttest.NewServer(t, k.rsa)
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	a := start(t, Config{JWKSURL: srv.URL(), Now: now, CacheSize: 3, Leeway: time.Second, Refresh: time.Hour})
	waitReady(t, a)

	tok := jwttest.Mint(t, k.rsa, with(jwttest.Valid("svc", "users:read"), "exp", clock.Add(time.Minute).Unix()))
	if _, err := a.Authenticate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	// Forget the keys and make fetching fail: only the cache can answer now.
	srv.Fail(http.StatusInternalServerError)
	a.keys.mu.Lock()
	a.keys.keys = nil
	a.keys.mu.Unlock()
	if p, err := a.Authenticate(context.Background(), tok); err != nil || p.Subject != "svc" {
		t.Fatalf("cached token: %+v, %v", p, err)
	}
	if _, err := a.Authenticate(context.Background(), jwttest.Mint(t, k.rsa, jwttest.Valid("other", ""))); reasonOf(err) != domain.AuthUnknownKey {
		t.Fatalf("uncached token with no keys: %v", err)
	}
	for key := range a.cache.entries {
		if string(key[:]) == tok {
			t.Fatal("cache keyed by the token itself")
		}
	}
	// Past exp the cache does not answer, whatever it remembers.
	mu.Lock()
	clock = clock.Add(2 * time.Minute)
	mu.Unlock()
	if _, err := a.Authenticate(context.Background(), tok); err == nil {
		t.Fatal("expired token answered from the cache")
	}

	// Bounded.
	srv.Fail(0)
	if err := a.keys.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		tok := jwttest.Mint(t, k.rsa, with(jwttest.Valid("svc", ""), "jti", string(rune('a'+i)), "exp", now().Add(time.Hour).Unix(), "iat", now().Unix(), "nbf", now().Unix()))
		if _, err := a.Authenticate(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		if n := a.cache.len(); n > 3 {
			t.Fatalf("cache holds %d, bound 3", n)
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	k := jwttest.NewKey(b, "rsa-1", "RS256")
	srv := jwttest.NewServer(b, k)
	a, stop, err := New(context.Background(), Config{JWKSURL: srv.URL(), Issuer: jwttest.Issuer, Audience: jwttest.Audience})
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	for a.Ready(context.Background()) != nil {
		time.Sleep(time.Millisecond)
	}
	tok := jwttest.Mint(b, k, jwttest.Valid("svc", "users:read"))
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Authenticate(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		a.cache.max = 1
		for b.Loop() {
			a.cache.mu.Lock()
			clear(a.cache.entries)
			a.cache.mu.Unlock()
			if _, err := a.Authenticate(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
