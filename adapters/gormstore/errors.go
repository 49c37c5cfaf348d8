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
	var se *gosqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqliteConstraintUnique || se.Code() == sqliteConstraintPK
	}
	return errors.Is(err, gorm.ErrDuplicatedKey)
}

// isRetryable reports a transaction that failed only because of another
// one (deadlock victim, lock wait timeout, SQLite busy) and may succeed
// when run again from the start.
func isRetryable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == mysqlDeadlock || me.Number == mysqlLockWaitTimeout
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
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
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
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%s: %w", op, domain.ErrNotFound)
	case isUnavailable(err):
		return fmt.Errorf("%s: %w", op, domain.Unavailable(domain.DependencyDatabase, err))
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}
