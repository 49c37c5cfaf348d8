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
)

// Dialect names returned by Store.Dialect and Target.Dialect.
const (
	DialectSQLite = "sqlite"
	DialectMySQL  = "mysql"
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

// Target is a parsed DATABASE_URL.
type Target struct {
	// Dialect is DialectSQLite or DialectMySQL.
	Dialect string
	// Memory is true for sqlite://:memory:.
	Memory bool
	// Path is the SQLite database file (empty for Memory).
	Path string
	// MySQL is the go-sql-driver configuration (nil for SQLite). It holds
	// the password: never log it, log Redacted instead.
	MySQL *mysql.Config
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
//
// MySQL URLs always get parseTime=true, loc=UTC and charset utf8mb4; other
// parameters are handed to github.com/go-sql-driver/mysql.
func ParseURL(raw string) (Target, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Target{}, fmt.Errorf("DATABASE_URL %q: want sqlite://FILE, sqlite://:memory: or mysql://USER:PASS@HOST:PORT/DB", redact(raw))
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		return parseSQLite(rest)
	case "mysql", "mariadb":
		return parseMySQL(raw)
	default:
		return Target{}, fmt.Errorf("DATABASE_URL: unsupported scheme %q (want sqlite or mysql)", scheme)
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

func parseMySQL(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("DATABASE_URL: %w", errors.New(strings.ReplaceAll(err.Error(), raw, redact(raw))))
	}
	if u.Hostname() == "" {
		return Target{}, errors.New("DATABASE_URL: mysql URL needs a host, e.g. mysql://user:pass@db:3306/users")
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" || strings.Contains(dbName, "/") {
		return Target{}, errors.New("DATABASE_URL: mysql URL needs one database name as its path, e.g. mysql://user:pass@db:3306/users")
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
	return Target{Dialect: DialectMySQL, MySQL: cfg, Redacted: redact(raw)}, nil
}

// redact hides the password of a URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "xxxxx" + raw[i:]
			}
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
