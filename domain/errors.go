// Package domain holds the users service's core model: the User, its
// validation rules, the country policy and the events a mutation produces.
// It imports nothing but the standard library.
package domain

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

var (
	// ErrNotFound means the user (or another addressed resource) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrEmailTaken means another user already has this email (compared case-insensitively).
	ErrEmailTaken = errors.New("user with this email already exists")
	// ErrPreconditionFailed means an If-Match version did not match the stored one.
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrInvalidPage means a list page past the last one (or not a positive number) was asked for.
	ErrInvalidPage = errors.New("invalid page")
	// ErrUnavailable matches every UnavailableError: a dependency could not answer.
	ErrUnavailable = errors.New("dependency unavailable")
)

// Messages shared by validation rules and by adapters that validate the
// shape of input before the domain sees it.
const (
	MsgRequired   = "This field is required."
	MsgBlank      = "This field may not be blank."
	MsgEmail      = "Enter a valid email address."
	MsgEmailTaken = "user with this email already exists."
	MsgNotString  = "Not a valid string."
)

// MsgMaxLength and MsgMinLength format the length rules' messages.
func MsgMaxLength(n int) string {
	return fmt.Sprintf("Ensure this field has no more than %d characters.", n)
}
func MsgMinLength(n int) string {
	return fmt.Sprintf("Ensure this field has at least %d characters.", n)
}

// ValidationError lists, per field, every rule the input broke.
type ValidationError struct {
	Fields map[string][]string
}

// Add records one message for a field.
func (e *ValidationError) Add(field, msg string) {
	if e.Fields == nil {
		e.Fields = make(map[string][]string)
	}
	e.Fields[field] = append(e.Fields[field], msg)
}

// Merge adds every message of other.
func (e *ValidationError) Merge(other *ValidationError) {
	if other == nil {
		return
	}
	for f, msgs := range other.Fields {
		for _, m := range msgs {
			e.Add(f, m)
		}
	}
}

// OrNil returns e when it holds at least one message, else nil, so callers
// can `return v.OrNil()` without a typed-nil error.
func (e *ValidationError) OrNil() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

func (e *ValidationError) Error() string {
	names := make([]string, 0, len(e.Fields))
	for f := range e.Fields {
		names = append(names, f)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, f := range names {
		parts = append(parts, f+": "+strings.Join(e.Fields[f], " "))
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// FieldError builds a ValidationError with a single message.
func FieldError(field, msg string) *ValidationError {
	v := &ValidationError{}
	v.Add(field, msg)
	return v
}

// UnavailableError reports that a dependency (database, geolocation
// provider) failed to answer; callers should retry later. It matches
// ErrUnavailable with errors.Is.
type UnavailableError struct {
	Dependency string // human name, e.g. "Geolocation", "Database"
	Err        error
}

// Unavailable wraps err as a failure of the named dependency.
func Unavailable(dependency string, err error) *UnavailableError {
	return &UnavailableError{Dependency: dependency, Err: err}
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%s unavailable: %v", strings.ToLower(e.Dependency), e.Err)
}
func (e *UnavailableError) Unwrap() error        { return e.Err }
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Dependency names used in UnavailableError.
const (
	DependencyDatabase    = "Database"
	DependencyGeolocation = "Geolocation"
	DependencyRateLimiter = "Rate limiter"
)

// Messages for text that is not clean UTF-8.
const (
	MsgNullChar    = "Null characters are not allowed."
	MsgInvalidUTF8 = "Not valid UTF-8 text."
)

// ErrOverloaded matches every OverloadedError: the service has more work of
// one kind queued than it accepts, and refuses more rather than letting
// answers wait without bound.
var ErrOverloaded = errors.New("overloaded")

// OverloadedError names the saturated resource (e.g. ResourcePasswordHashing).
type OverloadedError struct {
	Resource string
}

func (e *OverloadedError) Error() string        { return e.Resource + " overloaded: queue full" }
func (e *OverloadedError) Is(target error) bool { return target == ErrOverloaded }

// ResourcePasswordHashing is the bounded pool hashing and checking passwords.
const ResourcePasswordHashing = "password hashing"
