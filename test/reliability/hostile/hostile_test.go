package hostile_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/test/reliability/stack"
)

// minCases is the floor for the corpus.
const minCases = 150

// seedPassword is the seeded users' password; no answer or log may show it.
const seedPassword = "seed-password-1"

// TestHostileRequestCorpus runs the corpus against the service on each
// database: every case gets its status and body, none a 5xx, no answer
// shows internals, and no case changes a stored row.
func TestHostileRequestCorpus(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) { runCorpus(t, db.url(t)) })
	}
}

// databases are the stores every test here runs on: an in-memory SQLite
// database and a fresh database on the MySQL-compatible test server.
var databases = []struct {
	name string
	url  func(testing.TB) string
}{
	{"sqlite", func(testing.TB) string { return "" }},
	{"mariadb", stack.FreshMySQL},
}

func runCorpus(t *testing.T, databaseURL string) {
	hasher := newCountingHasher()
	s := stack.Start(t, stack.Options{DatabaseURL: databaseURL, Hasher: hasher})
	w := seed(t, s)
	cases := corpus(w)
	if len(cases) < minCases {
		t.Fatalf("the corpus has %d cases, want at least %d", len(cases), minCases)
	}
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.name] {
			t.Fatalf("two cases are named %q", c.name)
		}
		names[c.name] = true
	}

	byStatus := map[int]int{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := s.Snapshot(t)
			hashed := hasher.calls.Load()
			var res stack.Response
			if c.raw != "" {
				res = s.Raw(t, c.raw)
			} else {
				res = s.Do(t, c.req)
			}
			byStatus[res.Status]++
			if res.Status >= 500 {
				t.Errorf("answered %d: %s", res.Status, clip(res.Body))
			}
			exp := c.expected(res)
			if res.Status != exp.status {
				t.Errorf("status %d, want %d; body %s", res.Status, exp.status, clip(res.Body))
			}
			if err := exp.want.ok(res); err != nil {
				t.Errorf("want %s: %v", exp.want.what, err)
			}
			checkHeaders(t, exp.byNetHTTP, res)
			if res.Status >= 400 {
				if found := stack.Internals(res.Body, c.req.ContentType); len(found) > 0 {
					t.Errorf("the answer shows internals %q: %s", found, clip(res.Body))
				}
			}
			if after := s.Snapshot(t); after != before {
				t.Errorf("stored data changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if n := hasher.calls.Load() - hashed; isVerify(c) && n != 0 {
				t.Errorf("the refused check ran the hasher %d times, want none", n)
			}
		})
	}
	// Control: a well-formed wrong password does reach the counted hasher
	// (and the lockout table), so the zeros above mean something.
	before, hashed := s.Snapshot(t), hasher.calls.Load()
	res := s.Do(t, stack.JSON(http.MethodPost, verifyPath, encode(map[string]any{"email": w.emails[0], "password": "wrong-password-1"})))
	if res.Status != http.StatusBadRequest || hasher.calls.Load() == hashed || s.Snapshot(t) == before {
		t.Errorf("a wrong password: %d %s, %d hasher calls, failure recorded: %v; want 400, a check, a recorded failure",
			res.Status, clip(res.Body), hasher.calls.Load()-hashed, s.Snapshot(t) != before)
	}
	statuses := slices.Sorted(maps.Keys(byStatus))
	var summary []string
	for _, st := range statuses {
		summary = append(summary, fmt.Sprintf("%d×%d", byStatus[st], st))
	}
	t.Logf("%d hostile requests: %s", len(cases), strings.Join(summary, ", "))

	if leaks := stack.Leaks(s.Logs.Bytes(), seedPassword, validUser["password"].(string), stack.HashMarker); len(leaks) > 0 {
		t.Errorf("the logs contain %q", leaks)
	}
	if strings.Contains(s.Logs.String(), `"level":"ERROR"`) {
		t.Errorf("a hostile request was logged as an error:\n%s", s.Logs.String())
	}
}

// checkHeaders asserts what every answer of the service carries; net/http's
// own answers to unparsable requests are plain text.
func checkHeaders(t *testing.T, byNetHTTP bool, res stack.Response) {
	t.Helper()
	ct := res.Header.Get("Content-Type")
	if byNetHTTP {
		if ct != "text/plain; charset=utf-8" {
			t.Errorf("net/http answer with Content-Type %q", ct)
		}
		return
	}
	if !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", got)
	}
	if res.Header.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID")
	}
	if res.Status >= 300 && res.Status < 400 {
		t.Errorf("redirect to %q", res.Header.Get("Location"))
	}
	if res.Status >= 400 && res.Header.Get("ETag") != "" {
		t.Errorf("error answer with an ETag %q", res.Header.Get("ETag"))
	}
}

// seed creates the three users the corpus refers to.
func seed(t *testing.T, s *stack.Stack) world {
	t.Helper()
	w := world{base: s.URL}
	for _, u := range []struct{ first, last, email string }{
		{"Alice", "Muster", "alice@example.ch"}, {"Bob", "Keller", "bob@example.ch"}, {"Chloé", "Dupont", "chloe@example.ch"},
	} {
		body := encode(map[string]any{"first_name": u.first, "last_name": u.last, "email": u.email, "password": seedPassword})
		res := s.Do(t, stack.JSON(http.MethodPost, usersPath, body))
		if res.Status != http.StatusCreated {
			t.Fatalf("seed %s: %d %s", u.email, res.Status, res.Body)
		}
		id, ok := res.Object()["id"].(float64)
		if !ok {
			t.Fatalf("seed %s: no id in %s", u.email, res.Body)
		}
		w.ids = append(w.ids, int64(id))
		w.emails = append(w.emails, u.email)
	}
	return w
}
