package gormstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

func TestMigrateFromEmptyIsIdempotent(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		cur, latest, err := s.MigrationVersion(ctx)
		if err != nil || cur != 0 || latest < 2 {
			t.Fatalf("before: version %d of %d, %v; want 0 of >= 2", cur, latest, err)
		}
		for run := 1; run <= 2; run++ {
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate run %d: %v", run, err)
			}
			if cur, latest, err = s.MigrationVersion(ctx); err != nil || cur != latest {
				t.Fatalf("after run %d: version %d of %d, %v", run, cur, latest, err)
			}
		}
		// The schema works, and a second store on the same database (another
		// replica starting) migrates to a no-op.
		insert(t, s, newUser("A", "B", "a@example.com", 0))
		if url != "sqlite://:memory:" {
			if err := openStore(t, url).Migrate(ctx); err != nil {
				t.Fatalf("second store Migrate: %v", err)
			}
		}
	})
}

// TestDuplicateEventIDRollsBack makes a statement of the transaction fail
// in the database (the outbox's unique event id): Do must roll back the
// user written before it, counter included, and return the database's
// error without passing it off as a domain error. The shared suite
// (TestUserStoreContract) covers rollbacks the function asks for.
func TestDuplicateEventIDRollsBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		insert(t, s, newUser("Kept", "User", "kept@example.com", 0))
		err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
			u := newUser("Gone", "User", "gone@example.com", 0)
			if err := tx.InsertUser(ctx, &u); err != nil {
				return err
			}
			if err := tx.AppendMessage(ctx, message("ev-dup", t0)); err != nil {
				return err
			}
			return tx.AppendMessage(ctx, message("ev-dup", t0))
		})
		if err == nil {
			t.Fatal("Do succeeded with a duplicate event id")
		}
		if errors.Is(err, domain.ErrEmailTaken) || errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrUnavailable) {
			t.Fatalf("Do = %v, mapped to a domain error it is not", err)
		}
		var users, msgs int64
		if err := s.db.Model(&userRow{}).Count(&users).Error; err != nil {
			t.Fatal(err)
		}
		if err := s.db.Model(&outboxRow{}).Count(&msgs).Error; err != nil {
			t.Fatal(err)
		}
		if users != 1 || msgs != 0 {
			t.Fatalf("after rollback: %d users, %d outbox rows; want 1 and 0", users, msgs)
		}
		if n, err := s.countAll(context.Background()); err != nil || n != 1 {
			t.Fatalf("counter after rollback = %d, %v; want 1", n, err)
		}
	})
}

// TestDeadlockIsRetried makes two transactions lock two users in opposite
// orders; the server (MySQL 1213, PostgreSQL 40P01) kills one as a deadlock
// victim, and Do must run it again so that both succeed. (SQLite has one
// writer at a time: no deadlock.)
func TestDeadlockIsRetried(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		s := openMigrated(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ids := insert(t, s, newUser("A", "A", "a@example.com", 0), newUser("B", "B", "b@example.com", 0))
		var (
			both     sync.WaitGroup
			attempts [2]int
			mu       sync.Mutex
		)
		both.Add(2)
		lockBoth := func(i int, first, second int64) error {
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
				mu.Lock()
				attempts[i]++
				firstTry := attempts[i] == 1
				mu.Unlock()
				u, err := tx.LockUser(ctx, first)
				if err != nil {
					return err
				}
				if firstTry {
					both.Done() // each holds its first lock ...
					both.Wait() // ... before asking for the other's
				}
				if _, err := tx.LockUser(ctx, second); err != nil {
					return err
				}
				u.Touch(t0)
				return tx.UpdateUser(ctx, u)
			})
		}
		errs := make(chan error, 2)
		go func() { errs <- lockBoth(0, ids[0], ids[1]) }()
		go func() { errs <- lockBoth(1, ids[1], ids[0]) }()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("Do: %v", err)
			}
		}
		if attempts[0]+attempts[1] < 3 {
			t.Fatalf("attempts %v: expected one transaction to be retried after a deadlock", attempts)
		}
	})
}

// Users created before migration 00003 have no country: the column is
// added as NULL, such users read back without one and no country filter
// matches them; new users keep theirs. The migration also goes down and up
// again.
func TestCountryMigrationLeavesOlderUsersWithoutOne(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		p := migrateUpTo(t, s, 2)
		// A row as the schema before 00003 knew it.
		at := dbTime(t0)
		err := s.db.WithContext(ctx).Exec(`INSERT INTO users (email, email_ci, first_name, first_name_ci, last_name, last_name_ci,
			address, password_hash, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			"old@example.com", "old@example.com", "Old", "old", "User", "user", "", "hash", 1, at, at).Error
		if err != nil {
			t.Fatalf("insert a user before 00003: %v", err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if _, err := s.RecountUsers(ctx); err != nil {
			t.Fatal(err)
		}
		old, err := s.ListUsers(ctx, domain.ListQuery{Email: "old@example.com", Page: 1, PageSize: 10})
		if err != nil || len(old.Users) != 1 || old.Users[0].Country != "" {
			t.Fatalf("the older user after 00003 = %+v, %v; want one, without a country", old.Users, err)
		}
		u := newUser("New", "User", "new@example.com", time.Second)
		u.Country = "CH"
		newID := insert(t, s, u)[0]
		for _, codes := range [][]string{{"CH"}, {"CH", "DE"}} {
			page, err := s.ListUsers(ctx, domain.ListQuery{Countries: codes, Page: 1, PageSize: 10})
			if err != nil || page.Total != 1 || len(page.Users) != 1 || page.Users[0].ID != newID || page.Users[0].Country != "CH" {
				t.Errorf("countries %v: %+v, %v; want only the new user, from CH", codes, page, err)
			}
		}
		if _, err := p.DownTo(ctx, 2); err != nil {
			t.Fatalf("migrate down to 2: %v", err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
		if got, err := s.GetUser(ctx, newID); err != nil || got.Country != "" {
			t.Errorf("after down and up, the new user = %+v, %v; want it without a country", got, err)
		}
	})
}
