package gormstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"gorm.io/gorm"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// txAttempts bounds how often a transaction that lost a deadlock or a lock
// wait is run again from the start.
const txAttempts = 4

// Do runs fn in one transaction: commit when fn returns nil (a failed commit
// is returned), roll back otherwise. A transaction chosen as a deadlock
// victim (MySQL 1213), timed out on a lock (1205) or refused by a busy
// SQLite database is retried from the start a few times, so fn must not
// have effects outside the transaction.
func (s *Store) Do(ctx context.Context, fn func(ctx context.Context, tx ports.Tx) error) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.transact(ctx, func(tx *gorm.DB) error {
		return fn(ctx, &txStore{tx: tx, dialect: s.dialect, now: s.now, store: s})
	})
}

// transact is Do on the GORM transaction.
func (s *Store) transact(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = s.doOnce(ctx, fn)
		if err == nil || attempt == txAttempts || !isRetryable(err) || ctx.Err() != nil {
			break
		}
		// Jittered exponential pause, so the transactions that collided do
		// not collide again.
		pause := time.Duration(5<<attempt)*time.Millisecond + rand.N(10*time.Millisecond) //nolint:gosec // G404: jitter, not a secret
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
	if err != nil && isUnavailable(err) && !errors.Is(err, domain.ErrUnavailable) {
		return dbErr(ctx, "transaction", err)
	}
	// Errors of fn are already mapped (or are the use case's own).
	return err
}

func (s *Store) doOnce(ctx context.Context, fn func(tx *gorm.DB) error) (err error) {
	if s.writeSem != nil {
		select {
		case s.writeSem <- struct{}{}:
			defer func() { <-s.writeSem }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tx := s.db.WithContext(ctx).Begin(s.txOptions())
	if tx.Error != nil {
		return fmt.Errorf("begin: %w", tx.Error)
	}
	committed := false
	defer func() {
		if !committed {
			// Also on panic: the connection must not go back to the pool
			// inside a transaction.
			// A failed rollback adds nothing to err: the server rolls back
			// when the session ends, and database/sql drops a bad connection.
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	if err := tx.Commit().Error; err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// txOptions are the write transactions' options. MySQL's default
// isolation, REPEATABLE READ, locks the gaps next to the index entries a
// statement reads or deletes, where other transactions then cannot insert
// (a user's trigram rows next to the rows of the user being inserted);
// READ COMMITTED, PostgreSQL's default, locks only the rows a statement
// changes. Nothing here needs more: a read-modify-write locks its row
// (LockUser) and uniqueness is the indexes'. That matters most when a
// replica is cut off mid-transaction and its locks outlive it until the
// lock lease. Other dialects keep their default.
func (s *Store) txOptions() *sql.TxOptions {
	if s.dialect != DialectMySQL {
		return nil
	}
	return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
}
