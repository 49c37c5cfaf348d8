package stack

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Request is one HTTP request to the stack.
type Request struct {
	Method string
	// Path is the request target, query included, sent as written.
	Path string
	Body []byte
	// ContentType is sent when not empty.
	ContentType string
	// Header is added as is; repeated values stay repeated.
	Header http.Header
	// Host overrides the Host header.
	Host string
	// Chunked sends the body without a Content-Length.
	Chunked bool
}

// JSON is a request with a JSON body.
func JSON(method, path, body string) Request {
	return Request{Method: method, Path: path, Body: []byte(body), ContentType: "application/json"}
}

// Response is an answer read in full.
type Response struct {
	Status  int
	Header  http.Header
	Body    []byte
	Elapsed time.Duration
}

// Object decodes a JSON object body (nil when the body is not one).
func (r Response) Object() map[string]any {
	var m map[string]any
	if json.Unmarshal(r.Body, &m) != nil {
		return nil
	}
	return m
}

// Detail is the "detail" member of a JSON error body.
func (r Response) Detail() string {
	d, _ := r.Object()["detail"].(string)
	return d
}

// Send performs r; safe for concurrent use.
func (s *Stack) Send(ctx context.Context, r Request) (Response, error) {
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
		if r.Chunked {
			body = io.MultiReader(body) // hides the length: chunked encoding
		}
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, s.URL+r.Path, body)
	if err != nil {
		return Response{}, err
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.Host != "" {
		req.Host = r.Host
	}
	start := time.Now()
	res, err := s.Client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return Response{}, fmt.Errorf("read body: %w", err)
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: b, Elapsed: time.Since(start)}, nil
}

// Do performs r and fails t on a transport error.
func (s *Stack) Do(t testing.TB, r Request) Response {
	t.Helper()
	res, err := s.Send(context.Background(), r)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	return res
}

// Raw writes raw bytes on a fresh connection and reads one answer: for
// requests no well-behaved client would send.
func (s *Stack) Raw(t testing.TB, raw string) Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("write raw request: %v", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer to raw request: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: b, Elapsed: time.Since(start)}
}

// Tables whose content Snapshot captures: every row the service writes.
var snapshotTables = []string{"users", "user_counts", "outbox", "login_failures"}

// Snapshot renders every row of the service's tables, for before/after
// comparisons. Outbox rows are shown without published_at so a running
// relay does not make two snapshots differ.
func (s *Stack) Snapshot(t testing.TB) string {
	t.Helper()
	return Snapshot(t, s.Store.DB())
}

// Snapshot renders every row of the service's tables in db.
func Snapshot(t testing.TB, db *sql.DB) string {
	t.Helper()
	var out strings.Builder
	for _, table := range snapshotTables {
		snapshotTable(t, db, table, &out)
	}
	return out.String()
}

// snapshotTable renders every row of one table into out.
func snapshotTable(t testing.TB, db *sql.DB, table string, out *strings.Builder) {
	t.Helper()
	cols := "*"
	if table == "outbox" {
		cols = "seq, event_id, event_type, msg_key, payload"
	}
	rows, err := db.Query("SELECT " + cols + " FROM " + table + " ORDER BY 1")
	if err != nil {
		t.Fatalf("snapshot %s: %v", table, err)
	}
	defer rows.Close()
	names, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		fmt.Fprintf(out, "%s:", table)
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			fmt.Fprintf(out, " %s=%v", names[i], v)
		}
		out.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("snapshot %s: %v", table, err)
	}
}

// Count returns SELECT COUNT(*) FROM table.
func (s *Stack) Count(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := s.Store.DB().QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}
