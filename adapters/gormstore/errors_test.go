package gormstore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/marketplace/usersvc/domain"
)

// PostgreSQL errors are classified by SQLSTATE; the cases a test server
// cannot be made to produce on demand are checked here.
func TestPostgresErrorClasses(t *testing.T) {
	cases := []struct {
		name                          string
		code                          string
		duplicate, retry, unavailable bool
	}{
		{"unique violation is a duplicate", pgUniqueViolation, true, false, false},
		{"serialization failure is retried", pgSerializationFailure, false, true, true},
		{"deadlock is retried", pgDeadlockDetected, false, true, true},
		{"lock timeout is retried", pgLockNotAvailable, false, true, true},
		{"admin shutdown is unavailable", pgAdminShutdown, false, false, true},
		{"crash shutdown is unavailable", pgCrashShutdown, false, false, true},
		{"cannot connect now is unavailable", pgCannotConnectNow, false, false, true},
		{"too many connections is unavailable", pgTooManyConnections, false, false, true},
		{"read-only standby is unavailable", pgReadOnlyTransaction, false, false, true},
		{"connection failure class 08", "08006", false, false, true},
		{"connection does not exist class 08", "08003", false, false, true},
		{"wrong password is a configuration error", "28P01", false, false, false},
		{"missing database is a configuration error", "3D000", false, false, false},
		{"syntax error is a bug", "42601", false, false, false},
		{"foreign key violation is not a duplicate", "23503", false, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := fmt.Errorf("query: %w", &pgconn.PgError{Severity: "ERROR", Code: c.code, Message: "x"})
			if got := isDuplicateKey(err); got != c.duplicate {
				t.Errorf("isDuplicateKey = %v, want %v", got, c.duplicate)
			}
			if got := isRetryable(err); got != c.retry {
				t.Errorf("isRetryable = %v, want %v", got, c.retry)
			}
			if got := isUnavailable(err); got != c.unavailable {
				t.Errorf("isUnavailable = %v, want %v", got, c.unavailable)
			}
			if got := errors.Is(dbErr(context.Background(), "op", err), domain.ErrUnavailable); got != c.unavailable {
				t.Errorf("dbErr matches ErrUnavailable = %v, want %v", got, c.unavailable)
			}
		})
	}
}

// A duplicate email on PostgreSQL is ErrEmailTaken without the driver's
// detail, which quotes the email.
func TestPostgresDuplicateHidesTheEmail(t *testing.T) {
	err := userWriteErr(context.Background(), "insert user", &pgconn.PgError{
		Code: pgUniqueViolation, Message: `duplicate key value violates unique constraint "ux_users_email_ci"`,
		Detail: "Key (email_ci)=(secret@example.com) already exists.",
	})
	if !errors.Is(err, domain.ErrEmailTaken) {
		t.Fatalf("err = %v, want ErrEmailTaken", err)
	}
	if s := err.Error(); s != "insert user: "+domain.ErrEmailTaken.Error() {
		t.Fatalf("err = %q, want no driver detail", s)
	}
}
