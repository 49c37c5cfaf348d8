package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	neturl "net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/rabbitmq/rabbitmqtest"
	"github.com/marketplace/usersvc/test/containers"
)

// PostgreSQL and RabbitMQ come from containers of this test process,
// started on first use (or the servers USERSVC_TEST_POSTGRES_URL and
// USERSVC_TEST_AMQP_URL name), and are removed when the package ends.
func TestMain(m *testing.M) { containers.RunTests(m) }

// freshPostgresDatabase creates an empty database on the test PostgreSQL,
// dropped when t ends, and returns its DATABASE_URL and a pool on it.
func freshPostgresDatabase(t *testing.T) (string, *sql.DB) {
	t.Helper()
	server := containers.PostgresServerURL(t)
	target, err := gormstore.ParseURL(server)
	if err != nil {
		t.Fatal(err)
	}
	root := stdlib.OpenDB(*target.Postgres)
	t.Cleanup(func() { _ = root.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "usersvc_t_" + hex.EncodeToString(b)
	if _, err := root.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("PostgreSQL test server unreachable or refusing (%s names it when set): %v", containers.PostgresURLEnv, err)
	}
	t.Cleanup(func() {
		if _, err := root.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := neturl.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	dbURL := u.String()
	target, err = gormstore.ParseURL(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*target.Postgres)
	t.Cleanup(func() { _ = db.Close() })
	return dbURL, db
}

// step is one exchange with the API, normalised for comparison across
// deployments: times, event ids and the server's address replaced.
type step struct {
	Request string
	Status  int
	ETag    string
	Body    string
}

var (
	timePattern = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
)

func normalise(s, base string) string {
	s = strings.ReplaceAll(s, base, "BASE")
	s = timePattern.ReplaceAllString(s, "TIME")
	return uuidPattern.ReplaceAllString(s, "UUID")
}

// scenario drives create, list, patch, a taken email, a stale If-Match and
// delete, and returns the normalised transcript.
func scenario(t *testing.T, base string) []step {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	var steps []step
	do := func(method, path, body string, header ...string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, step{Request: method + " " + path, Status: resp.StatusCode, ETag: resp.Header.Get("ETag"), Body: normalise(string(b), base)})
	}
	do(http.MethodPost, "/api/v1/users", createBody(1))
	do(http.MethodPost, "/api/v1/users", `{"first_name":"Bob","last_name":"Lovelace","email":"bob@example.ch","password":"difference-engine"}`)
	do(http.MethodGet, "/api/v1/users?last_name=LOVELACE&ordering=-id", "")
	do(http.MethodPatch, "/api/v1/users/1", `{"address":"London"}`, "If-Match", `"1"`)
	do(http.MethodPatch, "/api/v1/users/1", `{"address":"Paris"}`, "If-Match", `"1"`)
	do(http.MethodPatch, "/api/v1/users/2", `{"email":"ADA1@example.ch"}`)
	do(http.MethodGet, "/api/v1/users/1", "")
	do(http.MethodDelete, "/api/v1/users/2", "")
	do(http.MethodGet, "/api/v1/users", "")
	return steps
}

// wantEvents are the actions the scenario's mutations announce, in order.
var wantEvents = []string{"users.user.created", "users.user.created", "users.user.updated", "users.user.deleted"}

// TestServeOnPostgresAndRabbitMQ runs the binary on PostgreSQL with its
// events on RabbitMQ, and the same scenario on the defaults (SQLite, events
// on stdout): the HTTP answers and the event bodies must be the same, the
// events must arrive on a queue bound to the exchange with the CloudEvents
// headers, and the relay must mark them published in PostgreSQL.
func TestServeOnPostgresAndRabbitMQ(t *testing.T) {
	url, db := freshPostgresDatabase(t)
	exchange := rabbitmqtest.NewExchange(t)
	q := rabbitmqtest.BindQueue(t, exchange, "#")
	s := startServer(t,
		"DATABASE_URL="+url,
		"EVENT_BUS=rabbitmq",
		"AMQP_URL="+rabbitmqtest.URL(t),
		"EVENT_EXCHANGE="+exchange,
		"EVENT_SOURCE=usersvc-e2e",
	)
	got := scenario(t, s.Base)

	// The same scenario on the embedded defaults.
	ref := startServer(t)
	want := scenario(t, ref.Base)
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("%s:\n  postgres+rabbitmq: %d %s %s\n  sqlite+stdout:     %d %s %s", want[i].Request,
					got[i].Status, got[i].ETag, got[i].Body, want[i].Status, want[i].ETag, want[i].Body)
			}
		}
		t.Fatalf("the deployments answered differently")
	}
	statuses := make([]int, len(got))
	for i, st := range got {
		statuses[i] = st.Status
		t.Logf("%s -> %d %s %s", st.Request, st.Status, st.ETag, st.Body)
	}
	if wantStatus := []int{201, 201, 200, 200, 412, 400, 200, 204, 200}; !slices.Equal(statuses, wantStatus) {
		t.Fatalf("statuses %v, want %v", statuses, wantStatus)
	}

	// Events: on the queue, in order, with the binding's headers, bodies
	// equal (up to ids and times) to what the reference printed.
	deliveries := q.Receive(t, len(wantEvents), 15*time.Second)
	var types, bodies []string
	for _, d := range deliveries {
		t.Logf("queue %s <- %s %v %s", q.Name, d.RoutingKey, d.Headers, d.Body)
		types = append(types, d.RoutingKey)
		bodies = append(bodies, normalise(string(d.Body), s.Base))
		if d.Headers["cloudEvents:type"] != d.RoutingKey || d.Headers["cloudEvents:source"] != "usersvc-e2e" ||
			d.Headers["cloudEvents:specversion"] != "1.0" || d.ContentType != "application/json" {
			t.Errorf("event %s: headers %v, content type %q", d.MessageId, d.Headers, d.ContentType)
		}
		if strings.Contains(string(d.Body), "password_hash") || strings.Contains(string(d.Body), "analytical-engine") {
			t.Errorf("event %s carries a password or its hash: %s", d.MessageId, d.Body)
		}
	}
	if !slices.Equal(types, wantEvents) {
		t.Fatalf("routing keys %v, want %v", types, wantEvents)
	}
	var refBodies []string
	deadline := time.Now().Add(10 * time.Second)
	for len(refBodies) < len(wantEvents) && time.Now().Before(deadline) {
		refBodies = refBodies[:0]
		sc := bufio.NewScanner(strings.NewReader(ref.Stdout.String()))
		for sc.Scan() {
			refBodies = append(refBodies, normalise(sc.Text(), ref.Base))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !slices.Equal(bodies, refBodies) {
		t.Fatalf("event bodies on RabbitMQ:\n%s\nwant those printed on stdout:\n%s", strings.Join(bodies, "\n"), strings.Join(refBodies, "\n"))
	}
	for _, b := range bodies {
		var ev struct{ Action string }
		if err := json.Unmarshal([]byte(b), &ev); err != nil || ev.Action == "" {
			t.Fatalf("event body %s is not the contract's JSON", b)
		}
	}

	// The data is in PostgreSQL, and the relay marked every event.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var users, pending int
	for {
		err := db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM outbox WHERE published_at IS NULL)").Scan(&users, &pending)
		if err != nil {
			t.Fatalf("read PostgreSQL: %v", err)
		}
		if pending == 0 || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if users != 1 || pending != 0 {
		t.Fatalf("PostgreSQL holds %d users and %d unpublished events; want 1 and 0", users, pending)
	}
	if strings.Contains(s.Stderr.String(), "guest:guest") {
		t.Errorf("the log shows the AMQP password:\n%s", s.Stderr.String())
	}
}
