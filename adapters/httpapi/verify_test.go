package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/jwtauth/jwttest"
	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/domain"
)

const (
	verifyPath   = "/api/v1/credentials/verify"
	wrongCreds   = `{"non_field_errors":["Unable to log in with provided credentials."]}`
	lockedDetail = `{"detail":"Too many failed attempts. Try again later."}`
)

func credsJSON(email, password string) string {
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	return string(b)
}

func (e *testEnv) verify(body string) response {
	e.t.Helper()
	return e.do(jsonReq(http.MethodPost, verifyPath, body))
}

func TestVerifyCredentials(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("check@example.ch")) // password s3cret-pass
	get := e.do(req{method: http.MethodGet, path: idPath(u)})

	t.Run("match answers the user as GET does", func(t *testing.T) {
		for _, r := range []req{
			jsonReq(http.MethodPost, verifyPath, credsJSON("check@example.ch", "s3cret-pass")),
			jsonReq(http.MethodPost, verifyPath+"/", credsJSON("  CHECK@Example.CH ", "s3cret-pass")),
			{method: http.MethodPost, path: verifyPath, ctype: "application/x-www-form-urlencoded",
				body: url.Values{"email": {"check@example.ch"}, "password": {"s3cret-pass"}}.Encode()},
		} {
			res := e.do(r)
			if res.status != http.StatusOK || string(res.body) != string(get.body) {
				t.Errorf("%s %s: %d %s\nwant 200 %s", r.path, r.body, res.status, res.body, get.body)
			}
			if res.header.Get("ETag") != get.header.Get("ETag") {
				t.Errorf("ETag %q, want %q", res.header.Get("ETag"), get.header.Get("ETag"))
			}
		}
	})

	t.Run("wrong password and unknown email: the same bytes", func(t *testing.T) {
		wrong := e.verify(credsJSON("check@example.ch", "n3w-secret!"))
		unknown := e.verify(credsJSON("nobody@example.ch", "s3cret-pass"))
		caseOnly := e.verify(credsJSON("check@example.ch", "S3CRET-PASS"))
		for _, res := range []response{wrong, unknown, caseOnly} {
			if res.status != http.StatusBadRequest || string(res.body) != wrongCreds {
				t.Errorf("%d %s, want 400 %s", res.status, res.body, wrongCreds)
			}
		}
		if string(wrong.body) != string(unknown.body) || wrong.header.Get("Content-Length") != unknown.header.Get("Content-Length") {
			t.Errorf("wrong password %q and unknown email %q differ", wrong.body, unknown.body)
		}
	})

	// Shape errors are the usual per-field 400, before any hashing.
	for _, tc := range []struct {
		name string
		r    req
		want string
	}{
		{"missing body", req{method: http.MethodPost, path: verifyPath, ctype: "application/json"},
			`{"email":["This field is required."],"password":["This field is required."]}`},
		{"missing password", jsonReq(http.MethodPost, verifyPath, `{"email":"check@example.ch"}`), `{"password":["This field is required."]}`},
		{"wrong types", jsonReq(http.MethodPost, verifyPath, `{"email":["check@example.ch"],"password":12}`),
			`{"email":["Not a valid string."],"password":["Not a valid string."]}`},
		{"null password", jsonReq(http.MethodPost, verifyPath, `{"email":"check@example.ch","password":null}`), `{"password":["This field may not be null."]}`},
		{"blank", jsonReq(http.MethodPost, verifyPath, `{"email":" ","password":""}`),
			`{"email":["This field may not be blank."],"password":["This field may not be blank."]}`},
		{"password over 1,024 bytes", jsonReq(http.MethodPost, verifyPath, credsJSON("check@example.ch", strings.Repeat("ü", 600))),
			`{"password":["Ensure this field has no more than 128 characters."]}`},
		{"NUL in the password", jsonReq(http.MethodPost, verifyPath, `{"email":"check@example.ch","password":"s3cret\u0000pass"}`),
			`{"password":["Null characters are not allowed."]}`},
		{"not an object", jsonReq(http.MethodPost, verifyPath, `["check@example.ch"]`),
			`{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.hasher.calls()
			assertJSON(t, e.do(tc.r), http.StatusBadRequest, tc.want)
			if n := e.hasher.calls() - before; n != 0 {
				t.Errorf("%d hashing calls for refused input", n)
			}
		})
	}
	t.Run("GET is not allowed", func(t *testing.T) {
		if res := e.do(req{method: http.MethodGet, path: verifyPath}); res.status != http.StatusMethodNotAllowed {
			t.Errorf("GET: %d", res.status)
		}
	})
	t.Run("no event, no change", func(t *testing.T) {
		msgs, err := e.store.PendingMessages(context.Background(), 0, 100)
		if err != nil || len(msgs) != 1 {
			t.Errorf("%d outbox messages (%v), want only the create", len(msgs), err)
		}
	})
	t.Run("logs name no email", func(t *testing.T) {
		logs := e.logs.String()
		if !strings.Contains(logs, `"email_hash"`) {
			t.Errorf("no credentials check was logged")
		}
		for _, email := range []string{"check@example.ch", "nobody@example.ch", "CHECK@Example.CH"} {
			if strings.Contains(logs, email) {
				t.Errorf("a log line carries %q", email)
			}
		}
	})
}

func mustNotFail(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestVerifyLockout(t *testing.T) {
	clock := apptest.NewClock(time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC))
	e := newEnv(t, envOptions{clock: clock, login: domain.LoginPolicy{MaxFailures: 3, Window: 15 * time.Minute, Lockout: 10 * time.Minute}})
	e.create(userBody("lock@example.ch"))
	right := credsJSON("lock@example.ch", "s3cret-pass")
	wrong := credsJSON("LOCK@example.ch", "n3w-secret!")

	for i := range 3 {
		clock.Advance(time.Minute)
		assertJSON(t, e.verify(wrong), http.StatusBadRequest, wrongCreds)
		_ = i
	}
	// Locked: even the right password, without hashing, for 10 minutes
	// after the last failure.
	clock.Advance(90 * time.Second)
	before := e.hasher.calls()
	res := e.verify(right)
	assertJSON(t, res, http.StatusTooManyRequests, lockedDetail)
	if ra := res.header.Get("Retry-After"); ra != "510" {
		t.Errorf("Retry-After %q, want 510 (whole seconds left)", ra)
	}
	if n := e.hasher.calls() - before; n != 0 {
		t.Errorf("%d hashing calls during a lockout", n)
	}
	// Another spelling of the same email is the same account.
	assertJSON(t, e.verify(credsJSON(" Lock@Example.ch", "s3cret-pass")), http.StatusTooManyRequests, lockedDetail)

	// An unknown email locks out the same way: a lockout tells nothing.
	ghost := credsJSON("ghost@example.ch", "n3w-secret!")
	for range 3 {
		assertJSON(t, e.verify(ghost), http.StatusBadRequest, wrongCreds)
	}
	assertJSON(t, e.verify(ghost), http.StatusTooManyRequests, lockedDetail)

	// The lockout ends 10 minutes after the last failure; a success resets
	// the count, so two more failures do not lock.
	clock.Advance(510 * time.Second)
	if res := e.verify(right); res.status != http.StatusOK {
		t.Fatalf("after the lockout: %d %s", res.status, res.body)
	}
	for range 2 {
		assertJSON(t, e.verify(wrong), http.StatusBadRequest, wrongCreds)
	}
	if res := e.verify(right); res.status != http.StatusOK {
		t.Fatalf("two failures after a success locked: %d %s", res.status, res.body)
	}
}

func TestVerifyLockoutOff(t *testing.T) {
	e := newEnv(t, envOptions{login: domain.LoginPolicy{MaxFailures: 0, Window: time.Minute, Lockout: time.Minute}})
	e.create(userBody("open@example.ch"))
	for range 8 {
		assertJSON(t, e.verify(credsJSON("open@example.ch", "n3w-secret!")), http.StatusBadRequest, wrongCreds)
	}
	if res := e.verify(credsJSON("open@example.ch", "s3cret-pass")); res.status != http.StatusOK {
		t.Fatalf("LOGIN_MAX_FAILURES=0 still locked: %d", res.status)
	}
}

// Concurrent failures of one account race the counter: every failure that
// was answered 400 was counted (no lost increment), and the lockout began.
func TestVerifyConcurrentFailures(t *testing.T) {
	e := newEnv(t, envOptions{login: domain.LoginPolicy{MaxFailures: 5, Window: time.Hour, Lockout: time.Hour}})
	e.create(userBody("race@example.ch"))
	const n = 16
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := e.verify(credsJSON("race@example.ch", "n3w-secret!"))
			mu.Lock()
			statuses[res.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[400]+statuses[429] != n || statuses[400] < 5 {
		t.Fatalf("statuses %v, want at least 5 400s and the rest 429", statuses)
	}
	keyRes := e.verify(credsJSON("race@example.ch", "s3cret-pass"))
	if keyRes.status != http.StatusTooManyRequests {
		t.Errorf("after %d failures: %d, want 429", statuses[400], keyRes.status)
	}
	var count int
	if err := e.store.DB().QueryRow("SELECT failures FROM login_failures").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != statuses[400] {
		t.Errorf("failure count %d, want %d (one per 400 answered)", count, statuses[400])
	}
}

// A successful check against a hash made with other parameters replaces it
// with one of the configured parameters and changes nothing else.
func TestVerifyUpgradesHash(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("old-hash@example.ch"))
	weak := argon2id.Params{MemoryKiB: 32, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	oldHash, err := argon2id.New(weak, 1).Hash(context.Background(), "s3cret-pass")
	mustNotFail(t, err)
	_, err = e.store.DB().Exec("UPDATE users SET password_hash = ? WHERE id = ?", oldHash, u["id"])
	mustNotFail(t, err)
	before := e.do(req{method: http.MethodGet, path: idPath(u)})

	res := e.verify(credsJSON("old-hash@example.ch", "s3cret-pass"))
	if res.status != http.StatusOK {
		t.Fatalf("verify: %d %s", res.status, res.body)
	}
	var stored string
	mustNotFail(t, e.store.DB().QueryRow("SELECT password_hash FROM users WHERE id = ?", u["id"]).Scan(&stored))
	if stored == oldHash || !strings.HasPrefix(stored, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("stored hash %.40s..., want one with the configured m=64,t=1,p=1", stored)
	}
	after := e.do(req{method: http.MethodGet, path: idPath(u)})
	if after.header.Get("ETag") != before.header.Get("ETag") || string(after.body) != string(before.body) {
		t.Errorf("the upgrade changed the user: ETag %s -> %s\n%s\n%s", before.header.Get("ETag"), after.header.Get("ETag"), before.body, after.body)
	}
	if msgs, _ := e.store.PendingMessages(context.Background(), 0, 100); len(msgs) != 1 {
		t.Errorf("%d outbox messages, want only the create", len(msgs))
	}
	// The new hash verifies; no further upgrade.
	if res := e.verify(credsJSON("old-hash@example.ch", "s3cret-pass")); res.status != http.StatusOK {
		t.Fatalf("verify with the upgraded hash: %d", res.status)
	}
	var again string
	mustNotFail(t, e.store.DB().QueryRow("SELECT password_hash FROM users WHERE id = ?", u["id"]).Scan(&again))
	if again != stored {
		t.Errorf("a hash with the configured parameters was replaced again")
	}
}

// Two replicas (two handlers over two stores on one MariaDB database)
// share one failure count: failures spread over both lock the email on both.
func TestVerifyLockoutSharedByReplicas(t *testing.T) {
	dbURL := freshMySQLDatabase(t)
	policy := domain.LoginPolicy{MaxFailures: 4, Window: time.Hour, Lockout: time.Hour}
	a := newEnv(t, envOptions{storeURL: dbURL, login: policy})
	b := newEnv(t, envOptions{storeURL: dbURL, login: policy})
	a.create(userBody("shared@example.ch"))
	wrong := credsJSON("shared@example.ch", "n3w-secret!")
	for i := range 4 {
		r := []*testEnv{a, b}[i%2]
		assertJSON(t, r.verify(wrong), http.StatusBadRequest, wrongCreds)
	}
	for name, r := range map[string]*testEnv{"a": a, "b": b} {
		assertJSON(t, r.verify(credsJSON("shared@example.ch", "s3cret-pass")), http.StatusTooManyRequests, lockedDetail)
		_ = name
	}
}

// freshMySQLDatabase creates an empty database on the test MariaDB
// (USERSVC_TEST_MYSQL_URL, else the local server) and drops it after t.
func freshMySQLDatabase(t *testing.T) string {
	t.Helper()
	server := os.Getenv("USERSVC_TEST_MYSQL_URL")
	if server == "" {
		server = "mysql://root@127.0.0.1:3306/mysql"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	root, err := gormstore.Open(ctx, gormstore.Config{URL: server})
	if err != nil {
		t.Fatalf("MariaDB test server unreachable (start it or set USERSVC_TEST_MYSQL_URL): %v", err)
	}
	t.Cleanup(func() { _ = root.Close() })
	name := fmt.Sprintf("usersvc_verify_%d", time.Now().UnixNano())
	if _, err := root.DB().Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = root.DB().Exec("DROP DATABASE IF EXISTS " + name) })
	u, err := url.Parse(server)
	mustNotFail(t, err)
	u.Path = "/" + name
	return u.String()
}

// The route needs credentials:verify, which no users:* scope grants, and
// the guard answers before the body is read or anything hashed.
func TestVerifyNeedsItsScope(t *testing.T) {
	e, _, key := authEnv(t)
	admin := jwttest.Mint(t, key, jwttest.Valid("admin", "users:read users:write users:delete"))
	created := e.do(req{method: http.MethodPost, path: "/api/v1/users", body: userBody("scoped@example.ch"), ctype: "application/json",
		headers: map[string]string{"Authorization": "Bearer " + admin}})
	if created.status != http.StatusCreated {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	login := jwttest.Mint(t, key, jwttest.Valid("login-service", "credentials:verify"))
	body := credsJSON("scoped@example.ch", "s3cret-pass")
	for _, tc := range []struct {
		name, authorization string
		status              int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"every users scope", "Bearer " + admin, http.StatusForbidden},
		{"credentials:verify", "Bearer " + login, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := jsonReq(http.MethodPost, verifyPath, body)
			if tc.authorization != "" {
				r.headers = map[string]string{"Authorization": tc.authorization}
			}
			before := e.hasher.calls()
			res := e.do(r)
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.status, tc.status, res.body)
			}
			if tc.status == http.StatusForbidden {
				if got := res.header.Get("WWW-Authenticate"); got != insufficient("credentials:verify") {
					t.Errorf("WWW-Authenticate %q", got)
				}
			}
			if tc.status != http.StatusOK && e.hasher.calls() != before {
				t.Errorf("a refused caller caused hashing")
			}
		})
	}
}
