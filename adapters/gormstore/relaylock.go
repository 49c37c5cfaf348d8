package gormstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
	"time"
)

// relayLockName is the MySQL named lock held by the publishing relay.
const relayLockName = "usersvc.outbox-relay"

// scopedLockName qualifies a named lock with the current database: MySQL's
// named locks are server-wide, and services (or test runs) that keep their
// users in different databases of one server must not exclude each other.
// Names are limited to 64 characters.
const scopedLockName = "LEFT(CONCAT(?, '@', DATABASE()), 64)"

// lockKeepAlive pings the connection holding a MySQL named lock, so that an
// idle-connection cut (wait_timeout, a proxy) does not silently drop it.
const lockKeepAlive = 30 * time.Second

// TryLock takes the relay lock without waiting.
//
// MySQL: GET_LOCK on a dedicated connection held until unlock. A named lock
// (rather than SELECT ... FOR UPDATE SKIP LOCKED on outbox rows) keeps a
// single publisher, hence the global seq order, without holding a
// transaction open while the broker is slow; MySQL releases it by itself
// when the holder's connection dies, so a crashed replica never blocks the
// others.
//
// SQLite: a process-wide lock keyed by the database file. SQLite has no
// session locks, and one service process per SQLite file is the supported
// set-up; several processes relaying from one SQLite file are not
// coordinated (each would publish, giving duplicates, still at least once).
func (s *Store) TryLock(ctx context.Context) (unlock func(), ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if s.dialect == DialectMySQL {
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

// errLockBusy means GET_LOCK timed out: another session holds the lock.
var errLockBusy error = lockBusyError{}

// namedLock takes a MySQL named lock, waiting up to waitSeconds, on a
// connection taken out of the pool for as long as the lock is held. The
// returned release frees the lock and gives the connection back.
func (s *Store) namedLock(ctx context.Context, name string, waitSeconds int) (release func(), err error) {
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+scopedLockName+", ?)", name, waitSeconds).Scan(&got); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if !got.Valid || got.Int64 != 1 {
		_ = conn.Close()
		return nil, errLockBusy
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
			if _, err := conn.ExecContext(rctx, "DO RELEASE_LOCK("+scopedLockName+")", name); err != nil {
				// The lock dies with its session: make sure this connection
				// is not handed back to the pool still holding it.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
			_ = conn.Close()
		})
	}, nil
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
