package gormstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/pressly/goose/v3"
)

//go:embed migrations/mysql/*.sql migrations/postgres/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// migrateLockName serialises Migrate across replicas starting together on
// one MySQL or PostgreSQL database. (goose's own PostgreSQL session locker
// retries a failed lock for minutes; this one fails fast when the database
// is down, like every other call.)
const migrateLockName = "usersvc.migrate"

// Migrate applies the embedded migrations that are not applied yet. It is
// idempotent, and on MySQL and PostgreSQL safe to run from several replicas
// at once.
func (s *Store) Migrate(ctx context.Context) error {
	p, err := s.migrations()
	if err != nil {
		return err
	}
	if s.dialect != DialectSQLite {
		// Losing the lock (see namedLock) stops the migration rather than
		// letting another replica's run overlap it.
		var lost context.CancelFunc
		ctx, lost = context.WithCancel(ctx)
		defer lost()
		release, err := s.namedLock(ctx, migrateLockName, 60, lost)
		if err != nil {
			return dbErr(ctx, "migrate: lock", err)
		}
		defer release()
	}
	if _, err := p.Up(ctx); err != nil {
		return dbErr(ctx, "migrate", err)
	}
	return nil
}

// MigrationVersion returns the applied schema version and the latest
// embedded one (for `usersvc migrate` output and checks).
func (s *Store) MigrationVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := s.migrations()
	if err != nil {
		return 0, 0, err
	}
	current, latest, err = p.GetVersions(ctx)
	return current, latest, dbErr(ctx, "migration version", err)
}

// migrations is a goose provider over this dialect's embedded files. Its
// Close would close our pool, so providers are simply dropped.
func (s *Store) migrations() (*goose.Provider, error) {
	dir, dialect := "migrations/sqlite", goose.DialectSQLite3
	switch s.dialect {
	case DialectMySQL:
		dir, dialect = "migrations/mysql", goose.DialectMySQL
	case DialectPostgres:
		dir, dialect = "migrations/postgres", goose.DialectPostgres
	}
	fsys, err := fs.Sub(migrationFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(dialect, s.sqlDB, fsys)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// MigrationState is one embedded migration and whether it is applied.
type MigrationState struct {
	Version   int64
	File      string // the migration's file name, e.g. 00001_users.sql
	Applied   bool
	AppliedAt time.Time // zero while pending
}

// MigrationStatus lists the embedded migrations in order, applied or
// pending, for `usersvc migrate status`.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	p, err := s.migrations()
	if err != nil {
		return nil, err
	}
	status, err := p.Status(ctx)
	if err != nil {
		return nil, dbErr(ctx, "migration status", err)
	}
	out := make([]MigrationState, 0, len(status))
	for _, m := range status {
		out = append(out, MigrationState{
			Version: m.Source.Version, File: path.Base(m.Source.Path),
			Applied: m.State == goose.StateApplied, AppliedAt: m.AppliedAt.UTC(),
		})
	}
	return out, nil
}
