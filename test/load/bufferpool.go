package main

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// InnoDB's buffer pool decides whether the million-user run reads from
// memory or from disk: the users table and its indexes are about 650 MiB at
// 1,000,000 rows, five times MariaDB's 128 MiB default. A database server
// sized for such a table would hold it; -innodb-buffer-pool resizes the
// pool (online, MariaDB 10.2+ and MySQL 5.7+) for the run and restores it.

// The page caches a BufferPool names.
const (
	innodbBufferPool = "InnoDB buffer pool"
	sharedBuffers    = "shared_buffers"
)

// BufferPool is what the report says about the database's page cache.
type BufferPool struct {
	// Name is the cache: "InnoDB buffer pool" or, on PostgreSQL,
	// "shared_buffers" (which the server sets at start only; the OS page
	// cache holds what does not fit, at the cost of a system call a page).
	Name       string `json:"name"`
	Bytes      int64  `json:"bytes"`
	TableBytes int64  `json:"users_table_bytes"` // data and indexes
	Restored   int64  `json:"restored_bytes,omitempty"`
}

// parseBytes reads "1073741824", "512MiB" or "1GiB".
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("%q is not a size such as 1GiB", s)
	}
	return n * mult, nil
}

// resizeBufferPool sets innodb_buffer_pool_size and returns a function that
// puts the previous size back.
func resizeBufferPool(ctx context.Context, db *sql.DB, size int64) (restore func(context.Context) error, err error) {
	var before int64
	if err := db.QueryRowContext(ctx, "SELECT @@innodb_buffer_pool_size").Scan(&before); err != nil {
		return nil, fmt.Errorf("read innodb_buffer_pool_size: %w", err)
	}
	set := func(ctx context.Context, n int64) error {
		if _, err := db.ExecContext(ctx, "SET GLOBAL innodb_buffer_pool_size = ?", n); err != nil {
			return fmt.Errorf("set innodb_buffer_pool_size to %d: %w", n, err)
		}
		return nil
	}
	if err := set(ctx, size); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return set(ctx, before) }, nil
}

// bufferPoolInfo reads the pool's size and the users table's.
func bufferPoolInfo(ctx context.Context, db *sql.DB) (BufferPool, error) {
	b := BufferPool{Name: innodbBufferPool}
	if err := db.QueryRowContext(ctx, "SELECT @@innodb_buffer_pool_size").Scan(&b.Bytes); err != nil {
		return b, err
	}
	err := db.QueryRowContext(ctx, `SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.TABLES
		WHERE table_schema = DATABASE() AND table_name = 'users'`).Scan(&b.TableBytes)
	return b, err
}

// sharedBuffersInfo reads PostgreSQL's shared_buffers and the users
// table's size with its indexes.
func sharedBuffersInfo(ctx context.Context, db *sql.DB) (BufferPool, error) {
	b := BufferPool{Name: sharedBuffers}
	err := db.QueryRowContext(ctx, `SELECT setting::bigint * pg_size_bytes(unit), pg_total_relation_size('users')
		FROM pg_settings WHERE name = 'shared_buffers'`).Scan(&b.Bytes, &b.TableBytes)
	return b, err
}

// preloadUsers reads the users table and the last-name index once, so that
// the first workload does not pay for cold pages the later ones find warm.
func preloadUsers(ctx context.Context, db *sql.DB) error {
	var rows int64
	var chars sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*), SUM(LENGTH(address)) FROM users").Scan(&rows, &chars); err != nil {
		return fmt.Errorf("preload users: %w", err)
	}
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM users FORCE INDEX (ix_users_last_name_ci) WHERE last_name_ci >= ''").Scan(&rows)
	if err != nil {
		return fmt.Errorf("preload the last-name index: %w", err)
	}
	return nil
}
