package hostile

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/marketplace/usersvc/adapters/jwtauth"
	"github.com/marketplace/usersvc/adapters/jwtauth/jwttest"
	"github.com/marketplace/usersvc/test/reliability/stack"
)

// hostileAuthorization are Authorization headers an attacker may send.
func hostileAuthorization(t *testing.T) map[string][]string {
	garbage := func(n int) string {
		return base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("\xff\x00garbage", n)))
	}
	key := jwttest.NewKey(t, "k1", "RS256")
	return map[string][]string{
		"empty":                  {""},
		"Bearer alone":           {"Bearer"},
		"Bearer and spaces":      {"Bearer    "},
		"Basic":                  {"Basic YWRtaW46YWRtaW4="},
		"Digest":                 {`Digest username="admin", realm="usersvc"`},
		"Negotiate":              {"Negotiate YIIB"},
		"three segments garbage": {"Bearer " + garbage(3) + "." + garbage(5) + "." + garbage(7)},
		"three empty segments":   {"Bearer .."},
		"five segments (JWE)":    {"Bearer a.b.c.d.e"},
		"header is JSON garbage": {"Bearer " + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":["RS256"],"kid":{}}`)) + ".e30.sig"},
		"alg none":               {"Bearer " + jwttest.MintWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", jwttest.Valid("x", "users:read"))},
		"kid path traversal":     {"Bearer " + jwttest.MintHeader(t, key, map[string]any{"kid": "../../etc/passwd"}, jwttest.Valid("x", "users:read"))},
		"huge kid":               {"Bearer " + jwttest.MintHeader(t, key, map[string]any{"kid": strings.Repeat("k", 8000)}, jwttest.Valid("x", "users:read"))},
		"token over 16 KiB":      {"Bearer " + strings.Repeat("A", 17<<10)},
		"two headers":            {"Bearer a.b.c", "Bearer d.e.f"},
		"huge header":            {"Bearer " + strings.Repeat("A", 200<<10)},
	}
}

// signedWithUnknownKID are the cases that are well-formed tokens signed by
// a real key: before any key set was ever fetched they cannot be checked,
// which is a dependency failure (503), not the caller's.
var signedWithUnknownKID = map[string]bool{"kid path traversal": true, "huge kid": true}

// TestHostileAuthorization: every hostile Authorization header gets a 4xx,
// quickly, whatever the state of the issuer's JWKS endpoint (healthy, or
// turned to answering garbage or a huge body after the first fetch, or
// broken from the start): never a 5xx (but the documented 503 for a signed
// token while no key was ever known), never a hang.
func TestHostileAuthorization(t *testing.T) {
	key := jwttest.NewKey(t, "k1", "RS256")
	garbage := []byte("<html>not a key set</html>")
	huge := []byte(`{"keys":[` + strings.Repeat(`{"kty":"RSA"},`, 200_000) + `{}]}`)
	for _, jwksState := range []struct {
		name         string
		body         []byte // what the JWKS answers after the first fetch (nil: keys)
		neverFetched bool   // the JWKS answers body from the start
	}{
		{name: "healthy JWKS"},
		{name: "JWKS turns to garbage", body: garbage},
		{name: "JWKS turns to a huge body", body: huge},
		{name: "JWKS garbage from the start", body: garbage, neverFetched: true},
		{name: "JWKS huge body from the start", body: huge, neverFetched: true},
	} {
		t.Run(jwksState.name, func(t *testing.T) {
			jwks := jwttest.NewServer(t, key)
			if jwksState.neverFetched {
				jwks.Answer(jwksState.body)
			}
			a, stop, err := jwtauth.New(context.Background(), jwtauth.Config{
				JWKSURL: jwks.URL(), Issuer: jwttest.Issuer, Audience: jwttest.Audience, Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(stop)
			s := stack.Start(t, stack.Options{Auth: a})
			deadline := time.Now().Add(3 * time.Second)
			for jwks.Hits() == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if !jwksState.neverFetched {
				for a.Ready(context.Background()) != nil && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				jwks.Answer(jwksState.body) // unknown kids now fetch this
			}
			client := &http.Client{Timeout: 10 * time.Second}
			for name, values := range hostileAuthorization(t) {
				for _, target := range []struct{ method, path, body string }{
					{"GET", "/api/v1/users", ""},
					{"POST", "/api/v1/users", `{"first_name":"A","last_name":"B","email":"a@example.ch","password":"long-enough-1"}`},
					{"DELETE", "/api/v1/users/1", ""},
					{"POST", "/api/v1/credentials/verify", `{"email":"a@example.ch","password":"long-enough-1"}`},
				} {
					req, _ := http.NewRequest(target.method, s.URL+target.path, strings.NewReader(target.body))
					req.Header.Set("Content-Type", "application/json")
					for _, v := range values {
						req.Header.Add("Authorization", v)
					}
					start := time.Now()
					res, err := client.Do(req)
					if err != nil {
						t.Fatalf("%s, %s %s: %v (after %v)", name, target.method, target.path, err, time.Since(start))
					}
					body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
					res.Body.Close()
					if jwksState.neverFetched && signedWithUnknownKID[name] {
						if res.StatusCode != http.StatusServiceUnavailable {
							t.Errorf("%s with no key ever fetched: %d, want 503", name, res.StatusCode)
						}
					} else if res.StatusCode < 400 || res.StatusCode >= 500 {
						t.Errorf("%s, %s %s: %d %s; want a 4xx", name, target.method, target.path, res.StatusCode, body)
					}
					if d := time.Since(start); d > 5*time.Second {
						t.Errorf("%s: answered after %v", name, d)
					}
				}
			}
		})
	}
}
