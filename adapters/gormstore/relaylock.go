package gormstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
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

// DefaultLockLease is how long a named lock outlives a holder that stopped
// answering (Config.LockLease, DB_LOCK_LEASE).
const DefaultLockLease = 15 * time.Second

// lockRetryPause is how often a waiting PostgreSQL advisory lock is tried
// again (pg_try_advisory_lock in a loop, so the wait honours ctx and a
// bound, like GET_LOCK's timeout).
const lockRetryPause = 100 * time.Millisecond

// TryLock takes the relay lock without waiting. held ends when the lock
// does: on unlock, when ctx ends, or when the lock is lost (see namedLock).
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
func (s *Store) TryLock(ctx context.Context) (held context.Context, unlock func(), ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, false, err
	}
	held, lose := context.WithCancel(ctx)
	var release func()
	if s.dialect != DialectSQLite {
		release, err = s.namedLock(ctx, relayLockName, 0, lose)
		if err != nil {
			lose()
			if errors.Is(err, errLockBusy) {
				return nil, nil, false, nil
			}
			return nil, nil, false, dbErr(ctx, "relay lock", err)
		}
	} else {
		if !processLocks.tryLock(s.relayKey) {
			lose()
			return nil, nil, false, nil
		}
		release = func() { processLocks.unlock(s.relayKey) }
	}
	return held, releaseOnDone(held, lose, release), true, nil
}

// releaseOnDone returns an idempotent unlock that also runs when held ends
// (its parent context ended, or the lock was lost).
func releaseOnDone(held context.Context, end context.CancelFunc, release func()) func() {
	var once sync.Once
	unlock := func() {
		once.Do(func() {
			end()
			release()
		})
	}
	go func() {
		<-held.Done()
		unlock()
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
//
// A session lock lives as long as the server believes its session does, and
// a holder cut off without a reset (a blackholed route, a half-open
// connection) would keep it for hours (wait_timeout). So the lock is a
// lease: the session is told to end after s.lockLease without a command
// (wait_timeout on MySQL, idle_session_timeout on PostgreSQL), and the
// holder pings it every third of the lease. A ping that fails means the
// holder can no longer be sure it holds the lock: it calls lost at once,
// before the server frees the lock for another replica, so two holders
// never work at the same time.
func (s *Store) namedLock(ctx context.Context, name string, waitSeconds int, lost func()) (release func(), err error) {
	// Taking the lock is bounded like any database call (plus the lock's
	// own wait): the relay calls this with its long-lived context, and a
	// replica cut off from the database would otherwise keep a connection
	// in use, waiting for answers the fault dropped, for as long as TCP
	// takes to give up.
	ctx, cancel := context.WithTimeout(ctx, s.lockCallTimeout()+time.Duration(waitSeconds)*time.Second)
	defer cancel()
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	acquire, unlock := mysqlLock(name, waitSeconds)
	lease, endLease := mysqlLease, s.mysqlEndLease
	if s.dialect == DialectPostgres {
		acquire, unlock = postgresLock(name, waitSeconds)
		lease, endLease = postgresLease, postgresEndLease
	}
	if err := lease(ctx, conn, s.lockLease); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("lock lease: %w", err)
	}
	got, err := acquire(ctx, conn)
	if err != nil || !got {
		// The lease's short idle timeout must not go back to the pool with
		// the connection: on PostgreSQL nothing else sets it, and the
		// server would end the pooled session under a later request.
		if err != nil || endLease(ctx, conn) != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		_ = conn.Close()
		if err == nil {
			err = errLockBusy
		}
		return nil, err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	keepAlive := s.lockLease / 3
	// The keep-alive belongs to the lock's lifetime, which ends at unlock or
	// loss, not with the caller's context.
	go func() { //nolint:gosec,contextcheck // G118: detached on purpose, see above
		defer wg.Done()
		t := time.NewTicker(keepAlive)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				pctx, cancel := context.WithTimeout(context.Background(), keepAlive)
				err := conn.PingContext(pctx)
				cancel()
				if err != nil {
					lost()
					return
				}
			}
		}
	}()
	var once sync.Once
	// Unlocking runs on its own context: it must happen even when the
	// caller's context is done.
	return func() { //nolint:contextcheck // detached on purpose
		once.Do(func() {
			close(stop)
			wg.Wait()
			rctx, cancel := context.WithTimeout(context.Background(), s.lockCallTimeout())
			defer cancel()
			if err := errors.Join(unlock(rctx, conn), endLease(rctx, conn)); err != nil {
				// The lock dies with its session: make sure this connection
				// is not handed back to the pool still holding it, or with
				// the lease's short idle timeout.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
			_ = conn.Close()
		})
	}, nil
}

// lockCallTimeout bounds taking and freeing a lock: database calls like any
// other, so within the statement timeout (at most 5 s). A holder that was
// cut off gives up on its connection that much after the route is back,
// instead of keeping it in use waiting for answers the fault dropped.
func (s *Store) lockCallTimeout() time.Duration {
	if s.stmtTimeout > 0 {
		return min(s.stmtTimeout, 5*time.Second)
	}
	return 5 * time.Second
}

// acquireFunc and unlockFunc take and free one named lock on a dedicated
// connection.
type (
	acquireFunc func(ctx context.Context, conn *sql.Conn) (bool, error)
	unlockFunc  func(ctx context.Context, conn *sql.Conn) error
)

// mysqlLease makes the server end the session, and so free its named
// locks, after lease without a command.
func mysqlLease(ctx context.Context, conn *sql.Conn, lease time.Duration) error {
	_, err := conn.ExecContext(ctx, "SET SESSION wait_timeout = ?", leaseSeconds(lease))
	return err
}

// mysqlEndLease gives the session back the pool's idle timeout before the
// connection returns to the pool.
func (s *Store) mysqlEndLease(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SET SESSION wait_timeout = ?", s.sessionWait)
	return err
}

// postgresEndLease is mysqlEndLease for PostgreSQL.
func postgresEndLease(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "RESET idle_session_timeout")
	return err
}

// postgresLease does the same with idle_session_timeout (PostgreSQL 14+).
func postgresLease(ctx context.Context, conn *sql.Conn, lease time.Duration) error {
	_, err := conn.ExecContext(ctx, fmt.Sprintf("SET idle_session_timeout = %d", lease.Milliseconds()))
	return err
}

// leaseSeconds rounds a lease up to MySQL's whole seconds.
func leaseSeconds(lease time.Duration) int64 {
	return int64((lease + time.Second - 1) / time.Second)
}

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
	return int64(h.Sum64()) //nolint:gosec // G115: a bit-for-bit reinterpretation; any 64-bit key will do
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
