package apptest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Operation names of the credential ports, for FailNext, FailAlways and
// Calls.
const (
	OpLoginFailures       = "LoginFailures"
	OpRecordLoginFailure  = "RecordLoginFailure"
	OpResetLoginFailures  = "ResetLoginFailures"
	OpPurgeLoginFailures  = "PurgeLoginFailures"
	OpReplacePasswordHash = "ReplacePasswordHash"
)

var (
	_ ports.LoginFailureStore    = (*Store)(nil)
	_ ports.PasswordHashReplacer = (*Store)(nil)
	_ ports.RehashChecker        = (*Hasher)(nil)
)

// LoginFailures implements ports.LoginFailureStore.
func (s *Store) LoginFailures(ctx context.Context, key string) (domain.LoginFailures, error) {
	if err := s.enter(ctx, OpLoginFailures); err != nil {
		return domain.LoginFailures{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures[key], nil
}

// RecordLoginFailure implements ports.LoginFailureStore; the store's mutex
// makes the read-modify-write atomic, as the databases' upsert is.
func (s *Store) RecordLoginFailure(ctx context.Context, key string, at time.Time, window time.Duration) (domain.LoginFailures, error) {
	if err := s.enter(ctx, OpRecordLoginFailure); err != nil {
		return domain.LoginFailures{}, err
	}
	at = storedTime(at)
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.failures[key]
	if !ok || !f.WindowStart.After(at.Add(-window)) {
		f = domain.LoginFailures{WindowStart: at}
	}
	f.Count++
	f.LastFailure = at
	if s.failures == nil {
		s.failures = make(map[string]domain.LoginFailures)
	}
	s.failures[key] = f
	return f, nil
}

// ResetLoginFailures implements ports.LoginFailureStore.
func (s *Store) ResetLoginFailures(ctx context.Context, key string) error {
	if err := s.enter(ctx, OpResetLoginFailures); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failures, key)
	return nil
}

// PurgeLoginFailures implements ports.LoginFailureStore.
func (s *Store) PurgeLoginFailures(ctx context.Context, cutoff time.Time) (int64, error) {
	if err := s.enter(ctx, OpPurgeLoginFailures); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for key, f := range s.failures {
		if f.LastFailure.Before(cutoff) {
			delete(s.failures, key)
			n++
		}
	}
	return n, nil
}

// FailureKeys counts the keys holding a failure record (to see purges).
func (s *Store) FailureKeys() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.failures)
}

// ReplacePasswordHash implements ports.PasswordHashReplacer on committed
// data: only the hash changes, and only while it is still oldHash.
func (s *Store) ReplacePasswordHash(ctx context.Context, id int64, oldHash, newHash string) (bool, error) {
	if err := s.enter(ctx, OpReplacePasswordHash); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok || u.PasswordHash != oldHash {
		return false, nil
	}
	u.PasswordHash = newHash
	s.users[id] = u
	return true, nil
}

// legacyPrefix marks hashes "made with other parameters": Verify accepts
// them, NeedsRehash asks for them to be replaced.
const legacyPrefix = hashPrefix + "legacy$"

// LegacyHashOf is a hash of password as an older configuration made it.
func LegacyHashOf(password string) string {
	sum := sha256.Sum256([]byte("legacy\x00" + password))
	return legacyPrefix + hex.EncodeToString(sum[:])
}

// NeedsRehash implements ports.RehashChecker: the legacy hashes do.
func (h *Hasher) NeedsRehash(hash string) bool {
	h.mu.Lock()
	h.rehashCalls++
	h.mu.Unlock()
	return strings.HasPrefix(hash, legacyPrefix)
}

// RehashCalls counts NeedsRehash calls.
func (h *Hasher) RehashCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rehashCalls
}

// matches compares a stored hash (current or legacy) with password in
// constant time.
func matches(hash, password string) bool {
	want := HashOf(password)
	if strings.HasPrefix(hash, legacyPrefix) {
		want = LegacyHashOf(password)
	}
	return subtle.ConstantTimeCompare([]byte(hash), []byte(want)) == 1
}
