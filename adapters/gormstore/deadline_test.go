package gormstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// slowSQL is a statement that runs far longer than any test: it ends only
// when its context does.
var slowSQL = map[string]string{
	DialectMySQL:    "SELECT SLEEP(60)",
	DialectPostgres: "SELECT pg_sleep(60)",
	DialectSQLite:   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
}

// makeQueriesSlow is a test-only hook: before every GORM query of s, and
// every unfiltered page's statement, which the store writes itself, a slow
// statement runs with that query's context, as a two-field ordering over a
// large table would take its time.
func makeQueriesSlow(t *testing.T, s *Store) {
	t.Helper()
	slow := func(db *gorm.DB) {
		if _, err := db.Statement.ConnPool.ExecContext(db.Statement.Context, slowSQL[s.dialect]); err != nil {
			_ = db.AddError(err)
		}
	}
	s.beforePage = func(ctx context.Context, _ string, _ []any) error {
		_, err := s.sqlDB.ExecContext(ctx, slowSQL[s.dialect])
		return err
	}
	// Pages are read through Rows (the row callbacks), the rest through Find.
	err := errors.Join(
		s.db.Callback().Query().Before("gorm:query").Register("test:slow", slow),
		s.db.Callback().Row().Before("gorm:row").Register("test:slow", slow))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.beforePage = nil
		_ = s.db.Callback().Query().Remove("test:slow")
		_ = s.db.Callback().Row().Remove("test:slow")
	})
}

// The request deadline reaches the statements: a list (two-field ordering,
// no index serves it) still running when its context's deadline passes is
// cut, reported as the database being unavailable because of the deadline,
// and its connection is back in the pool. A point read waiting for the
// only connection is bounded the same way.
func TestStatementsStopAtTheDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const bound = time.Second
	forEachBackend(t, func(t *testing.T, s *Store) {
		// One connection: whoever holds it too long starves the rest.
		s.sqlDB.SetMaxOpenConns(1)
		ids := insert(t, s, newUser("Ann", "Zed", "ann@example.com", 0), newUser("Bob", "Zed", "bob@example.com", time.Second))

		makeQueriesSlow(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		_, err := s.ListUsers(ctx, domain.ListQuery{Ordering: []domain.OrderField{{Field: "last_name"}, {Field: "first_name"}}})
		took := time.Since(start)
		if !errors.Is(err, domain.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ListUsers past the deadline: %v, want unavailable because of the deadline", err)
		}
		if took > timeout+bound {
			t.Errorf("ListUsers returned after %s, want within %s", took, timeout+bound)
		}
		limit := time.Now().Add(bound)
		for s.DB().Stats().InUse != 0 {
			if time.Now().After(limit) {
				t.Fatalf("%d connections still in use after the cut", s.DB().Stats().InUse)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := s.GetUser(context.Background(), ids[0]); err != nil {
			t.Fatalf("point read after the cut: %v", err)
		}

		// The only connection busy with a slow statement: a point read
		// waits for it no longer than its own deadline.
		release := holdTheOnlyConnection(s)
		ctx, cancel = context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start = time.Now()
		_, err = s.GetUser(ctx, ids[1])
		if took := time.Since(start); !errors.Is(err, domain.ErrUnavailable) || took > timeout+bound {
			t.Errorf("GetUser behind a busy pool: %v after %s, want unavailable within %s", err, took, timeout+bound)
		}
		release()
		if _, err := s.GetUser(context.Background(), ids[1]); err != nil {
			t.Fatalf("point read after the release: %v", err)
		}
	})
}

// holdTheOnlyConnection keeps s's single pooled connection busy with a slow
// statement until the returned release, which waits for it to end.
func holdTheOnlyConnection(s *Store) (release func()) {
	s.sqlDB.SetMaxOpenConns(1)
	hold, cancel := context.WithCancel(context.Background())
	held := make(chan struct{})
	go func() {
		defer close(held)
		_, _ = s.DB().ExecContext(hold, slowSQL[s.dialect])
	}()
	for s.DB().Stats().InUse == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	return func() { cancel(); <-held }
}

// There is no separate pool acquisition timeout: the wait for a pooled
// connection is part of the store call, and DB_STATEMENT_TIMEOUT bounds the
// whole call. With the pool exhausted and no deadline from the caller (the
// relay, a background job), a read and a write transaction both give up
// within the statement timeout, as unavailable, and the store serves again
// once a connection is free.
func TestPoolWaitIsBoundedByTheStatementTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const bound = time.Second
	forEachBackend(t, func(t *testing.T, s *Store) {
		ids := insert(t, s, newUser("Ann", "Zed", "ann@example.com", 0))
		s.stmtTimeout = timeout // DB_STATEMENT_TIMEOUT
		release := holdTheOnlyConnection(s)
		defer release()
		for _, c := range []struct {
			name string
			call func() error
		}{
			{"point read", func() error { _, err := s.GetUser(context.Background(), ids[0]); return err }},
			{"write transaction", func() error {
				return s.Do(context.Background(), func(context.Context, ports.Tx) error { return nil })
			}},
		} {
			start := time.Now()
			err := c.call()
			took := time.Since(start)
			if !errors.Is(err, domain.ErrUnavailable) || took < timeout/2 || took > timeout+bound {
				t.Errorf("%s with the pool exhausted: %v after %v, want unavailable after about %v", c.name, err, took, timeout)
			}
		}
		release()
		if _, err := s.GetUser(context.Background(), ids[0]); err != nil {
			t.Fatalf("point read once the connection is free: %v", err)
		}
	})
}

// A search term under three characters has no trigram and scans the
// emails (README.md): on a table large enough for that to be slow, the
// store's own statement bound (DB_STATEMENT_TIMEOUT) ends it even when the
// caller set no deadline, as unavailable (503), in page and cursor mode.
func TestShortSearchStopsAtTheStatementTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const bound = time.Second
	forEachBackend(t, func(t *testing.T, s *Store) {
		insert(t, s, newUser("Ann", "Zed", "ann@example.com", 0))
		s.stmtTimeout = timeout
		makeQueriesSlow(t, s)
		for _, c := range []struct {
			name string
			q    domain.ListQuery
		}{
			{"page", domain.ListQuery{Search: "an"}},
			{"cursor", domain.ListQuery{Search: "an", Keyset: &domain.Keyset{}}},
			{"one character", domain.ListQuery{Search: "a"}},
		} {
			start := time.Now()
			_, err := s.ListUsers(context.Background(), c.q)
			took := time.Since(start)
			if !errors.Is(err, domain.ErrUnavailable) {
				t.Errorf("%s: short search past the statement timeout: %v, want unavailable", c.name, err)
			}
			if took > timeout+bound {
				t.Errorf("%s: returned after %s, want within %s", c.name, took, timeout+bound)
			}
		}
	})
}
