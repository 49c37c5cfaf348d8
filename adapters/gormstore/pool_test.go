package gormstore

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/test/syncbuf"
)

func TestPoolSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
		max  int
		want int
	}{
		{"mysql default", func(t *testing.T) string { return mysqlServerURL(t) }, 0, 20},
		{"mysql configured", func(t *testing.T) string { return mysqlServerURL(t) }, 3, 3},
		{"postgres configured", freshPostgresDatabase, 5, 5},
		{"sqlite file default", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "p.db") }, 0, 8},
		{"sqlite in memory is always one connection", func(*testing.T) string { return "sqlite://:memory:" }, 9, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(context.Background(), Config{URL: tc.url(t), MaxOpenConns: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.DB().Stats().MaxOpenConnections; got != tc.want {
				t.Errorf("MaxOpenConnections = %d, want %d", got, tc.want)
			}
		})
	}
}

// The MySQL driver reports a pooled connection the server closed; that
// report belongs in the service's logs, not on bare standard error.
func TestMySQLDriverMessagesGoToTheLogger(t *testing.T) {
	ctx := context.Background()
	var logs syncbuf.Buffer
	s, err := Open(ctx, Config{URL: mysqlServerURL(t), MaxOpenConns: 1, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var id int64
	if err := s.DB().QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	admin := openStore(t, mysqlServerURL(t))
	if _, err := admin.DB().ExecContext(ctx, "KILL ?", id); err != nil {
		t.Fatal(err)
	}
	// The pool's only connection is dead: the driver notices, says so, and
	// the pool retries on a new one.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `"msg":"mysql driver"`) && time.Now().Before(deadline) {
		if err := s.Ping(ctx); err != nil {
			t.Logf("ping after the kill: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"msg":"mysql driver"`) || !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Fatalf("the driver's report of the killed connection is not in the logs: %q", logs.String())
	}
}
