package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
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
	// HugePages says whether PostgreSQL's shared memory is in huge pages:
	// hugePagesYes, hugePagesNo or hugePagesUnknown (empty on MySQL).
	HugePages string `json:"huge_pages,omitempty"`
}

// What BufferPool.HugePages can say.
const (
	hugePagesYes     = "yes"
	hugePagesNo      = "no"
	hugePagesUnknown = "unknown"
)

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

// sharedBuffersInfo reads PostgreSQL's shared_buffers, the users table's
// size with its indexes, and whether shared memory is in huge pages.
func sharedBuffersInfo(ctx context.Context, db *sql.DB) (BufferPool, error) {
	b := BufferPool{Name: sharedBuffers}
	var (
		backend int
		port    sql.NullInt64
	)
	err := db.QueryRowContext(ctx, `SELECT setting::bigint * pg_size_bytes(unit), pg_total_relation_size('users'),
		pg_backend_pid(), inet_client_port() FROM pg_settings WHERE name = 'shared_buffers'`).
		Scan(&b.Bytes, &b.TableBytes, &backend, &port)
	if err == nil {
		b.HugePages = backendHugePages(backend, port.Int64, b.Bytes)
	}
	return b, err
}

// backendHugePages says whether a PostgreSQL backend of this machine maps
// shared memory of at least shared bytes in huge pages. Without them every
// connection takes a page fault the first time it reads each page of
// shared_buffers, which at a million users was a fifth of the server's CPU
// in a search run (perf) and made search's p99 grow with the table.
// PostgreSQL 15 does not say whether huge_pages=try got them, so the
// backend's mappings are read; it is recognised by its pid and its
// client's port (a server in a container has pids of its own), and
// anything else is hugePagesUnknown.
func backendHugePages(pid int, clientPort int64, shared int64) string {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.HasPrefix(string(cmdline), "postgres") ||
		!strings.Contains(string(cmdline), fmt.Sprintf("(%d)", clientPort)) {
		return hugePagesUnknown
	}
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return hugePagesUnknown
	}
	return sharedMemoryPages(string(smaps), shared)
}

// sharedMemoryPages reads /proc/PID/smaps: hugePagesYes when a mapping of
// at least shared bytes has pages larger than 4 KiB.
func sharedMemoryPages(smaps string, shared int64) string {
	var size int64
	for line := range strings.Lines(smaps) {
		field, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch {
		case err != nil:
		case field == "Size":
			size = kb << 10
		case field == "KernelPageSize" && size >= shared && kb > 4:
			return hugePagesYes
		}
	}
	return hugePagesNo
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
