package gormstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

var (
	_ ports.LoginFailureStore    = (*Store)(nil)
	_ ports.PasswordHashReplacer = (*Store)(nil)
)

type loginFailureRow struct {
	EmailKey    string    `gorm:"column:email_key;primaryKey"`
	Failures    int       `gorm:"column:failures"`
	WindowStart time.Time `gorm:"column:window_start"`
	LastFailure time.Time `gorm:"column:last_failure"`
}

func (loginFailureRow) TableName() string { return "login_failures" }

func (r loginFailureRow) toDomain() domain.LoginFailures {
	return domain.LoginFailures{Count: r.Failures, WindowStart: r.WindowStart.UTC(), LastFailure: r.LastFailure.UTC()}
}

// LoginFailures reads key's failure record (zero when none).
func (s *Store) LoginFailures(ctx context.Context, key string) (domain.LoginFailures, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var r loginFailureRow
	err := s.db.WithContext(ctx).Where("email_key = ?", key).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return domain.LoginFailures{}, nil
	}
	if err != nil {
		return domain.LoginFailures{}, dbErr(ctx, "read login failures", err)
	}
	return r.toDomain(), nil
}

// upsertFailureSQL adds one failure in a single statement, so the database
// serialises concurrent increments on the row (no read-modify-write in Go).
// Arguments: key, at, at, then the window cutoff, at (twice on MySQL).
//
// MySQL evaluates ON DUPLICATE KEY UPDATE assignments left to right, each
// seeing the ones before: failures is computed before window_start moves.
// PostgreSQL and SQLite evaluate every SET against the old row.
var upsertFailureSQL = map[string]string{
	DialectMySQL: `INSERT INTO login_failures (email_key, failures, window_start, last_failure) VALUES (?, 1, ?, ?)
ON DUPLICATE KEY UPDATE
  failures = IF(window_start <= ?, 1, failures + 1),
  window_start = IF(window_start <= ?, ?, window_start),
  last_failure = ?`,
	DialectPostgres: `INSERT INTO login_failures AS f (email_key, failures, window_start, last_failure) VALUES (?, 1, ?, ?)
ON CONFLICT (email_key) DO UPDATE SET
  failures = CASE WHEN f.window_start <= ? THEN 1 ELSE f.failures + 1 END,
  window_start = CASE WHEN f.window_start <= ? THEN EXCLUDED.window_start ELSE f.window_start END,
  last_failure = EXCLUDED.last_failure`,
	DialectSQLite: `INSERT INTO login_failures (email_key, failures, window_start, last_failure) VALUES (?, 1, ?, ?)
ON CONFLICT (email_key) DO UPDATE SET
  failures = CASE WHEN window_start <= ? THEN 1 ELSE failures + 1 END,
  window_start = CASE WHEN window_start <= ? THEN excluded.window_start ELSE window_start END,
  last_failure = excluded.last_failure`,
}

// RecordLoginFailure adds one failure and returns the record after it. The
// upsert and the read share a transaction: the row stays locked between
// them, so the count returned is this call's own.
func (s *Store) RecordLoginFailure(ctx context.Context, key string, at time.Time, window time.Duration) (domain.LoginFailures, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	at = dbTime(at)
	cutoff := dbTime(at.Add(-window))
	args := []any{key, at, at, cutoff, cutoff}
	if s.dialect == DialectMySQL {
		args = append(args, at, at)
	}
	var r loginFailureRow
	err := s.transact(ctx, func(tx *gorm.DB) error {
		db := tx.WithContext(ctx)
		if err := db.Exec(upsertFailureSQL[s.dialect], args...).Error; err != nil {
			return err
		}
		return db.Where("email_key = ?", key).Take(&r).Error
	})
	if err != nil {
		return domain.LoginFailures{}, dbErr(ctx, "record login failure", err)
	}
	return r.toDomain(), nil
}

// ResetLoginFailures forgets key's failures.
func (s *Store) ResetLoginFailures(ctx context.Context, key string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.transact(ctx, func(tx *gorm.DB) error {
		return tx.WithContext(ctx).Where("email_key = ?", key).Delete(&loginFailureRow{}).Error
	})
	return dbErr(ctx, "reset login failures", err)
}

// PurgeLoginFailures removes the records last failed before cutoff.
func (s *Store) PurgeLoginFailures(ctx context.Context, cutoff time.Time) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var n int64
	err := s.transact(ctx, func(tx *gorm.DB) error {
		res := tx.WithContext(ctx).Where("last_failure < ?", dbTime(cutoff)).Delete(&loginFailureRow{})
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return 0, dbErr(ctx, "purge login failures", err)
	}
	return n, nil
}

// ReplacePasswordHash upgrades user id's hash if it is still oldHash,
// leaving version and updated_at alone: nothing a client sees changes.
func (s *Store) ReplacePasswordHash(ctx context.Context, id int64, oldHash, newHash string) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var n int64
	err := s.transact(ctx, func(tx *gorm.DB) error {
		res := tx.WithContext(ctx).Model(&userRow{}).
			Where("id = ? AND password_hash = ?", id, oldHash).
			UpdateColumn("password_hash", newHash)
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return false, dbErr(ctx, fmt.Sprintf("replace password hash of user %d", id), err)
	}
	return n == 1, nil
}
