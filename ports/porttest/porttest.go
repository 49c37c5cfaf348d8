// Package porttest holds the conformance suites of the driven ports: one
// exported Run...Contract function per port, which states the port's
// semantics as subtests. Every implementation of a port (the real adapters
// and the in-memory fakes of app/apptest) calls its port's suite from its
// own tests, so swapping an adapter is proven against one executable
// contract rather than against each adapter's own idea of it.
//
// The suites import only the standard library, domain and ports: they know
// nothing of the technology under test. What a suite cannot observe through
// the port (a fresh database, the messages a bus delivered) the caller
// supplies as a function.
package porttest

import (
	"testing"
	"time"
)

// storedTime is want as a database gives it back: in UTC, truncated to the
// microsecond precision it keeps.
func storedTime(want time.Time) time.Time { return want.UTC().Truncate(time.Microsecond) }

// sameTime reports whether a store gave want back as got: in UTC, and either
// exactly (an in-memory store) or truncated to the microsecond (a database),
// never rounded.
func sameTime(got, want time.Time) bool {
	return got.Location() == time.UTC && (got.Equal(want) || got.Equal(storedTime(want)))
}

func ptr[T any](v T) *T { return &v }

// mustNotFail stops a subtest on an error of its arrangement, so that the
// assertion that follows cannot pass for the wrong reason.
func mustNotFail(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
