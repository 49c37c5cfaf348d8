package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/jwtauth/jwttest"
)

// The default token of a service run with AUTH_MODE=jwt: enough to create
// and read, not to delete or check passwords.
const (
	defaultSub    = "e2e-client"
	defaultScopes = "users:read users:write"
)

// issuer is the OAuth2 server of a test: one signing key, its JWKS served
// over HTTP on 127.0.0.1, where the service's container (on the host's
// network) fetches it.
type issuer struct {
	key  jwttest.Key
	jwks *jwttest.Server
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key := jwttest.NewKey(t, "e2e-es256", "ES256")
	return &issuer{key: key, jwks: jwttest.NewServer(t, key)}
}

// mint signs claims with the issuer's key; the token is a secret of s,
// which no answer, log line or event may show.
func (s *service) mint(t *testing.T, claims jwttest.Claims) string {
	t.Helper()
	if s.issuer == nil {
		t.Fatal("the service runs without an issuer")
	}
	token := jwttest.Mint(t, s.issuer.key, claims)
	s.mu.Lock()
	s.secrets = append(s.secrets, token)
	s.mu.Unlock()
	return token
}

// tokenFor is a valid token of sub with the space-separated scopes.
func (s *service) tokenFor(t *testing.T, sub, scopes string) string {
	t.Helper()
	return s.mint(t, jwttest.Valid(sub, scopes))
}

func bearer(token string) string { return "Bearer " + token }

// Answers to refused callers (RFC 6750 challenges, the API's detail body).
const (
	challengeMissing = `Bearer realm="usersvc"`
	detailMissing    = `{"detail": "Authentication credentials were not provided."}`
)

func challengeInvalid(description string) string {
	return `Bearer realm="usersvc", error="invalid_token", error_description="` + description + `"`
}

func detailInvalid(description string) string {
	return `{"detail": "Invalid token: ` + description + `."}`
}

func challengeScope(scope string) string {
	return `Bearer realm="usersvc", error="insufficient_scope", scope="` + scope + `"`
}

func detailScope(scope string) string {
	return `{"detail": "You do not have permission to perform this action. Scope ` + scope + ` is required."}`
}

// testBearerTokens runs against a service with AUTH_MODE=jwt: callers
// without a valid token or the route's scope are refused before anything
// happens; tokens with the scope do the work, and each event names the sub
// of the token that caused it.
func testBearerTokens(t *testing.T, s *service) {
	in := s.input("Token", "Holder", "token.holder@example.ch")
	u := s.create(t, in) // the default token: users:write

	var (
		reader   = s.tokenFor(t, "e2e-reader", "users:read")
		writer   = s.tokenFor(t, "e2e-writer", "users:write")
		allUsers = s.tokenFor(t, "e2e-admin", "users:read users:write users:delete")
		verifier = s.tokenFor(t, "e2e-login", "credentials:verify")
	)
	// scp as an array is the other way issuers write scopes.
	deleterClaims := jwttest.Valid("e2e-deleter", "")
	delete(deleterClaims, "scope")
	deleterClaims["scp"] = []string{"users:delete"}
	deleter := s.mint(t, deleterClaims)

	expired := jwttest.Valid("e2e-late", defaultScopes)
	expired["iat"], expired["nbf"], expired["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
	otherAudience := jwttest.Valid("e2e-elsewhere", defaultScopes)
	otherAudience["aud"] = "another-service"
	// Signed by a key the issuer never published, under its kid.
	forger := jwttest.NewKey(t, s.issuer.key.KID, "ES256")
	forged := jwttest.Mint(t, forger, jwttest.Valid("e2e-forger", defaultScopes))

	newcomer := s.input("Not", "Created", "not.created@example.ch")
	verifyBody := map[string]string{"email": in["email"], "password": in["password"]}
	// Each call gets its own body reader: a body is read once.
	patch := func() call {
		return jsonCall(http.MethodPatch, userPath(u.ID), map[string]string{"address": "refused"})
	}
	remove := func() call { return call{method: http.MethodDelete, path: userPath(u.ID)} }
	create := func() call { return jsonCall(http.MethodPost, "/api/v1/users", newcomer) }
	verify := func() call { return jsonCall(http.MethodPost, "/api/v1/credentials/verify", verifyBody) }

	refusals := []struct {
		name      string
		call      call
		auth      string // Authorization header; "" sends none
		status    int
		challenge string
		body      string
	}{
		{"no token, list", get("/api/v1/users"), "", 401, challengeMissing, detailMissing},
		{"no token, get", get(userPath(u.ID)), "", 401, challengeMissing, detailMissing},
		{"no token, create", create(), "", 401, challengeMissing, detailMissing},
		{"no token, delete", remove(), "", 401, challengeMissing, detailMissing},
		{"no token, verify", verify(), "", 401, challengeMissing, detailMissing},
		{"Basic credentials", get(userPath(u.ID)), "Basic ZTJlOmUyZQ==", 401, challengeInvalid("malformed token"), detailInvalid("malformed token")},
		{"garbage bearer token", get(userPath(u.ID)), "Bearer not.a.token", 401, challengeInvalid("malformed token"), detailInvalid("malformed token")},
		{"forged signature", patch(), bearer(forged), 401, challengeInvalid("signature invalid"), detailInvalid("signature invalid")},
		{"expired token", patch(), bearer(s.mint(t, expired)), 401, challengeInvalid("token expired"), detailInvalid("token expired")},
		{"another audience", create(), bearer(s.mint(t, otherAudience)), 401, challengeInvalid("wrong audience"), detailInvalid("wrong audience")},
		{"read scope creates", create(), bearer(reader), 403, challengeScope("users:write"), detailScope("users:write")},
		{"read scope patches", patch(), bearer(reader), 403, challengeScope("users:write"), detailScope("users:write")},
		{"write scope reads", get(userPath(u.ID)), bearer(writer), 403, challengeScope("users:read"), detailScope("users:read")},
		{"write scope deletes", remove(), bearer(writer), 403, challengeScope("users:delete"), detailScope("users:delete")},
		{"delete scope lists", get("/api/v1/users"), bearer(deleter), 403, challengeScope("users:read"), detailScope("users:read")},
		{"users scopes verify a password", verify(), bearer(allUsers), 403, challengeScope("credentials:verify"), detailScope("credentials:verify")},
		{"verify scope reads a user", get(userPath(u.ID)), bearer(verifier), 403, challengeScope("users:read"), detailScope("users:read")},
	}
	t.Run("refused callers", func(t *testing.T) {
		for _, c := range refusals {
			t.Run(c.name, func(t *testing.T) {
				r := s.do(t, c.call.with("Authorization", c.auth))
				expectJSON(t, r, c.status, c.body)
				if got := r.header.Get("WWW-Authenticate"); got != c.challenge {
					t.Errorf("WWW-Authenticate %q, want %q", got, c.challenge)
				}
			})
		}
		// Nothing of it happened.
		s.unchanged(t, u, `"1"`)
		expectJSON(t, s.do(t, get(query("email", newcomer["email"]))), http.StatusOK,
			`{"count": 0, "next": null, "previous": null, "results": []}`)
	})

	t.Run("never authenticated", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/", "/api/v1/openapi.json"} {
			expectStatus(t, s.do(t, get(path).with("Authorization", "")), http.StatusOK)
		}
		res, err := httpClient.Get(s.base + "/docs")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET /docs without a token: %s", res.Status)
		}
		// /metrics lives on the admin listener only.
		expectJSON(t, s.do(t, get("/metrics").with("Authorization", bearer(allUsers))), http.StatusNotFound, `{"detail": "Not found."}`)
	})

	t.Run("scoped tokens do the work", func(t *testing.T) {
		r := s.do(t, get(userPath(u.ID)).with("Authorization", bearer(reader)))
		expectStatus(t, r, http.StatusOK)
		if got := s.asUser(t, r); got != u {
			t.Fatalf("GET with users:read: %+v, want %+v", got, u)
		}
		r = s.do(t, jsonCall(http.MethodPatch, userPath(u.ID), map[string]string{"address": "Paradeplatz 8"}).with("Authorization", bearer(writer)))
		expectStatus(t, r, http.StatusOK)
		u = s.asUser(t, r)
		s.expectBy("e2e-writer", "update", u, "address")
		r = s.do(t, jsonCall(http.MethodPut, userPath(u.ID), map[string]string{
			"first_name": "Token", "last_name": "Keeper", "email": in["email"], "password": in["password"], "address": u.Address,
		}).with("Authorization", bearer(allUsers)))
		expectStatus(t, r, http.StatusOK)
		u = s.asUser(t, r)
		s.expectBy("e2e-admin", "update", u, "last_name", "password")

		// The login service's check: only credentials:verify opens it.
		r = s.do(t, verify().with("Authorization", bearer(verifier)))
		expectStatus(t, r, http.StatusOK)
		if got := s.asUser(t, r); got != u {
			t.Errorf("verify answered %+v, want the user as GET shows it: %+v", got, u)
		}
		wrong := s.do(t, jsonCall(http.MethodPost, "/api/v1/credentials/verify",
			map[string]string{"email": in["email"], "password": s.password("wrong")}).with("Authorization", bearer(verifier)))
		unknown := s.do(t, jsonCall(http.MethodPost, "/api/v1/credentials/verify",
			map[string]string{"email": "nobody@example.ch", "password": in["password"]}).with("Authorization", bearer(verifier)))
		expectJSON(t, wrong, http.StatusBadRequest, `{"non_field_errors": ["Unable to log in with provided credentials."]}`)
		if string(wrong.body) != string(unknown.body) || unknown.status != wrong.status {
			t.Errorf("unknown email answered %d %s, wrong password %d %s: want the same bytes", unknown.status, unknown.body, wrong.status, wrong.body)
		}

		r = s.do(t, remove().with("Authorization", bearer(deleter)))
		expectStatus(t, r, http.StatusNoContent)
		s.expectBy("e2e-deleter", "delete", u)
		expectJSON(t, s.do(t, get(userPath(u.ID))), http.StatusNotFound, `{"detail": "Not found."}`)
	})
}
