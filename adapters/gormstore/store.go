// Package gormstore is the persistence adapter: users, the transactional
// outbox and the relay lock on MySQL 8 / MariaDB 10.11 (gorm.io/driver/mysql),
// PostgreSQL (gorm.io/driver/postgres on pgx) or SQLite
// (github.com/glebarez/sqlite, pure Go), with versioned SQL migrations
// embedded in the binary and applied with goose.
package gormstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/go-sql-driver/mysql"
	"github.com/google/wire"
	"github.com/jackc/pgx/v5/stdlib"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	gormmysql "gorm.io/driver/mysql"
	gormpostgres "gorm.io/driver/postgres"
	"gorm.io/gorm"
	oteltracing "gorm.io/plugin/opentelemetry/tracing"

	"github.com/marketplace/usersvc/ports"
)

// Config selects and sizes the database. Zero pool values take defaults
// suited to the dialect; an in-memory SQLite database always uses a single
// connection (each connection would otherwise see its own empty database).
type Config struct {
	// URL is DATABASE_URL, see ParseURL.
	URL string
	// TLS are a MySQL connection's certificate files (DATABASE_TLS_*).
	TLS             TLSFiles
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	ConnMaxIdleTime time.Duration
	// PingTimeout bounds the connectivity check in Open (default 5s).
	PingTimeout time.Duration
	// StatementTimeout (DB_STATEMENT_TIMEOUT) bounds every store call: a
	// query, a whole transaction, an outbox batch, including the wait for a
	// pooled connection. A call that runs out answers domain.ErrUnavailable,
	// so a database that stops answering without closing its connections
	// cannot hold a request or the relay. 0 means DefaultStatementTimeout;
	// negative means no bound but the caller's.
	StatementTimeout time.Duration
	// LockLease (DB_LOCK_LEASE) is how long a named lock (relay, migration)
	// outlives a holder that stopped answering (see namedLock); 0 means
	// DefaultLockLease.
	LockLease time.Duration
	// Logger receives what a database driver reports on its own (the MySQL
	// driver's lost connections) and GORM's statement log (see
	// newGormLogger); nil discards both.
	Logger *slog.Logger
	// SlowThreshold is the duration past which a statement is logged at
	// WARN (DB_SLOW_QUERY_THRESHOLD); zero means DefaultSlowThreshold.
	SlowThreshold time.Duration
	// Tracing, when set, gives every statement a span (GORM's OpenTelemetry
	// plugin, plus GetUser's prepared statement and the outbox write).
	// Statements are recorded without their values (user data, hashes).
	Tracing trace.TracerProvider
}

// Store implements the persistence ports on one database.
type Store struct {
	db      *gorm.DB
	sqlDB   *sql.DB
	dialect string
	// writeSem serialises write transactions on SQLite, which has a single
	// writer anyway: waiting here (honouring ctx) is cheaper and fairer
	// than spinning on SQLITE_BUSY. Nil on the server databases.
	writeSem chan struct{}
	// relayKey names this database in the process-wide SQLite relay locks.
	relayKey string
	now      func() time.Time
	// Outbox statement batch sizes (fields so tests can cross them cheaply).
	markBatch, purgeBatch  int
	stmtTimeout, lockLease time.Duration
	// sessionWait is the wait_timeout a MySQL session has in the pool,
	// restored after a lock's lease.
	sessionWait string
	// prepared holds the statements the store runs without GORM, prepared:
	// GetUser's and the unfiltered list pages' (pages.go). The server skips
	// parsing them, and MySQL sends their rows in its binary protocol.
	prepared *preparedStatements
	// beforePage, when set (tests), sees (or delays, with an error to
	// return instead) each unfiltered page's statement, which GORM's
	// callbacks do not.
	beforePage func(ctx context.Context, sql string, args []any) error
	// getUserQuery is getUserSQL in the dialect's placeholders.
	getUserQuery string
	// postings remembers trigram posting-list lengths for MySQL searches.
	postings *postingLengths
	// tracer opens the spans GORM's plugin does not (no-op when tracing is off).
	tracer  trace.Tracer
	tracing trace.TracerProvider
}

// DefaultStatementTimeout bounds a store call when Config.StatementTimeout
// is zero: below the default request deadline, so a stuck database answers
// 503 before the request's own deadline passes.
const DefaultStatementTimeout = 5 * time.Second

// statementTimeout and lockLease apply the defaults of cfg's bounds.
func statementTimeout(cfg Config) time.Duration {
	if cfg.StatementTimeout == 0 {
		return DefaultStatementTimeout
	}
	return cfg.StatementTimeout
}

func lockLease(cfg Config) time.Duration {
	if cfg.LockLease <= 0 {
		return DefaultLockLease
	}
	return cfg.LockLease
}

// bound limits one store call to the statement timeout (or ctx's own
// deadline when that comes first).
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.stmtTimeout < 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.stmtTimeout)
}

// Compile-time checks that the store provides every persistence port.
var (
	_ ports.UserReader = (*Store)(nil)
	_ ports.UnitOfWork = (*Store)(nil)
	_ ports.Outbox     = (*Store)(nil)
	_ ports.RelayLock  = (*Store)(nil)
	_ ports.Tx         = (*txStore)(nil)
)

// ProviderSet provides the store and binds it to the ports it implements.
// The composition root decides whether to call Migrate (MIGRATE).
var ProviderSet = wire.NewSet(
	Provide,
	wire.Bind(new(ports.UserReader), new(*Store)),
	wire.Bind(new(ports.UnitOfWork), new(*Store)),
	wire.Bind(new(ports.Outbox), new(*Store)),
	wire.Bind(new(ports.RelayLock), new(*Store)),
)

// Provide opens the store for Wire; the cleanup closes it.
func Provide(ctx context.Context, cfg Config) (*Store, func(), error) {
	s, err := Open(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return s, func() { _ = s.Close() }, nil
}

// Open connects to the database named by cfg.URL and checks that it
// answers. An unreachable database is an error matching
// domain.ErrUnavailable. Open does not migrate: call Migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	target, err := Parse(cfg.URL, cfg.TLS)
	if err != nil {
		return nil, err
	}
	var s *Store
	switch target.Dialect {
	case DialectSQLite:
		s, err = openSQLite(target, cfg)
	case DialectMySQL:
		s, err = openMySQL(target, cfg)
	case DialectPostgres:
		s, err = openPostgres(target, cfg)
	default:
		err = fmt.Errorf("DATABASE_URL: unsupported dialect %q", target.Dialect)
	}
	if err != nil {
		return nil, err
	}
	if err := s.pingWithin(ctx, cfg.PingTimeout); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open %s: %w", target.Redacted, err)
	}
	s.markBatch, s.purgeBatch = defaultMarkBatch, defaultPurgeBatch
	s.postings = newPostingLengths(time.Now)
	s.stmtTimeout, s.lockLease = statementTimeout(cfg), lockLease(cfg)
	s.tracer = noop.NewTracerProvider().Tracer("")
	if cfg.Tracing != nil {
		s.tracing = statementTracing{cfg.Tracing}
		s.tracer = s.tracing.Tracer(tracerName)
	}
	if err := s.initGorm(ctx, cfg); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open %s: %w", target.Redacted, err)
	}
	return s, nil
}

func openSQLite(t Target, cfg Config) (*Store, error) {
	// Every connection: foreign keys on, writers start with BEGIN IMMEDIATE
	// (taking the write lock up front, so two transactions never both read
	// then deadlock upgrading), and wait up to 5s for a lock held by another
	// process instead of failing with SQLITE_BUSY.
	params := "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_txlock=immediate"
	s := &Store{dialect: DialectSQLite, writeSem: make(chan struct{}, 1), now: time.Now}
	var dsn string
	if t.Memory {
		// One connection is the one database: the pool must never open a
		// second one nor close this one.
		dsn = ":memory:" + params
		cfg.MaxOpenConns, cfg.MaxIdleConns, cfg.ConnMaxLifetime, cfg.ConnMaxIdleTime = 1, 1, 0, 0
		s.relayKey = fmt.Sprintf("memory:%p", s)
	} else {
		// WAL lets readers run while a write transaction is open.
		dsn = t.Path + params + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
		abs, err := filepath.Abs(t.Path)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL: sqlite path %q: %w", t.Path, err)
		}
		s.relayKey = "file:" + abs
		if cfg.MaxOpenConns == 0 {
			cfg.MaxOpenConns = 8
		}
		if cfg.MaxIdleConns == 0 {
			cfg.MaxIdleConns = cfg.MaxOpenConns
		}
	}
	db, err := sql.Open(sqlite.DriverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	applyPool(db, cfg)
	s.sqlDB = db
	return s, nil
}

func openMySQL(t Target, cfg Config) (*Store, error) {
	mc := t.MySQL.Clone()
	// The driver would print to standard error, outside the service's logs.
	mc.Logger = driverLogger{cfg.Logger}
	// COMMIT and ROLLBACK take no context in the driver: only a socket
	// deadline stops them on a connection that went silent, so no read or
	// write waits longer than a statement may.
	if st := statementTimeout(cfg); st > 0 {
		mc.ReadTimeout = min(mc.ReadTimeout, st+time.Second)
		mc.WriteTimeout = min(mc.WriteTimeout, st+time.Second)
	}
	// A replica cut off in the middle of a transaction leaves its session,
	// and the row locks it holds, on the server, where other replicas wait
	// for them. Every session ends after the lock lease without a command,
	// so they wait at most that long; idle pool connections are retired
	// before the server would end them.
	lease := lockLease(cfg)
	sessionWait := strconv.FormatInt(leaseSeconds(lease), 10)
	if v, ok := mc.Params["wait_timeout"]; ok {
		sessionWait = v
	} else {
		mc.Params["wait_timeout"] = sessionWait
	}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	db := sql.OpenDB(conn)
	pool := serverPool(cfg)
	pool.ConnMaxIdleTime = min(pool.ConnMaxIdleTime, lease/2)
	applyPool(db, pool)
	return &Store{dialect: DialectMySQL, sqlDB: db, now: time.Now, sessionWait: sessionWait}, nil
}

// openPostgres uses pgx's database/sql driver on the parsed configuration
// (no DSN round trip, so nothing in the URL is re-interpreted).
func openPostgres(t Target, cfg Config) (*Store, error) {
	pc := t.Postgres.Copy()
	// A replica cut off in the middle of a transaction leaves its session,
	// and the row locks it holds, on the server, where other replicas wait
	// for them (MySQL sessions end after the lease, see openMySQL). A
	// PostgreSQL session idle inside a transaction for the lock lease is
	// ended by the server, which frees them; the service's transactions
	// never wait on their client that long.
	if _, ok := pc.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		pc.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(lockLease(cfg).Milliseconds(), 10)
	}
	db := stdlib.OpenDB(*pc)
	applyPool(db, serverPool(cfg))
	return &Store{dialect: DialectPostgres, sqlDB: db, now: time.Now}, nil
}

// driverLogger passes the MySQL driver's messages ("[mysql] ... unexpected
// EOF" when a pooled connection was lost) to slog as warnings.
type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) {
	if d.l != nil {
		d.l.Warn("mysql driver", slog.String("message", strings.TrimSpace(fmt.Sprint(v...))))
	}
}

// serverPool fills the pool settings of a database server (MySQL,
// PostgreSQL) that cfg leaves at zero.
func serverPool(cfg Config) Config {
	if cfg.MaxOpenConns == 0 {
		cfg.MaxOpenConns = 20
	}
	if cfg.MaxIdleConns == 0 {
		// As many idle as open: with fewer, a busy pool closes and reopens
		// connections on every burst (the load benchmark saw ~1,000
		// reconnects a run); ConnMaxIdleTime trims them when traffic drops.
		cfg.MaxIdleConns = cfg.MaxOpenConns
	}
	if cfg.ConnMaxLifetime == 0 {
		cfg.ConnMaxLifetime = 30 * time.Minute // under every usual wait_timeout / proxy idle cut
	}
	if cfg.ConnMaxIdleTime == 0 {
		cfg.ConnMaxIdleTime = 5 * time.Minute
	}
	return cfg
}

func applyPool(db *sql.DB, cfg Config) {
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxIdleConns)
	db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	db.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
}

// initGorm wraps the pool once it is known to answer (the MySQL dialector
// asks the server's version).
func (s *Store) initGorm(ctx context.Context, cfg Config) error {
	var dialector gorm.Dialector
	switch s.dialect {
	case DialectMySQL:
		dialector = gormmysql.New(gormmysql.Config{Conn: s.sqlDB})
	case DialectPostgres:
		dialector = gormpostgres.New(gormpostgres.Config{Conn: s.sqlDB})
	default:
		dialector = &sqlite.Dialector{Conn: s.sqlDB}
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		// Statements carry user data: logged with placeholders only.
		Logger: newGormLogger(cfg.Logger, cfg.SlowThreshold),
		// Single statements need no implicit transaction; the unit of work
		// owns transactions.
		SkipDefaultTransaction: true,
		DisableAutomaticPing:   true,
		NowFunc:                func() time.Time { return dbTime(s.now()) },
	})
	if err != nil {
		return dbErr(ctx, "initialise gorm", err)
	}
	if s.tracing != nil {
		plugin := oteltracing.NewPlugin(oteltracing.WithTracerProvider(s.tracing),
			oteltracing.WithoutQueryVariables(), oteltracing.WithoutMetrics(), oteltracing.WithoutServerAddress())
		if err := db.Use(plugin); err != nil {
			return fmt.Errorf("install the tracing plugin: %w", err)
		}
	}
	s.db = db
	s.prepared = &preparedStatements{db: s.sqlDB}
	s.getUserQuery = rebind(s.dialect, getUserSQL)
	return nil
}

// tracerName is the instrumentation scope of the store's own spans.
const tracerName = "github.com/marketplace/usersvc/adapters/gormstore"

// span opens a client span for a statement GORM does not run (and, for
// the outbox write, one around GORM's), named like the plugin's spans.
func (s *Store) span(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	system := s.dialect
	if system == DialectPostgres {
		system = "postgresql" // the semantic conventions' name
	}
	return s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.DBSystemNameKey.String(system)), trace.WithAttributes(attrs...))
}

// endSpan records err (absent rows are an answer, not a failure) and ends span.
func endSpan(span trace.Span, err error) {
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		span.RecordError(err)
		span.SetStatus(codes.Error, "statement failed")
	}
	span.End()
}

// Dialect is DialectSQLite, DialectMySQL or DialectPostgres.
func (s *Store) Dialect() string { return s.dialect }

// Ping checks that the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.sqlDB.PingContext(ctx); err != nil {
		return dbErr(ctx, "ping database", err)
	}
	return nil
}

func (s *Store) pingWithin(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return s.Ping(ctx)
}

// Close closes the connection pool; with an in-memory SQLite database the
// data is gone.
func (s *Store) Close() error {
	if s.sqlDB == nil {
		return nil
	}
	// The prepared statements are left open (see preparedStatements).
	return s.sqlDB.Close()
}

// DB exposes the pool for tools and tests (e.g. the integration suites);
// the application goes through the ports.
func (s *Store) DB() *sql.DB { return s.sqlDB }

// dbTime is how every timestamp is stored: UTC with the microsecond
// precision every database keeps, so what is written reads back equal. On
// SQLite it also keeps stored text in one format (and one zone), so text
// order is time order.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
