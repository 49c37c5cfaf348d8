package gormstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// DefaultSlowThreshold is the duration past which a statement is logged at
// WARN when Config.SlowThreshold is zero.
const DefaultSlowThreshold = 200 * time.Millisecond

// gormLogger routes GORM's log to the service's slog logger, whose handler
// applies the service's level: a failed statement (not-found aside) at
// ERROR, a slow one at WARN, every other one at DEBUG. Statements are
// logged with their placeholders (ParamsFilter drops the values) and
// driver errors by code only, since both can carry user data (a duplicate
// e-mail address is in MySQL's message).
type gormLogger struct {
	l      *slog.Logger
	slow   time.Duration
	silent bool
}

var (
	_ logger.Interface  = gormLogger{}
	_ gorm.ParamsFilter = gormLogger{}
)

func newGormLogger(l *slog.Logger, slow time.Duration) logger.Interface {
	if l == nil {
		return logger.Discard
	}
	if slow <= 0 {
		slow = DefaultSlowThreshold
	}
	return gormLogger{l: l.With(slog.String("component", "gorm")), slow: slow}
}

func (g gormLogger) LogMode(level logger.LogLevel) logger.Interface {
	g.silent = level == logger.Silent
	return g
}

// ParamsFilter keeps the values out of the SQL GORM hands to Trace.
func (gormLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}

// Info, Warn and Error are GORM's own messages; their arguments may hold
// values, so only the message's format is logged.
func (g gormLogger) Info(ctx context.Context, msg string, _ ...any) {
	g.log(ctx, slog.LevelInfo, "gorm: "+msg)
}

func (g gormLogger) Warn(ctx context.Context, msg string, _ ...any) {
	g.log(ctx, slog.LevelWarn, "gorm: "+msg)
}

func (g gormLogger) Error(ctx context.Context, msg string, _ ...any) {
	g.log(ctx, slog.LevelError, "gorm: "+msg)
}

func (g gormLogger) log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if g.silent {
		return
	}
	g.l.LogAttrs(ctx, level, msg, attrs...)
}

func (g gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if g.silent {
		return
	}
	elapsed := time.Since(begin)
	level, msg := slog.LevelDebug, "database statement"
	switch {
	case err != nil && isDuplicateKey(err):
		// A unique index refusing a row is an answer (409: the email is
		// taken), not a failure of the database: no ERROR per conflict.
		level, msg = slog.LevelDebug, "database statement refused by a unique index"
	case err != nil && !errors.Is(err, gorm.ErrRecordNotFound):
		level, msg = slog.LevelError, "database statement failed"
	case elapsed > g.slow:
		level, msg = slog.LevelWarn, "slow database statement"
	}
	if !g.l.Enabled(ctx, level) {
		return
	}
	sql, rows := fc()
	attrs := []slog.Attr{
		slog.String("sql", sql),
		slog.Duration("duration", elapsed),
		slog.Int64("rows", rows),
	}
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		attrs = append(attrs, slog.String("error", safeError(err)))
	}
	if level == slog.LevelWarn {
		attrs = append(attrs, slog.Duration("threshold", g.slow))
	}
	g.l.LogAttrs(ctx, level, msg, attrs...)
}

// safeError describes err without what a driver quotes from the data:
// driver errors by their code, others (network, context) by message.
func safeError(err error) string {
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return fmt.Sprintf("mysql error %d (SQLSTATE %s)", my.Number, string(my.SQLState[:]))
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return fmt.Sprintf("postgres error SQLSTATE %s", pg.Code)
	}
	var se *gosqlite.Error
	if errors.As(err, &se) {
		return fmt.Sprintf("sqlite error %d", se.Code())
	}
	return err.Error()
}
