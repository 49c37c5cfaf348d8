package security_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/reliability/stack"
)

const usersPath = "/api/v1/users"

func userJSON(email, password string) string {
	b, _ := json.Marshal(map[string]string{
		"first_name": "Ada", "last_name": "Lovelace", "email": email, "password": password, "address": "Zürich",
	})
	return string(b)
}

func withHeader(r stack.Request, kv ...string) stack.Request {
	r.Header = http.Header{}
	for i := 0; i < len(kv); i += 2 {
		r.Header.Add(kv[i], kv[i+1])
	}
	return r
}

// transcript records every answer of a scenario: status, headers, body.
type transcript struct{ bytes.Buffer }

func (tr *transcript) record(res stack.Response) {
	fmt.Fprintf(tr, "HTTP %d\n", res.Status)
	_ = res.Header.Write(tr)
	tr.Write(res.Body)
	tr.WriteString("\n\n")
}

// OWASPHashPrefix is how every stored hash starts with the production
// parameters (argon2id.OWASP: 9 MiB, 4 iterations, 1 lane).
const owaspHashPrefix = "$argon2id$v=19$m=9216,t=4,p=1$"

// TestNoPasswordOrHashLeavesTheService drives every operation, successful
// or refused, with a distinct password each time, through the production
// hasher and the relay, and searches every answer, every log record and
// every event for the plain passwords and for any hash.
func TestNoPasswordOrHashLeavesTheService(t *testing.T) {
	geo := newRecordingGeo(t, stack.DefaultGeo+",203.0.113.0/24=FR", "198.51.100.0/24")
	faults := &faultyStore{}
	s := stack.Start(t, stack.Options{
		Geolocator:     geo,
		TrustedProxies: "127.0.0.1/32",
		Hasher:         argon2id.ProvideOWASP(),
		Relay:          true,
		RelayConfig:    app.RelayConfig{PollInterval: 50 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		Wrap:           faults.wrap,
	})
	var (
		answers transcript
		secrets []string
	)
	secret := func(s string) string { secrets = append(secrets, s); return s }
	do := func(step string, r stack.Request, want int) stack.Response {
		t.Helper()
		res := s.Do(t, r)
		answers.record(res)
		if res.Status != want {
			t.Fatalf("%s: status %d, want %d: %s", step, res.Status, want, res.Body)
		}
		return res
	}
	from := func(r stack.Request, addr string) stack.Request { return withHeader(r, "X-Forwarded-For", addr) }

	a := do("create A (JSON)", stack.JSON(http.MethodPost, usersPath, userJSON("a@example.ch", secret("Tr0ub4dor&3-first"))), 201).Object()
	aPath := fmt.Sprintf("%s/%v", usersPath, a["id"])
	formBody := url.Values{"first_name": {"Bo"}, "last_name": {"Keller"}, "email": {"b@example.ch"}, "password": {secret("form-pässwörd-3")}}.Encode()
	b := do("create B (form)", stack.Request{Method: http.MethodPost, Path: usersPath, Body: []byte(formBody), ContentType: "application/x-www-form-urlencoded"}, 201).Object()
	bPath := fmt.Sprintf("%s/%v", usersPath, b["id"])
	do("get A", stack.Request{Method: http.MethodGet, Path: aPath}, 200)
	do("list", stack.Request{Method: http.MethodGet, Path: usersPath + "?search=example&ordering=-email"}, 200)
	do("change A's password", stack.JSON(http.MethodPatch, aPath, `{"password":"`+secret("correct horse battery staple")+`"}`), 200)
	do("set A's password to itself (a change all the same)", stack.JSON(http.MethodPatch, aPath, `{"password":"correct horse battery staple"}`), 200)
	do("replace B", stack.JSON(http.MethodPut, bPath, `{"first_name":"Bob","last_name":"Keller","email":"b@example.ch","password":"`+secret("üñíçødé-pass-4")+`"}`), 200)
	do("stale If-Match", withHeader(stack.JSON(http.MethodPatch, aPath, `{"password":"`+secret("stale-version-pass-5")+`"}`), "If-Match", `"1"`), 412)
	do("taken email", stack.JSON(http.MethodPost, usersPath, userJSON("A@EXAMPLE.CH", secret("duplicate-pass-6"))), 400)
	do("invalid email", stack.JSON(http.MethodPost, usersPath, userJSON("not-an-email", secret("invalid-email-pass-7"))), 400)
	do("password too long", stack.JSON(http.MethodPost, usersPath, userJSON("long@example.ch", secret(strings.Repeat("L0ng!", 26)))), 400)
	do("password too short", stack.JSON(http.MethodPost, usersPath, userJSON("short@example.ch", secret("sh0rt!"))), 400)
	do("country refused", from(stack.JSON(http.MethodPost, usersPath, userJSON("fr@example.ch", secret("bonjour-pass-8"))), "203.0.113.5"), 403)
	do("geolocation down", from(stack.JSON(http.MethodPost, usersPath, userJSON("geo@example.ch", secret("geo-outage-pass-9"))), "198.51.100.5"), 503)
	do("JSON syntax error", stack.JSON(http.MethodPost, usersPath, `{"password":"`+secret("syntax-error-pass-10")+`","email": }`), 400)
	do("form syntax error", stack.Request{Method: http.MethodPost, Path: usersPath, ContentType: "application/x-www-form-urlencoded",
		Body: []byte("email=x%40example.ch&password=" + secret("form-syntax-pass-11") + "&first_name=%zz")}, 400)
	for _, f := range []struct {
		name   string
		f      fault
		status int
	}{
		{"database down", fault{err: domain.Unavailable(domain.DependencyDatabase, errors.New("dial tcp 127.0.0.1:3306: connect: connection refused"))}, 503},
		{"database error", fault{err: &driverError{stmt: "INSERT INTO users"}}, 500},
		{"store panic", fault{panic: "nil pointer dereference"}, 500},
	} {
		faults.fault.Store(&f.f)
		do(f.name, stack.JSON(http.MethodPost, usersPath, userJSON("db@example.ch", secret("db-failure-pass-"+f.name))), f.status)
		faults.fault.Store(nil)
	}

	hashes := storedHashes(t, s)
	if len(hashes) != 2 {
		t.Fatalf("%d users stored, want 2", len(hashes))
	}
	for _, h := range hashes {
		if !strings.HasPrefix(h, owaspHashPrefix) {
			t.Errorf("stored hash %q is not argon2id with the OWASP parameters (%s)", h[:min(len(h), 40)], owaspHashPrefix)
		}
		parts := strings.Split(h, "$") // "", argon2id, v=19, params, salt, key
		if len(parts) != 6 || len(parts[4]) < 20 || len(parts[5]) < 40 {
			t.Errorf("stored hash %q is not PHC with a 16-byte salt and a 32-byte key", h)
			continue
		}
		secrets = append(secrets, h, parts[4], parts[5])
	}
	if hashes[0] == hashes[1] {
		t.Error("two users share one hash")
	}

	do("delete B", stack.Request{Method: http.MethodDelete, Path: bPath}, 204)
	do("delete A", withHeader(stack.Request{Method: http.MethodDelete, Path: aPath}, "If-Match", `"3"`), 204)
	s.WaitDrained(t, 10*time.Second)

	secrets = append(secrets, stack.HashMarker, "argon2")
	for name, haystack := range map[string][]byte{"answers": answers.Bytes(), "logs": s.Logs.Bytes(), "events": s.Events.Bytes()} {
		if found := stack.Leaks(haystack, secrets...); len(found) > 0 {
			t.Errorf("the %s contain %q", name, found)
		}
	}
	checkEvents(t, s.Events.Bytes())
	// Creations that pass validation are located: A, B, the taken email,
	// the refused and the failed country, the three database failures.
	if n := len(geo.Seen()); n != 8 {
		t.Errorf("the geolocator was asked %d times, want 8", n)
	}
	t.Logf("searched %d bytes of answers, %d of logs and %d of events for %d secrets",
		answers.Len(), len(s.Logs.Bytes()), len(s.Events.Bytes()), len(secrets))
}

func storedHashes(t *testing.T, s *stack.Stack) []string {
	t.Helper()
	rows, err := s.Store.DB().Query("SELECT password_hash FROM users ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

// checkEvents asserts that the scenario's seven mutations produced seven
// events, that a password change is named but carries no value, and that
// no event data has a password member.
func checkEvents(t *testing.T, raw []byte) {
	t.Helper()
	var actions []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event line is not JSON: %q", sc.Text())
		}
		data, _ := ev["data"].(map[string]any)
		for k := range data {
			if strings.Contains(k, "password") || strings.Contains(k, "hash") {
				t.Errorf("event %v carries %q", ev["id"], k)
			}
		}
		act := fmt.Sprint(ev["action"])
		if changed, ok := ev["changed"].([]any); ok {
			act += fmt.Sprint(changed)
		}
		actions = append(actions, act)
	}
	want := []string{"create", "create", "update[password]", "update[password]", "update[first_name password]", "delete", "delete"}
	if !slices.Equal(actions, want) {
		t.Errorf("events %v, want %v", actions, want)
	}
}

// TestForwardedHeadersFromUntrustedPeersAreIgnored sends every common
// client-address and origin header from the loopback peer, which the
// geolocation table places in France. Without trusted proxies the service
// must locate the peer (403) and build URLs from the connection; with the
// peer trusted, the same request is located from X-Forwarded-For (the
// control that shows the headers do reach the service).
func TestForwardedHeadersFromUntrustedPeersAreIgnored(t *testing.T) {
	const table = "127.0.0.0/8=FR,::1/128=FR,198.51.100.0/24=CH,203.0.113.0/24=FR"
	spoof := []string{
		"X-Forwarded-For", "198.51.100.7", "X-Real-IP", "198.51.100.7", "Forwarded", "for=198.51.100.7;proto=https;host=evil.example",
		"True-Client-IP", "198.51.100.7", "CF-Connecting-IP", "198.51.100.7", "X-Client-IP", "198.51.100.7",
		"X-Cluster-Client-IP", "198.51.100.7", "Fastly-Client-IP", "198.51.100.7", "X-Original-Forwarded-For", "198.51.100.7",
		"X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https", "X-Request-ID", "spoofed-request-id",
	}
	for _, tc := range []struct {
		name, trusted, xff string
		status             int
		located            string
		body               string // exact, for refusals
		origin             string // "" means the server's own URL
		requestID          string // "" means a fresh one
	}{
		{name: "untrusted peer: headers ignored", status: 403, located: "127.0.0.1",
			body: `{"detail":"Only users located in Switzerland can be created (remote address in France)"}`},
		{name: "trusted proxy: headers believed (control)", trusted: "127.0.0.1/32", status: 201, located: "198.51.100.7",
			origin: "https://evil.example", requestID: "spoofed-request-id"},
		{name: "trusted proxy: what the client wrote left of the proxy's entry is ignored", trusted: "127.0.0.1/32",
			xff: "198.51.100.7, 203.0.113.9", status: 403, located: "203.0.113.9",
			body: `{"detail":"Only users located in Switzerland can be created (remote address in France)"}`, requestID: "spoofed-request-id"},
		{name: "trusted proxy: IPv4-mapped address is located as IPv4", trusted: "127.0.0.1/32",
			xff: "::ffff:198.51.100.7", status: 201, located: "198.51.100.7", origin: "https://evil.example", requestID: "spoofed-request-id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			geo := newRecordingGeo(t, table, "")
			s := stack.Start(t, stack.Options{Geolocator: geo, TrustedProxies: tc.trusted})
			req := withHeader(stack.JSON(http.MethodPost, usersPath, userJSON("spoof@example.ch", "spoofed-pass-1")), spoof...)
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
			}
			res := s.Do(t, req)
			if res.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.Status, tc.status, res.Body)
			}
			if seen := geo.Seen(); len(seen) != 1 || seen[0] != netip.MustParseAddr(tc.located) {
				t.Errorf("the geolocator was asked about %v, want [%s]", seen, tc.located)
			}
			if tc.body != "" && string(res.Body) != tc.body {
				t.Errorf("body %s, want %s", res.Body, tc.body)
			}
			wantID := tc.requestID
			if got := res.Header.Get("X-Request-ID"); (wantID == "" && (got == "" || got == "spoofed-request-id")) || (wantID != "" && got != wantID) {
				t.Errorf("X-Request-ID %q (want %q; empty means a fresh one)", got, wantID)
			}
			wantUsers := 0
			if tc.status == http.StatusCreated {
				wantUsers = 1
				origin := tc.origin
				if origin == "" {
					origin = s.URL
				}
				if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, origin+usersPath+"/") {
					t.Errorf("Location %q, want it under %s", loc, origin)
				}
			}
			if n := s.Count(t, "users"); n != wantUsers {
				t.Errorf("%d users stored, want %d", n, wantUsers)
			}
			// Reads are not geolocated, but their URLs follow the same rule.
			list := s.Do(t, withHeader(stack.Request{Method: http.MethodGet, Path: usersPath + "?page_size=1&page=1"}, spoof...))
			if strings.Contains(string(list.Body), "evil.example") != (tc.origin != "") {
				t.Errorf("list URLs: %s", list.Body)
			}
		})
	}
}

// TestErrorBodiesNeverShowInternals makes the store fail in every way a
// database or driver can, under every operation, and checks that the client
// gets only the contract's fixed messages (503 with Retry-After for an
// unavailable dependency, 500 otherwise) while the logs keep the cause.
func TestErrorBodiesNeverShowInternals(t *testing.T) {
	faults := &faultyStore{}
	geo := newRecordingGeo(t, stack.DefaultGeo, "198.51.100.0/24")
	s := stack.Start(t, stack.Options{Wrap: faults.wrap, Geolocator: geo, TrustedProxies: "127.0.0.1/32"})
	seeded := s.Do(t, stack.JSON(http.MethodPost, usersPath, userJSON("seed@example.ch", "seed-pass-123")))
	if seeded.Status != http.StatusCreated {
		t.Fatalf("seed: %d %s", seeded.Status, seeded.Body)
	}
	user := fmt.Sprintf("%s/%v", usersPath, seeded.Object()["id"])
	before := s.Snapshot(t)

	const (
		internal    = `{"detail":"Internal server error."}`
		dbDown      = `{"detail":"Database service unavailable, try again later."}`
		geoDown     = `{"detail":"Geolocation service unavailable, try again later."}`
		faultPasswd = "fault-pass-123"
	)
	faultCases := []struct {
		name   string
		f      fault
		status int
		body   string
	}{
		{"SQL syntax error", fault{err: errors.New("Error 1064 (42000): You have an error in your SQL syntax; check the manual near 'SELECT * FROM `users` WHERE `id` = 1' at line 1")}, 500, internal},
		{"typed driver error with a file path", fault{err: fmt.Errorf("load user 1: %w", &driverError{stmt: "INSERT INTO users (email, password_hash) VALUES (?, ?)"})}, 500, internal},
		{"connection refused", fault{err: domain.Unavailable(domain.DependencyDatabase, errors.New("dial tcp 127.0.0.1:3306: connect: connection refused"))}, 503, dbDown},
		{"statement deadline", fault{err: fmt.Errorf("exec INSERT INTO outbox: %w", context.DeadlineExceeded)}, 500, internal},
		{"panic in the driver", fault{panic: "runtime error: invalid memory address or nil pointer dereference [signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a2f1b]"}, 500, internal},
	}
	ops := []struct {
		name string
		req  stack.Request
	}{
		{"create", stack.JSON(http.MethodPost, usersPath, userJSON("new@example.ch", faultPasswd))},
		{"get", stack.Request{Method: http.MethodGet, Path: user}},
		{"list", stack.Request{Method: http.MethodGet, Path: usersPath + "?search=seed"}},
		{"replace", stack.JSON(http.MethodPut, user, userJSON("seed@example.ch", faultPasswd))},
		{"patch", stack.JSON(http.MethodPatch, user, `{"address":"Bern"}`)},
		{"patch password", stack.JSON(http.MethodPatch, user, `{"password":"`+faultPasswd+`"}`)},
		{"delete", stack.Request{Method: http.MethodDelete, Path: user}},
	}
	for _, fc := range faultCases {
		for _, op := range ops {
			t.Run(fc.name+"/"+op.name, func(t *testing.T) {
				faults.fault.Store(&fc.f)
				defer faults.fault.Store(nil)
				res := s.Do(t, op.req)
				checkFixedError(t, res, fc.status, fc.body)
			})
		}
	}
	t.Run("geolocation provider failure", func(t *testing.T) {
		req := withHeader(stack.JSON(http.MethodPost, usersPath, userJSON("geo@example.ch", faultPasswd)), "X-Forwarded-For", "198.51.100.9")
		checkFixedError(t, s.Do(t, req), 503, geoDown)
	})
	if after := s.Snapshot(t); after != before {
		t.Errorf("a failed request changed stored data:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	logs := s.Logs.String()
	for _, cause := range []string{"You have an error in your SQL syntax", "connection refused", "panic while handling request", "Bad Gateway"} {
		if !strings.Contains(logs, cause) {
			t.Errorf("the logs do not keep the cause %q for operators", cause)
		}
	}
	if found := stack.Leaks([]byte(logs), faultPasswd, "seed-pass-123", stack.HashMarker); len(found) > 0 {
		t.Errorf("the logs contain %q", found)
	}
}

// TestRealDatabaseFailuresShowNoInternals breaks the real SQLite database
// under the service: dropped tables give SQLite's own errors, a closed pool
// the driver's; the answers stay the contract's fixed messages.
func TestRealDatabaseFailuresShowNoInternals(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	seeded := s.Do(t, stack.JSON(http.MethodPost, usersPath, userJSON("seed@example.ch", "seed-pass-123")))
	user := fmt.Sprintf("%s/%v", usersPath, seeded.Object()["id"])
	exec := func(stmt string) {
		if _, err := s.Store.DB().Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	const internal = `{"detail":"Internal server error."}`
	exec("DROP TABLE outbox")
	checkFixedError(t, s.Do(t, stack.JSON(http.MethodPost, usersPath, userJSON("new@example.ch", "new-pass-123"))), 500, internal)
	checkFixedError(t, s.Do(t, stack.JSON(http.MethodPatch, user, `{"address":"Bern"}`)), 500, internal)
	exec("DROP TABLE users")
	checkFixedError(t, s.Do(t, stack.Request{Method: http.MethodGet, Path: user}), 500, internal)
	checkFixedError(t, s.Do(t, stack.Request{Method: http.MethodGet, Path: usersPath}), 500, internal)
	if !strings.Contains(s.Logs.String(), "no such table") {
		t.Error("the logs do not keep SQLite's error for operators")
	}
	_ = s.Store.Close()
	ready := s.Do(t, stack.Request{Method: http.MethodGet, Path: "/readyz"})
	if ready.Status != http.StatusServiceUnavailable || string(ready.Body) != `{"detail":"Service not ready."}` {
		t.Errorf("/readyz with the database closed: %d %s", ready.Status, ready.Body)
	}
	checkFixedError(t, s.Do(t, stack.Request{Method: http.MethodGet, Path: user}), 503, `{"detail":"Database service unavailable, try again later."}`)
}

func checkFixedError(t *testing.T, res stack.Response, status int, body string) {
	t.Helper()
	if res.Status != status || string(res.Body) != body {
		t.Errorf("answer %d %s, want %d %s", res.Status, res.Body, status, body)
	}
	if found := stack.Internals(res.Body); len(found) > 0 {
		t.Errorf("the answer shows internals %q", found)
	}
	if (status == http.StatusServiceUnavailable) != (res.Header.Get("Retry-After") != "") {
		t.Errorf("status %d with Retry-After %q", status, res.Header.Get("Retry-After"))
	}
	for _, h := range []string{"ETag", "Location"} {
		if v := res.Header.Get(h); v != "" {
			t.Errorf("error answer with %s %q", h, v)
		}
	}
}
