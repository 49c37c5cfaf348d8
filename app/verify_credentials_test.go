package app_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/domain"
)

// outcomes records what VerifyCredentials reports to its observer.
type outcomes struct {
	mu  sync.Mutex
	got []string
}

func (o *outcomes) ObserveCredentials(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, outcome)
}

func (o *outcomes) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

// verifyFixture is a VerifyCredentials on the fakes, with its log in a
// buffer.
type verifyFixture struct {
	*fixture
	verify   *app.VerifyCredentials
	observed *outcomes
	logs     *bytes.Buffer
}

var testPolicy = domain.LoginPolicy{MaxFailures: 3, Window: 15 * time.Minute, Lockout: 10 * time.Minute}

func newVerifyFixture(t *testing.T, policy domain.LoginPolicy, logKey []byte) *verifyFixture {
	t.Helper()
	f := &verifyFixture{fixture: newFixture(t), observed: &outcomes{}, logs: &bytes.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.verify = app.NewVerifyCredentials(domain.NewRules(0), f.store, f.hasher, f.clock, f.observed,
		app.VerifyConfig{Policy: policy, LogKey: logKey, Logger: logger})
	return f
}

func creds(email, password string) domain.Input {
	return domain.Input{Email: ptr(email), Password: ptr(password)}
}

// wantInvalid fails t unless err is the one answer to a failed check.
func wantInvalid(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, domain.ErrInvalidCredentials) || err != domain.ErrInvalidCredentials { //nolint:errorlint // exactly the sentinel: nothing wrapped around the one answer
		t.Fatalf("%s: error %v, want exactly domain.ErrInvalidCredentials", what, err)
	}
}

// hashing is the number of hasher calls so far (checks and hashes).
func (f *verifyFixture) hashing() int { return f.hasher.VerifyCalls() + f.hasher.HashCalls() }

func TestVerifyCredentialsMatch(t *testing.T) {
	f := newVerifyFixture(t, testPolicy, nil)
	ada := f.seed(t, "Ada", "Lovelace", "ada@example.ch", "Zürich")
	f.seed(t, "Grace", "Hopper", "grace@example.ch", "")
	before := f.store.Users()

	// The email is matched as the API's filter matches it: trimmed,
	// case-insensitively; the password exactly.
	got, err := f.verify.Do(ctx, creds("  ADA@Example.CH ", oldPassword))
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if !reflect.DeepEqual(got, ada) {
		t.Errorf("user %+v, want %+v", got, ada)
	}
	if n := f.hasher.VerifyCalls(); n != 1 {
		t.Errorf("%d password checks, want 1", n)
	}
	if n := f.hasher.HashCalls(); n != 0 {
		t.Errorf("%d hashes made for a known email with current parameters, want 0", n)
	}
	f.assertUnchanged(t, before)
	if got := f.observed.list(); !reflect.DeepEqual(got, []string{app.CheckSucceeded}) {
		t.Errorf("observed %q, want [success]", got)
	}

	// The password is compared exactly: another case is wrong.
	_, err = f.verify.Do(ctx, creds("ada@example.ch", strings.ToUpper(oldPassword)))
	wantInvalid(t, "password in another case", err)
}

func TestVerifyCredentialsFailuresLookAlike(t *testing.T) {
	f := newVerifyFixture(t, testPolicy, nil)
	f.seed(t, "Ada", "Lovelace", "ada@example.ch", "")
	before := f.store.Users()

	_, wrong := f.verify.Do(ctx, creds("ada@example.ch", "not-the-password"))
	wantInvalid(t, "wrong password", wrong)
	if n := f.hasher.VerifyCalls(); n != 1 {
		t.Fatalf("wrong password: %d checks, want 1", n)
	}

	// An unknown email costs a check against a dummy hash made with the
	// current parameters (the fake refuses anything not its own hash, so
	// the check ran on a real hash of it).
	_, unknown := f.verify.Do(ctx, creds("nobody@example.ch", oldPassword))
	wantInvalid(t, "unknown email", unknown)
	if wrong.Error() != unknown.Error() {
		t.Errorf("the failures differ: %q and %q", wrong, unknown)
	}
	if v, h := f.hasher.VerifyCalls(), f.hasher.HashCalls(); v != 2 || h != 1 {
		t.Fatalf("unknown email: %d checks and %d hashes so far, want 2 and 1 (the dummy)", v, h)
	}
	// The dummy is made once, and checked every time.
	_, again := f.verify.Do(ctx, creds("nobody-else@example.ch", oldPassword))
	wantInvalid(t, "another unknown email", again)
	if v, h := f.hasher.VerifyCalls(), f.hasher.HashCalls(); v != 3 || h != 1 {
		t.Errorf("second unknown email: %d checks and %d hashes, want 3 and 1", v, h)
	}
	// The right password of a known user is no key to an unknown email.
	wantInvalid(t, "unknown email with a real password", func() error { _, err := f.verify.Do(ctx, creds("ghost@example.ch", oldPassword)); return err }())
	f.assertUnchanged(t, before)
	for _, secret := range []string{"ada@example.ch", "nobody@example.ch", oldPassword, "not-the-password", "fake$"} {
		if strings.Contains(f.logs.String(), secret) {
			t.Errorf("the log holds %q:\n%s", secret, f.logs)
		}
	}
}

func TestVerifyCredentialsValidation(t *testing.T) {
	tests := []struct {
		name string
		in   domain.Input
		want map[string][]string
	}{
		{"nothing", domain.Input{}, map[string][]string{"email": {domain.MsgRequired}, "password": {domain.MsgRequired}}},
		{"blank", creds("  ", ""), map[string][]string{"email": {domain.MsgBlank}, "password": {domain.MsgBlank}}},
		{"rejected types", domain.Input{Rejected: map[string]string{"email": "Not a valid string.", "password": "Not a valid string."}},
			map[string][]string{"email": {"Not a valid string."}, "password": {"Not a valid string."}}},
		{"password longer than any stored one", creds("ada@example.ch", strings.Repeat("p", domain.MaxPasswordLength+1)),
			map[string][]string{"password": {domain.MsgMaxLength(domain.MaxPasswordLength)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newVerifyFixture(t, testPolicy, nil)
			f.seed(t, "Ada", "Lovelace", "ada@example.ch", "")
			_, err := f.verify.Do(ctx, tc.in)
			wantValidation(t, err, tc.want)
			if n := f.hashing(); n != 0 {
				t.Errorf("%d hasher calls for invalid input, want 0", n)
			}
			if n := f.store.Calls(apptest.OpRecordLoginFailure); n != 0 {
				t.Errorf("invalid input counted as a failed check (%d)", n)
			}
		})
	}
}

func TestVerifyCredentialsLockout(t *testing.T) {
	for _, email := range []string{"ada@example.ch", "nobody@example.ch"} {
		t.Run(email, func(t *testing.T) {
			f := newVerifyFixture(t, testPolicy, nil)
			f.seed(t, "Ada", "Lovelace", "ada@example.ch", "")
			for i := range testPolicy.MaxFailures {
				f.clock.Advance(time.Minute)
				_, err := f.verify.Do(ctx, creds(strings.ToUpper(email), "wrong-password"))
				wantInvalid(t, "failure "+string(rune('1'+i)), err)
			}
			lastFailure := f.clock.Now()
			f.clock.Advance(4 * time.Minute)
			hashed := f.hashing()

			// Locked: even the right password, and nothing hashed.
			_, err := f.verify.Do(ctx, creds(email, oldPassword))
			var locked *domain.LockedOutError
			if !errors.As(err, &locked) || !errors.Is(err, domain.ErrLockedOut) {
				t.Fatalf("during the lockout: %v, want a *domain.LockedOutError", err)
			}
			if want := lastFailure.Add(testPolicy.Lockout).Sub(f.clock.Now()); locked.RetryAfter != want {
				t.Errorf("RetryAfter %v, want %v (the lockout counts from the last failure)", locked.RetryAfter, want)
			}
			if n := f.hashing() - hashed; n != 0 {
				t.Errorf("%d hasher calls during the lockout, want 0", n)
			}
			if n := f.store.Calls(apptest.OpRecordLoginFailure); n != testPolicy.MaxFailures {
				t.Errorf("%d failures recorded, want %d: a refused check is no new failure", n, testPolicy.MaxFailures)
			}
			want := []string{app.CheckFailed, app.CheckFailed, app.LockoutStarted, app.CheckFailed, app.CheckLocked}
			if got := f.observed.list(); !reflect.DeepEqual(got, want) {
				t.Errorf("observed %q, want %q", got, want)
			}

			// Another email is not locked by it.
			if _, err := f.verify.Do(ctx, creds("other@example.ch", "whatever-1")); !errors.Is(err, domain.ErrInvalidCredentials) {
				t.Errorf("another email during the lockout: %v, want invalid credentials", err)
			}

			// Once the lockout has passed, the right password works for
			// the known user, and the unknown email is only unknown.
			f.clock.Set(lastFailure.Add(testPolicy.Lockout))
			_, err = f.verify.Do(ctx, creds(email, oldPassword))
			if email == "ada@example.ch" && err != nil {
				t.Errorf("after the lockout: %v, want success", err)
			}
			if email != "ada@example.ch" {
				wantInvalid(t, "unknown email after the lockout", err)
			}
		})
	}
}

func TestVerifyCredentialsSuccessResetsFailures(t *testing.T) {
	f := newVerifyFixture(t, testPolicy, nil)
	f.seed(t, "Ada", "Lovelace", "ada@example.ch", "")
	for range testPolicy.MaxFailures - 1 {
		_, err := f.verify.Do(ctx, creds("ada@example.ch", "wrong-password"))
		wantInvalid(t, "failure", err)
	}
	if n := f.store.FailureKeys(); n != 1 {
		t.Fatalf("%d failure records, want 1", n)
	}
	if _, err := f.verify.Do(ctx, creds("Ada@example.ch", oldPassword)); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if n := f.store.FailureKeys(); n != 0 {
		t.Errorf("%d failure records after a success, want 0", n)
	}
	// The count starts again: MaxFailures-1 more failures lock nothing.
	for range testPolicy.MaxFailures - 1 {
		_, err := f.verify.Do(ctx, creds("ada@example.ch", "wrong-password"))
		wantInvalid(t, "failure after the reset", err)
	}
	if _, err := f.verify.Do(ctx, creds("ada@example.ch", oldPassword)); err != nil {
		t.Errorf("right password after %d new failures: %v", testPolicy.MaxFailures-1, err)
	}
}

func TestVerifyCredentialsLockoutOff(t *testing.T) {
	f := newVerifyFixture(t, domain.LoginPolicy{MaxFailures: 0, Window: time.Minute, Lockout: time.Hour}, nil)
	f.seed(t, "Ada", "Lovelace", "ada@example.ch", "")
	for range 20 {
		_, err := f.verify.Do(ctx, creds("ada@example.ch", "wrong-password"))
		wantInvalid(t, "failure", err)
	}
	if _, err := f.verify.Do(ctx, creds("ada@example.ch", oldPassword)); err != nil {
		t.Fatalf("right password after 20 failures with the lockout off: %v", err)
	}
	for _, op := range []string{apptest.OpLoginFailures, apptest.OpRecordLoginFailure, apptest.OpResetLoginFailures, apptest.OpPurgeLoginFailures} {
		if n := f.store.Calls(op); n != 0 {
			t.Errorf("%s called %d times with the lockout off, want 0", op, n)
		}
	}
}

func TestVerifyCredentialsUpgradesHash(t *testing.T) {
	f := newVerifyFixture(t, testPolicy, nil)
	ada := f.seed(t, "Ada", "Lovelace", "ada@example.ch", "")
	ada.PasswordHash = apptest.LegacyHashOf(oldPassword)
	ada, err := f.store.Put(ada)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour) // an updated_at moved to now would show

	got, err := f.verify.Do(ctx, creds("ada@example.ch", oldPassword))
	if err != nil {
		t.Fatalf("check against a legacy hash: %v", err)
	}
	if got.PasswordHash != ada.PasswordHash {
		t.Errorf("the answer carries hash %q, want the one checked", got.PasswordHash)
	}
	stored, _ := f.store.User(ada.ID)
	want := ada
	want.PasswordHash = apptest.HashOf(oldPassword)
	if !reflect.DeepEqual(stored, want) {
		t.Errorf("after the upgrade the user is\n%+v\nwant only the hash replaced:\n%+v", stored, want)
	}
	if n := f.hasher.HashCalls(); n != 1 {
		t.Errorf("%d hashes made, want 1 (the upgrade)", n)
	}
	f.assertEvents(t) // no event, no notification
	if f.store.Commits() != 0 {
		t.Errorf("%d units of work committed, want none: the upgrade is no mutation", f.store.Commits())
	}
	if got := f.observed.list(); !reflect.DeepEqual(got, []string{app.CheckSucceeded, app.HashUpgraded}) {
		t.Errorf("observed %q, want [success rehashed]", got)
	}

	// Upgraded once: the next check finds current parameters.
	if _, err := f.verify.Do(ctx, creds("ada@example.ch", oldPassword)); err != nil {
		t.Fatalf("check after the upgrade: %v", err)
	}
	if n := f.hasher.HashCalls(); n != 1 {
		t.Errorf("%d hashes made after a second check, want still 1", n)
	}
}

func TestVerifyCredentialsUpgradeIsBestEffort(t *testing.T) {
	tests := []struct {
		name    string
		arrange func(f *verifyFixture)
	}{
		{"hashing fails", func(f *verifyFixture) { f.hasher.FailHash(errInjected) }},
		{"store fails", func(f *verifyFixture) { f.store.FailNext(apptest.OpReplacePasswordHash, errInjected) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newVerifyFixture(t, testPolicy, nil)
			ada := f.seed(t, "Ada", "Lovelace", "ada@example.ch", "")
			ada.PasswordHash = apptest.LegacyHashOf(oldPassword)
			ada, _ = f.store.Put(ada)
			tc.arrange(f)
			if _, err := f.verify.Do(ctx, creds("ada@example.ch", oldPassword)); err != nil {
				t.Fatalf("a failed upgrade failed the check: %v", err)
			}
			if stored, _ := f.store.User(ada.ID); stored != ada {
				t.Errorf("user changed: %+v", stored)
			}
			if !strings.Contains(f.logs.String(), "password hash upgrade failed") {
				t.Errorf("the failed upgrade was not logged:\n%s", f.logs)
			}
		})
	}
}

func TestVerifyCredentialsStoreFailure(t *testing.T) {
	tests := []struct {
		name      string
		policy    domain.LoginPolicy
		op        string
		password  string
		wantHashd bool
	}{
		{"failure record unreadable", testPolicy, apptest.OpLoginFailures, oldPassword, false},
		{"user lookup fails", testPolicy, apptest.OpListUsers, oldPassword, false},
		{"failure not recorded", testPolicy, apptest.OpRecordLoginFailure, "wrong-password", true},
		{"reset fails", testPolicy, apptest.OpResetLoginFailures, oldPassword, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newVerifyFixture(t, tc.policy, nil)
			f.seed(t, "Ada", "Lovelace", "ada@example.ch", "")
			f.store.FailNext(tc.op, errInjected)
			_, err := f.verify.Do(ctx, creds("ada@example.ch", tc.password))
			// A dependency failure is neither a verdict on the password
			// nor silence: it carries the cause.
			if !errors.Is(err, errInjected) || errors.Is(err, domain.ErrInvalidCredentials) {
				t.Fatalf("error %v, want the store's failure and no verdict", err)
			}
			if hashed := f.hasher.VerifyCalls() > 0; hashed != tc.wantHashd {
				t.Errorf("password checked: %v, want %v", hashed, tc.wantHashd)
			}
		})
	}
}

// logSubjects returns the email_hash of every "credentials check" line.
func logSubjects(t *testing.T, logs *bytes.Buffer) []string {
	t.Helper()
	var subjects []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct {
			Msg       string `json:"msg"`
			EmailHash string `json:"email_hash"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "credentials check" {
			subjects = append(subjects, rec.EmailHash)
		}
	}
	return subjects
}

// TestVerifyCredentialsLogSubject: log lines name an email by a short keyed
// hash: the same for one email on every instance with the same key (so
// replicas and restarts can be followed), different for another email or
// another key, and never the address itself.
func TestVerifyCredentialsLogSubject(t *testing.T) {
	key := []byte("a-log-key-of-thirty-two-bytes-ok")
	subjects := func(logKey []byte, emails ...string) []string {
		f := newVerifyFixture(t, testPolicy, logKey)
		for _, e := range emails {
			_, _ = f.verify.Do(ctx, creds(e, "wrong-password"))
		}
		if strings.Contains(f.logs.String(), "@example.ch") {
			t.Errorf("the log names an email:\n%s", f.logs)
		}
		return logSubjects(t, f.logs)
	}
	a := subjects(key, "ada@example.ch", "ADA@example.ch ", "bob@example.ch")
	b := subjects(key, "ada@example.ch")
	if len(a) != 3 || len(b) != 1 {
		t.Fatalf("logged %d and %d check lines, want 3 and 1", len(a), len(b))
	}
	if len(a[0]) != 16 {
		t.Errorf("email_hash %q, want 16 hex digits", a[0])
	}
	if a[0] != a[1] {
		t.Errorf("one email in two spellings logged as %q and %q", a[0], a[1])
	}
	if a[0] == a[2] {
		t.Errorf("two emails logged alike: %q", a[0])
	}
	if a[0] != b[0] {
		t.Errorf("two instances with the same key logged one email as %q and %q", a[0], b[0])
	}
	if other := subjects([]byte("another-log-key-of-thirty-two-by"), "ada@example.ch"); other[0] == a[0] {
		t.Errorf("another key gave the same email_hash %q", other[0])
	}
	// Without a key each instance draws its own: not followable across
	// instances (the documented default).
	if r1, r2 := subjects(nil, "ada@example.ch"), subjects(nil, "ada@example.ch"); r1[0] == r2[0] {
		t.Errorf("two instances without a key logged the same email_hash %q", r1[0])
	}
}
