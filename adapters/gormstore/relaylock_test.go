package gormstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestRelayLockIsExclusiveAcrossStores takes the lock through two stores
// on one database, as two replicas would (the shared suite,
// TestUserStoreContract, checks one store). An in-memory SQLite database
// cannot be shared, so it is not among them.
func TestRelayLockIsExclusiveAcrossStores(t *testing.T) {
	shared := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite-file", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "users.db") }},
		{"mysql", freshMySQLDatabase},
		{"postgres", freshPostgresDatabase},
	}
	for _, b := range shared {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := b.url(t)
			s, other := openMigrated(t, url), openStore(t, url)
			mustLock := func(st *Store, want bool) func() {
				t.Helper()
				unlock, ok, err := st.TryLock(ctx)
				if err != nil || ok != want {
					t.Fatalf("TryLock = %v, %v; want %v", ok, err, want)
				}
				return unlock
			}
			unlock := mustLock(s, true)
			mustLock(other, false)
			unlock()
			unlockOther := mustLock(other, true)
			mustLock(s, false)
			unlockOther()

			// Ending the holder's context frees the lock for the other store.
			hctx, cancel := context.WithCancel(ctx)
			if _, ok, err := s.TryLock(hctx); !ok || err != nil {
				t.Fatalf("TryLock = %v, %v", ok, err)
			}
			mustLock(other, false)
			cancel()
			awaitLock(t, other, "its context ended")
		})
	}
}

// awaitLock fails t unless st takes the relay lock (and gives it back)
// within 5 seconds of what freed it.
func awaitLock(t *testing.T, st *Store, freedBy string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		unlock, ok, err := st.TryLock(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			unlock()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock still held 5s after %s", freedBy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRelayLockIsPerDatabase(t *testing.T) {
	a := openMigrated(t, "sqlite://:memory:")
	b := openMigrated(t, "sqlite://:memory:")
	ua, ok, err := a.TryLock(context.Background())
	if !ok || err != nil {
		t.Fatalf("a.TryLock = %v, %v", ok, err)
	}
	defer ua()
	ub, ok, err := b.TryLock(context.Background())
	if !ok || err != nil {
		t.Fatalf("b.TryLock on another database = %v, %v; want true", ok, err)
	}
	ub()
}

// MySQL named locks are server-wide; the relay lock must only exclude
// stores of the same database.
func TestRelayLockIsScopedToTheDatabase(t *testing.T) {
	ctx := context.Background()
	a := openMigrated(t, freshMySQLDatabase(t))
	b := openMigrated(t, freshMySQLDatabase(t))
	unlockA, okA, errA := a.TryLock(ctx)
	unlockB, okB, errB := b.TryLock(ctx)
	if !okA || !okB || errA != nil || errB != nil {
		t.Fatalf("TryLock on two databases = (%v, %v), (%v, %v); want both held", okA, errA, okB, errB)
	}
	unlockA()
	unlockB()
}

// The server frees a PostgreSQL relay lock when its holder's session dies
// (a crashed replica): another store takes it over.
func TestPostgresRelayLockFreedWhenHolderSessionDies(t *testing.T) {
	ctx := context.Background()
	url := freshPostgresDatabase(t)
	holder, other := openMigrated(t, url), openStore(t, url)
	if _, ok, err := holder.TryLock(ctx); !ok || err != nil {
		t.Fatalf("holder TryLock = %v, %v", ok, err)
	}
	if _, ok, err := other.TryLock(ctx); ok || err != nil {
		t.Fatalf("other TryLock while held = %v, %v; want false", ok, err)
	}
	// Kill the session holding the lock, as a crash would.
	var lockPID int
	err := holder.sqlDB.QueryRowContext(ctx,
		"SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = ($1::bigint & x'ffffffff'::bigint)::oid AND granted",
		advisoryKey(relayLockName)).Scan(&lockPID)
	if err != nil {
		t.Fatalf("find the lock holder's session: %v", err)
	}
	if _, err := other.sqlDB.ExecContext(ctx, "SELECT pg_terminate_backend($1)", lockPID); err != nil {
		t.Fatalf("terminate the holder's session: %v", err)
	}
	awaitLock(t, other, "its session was terminated")
}
