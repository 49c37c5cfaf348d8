package gormstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/marketplace/usersvc/domain"
)

// MySQL / MariaDB error numbers the store reacts to.
const (
	mysqlDuplicateKey      = 1062
	mysqlLockWaitTimeout   = 1205
	mysqlDeadlock          = 1213
	mysqlTooManyConns      = 1040
	mysqlServerShutdown    = 1053
	mysqlConnKilled        = 1927 // MariaDB: connection was killed
	mysqlCantConnectSocket = 2002
	mysqlCantConnectHost   = 2003
	mysqlServerGone        = 2006
	mysqlLostConnection    = 2013
	mysqlReadOnly          = 1290 // --read-only, e.g. a replica or a failover in progress
)

// PostgreSQL SQLSTATE codes the store reacts to (Appendix A of the
// PostgreSQL manual). Class 08 (connection exception) is matched as a class.
const (
	pgUniqueViolation      = "23505"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
	pgLockNotAvailable     = "55P03" // lock_timeout expired
	pgTooManyConnections   = "53300"
	pgAdminShutdown        = "57P01"
	pgCrashShutdown        = "57P02"
	pgCannotConnectNow     = "57P03" // starting up, shutting down, in recovery
	pgReadOnlyTransaction  = "25006" // a hot standby, e.g. during a failover
	pgConnectionException  = "08"
)

// SQLite result codes (primary codes are the low byte of extended ones).
const (
	sqliteBusy             = 5
	sqliteLocked           = 6
	sqliteIOErr            = 10
	sqliteFull             = 13
	sqliteCantOpen         = 14
	sqliteConstraintUnique = 2067
	sqliteConstraintPK     = 1555
)

// isDuplicateKey reports a unique-index violation.
func isDuplicateKey(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == mysqlDuplicateKey
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == pgUniqueViolation
	}
	var se *gosqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqliteConstraintUnique || se.Code() == sqliteConstraintPK
	}
	return errors.Is(err, gorm.ErrDuplicatedKey)
}

// isRetryable reports a transaction that failed only because of another
// one (deadlock victim, lock wait timeout, serialization failure, SQLite
// busy) and may succeed when run again from the start.
func isRetryable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == mysqlDeadlock || me.Number == mysqlLockWaitTimeout
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == pgDeadlockDetected || pe.Code == pgSerializationFailure || pe.Code == pgLockNotAvailable
	}
	var se *gosqlite.Error
	if errors.As(err, &se) {
		code := se.Code() & 0xff
		return code == sqliteBusy || code == sqliteLocked
	}
	return false
}

// isUnavailable reports an error that says the database cannot be reached
// or cannot serve right now, as opposed to a problem with the query.
func isUnavailable(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}

	// database/sql does not export the error of a closed pool; it only
	// happens while the process shuts down, which callers should retry.
	if strings.Contains(err.Error(), "sql: database is closed") {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// A server's answer first, also inside a pgx ConnectError: a refused
	// password (28P01) or a missing database (3D000) is a configuration
	// error, not an outage.
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case pgTooManyConnections, pgAdminShutdown, pgCrashShutdown, pgCannotConnectNow, pgReadOnlyTransaction,
			pgDeadlockDetected, pgSerializationFailure, pgLockNotAvailable: // still failing after the retries
			return true
		}
		return strings.HasPrefix(pe.Code, pgConnectionException)
	}
	// pgx: no connection could be made (no server answer), a timeout, or a
	// failure pgx knows happened before anything reached the server.
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case mysqlTooManyConns, mysqlServerShutdown, mysqlConnKilled, mysqlCantConnectSocket,
			mysqlCantConnectHost, mysqlServerGone, mysqlLostConnection, mysqlReadOnly,
			mysqlLockWaitTimeout, mysqlDeadlock: // still failing after the retries
			return true
		}
		return false
	}
	var se *gosqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqliteBusy, sqliteLocked, sqliteIOErr, sqliteFull, sqliteCantOpen:
			return true
		}
	}
	return false
}

// dbErr turns a driver error into what the ports promise: not found,
// unavailable (the HTTP layer answers 503), or the error wrapped with what
// was being done. Duplicate keys are mapped by the callers that know which
// key it is.
func dbErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	// A deadline or cancellation can surface as a driver error (SQLite's
	// "interrupted", MySQL's closed connection): report the context's.
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	switch {
	case errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrEmailTaken) || errors.Is(err, domain.ErrUnavailable):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, gorm.ErrRecordNotFound), errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, domain.ErrNotFound)
	case isUnavailable(err):
		return fmt.Errorf("%s: %w", op, domain.Unavailable(domain.DependencyDatabase, err))
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}
