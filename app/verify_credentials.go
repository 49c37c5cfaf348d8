package app

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Outcomes of a credentials check, reported to a CredentialsObserver.
const (
	CheckSucceeded = "success"
	CheckFailed    = "failure"
	CheckLocked    = "locked"   // refused during a lockout, nothing hashed
	LockoutStarted = "lockout"  // a failure that reached the limit
	HashUpgraded   = "rehashed" // a successful check replaced an old hash
)

// CredentialsObserver counts credential checks (metrics). It must be cheap
// and safe for concurrent use.
type CredentialsObserver interface {
	ObserveCredentials(outcome string)
}

// CredentialsStore is what the check needs of the database.
type CredentialsStore interface {
	ports.UserReader
	ports.LoginFailureStore
	ports.PasswordHashReplacer
}

// Hasher is a password hasher that also tells which stored hashes are
// made with other parameters than the configured ones.
type Hasher interface {
	ports.PasswordHasher
	ports.RehashChecker
}

// VerifyConfig tunes VerifyCredentials.
type VerifyConfig struct {
	Policy domain.LoginPolicy
	// LogKey keys the hash of emails in logs; random (per process) when empty.
	LogKey []byte
	Logger *slog.Logger
}

// purgeEvery is how often failure records past their use are removed: the
// table holds at most what a window and a lockout plus this much of
// failures wrote.
const purgeEvery = time.Minute

// VerifyCredentials checks an email and password (the marketplace's login
// service asks), with a lockout against guessing shared by every replica,
// and no way to learn which emails exist.
type VerifyCredentials struct {
	rules    domain.Rules
	store    CredentialsStore
	hasher   Hasher
	clock    ports.Clock
	observer CredentialsObserver
	cfg      VerifyConfig

	dummyMu   sync.Mutex
	dummy     string // a hash with the current parameters, for unknown emails
	lastPurge atomic.Int64
}

// NewVerifyCredentials wires the use case.
func NewVerifyCredentials(rules domain.Rules, store CredentialsStore, hasher Hasher, clock ports.Clock, observer CredentialsObserver, cfg VerifyConfig) *VerifyCredentials {
	if len(cfg.LogKey) == 0 {
		cfg.LogKey = make([]byte, 32)
		_, _ = rand.Read(cfg.LogKey) // never fails since Go 1.24
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &VerifyCredentials{rules: rules, store: store, hasher: hasher, clock: clock, observer: observer, cfg: cfg}
}

// Do returns the user whose email and password these are. A wrong password
// and an unknown email are the same domain.ErrInvalidCredentials, at the
// same cost; a locked-out email is a *domain.LockedOutError before any
// hashing.
func (uc *VerifyCredentials) Do(ctx context.Context, in domain.Input) (domain.User, error) {
	cred, err := uc.rules.Credentials(in)
	if err != nil {
		return domain.User{}, err
	}
	key := failureKey(cred.Email)
	subject := uc.subject(cred.Email)
	policy := uc.cfg.Policy
	if policy.Enabled() {
		f, err := uc.store.LoginFailures(ctx, key)
		if err != nil {
			return domain.User{}, fmt.Errorf("check credentials: %w", err)
		}
		if wait := policy.LockedFor(f, uc.clock.Now()); wait > 0 {
			uc.report(ctx, CheckLocked, subject)
			return domain.User{}, &domain.LockedOutError{RetryAfter: wait}
		}
	}
	u, found, err := uc.findUser(ctx, cred.Email)
	if err != nil {
		return domain.User{}, fmt.Errorf("check credentials: %w", err)
	}
	stored := u.PasswordHash
	if !found {
		if stored, err = uc.dummyHash(ctx); err != nil {
			return domain.User{}, fmt.Errorf("check credentials: %w", err)
		}
	}
	ok, err := uc.hasher.Verify(ctx, stored, cred.Password)
	if err != nil {
		return domain.User{}, fmt.Errorf("check credentials of user %d: %w", u.ID, err)
	}
	if !ok || !found {
		return domain.User{}, uc.fail(ctx, key, subject)
	}
	if policy.Enabled() {
		if err := uc.store.ResetLoginFailures(ctx, key); err != nil {
			return domain.User{}, fmt.Errorf("check credentials: %w", err)
		}
	}
	uc.report(ctx, CheckSucceeded, subject)
	uc.upgrade(ctx, u, cred.Password, subject)
	return u, nil
}

// findUser looks the email up as the API's email filter does.
func (uc *VerifyCredentials) findUser(ctx context.Context, email string) (domain.User, bool, error) {
	page, err := uc.store.ListUsers(ctx, domain.ListQuery{Email: email, Page: 1, PageSize: 1})
	if err != nil || len(page.Users) == 0 {
		return domain.User{}, false, err
	}
	return page.Users[0], true, nil
}

// fail counts a failed check and reports it; the error says nothing more.
func (uc *VerifyCredentials) fail(ctx context.Context, key, subject string) error {
	policy := uc.cfg.Policy
	if policy.Enabled() {
		now := uc.clock.Now()
		f, err := uc.store.RecordLoginFailure(ctx, key, now, policy.Window)
		if err != nil {
			return fmt.Errorf("check credentials: %w", err)
		}
		if f.Count == policy.MaxFailures {
			uc.report(ctx, LockoutStarted, subject)
		}
		uc.purge(ctx, now)
	}
	uc.report(ctx, CheckFailed, subject)
	return domain.ErrInvalidCredentials
}

// purge removes expired failure records, at most once per purgeEvery per
// process; a failure to purge is only logged (the next one catches up).
func (uc *VerifyCredentials) purge(ctx context.Context, now time.Time) {
	last := uc.lastPurge.Load()
	if now.UnixNano()-last < int64(purgeEvery) || !uc.lastPurge.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	n, err := uc.store.PurgeLoginFailures(ctx, now.Add(-uc.cfg.Policy.Retention()))
	if err != nil {
		uc.cfg.Logger.WarnContext(ctx, "purge login failures", slog.String("error", err.Error()))
		return
	}
	if n > 0 {
		uc.cfg.Logger.DebugContext(ctx, "purged login failures", slog.Int64("removed", n))
	}
}

// upgrade replaces a hash made with other parameters by one with the
// configured ones, touching nothing else of the user. It is best effort:
// the check already succeeded, and the next one tries again.
func (uc *VerifyCredentials) upgrade(ctx context.Context, u domain.User, password, subject string) {
	if !uc.hasher.NeedsRehash(u.PasswordHash) {
		return
	}
	fresh, err := uc.hasher.Hash(ctx, password)
	if err == nil {
		var replaced bool
		if replaced, err = uc.store.ReplacePasswordHash(ctx, u.ID, u.PasswordHash, fresh); err == nil && replaced {
			uc.report(ctx, HashUpgraded, subject)
			return
		}
	}
	if err != nil {
		uc.cfg.Logger.WarnContext(ctx, "password hash upgrade failed", slog.Int64("user_id", u.ID), slog.String("error", err.Error()))
	}
}

// dummyHash is a hash of a random password with the current parameters,
// made once, so that an unknown email costs what a wrong password costs.
func (uc *VerifyCredentials) dummyHash(ctx context.Context) (string, error) {
	uc.dummyMu.Lock()
	defer uc.dummyMu.Unlock()
	if uc.dummy == "" {
		b := make([]byte, 18)
		_, _ = rand.Read(b)
		h, err := uc.hasher.Hash(ctx, hex.EncodeToString(b))
		if err != nil {
			return "", err
		}
		uc.dummy = h
	}
	return uc.dummy, nil
}

func (uc *VerifyCredentials) report(ctx context.Context, outcome, subject string) {
	if uc.observer != nil {
		uc.observer.ObserveCredentials(outcome)
	}
	level := slog.LevelInfo
	if outcome == CheckFailed || outcome == CheckLocked || outcome == LockoutStarted {
		level = slog.LevelWarn
	}
	uc.cfg.Logger.Log(ctx, level, "credentials check", slog.String("outcome", outcome), slog.String("email_hash", subject))
}

// failureKey is the database key of an email's failures: a hash, so that
// the table names no address (sprayed or real).
func failureKey(email string) string {
	sum := sha256.Sum256([]byte("usersvc login failures\x00" + email))
	return hex.EncodeToString(sum[:])
}

// subject is a short keyed hash of the email for logs: one account's
// attempts can be followed without the address in clear.
func (uc *VerifyCredentials) subject(email string) string {
	m := hmac.New(sha256.New, uc.cfg.LogKey)
	m.Write([]byte(email))
	return hex.EncodeToString(m.Sum(nil)[:8])
}
