package domain

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrInvalidCredentials means a credentials check failed: the email is
// unknown or the password wrong. Which one is never told.
var ErrInvalidCredentials = errors.New("invalid credentials")

// MsgInvalidCredentials is the one answer to a failed check, whatever failed.
const MsgInvalidCredentials = "Unable to log in with provided credentials." //nolint:gosec // G101: a message, not a credential

// MsgLockedOut is the answer during a lockout.
const MsgLockedOut = "Too many failed attempts. Try again later."

// LockedOutError refuses a check while its email is locked out. It matches
// ErrLockedOut.
type LockedOutError struct {
	RetryAfter time.Duration
}

// ErrLockedOut matches every LockedOutError.
var ErrLockedOut = errors.New("locked out")

func (e *LockedOutError) Error() string {
	return fmt.Sprintf("locked out for %s", e.RetryAfter)
}
func (e *LockedOutError) Is(target error) bool { return target == ErrLockedOut }

// Credentials are an email and password to check.
type Credentials struct {
	Email    string // normalised as user emails are: trimmed, lower-cased
	Password string // exactly as sent
}

// Credentials validates the shape of a check's input: both fields present,
// text, not blank, no longer than a stored value can be. The password is
// not held to the current minimum length, which may have grown since it was
// set. An email that is no valid address is simply unknown.
func (r Rules) Credentials(in Input) (Credentials, error) {
	errs := &ValidationError{}
	for field, msg := range in.Rejected {
		if field == FieldEmail || field == FieldPassword {
			errs.Add(field, msg)
		}
	}
	text := func(field string, v *string, max int, trim bool) *string {
		if _, rejected := in.Rejected[field]; rejected {
			return nil
		}
		return r.text(errs, field, v, true, 1, max, trim)
	}
	email := text(FieldEmail, in.Email, MaxEmailLength, true)
	password := text(FieldPassword, in.Password, MaxPasswordLength, false)
	if err := errs.OrNil(); err != nil {
		return Credentials{}, err
	}
	return Credentials{Email: strings.ToLower(*email), Password: *password}, nil
}

// LoginPolicy is the brute-force lockout: after MaxFailures failed checks
// of one email within Window, checks of it are refused until Lockout has
// passed since the last failure. MaxFailures 0 turns it off.
type LoginPolicy struct {
	MaxFailures int
	Window      time.Duration
	Lockout     time.Duration
}

// Enabled reports whether failures are counted at all.
func (p LoginPolicy) Enabled() bool { return p.MaxFailures > 0 }

// Retention is how long a failure record matters: past both its window and
// a lockout it may have started, it can be removed.
func (p LoginPolicy) Retention() time.Duration { return max(p.Window, p.Lockout) }

// LoginFailures is the failure count of one email.
type LoginFailures struct {
	Count       int
	WindowStart time.Time // first failure of the current window
	LastFailure time.Time
}

// LockedFor returns how long checks stay refused at now (0: not locked).
func (p LoginPolicy) LockedFor(f LoginFailures, now time.Time) time.Duration {
	if !p.Enabled() || f.Count < p.MaxFailures {
		return 0
	}
	return max(f.LastFailure.Add(p.Lockout).Sub(now), 0)
}
