package porttest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// CredentialStore is a store that also keeps login failures and can
// upgrade a password hash in place.
type CredentialStore interface {
	UserStore
	ports.LoginFailureStore
	ports.PasswordHashReplacer
}

// RunCredentialStoreContract proves a store against the ports of
// credential checks:
//   - LoginFailures of an unknown key is the zero record;
//   - RecordLoginFailure counts up from 1 within a window, starts again at 1
//     (window moved to the failure) once at-window reaches the window's
//     start, always records the last failure, and loses no increment under
//     concurrent calls (each call sees its own count: 1..n, once each);
//   - keys are independent; ResetLoginFailures forgets one key;
//   - PurgeLoginFailures removes exactly the records last failed before
//     the cutoff, and says how many;
//   - ReplacePasswordHash changes only the hash, only while the stored hash
//     is the old one (false otherwise, and for a missing user).
func RunCredentialStoreContract(t *testing.T, newStore func(t *testing.T) CredentialStore) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s CredentialStore)
	}{
		{"failures count, window and reset", testFailureCounts},
		{"concurrent failures lose no increment", testFailureRace},
		{"purge removes only expired records", testFailurePurge},
		{"hash replaced only while unchanged, nothing else", testReplaceHash},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

const window = 15 * time.Minute

func checkFailures(t *testing.T, what string, got domain.LoginFailures, count int, start, last time.Time) {
	t.Helper()
	if got.Count != count || !sameTime(got.WindowStart, start) || !sameTime(got.LastFailure, last) {
		t.Errorf("%s: %+v; want count %d, window from %s, last %s", what, got, count, start, last)
	}
}

func testFailureCounts(t *testing.T, s CredentialStore) {
	ctx := context.Background()
	none, err := s.LoginFailures(ctx, "k1")
	mustNotFail(t, "LoginFailures", err)
	if none != (domain.LoginFailures{}) {
		t.Errorf("unknown key: %+v, want the zero record", none)
	}
	at := func(d time.Duration) time.Time { return t0.Add(d).Add(123456789 * time.Nanosecond) }
	for i, d := range []time.Duration{0, time.Minute, 14 * time.Minute} {
		got, err := s.RecordLoginFailure(ctx, "k1", at(d), window)
		mustNotFail(t, "RecordLoginFailure", err)
		checkFailures(t, fmt.Sprintf("failure %d", i+1), got, i+1, at(0), at(d))
	}
	read, err := s.LoginFailures(ctx, "k1")
	mustNotFail(t, "LoginFailures", err)
	checkFailures(t, "read back", read, 3, at(0), at(14*time.Minute))
	other, err := s.RecordLoginFailure(ctx, "k2", at(time.Minute), window)
	mustNotFail(t, "RecordLoginFailure k2", err)
	checkFailures(t, "another key", other, 1, at(time.Minute), at(time.Minute))
	// The window began exactly 15 minutes before: a new one starts.
	got, err := s.RecordLoginFailure(ctx, "k1", at(window), window)
	mustNotFail(t, "RecordLoginFailure", err)
	checkFailures(t, "first failure of a new window", got, 1, at(window), at(window))
	got, err = s.RecordLoginFailure(ctx, "k1", at(window+time.Second), window)
	mustNotFail(t, "RecordLoginFailure", err)
	checkFailures(t, "second failure of the new window", got, 2, at(window), at(window+time.Second))

	mustNotFail(t, "ResetLoginFailures", s.ResetLoginFailures(ctx, "k1"))
	if got, _ := s.LoginFailures(ctx, "k1"); got != (domain.LoginFailures{}) {
		t.Errorf("after reset: %+v, want the zero record", got)
	}
	mustNotFail(t, "ResetLoginFailures of an unknown key", s.ResetLoginFailures(ctx, "k9"))
	if got, _ := s.LoginFailures(ctx, "k2"); got.Count != 1 {
		t.Errorf("reset of k1 changed k2: %+v", got)
	}
}

func testFailureRace(t *testing.T, s CredentialStore) {
	const n = 16
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts []int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.RecordLoginFailure(context.Background(), "raced", t0.Add(time.Duration(i)*time.Millisecond), window)
			if err != nil {
				t.Errorf("RecordLoginFailure: %v", err)
				return
			}
			mu.Lock()
			counts = append(counts, got.Count)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(counts)
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(counts, want) {
		t.Errorf("counts seen by %d concurrent failures: %v, want 1..%d once each", n, counts, n)
	}
	got, err := s.LoginFailures(context.Background(), "raced")
	mustNotFail(t, "LoginFailures", err)
	if got.Count != n {
		t.Errorf("count after %d concurrent failures: %d", n, got.Count)
	}
}

func testFailurePurge(t *testing.T, s CredentialStore) {
	ctx := context.Background()
	for i, key := range []string{"old1", "old2", "edge", "new"} {
		_, err := s.RecordLoginFailure(ctx, key, t0.Add(time.Duration(i)*time.Minute), window)
		mustNotFail(t, "RecordLoginFailure", err)
	}
	n, err := s.PurgeLoginFailures(ctx, t0.Add(2*time.Minute)) // "edge" failed exactly then
	mustNotFail(t, "PurgeLoginFailures", err)
	if n != 2 {
		t.Errorf("purged %d records, want 2", n)
	}
	for key, want := range map[string]int{"old1": 0, "old2": 0, "edge": 1, "new": 1} {
		if got, _ := s.LoginFailures(ctx, key); got.Count != want {
			t.Errorf("%s after purge: count %d, want %d", key, got.Count, want)
		}
	}
}

func testReplaceHash(t *testing.T, s CredentialStore) {
	ctx := context.Background()
	u := newUser("Ada", "Lovelace", "ada@example.com", 0)
	u.Version = 3
	id := insertUsers(t, s, u)[0]
	before, err := s.GetUser(ctx, id)
	mustNotFail(t, "GetUser", err)
	const upgraded = "$argon2id$v=19$m=9216,t=4,p=1$bmV3c2FsdA$bmV3aGFzaA"
	ok, err := s.ReplacePasswordHash(ctx, id, before.PasswordHash, upgraded)
	if err != nil || !ok {
		t.Fatalf("ReplacePasswordHash(current hash) = %v, %v; want true", ok, err)
	}
	after, err := s.GetUser(ctx, id)
	mustNotFail(t, "GetUser", err)
	want := before
	want.PasswordHash = upgraded
	if after != want {
		t.Errorf("after the upgrade: %+v\nwant only the hash changed: %+v", after, want)
	}
	if ok, err := s.ReplacePasswordHash(ctx, id, before.PasswordHash, "$argon2id$stale"); ok || err != nil {
		t.Errorf("ReplacePasswordHash(stale old hash) = %v, %v; want false, nil", ok, err)
	}
	if got, _ := s.GetUser(ctx, id); got.PasswordHash != upgraded {
		t.Errorf("a stale replacement changed the hash to %q", got.PasswordHash)
	}
	if ok, err := s.ReplacePasswordHash(ctx, id+1000, upgraded, "$argon2id$x"); ok || err != nil {
		t.Errorf("ReplacePasswordHash(missing user) = %v, %v; want false, nil", ok, err)
	}
}
