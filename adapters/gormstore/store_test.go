package gormstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

func TestProvideAndDialect(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s, cleanup, err := Provide(ctx, Config{URL: url})
		if err != nil {
			t.Fatalf("Provide: %v", err)
		}
		target, err := ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		if want := target.Dialect; s.Dialect() != want {
			t.Errorf("Dialect = %q, want %q", s.Dialect(), want)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		cleanup()
		if err := s.Ping(ctx); err == nil {
			t.Fatal("Ping after cleanup succeeded; want the pool closed")
		}
	})
}

// TestSQLiteWritersInTwoStoresDoNotFailBusy runs concurrent write
// transactions through two stores on one file, as two processes would:
// BEGIN IMMEDIATE and the busy timeout make them wait, never fail.
func TestSQLiteWritersInTwoStoresDoNotFailBusy(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "users.db")
	stores := []*Store{openMigrated(t, url), openStore(t, url)}
	const perStore = 15
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shared := insert(t, stores[0], newUser("Shared", "Counter", "shared@example.com", 0))[0]
	var wg sync.WaitGroup
	errs := make(chan error, 4*perStore)
	for si, s := range stores {
		for i := range perStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := newUser("W", "Riter", fmt.Sprintf("w%d-%d@example.com", si, i), 0)
				errs <- s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
					if err := tx.InsertUser(ctx, &u); err != nil {
						return err
					}
					return tx.AppendMessage(ctx, message(u.Email, t0))
				})
				// Read then write: two deferred transactions would deadlock
				// upgrading their locks; no update may be lost either.
				errs <- s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
					c, err := tx.LockUser(ctx, shared)
					if err != nil {
						return err
					}
					c.Touch(t0)
					return tx.UpdateUser(ctx, c)
				})
			}()
		}
	}
	// Readers run meanwhile (WAL): they must not fail either.
	for range 5 {
		if _, err := stores[1].ListUsers(ctx, domain.ListQuery{Page: 1, PageSize: 5, LastName: "riter"}); err != nil {
			t.Errorf("ListUsers during writes: %v", err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Do: %v", err)
		}
	}
	if n, err := stores[0].countAll(context.Background()); err != nil || n != 2*perStore+1 {
		t.Fatalf("count = %d, %v; want %d", n, err, 2*perStore+1)
	}
	if c, err := stores[1].GetUser(ctx, shared); err != nil || c.Version != 1+2*perStore {
		t.Fatalf("shared user version = %d, %v; want %d (no lost update)", c.Version, err, 1+2*perStore)
	}
}

func TestRecountUsersRepairsTheCounter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		insert(t, s, newUser("A", "A", "a@example.com", 0), newUser("B", "B", "b@example.com", 0))
		// Rows written behind the store's back, and a counter gone wrong.
		raw := toRow(newUser("C", "C", "c@example.com", 0))
		if err := s.db.Create(&raw).Error; err != nil {
			t.Fatal(err)
		}
		if err := s.db.Exec("UPDATE user_counts SET n = n + 5 WHERE slot = 3").Error; err != nil {
			t.Fatal(err)
		}
		n, err := s.RecountUsers(ctx)
		if err != nil || n != 3 {
			t.Fatalf("RecountUsers = %d, %v; want 3", n, err)
		}
		insert(t, s, newUser("D", "D", "d@example.com", 0))
		if got, err := s.countAll(context.Background()); err != nil || got != 4 {
			t.Fatalf("counter after recount and insert = %d, %v; want 4", got, err)
		}
	})
}

// A transaction that holds counter slots, like one of a replica cut off
// mid-transaction until its lease ends, makes no other writer wait while
// a slot is free; with every slot held, writers wait for one.
func TestCounterSlotsHeldElsewhereDoNotBlockWriters(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		s := openMigrated(t, url)
		// hold locks slots 0..upTo-1 one by one, as writers do (an IN list
		// may scan and lock the whole table on MariaDB).
		hold := func(upTo int) (release func()) {
			t.Helper()
			tx, err := s.sqlDB.BeginTx(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			for slot := range upTo {
				if _, err := tx.Exec(fmt.Sprintf("UPDATE user_counts SET n = n WHERE slot = %d", slot)); err != nil {
					t.Fatal(err)
				}
			}
			return func() { _ = tx.Rollback() }
		}
		insertWithin := func(email string, bound time.Duration) time.Duration {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			u := newUser("A", "Held", email, 0)
			start := time.Now()
			if err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.InsertUser(ctx, &u) }); err != nil {
				t.Fatalf("insert %s with counter slots held elsewhere: %v", email, err)
			}
			return time.Since(start)
		}

		release := hold(userCountSlots - 1) // all but the last
		for i := range 8 {
			insertWithin(fmt.Sprintf("free-%d@example.com", i), 2*time.Second)
		}
		release()

		release = hold(userCountSlots)
		time.AfterFunc(500*time.Millisecond, release)
		if took := insertWithin("waits@example.com", 10*time.Second); took < 400*time.Millisecond {
			t.Errorf("insert with every slot held took %v; want it to wait for the holder (500ms)", took)
		}
		if n, err := s.countAll(context.Background()); err != nil || n != 9 {
			t.Fatalf("counter = %d, %v; want 9", n, err)
		}
	})
}
