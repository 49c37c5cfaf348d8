package gormstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"hash/fnv"
	"sync"
	"time"
)

// relayLockName is the named lock held by the publishing relay.
const relayLockName = "usersvc.outbox-relay"

// scopedLockName qualifies a named lock with the current database: MySQL's
// named locks are server-wide, and services (or test runs) that keep their
// users in different databases of one server must not exclude each other.
// Names are limited to 64 characters.
const scopedLockName = "LEFT(CONCAT(?, '@', DATABASE()), 64)"

// lockKeepAlive pings the connection holding a named lock, so that an
// idle-connection cut (wait_timeout, a proxy) does not silently drop it.
const lockKeepAlive = 30 * time.Second

// lockRetryPause is how often a waiting PostgreSQL advisory lock is tried
// again (pg_try_advisory_lock in a loop, so the wait honours ctx and a
// bound, like GET_LOCK's timeout).
const lockRetryPause = 100 * time.Millisecond

// TryLock takes the relay lock without waiting.
//
// MySQL: GET_LOCK on a dedicated connection held until unlock. A named lock
// (rather than SELECT ... FOR UPDATE SKIP LOCKED on outbox rows) keeps a
// single publisher, hence the global seq order, without holding a
// transaction open while the broker is slow; MySQL releases it by itself
// when the holder's connection dies, so a crashed replica never blocks the
// others.
//
// PostgreSQL: the same on a session-level advisory lock
// (pg_try_advisory_lock, released by pg_advisory_unlock). Advisory locks
// belong to one database, and die with the holder's session too.
//
// SQLite: a process-wide lock keyed by the database file. SQLite has no
// session locks, and one service process per SQLite file is the supported
// set-up; several processes relaying from one SQLite file are not
// coordinated (each would publish, giving duplicates, still at least once).
func (s *Store) TryLock(ctx context.Context) (unlock func(), ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if s.dialect != DialectSQLite {
		release, err := s.namedLock(ctx, relayLockName, 0)
		if err != nil {
			if err == errLockBusy {
				return nil, false, nil
			}
			return nil, false, dbErr(ctx, "relay lock", err)
		}
		return releaseOnDone(ctx, release), true, nil
	}
	if !processLocks.tryLock(s.relayKey) {
		return nil, false, nil
	}
	return releaseOnDone(ctx, func() { processLocks.unlock(s.relayKey) }), true, nil
}

// releaseOnDone returns an idempotent unlock that also runs when ctx ends.
func releaseOnDone(ctx context.Context, release func()) func() {
	var once sync.Once
	done := make(chan struct{})
	unlock := func() {
		once.Do(func() {
			close(done)
			release()
		})
	}
	go func() {
		select {
		case <-ctx.Done():
			unlock()
		case <-done:
		}
	}()
	return unlock
}

type lockBusyError struct{}

func (lockBusyError) Error() string { return "lock held by another session" }

// errLockBusy means the lock wait timed out: another session holds the lock.
var errLockBusy error = lockBusyError{}

// namedLock takes a named lock (MySQL GET_LOCK, PostgreSQL advisory lock),
// waiting up to waitSeconds, on a connection taken out of the pool for as
// long as the lock is held. The returned release frees the lock and gives
// the connection back.
func (s *Store) namedLock(ctx context.Context, name string, waitSeconds int) (release func(), err error) {
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	acquire, unlock := mysqlLock(name, waitSeconds)
	if s.dialect == DialectPostgres {
		acquire, unlock = postgresLock(name, waitSeconds)
	}
	got, err := acquire(ctx, conn)
	if err != nil || !got {
		_ = conn.Close()
		if err == nil {
			err = errLockBusy
		}
		return nil, err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(lockKeepAlive)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = conn.PingContext(pctx)
				cancel()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := unlock(rctx, conn); err != nil {
				// The lock dies with its session: make sure this connection
				// is not handed back to the pool still holding it.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
			_ = conn.Close()
		})
	}, nil
}

// acquireFunc and unlockFunc take and free one named lock on a dedicated
// connection.
type (
	acquireFunc func(ctx context.Context, conn *sql.Conn) (bool, error)
	unlockFunc  func(ctx context.Context, conn *sql.Conn) error
)

// mysqlLock is GET_LOCK with the server's own timeout.
func mysqlLock(name string, waitSeconds int) (acquireFunc, unlockFunc) {
	acquire := func(ctx context.Context, conn *sql.Conn) (bool, error) {
		var got sql.NullInt64
		err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+scopedLockName+", ?)", name, waitSeconds).Scan(&got)
		return got.Valid && got.Int64 == 1, err
	}
	unlock := func(ctx context.Context, conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, "DO RELEASE_LOCK("+scopedLockName+")", name)
		return err
	}
	return acquire, unlock
}

// postgresLock is a session advisory lock keyed by a hash of name. It is
// tried again every lockRetryPause until waitSeconds have passed: a
// blocking pg_advisory_lock would ignore the bound.
func postgresLock(name string, waitSeconds int) (acquireFunc, unlockFunc) {
	key := advisoryKey(name)
	acquire := func(ctx context.Context, conn *sql.Conn) (bool, error) {
		deadline := time.Now().Add(time.Duration(waitSeconds) * time.Second)
		for {
			var got bool
			if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got); err != nil || got {
				return got, err
			}
			if !time.Now().Before(deadline) {
				return false, nil
			}
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(lockRetryPause):
			}
		}
	}
	unlock := func(ctx context.Context, conn *sql.Conn) error {
		var released bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", key).Scan(&released); err != nil {
			return err
		}
		if !released {
			return errLockNotHeld
		}
		return nil
	}
	return acquire, unlock
}

// errLockNotHeld means the session no longer held a lock it took (it was
// reconnected): the connection must not go back to the pool.
var errLockNotHeld = lockNotHeldError{}

type lockNotHeldError struct{}

func (lockNotHeldError) Error() string { return "advisory lock was not held by this session" }

// advisoryKey maps a lock name to PostgreSQL's 64-bit advisory lock space.
func advisoryKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("usersvc:" + name))
	return int64(h.Sum64())
}

// processLocks are the SQLite relay locks of this process.
var processLocks = &keyedLocks{held: map[string]bool{}}

type keyedLocks struct {
	mu   sync.Mutex
	held map[string]bool
}

func (l *keyedLocks) tryLock(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[key] {
		return false
	}
	l.held[key] = true
	return true
}

func (l *keyedLocks) unlock(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, key)
}
