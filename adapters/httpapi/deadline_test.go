package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// endlessSQL never finishes on SQLite: it counts an unbounded recursion.
// Only an interrupt (the context ending) stops it.
const endlessSQL = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"

// slowLists makes every list run a query that never ends on one of the
// store's pooled connections before the real list, as an expensive ordering
// on a large table would.
type slowLists struct{ *gormstore.Store }

func (s slowLists) ListUsers(ctx context.Context, q domain.ListQuery) (domain.UserPage, error) {
	if _, err := s.DB().ExecContext(ctx, endlessSQL); err != nil {
		return domain.UserPage{}, fmt.Errorf("expensive list: %w", err)
	}
	return s.Store.ListUsers(ctx, q)
}

func slowReader(s *gormstore.Store) ports.UserReader { return slowLists{s} }

// bound is what the tests allow past a deadline for the work to stop and
// the answer to arrive, on a loaded machine.
const bound = time.Second

// A query still running at the deadline is cut, the client gets a 503 (and
// the access log says so), and the connection is back in the pool: the
// in-memory store has only one, which the next request needs.
func TestSlowQueryCutByTheDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t, envOptions{timeout: timeout, reader: slowReader})
	u := e.create(userBody("deadline@example.ch"))

	start := time.Now()
	res := e.do(req{method: http.MethodGet, path: "/api/v1/users?ordering=last_name,first_name"})
	took := time.Since(start)
	assertJSON(t, res, http.StatusServiceUnavailable, `{"detail":"`+msgTooSlow+`"}`)
	if took < timeout || took > timeout+bound {
		t.Errorf("answered after %s, want between %s and %s", took, timeout, timeout+bound)
	}
	if res.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if l := accessLines(t, e, res.header.Get("X-Request-ID")); len(l) != 1 || l[0]["status"] != float64(503) {
		t.Errorf("access line = %v, want one with status 503", l)
	}

	waitIdle(t, e.store)
	if stats := e.store.DB().Stats(); stats.OpenConnections != 1 {
		t.Errorf("open connections = %d, want the in-memory store's one", stats.OpenConnections)
	}
	if res := e.do(req{method: http.MethodGet, path: idPath(u)}); res.status != http.StatusOK {
		t.Fatalf("point read after the cut: %d %s", res.status, res.body)
	}
}

// waitIdle waits until no connection of the pool is in use.
func waitIdle(t *testing.T, s *gormstore.Store) {
	t.Helper()
	limit := time.Now().Add(bound)
	for s.DB().Stats().InUse != 0 {
		if time.Now().After(limit) {
			t.Fatalf("%d connections still in use %s after the answer", s.DB().Stats().InUse, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Eight expensive requests hold every pooled connection (four) and queue
// for more; the deadline ends them all, so a point read and /readyz sent
// meanwhile are answered, in time, instead of waiting behind them.
func TestExpensiveRequestsDoNotStarveOthers(t *testing.T) {
	const timeout = time.Second
	e := newEnv(t, envOptions{timeout: timeout, reader: slowReader, maxConns: 4,
		storeURL: "sqlite://" + filepath.Join(t.TempDir(), "users.db")})
	e.client.Timeout = 4 * timeout // today's code would wait for ever
	u := e.create(userBody("starve@example.ch"))

	var wg sync.WaitGroup
	statuses := make(chan int, 8)
	for range 8 {
		wg.Go(func() {
			statuses <- e.do(req{method: http.MethodGet, path: "/api/v1/users?ordering=first_name,email"}).status
		})
	}
	time.Sleep(timeout / 2) // the eight hold or wait for every connection
	for _, path := range []string{idPath(u), "/readyz"} {
		wg.Go(func() {
			start := time.Now()
			res := e.do(req{method: http.MethodGet, path: path})
			if took := time.Since(start); res.status != http.StatusOK || took > timeout+bound {
				t.Errorf("GET %s: %d after %s, want 200 within %s: %s", path, res.status, took, timeout+bound, res.body)
			}
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusServiceUnavailable {
			t.Errorf("an expensive request answered %d, want 503", s)
		}
	}
	waitIdle(t, e.store)
}

// A body that does not arrive by the deadline is the client's doing: 408,
// the connection closed, logged at INFO without an error line.
func TestSlowBodyIs408(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t, envOptions{timeout: timeout})
	conn, err := net.Dial("tcp", e.v4.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	// Headers and the start of a 100-byte body, then nothing.
	fmt.Fprintf(conn, "POST /api/v1/users HTTP/1.1\r\nHost: usersvc\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"first_name\":")
	_ = conn.SetReadDeadline(time.Now().Add(timeout + 5*bound))
	hres, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer hres.Body.Close()
	took := time.Since(start)
	var body strings.Builder
	_, _ = bufio.NewReader(hres.Body).WriteTo(&body)
	res := response{status: hres.StatusCode, header: hres.Header, body: []byte(body.String())}
	e.checkCommon(req{method: http.MethodPost, path: "/api/v1/users"}, res)
	assertJSON(t, res, http.StatusRequestTimeout, `{"detail":"`+msgBodyTimeout+`"}`)
	if took > timeout+bound {
		t.Errorf("answered after %s, want within %s", took, timeout+bound)
	}
	if !hres.Close {
		t.Error("the connection is kept open after a 408")
	}
	lines := accessLines(t, e, res.header.Get("X-Request-ID"))
	if len(lines) != 1 || lines[0]["status"] != float64(408) || lines[0]["level"] != "INFO" {
		t.Errorf("access line = %v, want one at INFO with status 408", lines)
	}
	for _, rec := range logRecords(t, e.logs) {
		if rec["level"] == "ERROR" {
			t.Errorf("error line for a slow body: %v", rec)
		}
	}
}
