package gormstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/marketplace/usersvc/test/netfault"
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
				_, unlock, ok, err := st.TryLock(ctx)
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
			if _, _, ok, err := s.TryLock(hctx); !ok || err != nil {
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
	awaitLockWithin(t, st, 5*time.Second, freedBy)
}

func awaitLockWithin(t *testing.T, st *Store, within time.Duration, freedBy string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, unlock, ok, err := st.TryLock(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			unlock()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock still held %v after %s", within, freedBy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRelayLockIsPerDatabase(t *testing.T) {
	a := openMigrated(t, "sqlite://:memory:")
	b := openMigrated(t, "sqlite://:memory:")
	_, ua, ok, err := a.TryLock(context.Background())
	if !ok || err != nil {
		t.Fatalf("a.TryLock = %v, %v", ok, err)
	}
	defer ua()
	_, ub, ok, err := b.TryLock(context.Background())
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
	_, unlockA, okA, errA := a.TryLock(ctx)
	_, unlockB, okB, errB := b.TryLock(ctx)
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
	if _, _, ok, err := holder.TryLock(ctx); !ok || err != nil {
		t.Fatalf("holder TryLock = %v, %v", ok, err)
	}
	if _, _, ok, err := other.TryLock(ctx); ok || err != nil {
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

// A relay lock holder cut off from the database without a reset (a
// blackholed route: its connection stays open, nothing arrives) must not
// keep the lock: the server ends its session after the lease, so another
// replica takes over, and the holder learns it lost the lock before that
// (its held context ends), so two relays never publish at once.
func TestRelayLockLeaseOfABlackholedHolder(t *testing.T) {
	const lease = 2 * time.Second
	for _, b := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"mysql", freshMySQLDatabase},
		{"postgres", freshPostgresDatabase},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			direct := b.url(t)
			other := openMigrated(t, direct)
			proxy, proxied := netfault.ForURL(t, "db-"+b.name, direct)
			holder, err := Open(context.Background(), Config{URL: proxied, LockLease: lease, StatementTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = holder.Close() })

			held, unlock, ok, err := holder.TryLock(context.Background())
			if !ok || err != nil {
				t.Fatalf("holder TryLock = %v, %v", ok, err)
			}
			defer unlock()
			if _, _, ok, err := other.TryLock(context.Background()); ok || err != nil {
				t.Fatalf("other TryLock while held = %v, %v; want false", ok, err)
			}

			cut := time.Now()
			proxy.Blackhole(t)
			select {
			case <-held.Done():
				if lost := time.Since(cut); lost >= lease {
					t.Errorf("the holder learnt it lost the lock %v after the cut, not before the lease (%v) ended", lost, lease)
				}
			case <-time.After(2 * lease):
				t.Fatalf("the cut-off holder still believes it holds the lock %v after the cut", 2*lease)
			}
			awaitLockWithin(t, other, lease+3*time.Second, "its holder was blackholed")
			if took := time.Since(cut); took < lease-time.Second {
				t.Errorf("another store took the lock %v after the cut, before the lease (%v) could end", took, lease)
			}
			proxy.Heal(t)
		})
	}
}

// A relay that finds the lock taken gives its connection back to the pool
// without the lease's short idle timeout: on PostgreSQL the server would
// otherwise end that pooled session, under whichever request used it next.
func TestBusyLockLeavesNoLeaseInThePool(t *testing.T) {
	const lease = 3 * time.Second
	direct := freshPostgresDatabase(t)
	holder := openMigrated(t, direct)
	if _, unlock, ok, err := holder.TryLock(context.Background()); !ok || err != nil {
		t.Fatalf("holder TryLock = %v, %v", ok, err)
	} else {
		defer unlock()
	}
	other, err := Open(context.Background(), Config{URL: direct, LockLease: lease})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	other.DB().SetMaxOpenConns(1) // the next query gets the lock attempt's connection
	if _, _, ok, err := other.TryLock(context.Background()); ok || err != nil {
		t.Fatalf("TryLock while held elsewhere = %v, %v; want false", ok, err)
	}
	var idle string
	if err := other.DB().QueryRow("SELECT current_setting('idle_session_timeout')").Scan(&idle); err != nil {
		t.Fatal(err)
	}
	if idle != "0" {
		t.Errorf("a pooled session has idle_session_timeout %s after a busy lock attempt, want 0", idle)
	}
}

// A replica cut off in the middle of a transaction must not keep its row
// locks: a PostgreSQL session idle inside a transaction for the lock lease
// is ended by the server, and another store updates the row.
func TestPostgresIdleTransactionEndsAfterTheLease(t *testing.T) {
	const lease = time.Second
	direct := freshPostgresDatabase(t)
	other := openMigrated(t, direct)
	stuck, err := Open(context.Background(), Config{URL: direct, LockLease: lease})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stuck.Close() })
	tx, err := stuck.DB().BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Exec("UPDATE user_counts SET n = n WHERE slot = 0"); err != nil {
		t.Fatal(err)
	}
	// The transaction now waits on its client, as one whose replica was
	// cut off does.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), lease+5*time.Second)
	defer cancel()
	if _, err := other.DB().ExecContext(ctx, "UPDATE user_counts SET n = n WHERE slot = 0"); err != nil {
		t.Fatalf("update of the row the idle transaction locked: %v after %v", err, time.Since(start))
	}
	if took := time.Since(start); took < lease/2 {
		t.Errorf("the row was free after %v: the idle transaction never held it", took)
	}
	t.Logf("the row was free %v after the transaction went idle (lease %v)", time.Since(start), lease)
}
