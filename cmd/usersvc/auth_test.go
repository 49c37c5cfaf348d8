package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/marketplace/usersvc/adapters/jwtauth/jwttest"
	"github.com/marketplace/usersvc/test/eventschema"
)

// TestJWTModeEndToEnd runs the binary with AUTH_MODE=jwt against a JWKS
// served over loopback HTTP: the API needs a token with the route's scope,
// probes and documentation need none, events name the caller, refusals are
// counted on the admin listener and the access log names the caller.
func TestJWTModeEndToEnd(t *testing.T) {
	key := jwttest.NewKey(t, "k1", "ES256")
	jwks := jwttest.NewServer(t, key)
	admin := freeAddr(t)
	s := startServer(t, "AUTH_MODE=jwt", "AUTH_JWKS_URL="+jwks.URL(), "AUTH_ISSUER="+jwttest.Issuer,
		"AUTH_AUDIENCE="+jwttest.Audience, "ADMIN_ADDR="+admin)

	writer := jwttest.Mint(t, key, jwttest.Valid("svc-signup", "users:write users:read"))
	reader := jwttest.Mint(t, key, jwttest.Valid("svc-billing", "users:read"))
	do := func(method, path, token, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, s.Base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp, b.String()
	}
	const user = `{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.ch","password":"analytical-engine-1"}`

	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		challenge                       string
	}{
		{"no token", http.MethodGet, "/api/v1/users", "", "", 401, `Bearer realm="usersvc"`},
		{"create without token", http.MethodPost, "/api/v1/users", "", user, 401, `Bearer realm="usersvc"`},
		{"garbage token", http.MethodGet, "/api/v1/users", "a.b.c", "", 401, `Bearer realm="usersvc", error="invalid_token", error_description="malformed token"`},
		{"create with read scope", http.MethodPost, "/api/v1/users", reader, user, 403, `Bearer realm="usersvc", error="insufficient_scope", scope="users:write"`},
		{"create", http.MethodPost, "/api/v1/users", writer, user, 201, ""},
		{"read", http.MethodGet, "/api/v1/users/1", reader, "", 200, ""},
		{"delete with write scope", http.MethodDelete, "/api/v1/users/1", writer, "", 403, `Bearer realm="usersvc", error="insufficient_scope", scope="users:delete"`},
		{"health without token", http.MethodGet, "/healthz", "", "", 200, ""},
		{"readiness without token", http.MethodGet, "/readyz", "", "", 200, ""},
		{"index without token", http.MethodGet, "/", "", "", 200, ""},
		{"openapi without token", http.MethodGet, "/api/v1/openapi.json", "", "", 200, ""},
		{"docs without token", http.MethodGet, "/docs/", "", "", 200, ""},
		{"event schema without token", http.MethodGet, "/schemas/users-events.json", "", "", 200, ""},
		{"AsyncAPI document without token", http.MethodGet, "/schemas/asyncapi.json", "", "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(tc.method, tc.path, tc.token, tc.body)
			if resp.StatusCode != tc.status || resp.Header.Get("WWW-Authenticate") != tc.challenge {
				t.Fatalf("%s %s = %d, WWW-Authenticate %q; want %d %q\n%s", tc.method, tc.path, resp.StatusCode,
					resp.Header.Get("WWW-Authenticate"), tc.status, tc.challenge, body)
			}
			if tc.status >= 400 && !strings.Contains(body, `"detail":`) {
				t.Errorf("body %s: want {\"detail\": …}", body)
			}
		})
	}

	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`usersvc_auth_failures_total{reason="missing"} 2`,
		`usersvc_auth_failures_total{reason="malformed"} 1`,
		`usersvc_auth_failures_total{reason="scope"} 2`,
		`usersvc_jwks_fetches_total{result="success"} 1`,
	} {
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(metrics.String(), "usersvc_jwks_last_success_timestamp_seconds ") ||
		strings.Contains(metrics.String(), "usersvc_jwks_last_success_timestamp_seconds 0\n") {
		t.Error("last successful fetch time not set")
	}

	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.Stderr.String())
	}
	sc := bufio.NewScanner(strings.NewReader(s.Stdout.String()))
	var actors []any
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("stdout line is not an event: %q", sc.Text())
		}
		eventschema.Check(t, sc.Bytes())
		actors = append(actors, ev["actor"])
	}
	if len(actors) != 1 || actors[0] != "svc-signup" {
		t.Fatalf("event actors %v, want [svc-signup]", actors)
	}
	logs := s.Stderr.String()
	if !strings.Contains(logs, `"sub":"svc-signup"`) || !strings.Contains(logs, `"client_id":"svc-signup-client"`) {
		t.Error("the access log does not name the caller")
	}
	for _, tok := range []string{writer, reader} {
		if strings.Contains(logs, tok) || strings.Contains(s.Stdout.String(), tok) {
			t.Fatal("a token reached the logs")
		}
	}
}

// TestNoneModeWarns: AUTH_MODE=none serves without tokens and says so.
func TestNoneModeWarns(t *testing.T) {
	s := startServer(t, "AUTH_MODE=none")
	resp, err := http.Get(s.Base + "/api/v1/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET without token under none = %d", resp.StatusCode)
	}
	if !strings.Contains(s.Stderr.String(), `"level":"WARN","msg":"AUTH_MODE=none`) {
		t.Fatalf("no start-up warning:\n%s", s.Stderr.String())
	}
}
