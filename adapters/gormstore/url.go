package gormstore

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	redactpkg "github.com/marketplace/usersvc/adapters/redact"
)

// Dialect names returned by Store.Dialect and Target.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectMySQL    = "mysql"
	DialectPostgres = "postgres"
)

// Timeouts applied to MySQL connections unless the URL sets its own
// (timeout, readTimeout, writeTimeout): a dead or unreachable server then
// fails a request in seconds instead of hanging it. The read timeout bounds
// a single statement, so a long migration on a big table may need a larger
// readTimeout in the URL given to `usersvc migrate`.
const (
	defaultDialTimeout  = 5 * time.Second
	defaultReadTimeout  = 30 * time.Second
	defaultWriteTimeout = 30 * time.Second
)

// postgresAppName is the application_name PostgreSQL sessions get unless the
// URL sets one, so the service's sessions are recognisable in
// pg_stat_activity.
const postgresAppName = "usersvc"

// Target is a parsed DATABASE_URL.
type Target struct {
	// Dialect is DialectSQLite, DialectMySQL or DialectPostgres.
	Dialect string
	// Memory is true for sqlite://:memory:.
	Memory bool
	// Path is the SQLite database file (empty for Memory).
	Path string
	// MySQL is the go-sql-driver configuration (nil for SQLite). It holds
	// the password: never log it, log Redacted instead.
	MySQL *mysql.Config
	// Postgres is the pgx configuration (nil for the other dialects). It
	// holds the password too.
	Postgres *pgx.ConnConfig
	// Redacted is the URL without its password, fit for logs.
	Redacted string
}

// ParseURL checks a DATABASE_URL without connecting, so configuration can
// be validated at start-up. Accepted forms:
//
//	sqlite://users.db               file relative to the working directory
//	sqlite:///abs/path/users.db     absolute file
//	sqlite://:memory:               private in-memory database
//	mysql://user:pass@host:3306/db?param=value
//	postgres://user:pass@host:5432/db?sslmode=disable (or postgresql://)
//
// MySQL URLs always get parseTime=true, loc=UTC and charset utf8mb4; other
// parameters are handed to github.com/go-sql-driver/mysql. PostgreSQL URLs
// always get the session time zone UTC; other parameters (sslmode,
// connect_timeout, search_path...) are libpq's, read by pgx.
func ParseURL(raw string) (Target, error) { return Parse(raw, TLSFiles{}) }

// Parse is ParseURL with the TLS files of a MySQL connection
// (DATABASE_TLS_*): they are read, checked and registered with the MySQL
// driver as a named TLS configuration that verifies the server.
func Parse(raw string, files TLSFiles) (Target, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Target{}, fmt.Errorf("DATABASE_URL %q: want sqlite://FILE, sqlite://:memory:, mysql://USER:PASS@HOST:PORT/DB or postgres://USER:PASS@HOST:PORT/DB", redact(raw))
	}
	lower := strings.ToLower(scheme)
	if files.Set() && lower != "mysql" && lower != "mariadb" {
		return Target{}, fmt.Errorf("DATABASE_TLS_CA/CERT/KEY apply to MySQL only; for PostgreSQL use the URL's sslmode=verify-full&sslrootcert=...&sslcert=...&sslkey=... parameters")
	}
	switch lower {
	case "sqlite", "sqlite3":
		return parseSQLite(rest)
	case "mysql", "mariadb":
		return parseMySQL(raw, files)
	case "postgres", "postgresql":
		return parsePostgres(raw)
	default:
		return Target{}, fmt.Errorf("DATABASE_URL: unsupported scheme %q (want sqlite, mysql or postgres)", scheme)
	}
}

func parseSQLite(rest string) (Target, error) {
	if strings.ContainsAny(rest, "?#") {
		return Target{}, errors.New("DATABASE_URL: sqlite URLs take no query parameters")
	}
	switch rest {
	case "":
		return Target{}, errors.New("DATABASE_URL: sqlite URL needs a file name, e.g. sqlite://users.db")
	case ":memory:":
		return Target{Dialect: DialectSQLite, Memory: true, Redacted: "sqlite://:memory:"}, nil
	}
	path, err := url.PathUnescape(rest)
	if err != nil {
		return Target{}, fmt.Errorf("DATABASE_URL: sqlite path: %w", err)
	}
	return Target{Dialect: DialectSQLite, Path: filepath.Clean(path), Redacted: "sqlite://" + rest}, nil
}

// parseServerURL parses the URL of a database server and checks that it
// names a host and one database; example shows the expected form.
func parseServerURL(raw, kind, example string) (*url.URL, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("DATABASE_URL: %w", errors.New(strings.ReplaceAll(err.Error(), raw, redact(raw))))
	}
	if u.Hostname() == "" {
		return nil, "", fmt.Errorf("DATABASE_URL: %s URL needs a host, e.g. %s", kind, example)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" || strings.Contains(dbName, "/") {
		return nil, "", fmt.Errorf("DATABASE_URL: %s URL needs one database name as its path, e.g. %s", kind, example)
	}
	return u, dbName, nil
}

func parseMySQL(raw string, files TLSFiles) (Target, error) {
	u, dbName, err := parseServerURL(raw, "mysql", "mysql://user:pass@db:3306/users")
	if err != nil {
		return Target{}, err
	}
	port := u.Port()
	if port == "" {
		port = "3306"
	}

	// Let the driver validate and interpret the parameters (and turn unknown
	// ones into session variables), then force what the store relies on.
	params := u.Query()
	dsn := "tcp(" + net.JoinHostPort(u.Hostname(), port) + ")/" + dbName
	if len(params) > 0 {
		dsn += "?" + params.Encode()
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return Target{}, fmt.Errorf("DATABASE_URL: mysql parameters: %w", err)
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if err := cfg.Apply(mysql.Charset("utf8mb4", "")); err != nil {
		return Target{}, fmt.Errorf("DATABASE_URL: %w", err)
	}
	// Updates report matched rows, so "no such row" is told apart from
	// "nothing changed".
	cfg.ClientFoundRows = true
	// One round trip per statement instead of prepare/execute/close.
	cfg.InterpolateParams = !params.Has("interpolateParams") || cfg.InterpolateParams
	if !params.Has("timeout") {
		cfg.Timeout = defaultDialTimeout
	}
	if !params.Has("readTimeout") {
		cfg.ReadTimeout = defaultReadTimeout
	}
	if !params.Has("writeTimeout") {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, ok := cfg.Params["time_zone"]; !ok {
		cfg.Params["time_zone"] = "'+00:00'"
	}
	if err := mysqlTLS(cfg, params.Get("tls"), params.Has("tls"), files, u.Hostname()); err != nil {
		return Target{}, err
	}
	return Target{Dialect: DialectMySQL, MySQL: cfg, Redacted: redact(raw)}, nil
}

func parsePostgres(raw string) (Target, error) {
	u, _, err := parseServerURL(raw, "postgres", "postgres://user:pass@db:5432/users")
	if err != nil {
		return Target{}, err
	}
	// pgx wants the scheme in lower case; the rest is libpq's URL syntax.
	normalised := "postgres://" + strings.SplitN(raw, "://", 2)[1]
	cfg, err := pgx.ParseConfig(normalised)
	if err != nil {
		// pgx redacts what it recognises as a password; the message never
		// quotes the URL here, whatever pgx does.
		msg := strings.ReplaceAll(err.Error(), normalised, redact(raw))
		msg = redactpkg.Text(msg, redactpkg.Secrets(raw)...)
		return Target{}, fmt.Errorf("DATABASE_URL: postgres parameters: %s", msg)
	}
	// Times are stored as timestamptz: the session zone only matters for
	// text conversions, and UTC keeps those in the form every other dialect
	// uses.
	cfg.RuntimeParams["timezone"] = "UTC"
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = postgresAppName
	}
	if !u.Query().Has("connect_timeout") {
		// A dead or unreachable server fails a request in seconds instead
		// of hanging it (the dial and the start-up exchange together).
		cfg.ConnectTimeout = defaultDialTimeout
		cfg.DialFunc = (&net.Dialer{Timeout: defaultDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	return Target{Dialect: DialectPostgres, Postgres: cfg, Redacted: redact(raw)}, nil
}

// redact hides the password and password-like parameters of a URL.
func redact(raw string) string { return redactpkg.URL(raw) }
