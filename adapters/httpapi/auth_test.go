package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/adapters/jwtauth"
	"github.com/marketplace/usersvc/adapters/jwtauth/jwttest"
)

// authEnv is the real service with real JWT authentication against a JWKS
// served over loopback HTTP.
func authEnv(t *testing.T, middleware ...gin.HandlerFunc) (*testEnv, *jwttest.Server, jwttest.Key) {
	t.Helper()
	key := jwttest.NewKey(t, "k1", "RS256")
	jwks := jwttest.NewServer(t, key)
	a, stop, err := jwtauth.New(context.Background(), jwtauth.Config{
		JWKSURL: jwks.URL(), Issuer: jwttest.Issuer, Audience: jwttest.Audience,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(5 * time.Second)
	for a.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("keys never fetched")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return newEnv(t, envOptions{auth: a, middleware: middleware}), jwks, key
}

const challengeMissing = `Bearer realm="usersvc"`

func invalidToken(desc string) string {
	return `Bearer realm="usersvc", error="invalid_token", error_description="` + desc + `"`
}

func insufficient(scope string) string {
	return `Bearer realm="usersvc", error="insufficient_scope", scope="` + scope + `"`
}

func TestAuthenticationPerRoute(t *testing.T) {
	e, _, key := authEnv(t)
	all := jwttest.Mint(t, key, jwttest.Valid("admin", "users:read users:write users:delete"))
	u := e.do(req{method: http.MethodPost, path: "/api/v1/users", body: userBody("route@example.ch"), ctype: "application/json",
		headers: map[string]string{"Authorization": "Bearer " + all}})
	if u.status != http.StatusCreated {
		t.Fatalf("create with every scope: %d %s", u.status, u.body)
	}
	one := idPath(u.object(t))
	scoped := func(scope string) string { return jwttest.Mint(t, key, jwttest.Valid("svc", scope)) }
	scpArray := jwttest.Mint(t, key, func() jwttest.Claims {
		c := jwttest.Valid("svc", "")
		delete(c, "scope")
		c["scp"] = []string{"users:read"}
		return c
	}())
	scpString := jwttest.Mint(t, key, func() jwttest.Claims {
		c := jwttest.Valid("svc", "")
		delete(c, "scope")
		c["scp"] = "users:write users:read"
		return c
	}())
	expired := jwttest.Mint(t, key, func() jwttest.Claims {
		c := jwttest.Valid("svc", "users:read")
		c["exp"] = time.Now().Add(-time.Hour).Unix()
		return c
	}())

	tests := []struct {
		name          string
		method, path  string
		authorization string // "-": no header
		status        int
		challenge     string
	}{
		{"list: no header", "GET", "/api/v1/users", "-", 401, challengeMissing},
		{"list: read", "GET", "/api/v1/users", "Bearer " + scoped("users:read"), 200, ""},
		{"list: scp array", "GET", "/api/v1/users", "Bearer " + scpArray, 200, ""},
		{"list: write only", "GET", "/api/v1/users", "Bearer " + scoped("users:write"), 403, insufficient("users:read")},
		{"head list: read", "HEAD", "/api/v1/users/", "Bearer " + scoped("users:read"), 200, ""},
		{"get: read", "GET", one, "Bearer " + scoped("users:read"), 200, ""},
		{"get: credentials:verify grants no read", "GET", one, "Bearer " + scoped("credentials:verify"), 403, insufficient("users:read")},
		{"get: expired", "GET", one, "Bearer " + expired, 401, invalidToken("token expired")},
		{"get: lower-case scheme", "GET", one, "bearer " + scoped("users:read"), 200, ""},
		{"put: read only", "PUT", one, "Bearer " + scoped("users:read"), 403, insufficient("users:write")},
		{"patch: scp string", "PATCH", one, "Bearer " + scpString, 200, ""}, // an empty patch changes nothing
		{"delete: write", "DELETE", one, "Bearer " + scoped("users:write"), 403, insufficient("users:delete")},
		{"delete: no header", "DELETE", one, "-", 401, challengeMissing},
		{"get: Basic scheme", "GET", one, "Basic YWRtaW46YWRtaW4=", 401, invalidToken("malformed token")},
		{"get: Bearer alone", "GET", one, "Bearer", 401, invalidToken("malformed token")},
		{"get: Bearer and spaces", "GET", one, "Bearer   ", 401, invalidToken("malformed token")},
		{"get: empty header", "GET", one, "", 401, invalidToken("malformed token")},
		{"get: 3 segments of garbage", "GET", one, "Bearer abc.def.ghi", 401, invalidToken("malformed token")},
		{"get: not a b64token", "GET", one, "Bearer a\"b,c", 401, invalidToken("malformed token")},
		{"get: huge token", "GET", one, "Bearer " + strings.Repeat("a", 20<<10), 401, invalidToken("malformed token")},
		{"never: health", "GET", "/healthz", "-", 200, ""},
		{"never: readiness", "GET", "/readyz", "-", 200, ""},
		{"never: index", "GET", "/", "-", 200, ""},
		{"never: health with garbage", "GET", "/healthz", "Bearer garbage", 200, ""},
		{"unknown route stays 404", "GET", "/api/v1/nothing", "-", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req{method: tt.method, path: tt.path}
			if tt.method == "PATCH" || tt.method == "PUT" {
				r.ctype, r.body = "application/json", "{}"
			}
			if tt.authorization != "-" {
				r.headers = map[string]string{"Authorization": tt.authorization}
			}
			res := e.do(r)
			if res.status != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, res.status, res.body, tt.status)
			}
			if got := res.header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
			if tt.status == 401 || tt.status == 403 {
				if _, ok := res.object(t)["detail"].(string); !ok {
					t.Errorf("body %s: want {\"detail\": …}", res.body)
				}
				if len(tt.authorization) > 7 && strings.Contains(string(res.body)+res.header.Get("WWW-Authenticate"), tt.authorization[7:]) {
					t.Error("the answer echoes the token")
				}
			}
		})
	}
}

// recordingBody notices, on the server, whether anything read the body.
type recordingBody struct {
	io.ReadCloser
	read *atomic.Bool
}

func (b recordingBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.ReadCloser.Read(p)
}

// TestRefusedCreateDoesNoWork: authentication runs before anything else,
// so an unauthenticated or unauthorised create reads no body, locates
// nobody, hashes nothing and writes nothing.
func TestRefusedCreateDoesNoWork(t *testing.T) {
	var bodyRead atomic.Bool
	e, _, key := authEnv(t, func(c *gin.Context) {
		c.Request.Body = recordingBody{ReadCloser: c.Request.Body, read: &bodyRead}
	})
	admin := "Bearer " + jwttest.Mint(t, key, jwttest.Valid("admin", "users:read"))
	count := func() any {
		return e.do(req{method: "GET", path: "/api/v1/users", headers: map[string]string{"Authorization": admin}}).object(t)["count"]
	}
	for _, tc := range []struct {
		name, authorization string
		status              int
	}{
		{"no token", "", 401},
		{"bad token", "Bearer abc.def.ghi", 401},
		{"token signed by another key", "Bearer " + jwttest.Mint(t, jwttest.Key{KID: "k1", Alg: "RS256", Private: jwttest.NewKey(t, "x", "RS256").Private}.WithMethod(), jwttest.Valid("svc", "users:write")), 401},
		{"read scope only", "Bearer " + jwttest.Mint(t, key, jwttest.Valid("svc", "users:read")), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bodyRead.Store(false)
			r := req{method: http.MethodPost, path: "/api/v1/users", ctype: "application/json", body: userBody("nobody@example.ch")}
			if tc.authorization != "" {
				r.headers = map[string]string{"Authorization": tc.authorization}
			}
			res := e.do(r)
			if res.status != tc.status {
				t.Fatalf("status %d %s, want %d", res.status, res.body, tc.status)
			}
			if bodyRead.Load() {
				t.Error("the body was read")
			}
			if n := e.hasher.calls(); n != 0 {
				t.Errorf("%d hasher calls", n)
			}
			if n := e.geo.calls.Load(); n != 0 {
				t.Errorf("%d geolocation calls", n)
			}
			if n := count(); n != float64(0) {
				t.Errorf("count %v after a refused create", n)
			}
		})
	}
	// The same create with the scope does all of it.
	res := e.do(req{method: http.MethodPost, path: "/api/v1/users", ctype: "application/json", body: userBody("somebody@example.ch"),
		headers: map[string]string{"Authorization": "Bearer " + jwttest.Mint(t, key, jwttest.Valid("svc", "users:write"))}})
	if res.status != http.StatusCreated || e.hasher.calls() == 0 || e.geo.calls.Load() == 0 || !bodyRead.Load() {
		t.Fatalf("authorised create: %d, hasher %d, geo %d", res.status, e.hasher.calls(), e.geo.calls.Load())
	}
}

// TestTokenOnlyFromTheHeader: a token in the query string or a cookie is
// not looked at.
func TestTokenOnlyFromTheHeader(t *testing.T) {
	e, _, key := authEnv(t)
	tok := jwttest.Mint(t, key, jwttest.Valid("svc", "users:read"))
	for _, r := range []req{
		{method: "GET", path: "/api/v1/users?access_token=" + tok},
		{method: "GET", path: "/api/v1/users", headers: map[string]string{"Cookie": "access_token=" + tok}},
	} {
		if res := e.do(r); res.status != 401 || res.header.Get("WWW-Authenticate") != challengeMissing {
			t.Errorf("%s %v: %d %q", r.path, r.headers, res.status, res.header.Get("WWW-Authenticate"))
		}
	}
}

// TestAccessLogNamesTheCaller: sub and client_id, never the token.
func TestAccessLogNamesTheCaller(t *testing.T) {
	e, _, key := authEnv(t)
	tok := jwttest.Mint(t, key, jwttest.Valid("svc-billing", "users:read"))
	e.do(req{method: "GET", path: "/api/v1/users", headers: map[string]string{"Authorization": "Bearer " + tok}})
	found := false
	for _, rec := range logRecords(t, e.logs) {
		if rec["msg"] == "http request" && rec["route"] == "/api/v1/users" {
			found = rec["sub"] == "svc-billing" && rec["client_id"] == "svc-billing-client"
		}
	}
	if !found {
		t.Errorf("no access line with sub and client_id:\n%s", e.logs.String())
	}
	if strings.Contains(e.logs.String(), tok) {
		t.Error("the token reached the log")
	}
}

// TestNoKeysYet: until the key set was fetched once, API requests with a
// token and /readyz answer 503; keys fetched later make both work.
func TestNoKeysYet(t *testing.T) {
	key := jwttest.NewKey(t, "k1", "ES256")
	jwks := jwttest.NewServer(t, key)
	jwks.Fail(http.StatusServiceUnavailable)
	a, stop, err := jwtauth.New(context.Background(), jwtauth.Config{
		JWKSURL: jwks.URL(), Issuer: jwttest.Issuer, Audience: jwttest.Audience, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	e := newEnv(t, envOptions{auth: a})
	tok := jwttest.Mint(t, key, jwttest.Valid("svc", "users:read"))
	withToken := req{method: "GET", path: "/api/v1/users", headers: map[string]string{"Authorization": "Bearer " + tok}}
	if res := e.do(withToken); res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
		t.Fatalf("API before keys: %d %s", res.status, res.body)
	}
	if res := e.do(req{method: "GET", path: "/readyz"}); res.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz before keys: %d", res.status)
	}
	jwks.Fail(0)
	deadline := time.Now().Add(5 * time.Second)
	for a.Ready(context.Background()) != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if res := e.do(withToken); res.status != http.StatusOK {
		t.Fatalf("API after keys: %d %s", res.status, res.body)
	}
	if res := e.do(req{method: "GET", path: "/readyz"}); res.status != http.StatusOK {
		t.Fatalf("readyz after keys: %d", res.status)
	}
}
