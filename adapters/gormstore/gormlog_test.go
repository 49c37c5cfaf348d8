package gormstore

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/test/syncbuf"
)

type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	SQL   string `json:"sql"`
	Error string `json:"error"`
}

// openLogged opens a migrated in-memory store whose statements are logged
// at level with the given slow threshold.
func openLogged(t *testing.T, level slog.Level, slow time.Duration) (*Store, *syncbuf.Buffer) {
	t.Helper()
	var logs syncbuf.Buffer
	l := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level}))
	s, err := Open(context.Background(), Config{URL: "sqlite://:memory:", Logger: l, SlowThreshold: slow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	return s, &logs
}

func parseLogs(t *testing.T, logs *syncbuf.Buffer) []logLine {
	t.Helper()
	var out []logLine
	for _, raw := range logs.Lines() {
		var l logLine
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		out = append(out, l)
	}
	return out
}

const secretEmail = "ada.secret@example.com"

func TestGormLogLevelsAndNoValues(t *testing.T) {
	ctx := context.Background()
	t.Run("failed statement at ERROR with the driver's code, not the data", func(t *testing.T) {
		s, logs := openLogged(t, slog.LevelInfo, time.Hour)
		insert(t, s, newUser("Ada", "L", secretEmail, 0))
		if err := s.db.WithContext(ctx).Exec("SELECT email FROM no_such_table WHERE email = ?", secretEmail).Error; err == nil {
			t.Fatal("a statement on a missing table succeeded")
		}
		var failed []logLine
		for _, l := range parseLogs(t, logs) {
			if l.Level == "ERROR" && l.Msg == "database statement failed" {
				failed = append(failed, l)
			}
		}
		if len(failed) == 0 {
			t.Fatalf("no ERROR line for the failed statement:\n%s", logs)
		}
		if !strings.Contains(failed[0].SQL, "no_such_table") || !strings.Contains(failed[0].SQL, "?") || !strings.HasPrefix(failed[0].Error, "sqlite error") {
			t.Errorf("failed statement logged as %+v, want the SELECT with placeholders and the sqlite code", failed[0])
		}
		if strings.Contains(logs.String(), "secret") || strings.Contains(logs.String(), "argon2id") {
			t.Errorf("the log shows user data:\n%s", logs)
		}
	})
	t.Run("a duplicate key is an answer, logged at DEBUG only", func(t *testing.T) {
		for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
			s, logs := openLogged(t, level, time.Hour)
			insert(t, s, newUser("Ada", "L", secretEmail, 0))
			u := newUser("Ada", "L", secretEmail, time.Second)
			err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.InsertUser(ctx, &u) })
			if !errors.Is(err, domain.ErrEmailTaken) {
				t.Fatalf("inserting a taken email: %v, want ErrEmailTaken", err)
			}
			refused := 0
			for _, l := range parseLogs(t, logs) {
				if l.Level != "DEBUG" {
					t.Errorf("at %v the conflict logged %+v, want nothing above DEBUG", level, l)
				}
				if l.Msg == "database statement refused by a unique index" && strings.HasPrefix(l.Error, "sqlite error") {
					refused++
				}
			}
			if want := map[slog.Level]int{slog.LevelInfo: 0, slog.LevelDebug: 1}[level]; refused != want {
				t.Errorf("at %v: %d refusal lines, want %d:\n%s", level, refused, want, logs)
			}
			if strings.Contains(logs.String(), "secret") {
				t.Errorf("the log shows user data:\n%s", logs)
			}
		}
	})
	t.Run("not found is no error", func(t *testing.T) {
		s, logs := openLogged(t, slog.LevelInfo, time.Hour)
		if _, err := s.GetUser(ctx, 424242); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("GetUser of a missing id: %v", err)
		}
		if logs.String() != "" {
			t.Errorf("a lookup that found nothing was logged at INFO or above:\n%s", logs)
		}
	})
	t.Run("slow statement at WARN with placeholders", func(t *testing.T) {
		s, logs := openLogged(t, slog.LevelInfo, time.Nanosecond)
		insert(t, s, newUser("Ada", "L", secretEmail, 0))
		lines := parseLogs(t, logs)
		if len(lines) == 0 {
			t.Fatal("nothing logged past a 1ns threshold")
		}
		for _, l := range lines {
			if l.Level != "WARN" || l.Msg != "slow database statement" || l.SQL == "" {
				t.Errorf("line %+v, want a WARN slow statement with its SQL", l)
			}
		}
		if strings.Contains(logs.String(), "secret") {
			t.Errorf("the slow statement log shows user data:\n%s", logs)
		}
	})
	t.Run("statements the store writes itself are logged alike", func(t *testing.T) {
		s, logs := openLogged(t, slog.LevelInfo, time.Nanosecond)
		ids := insert(t, s, newUser("Ada", "L", secretEmail, 0), newUser("Bob", "L", "bob@example.com", time.Second))
		logs.Reset()
		if _, err := s.GetUser(ctx, ids[0]); err != nil {
			t.Fatal(err)
		}
		byEmail := []domain.OrderField{{Field: domain.SortEmail}}
		from := domain.SortKey{ID: ids[0], Email: secretEmail}
		if _, err := s.ListUsers(ctx, domain.ListQuery{PageSize: 1, Ordering: byEmail, Keyset: &domain.Keyset{From: &from, Backward: true}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ListUsers(ctx, domain.ListQuery{Page: 1, PageSize: 1}); err != nil { // a full page: counted
			t.Fatal(err)
		}
		var sqls []string
		for _, l := range parseLogs(t, logs) {
			if l.Level != "WARN" || l.Msg != "slow database statement" {
				t.Errorf("line %+v, want a WARN slow statement", l)
			}
			sqls = append(sqls, l.SQL)
		}
		want := []string{"FROM users WHERE id = ?", "FROM users WHERE email_ci < ? ORDER BY email_ci DESC LIMIT ?",
			"FROM users ORDER BY id LIMIT ?", "FROM user_counts"}
		if len(sqls) != len(want) {
			t.Fatalf("logged %q, want %d statements", sqls, len(want))
		}
		for i, w := range want {
			if !strings.Contains(sqls[i], w) {
				t.Errorf("statement %d logged as %q, want it to contain %q", i, sqls[i], w)
			}
		}
		if strings.Contains(logs.String(), "secret") {
			t.Errorf("the log shows user data:\n%s", logs)
		}
	})
	t.Run("ordinary statements only at DEBUG", func(t *testing.T) {
		s, logs := openLogged(t, slog.LevelInfo, time.Hour)
		insert(t, s, newUser("Ada", "L", secretEmail, 0))
		if logs.String() != "" {
			t.Errorf("a fast, successful statement was logged at INFO:\n%s", logs)
		}
		s, logs = openLogged(t, slog.LevelDebug, time.Hour)
		insert(t, s, newUser("Ada", "L", secretEmail, 0))
		if !strings.Contains(logs.String(), `"msg":"database statement"`) || strings.Contains(logs.String(), "secret") {
			t.Errorf("DEBUG log %s, want the statement without its values", logs)
		}
	})
}
