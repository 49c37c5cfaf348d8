package gormstore

import (
	"context"
	"testing"
	"time"
)

func TestRelayLockIsExclusive(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openMigrated(t, url)
		// Another replica on the same database: a second store (an
		// in-memory database cannot be shared, so it is the same store).
		other := s
		if url != "sqlite://:memory:" {
			other = openStore(t, url)
		}
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
		mustLock(s, false)
		unlock()
		unlock() // idempotent
		unlockOther := mustLock(other, true)
		mustLock(s, false)
		unlockOther()

		// Ending the holder's context releases the lock too.
		hctx, cancel := context.WithCancel(ctx)
		if _, ok, err := s.TryLock(hctx); !ok || err != nil {
			t.Fatalf("TryLock = %v, %v", ok, err)
		}
		mustLock(other, false)
		cancel()
		deadline := time.Now().Add(5 * time.Second)
		for {
			unlock, ok, err := other.TryLock(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				unlock()
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("lock still held 5s after its context ended")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
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
