package main

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	"github.com/marketplace/usersvc/adapters/gormstore"
)

// What differs between the servers the benchmark creates its database on
// (MySQL/MariaDB and PostgreSQL): the statements that make and drop a
// database, and the placeholders of the raw baseline's statements.

// defaultPostgresAdmin is the local PostgreSQL the benchmark creates its
// database on with -store postgres.
const defaultPostgresAdmin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// dropDatabaseSQL drops name if it exists. PostgreSQL refuses while
// sessions are connected (a run that was killed leaves none behind for
// long, but FORCE makes a rerun not depend on it).
func dropDatabaseSQL(dialect, name string) string {
	if dialect == gormstore.DialectPostgres {
		return "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"
	}
	return "DROP DATABASE IF EXISTS " + name
}

// createDatabase creates name unless it exists, and reports whether it
// did. PostgreSQL has no CREATE DATABASE IF NOT EXISTS.
func createDatabase(ctx context.Context, admin *sql.DB, dialect, name string) (bool, error) {
	if dialect != gormstore.DialectPostgres {
		res, err := admin.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+name)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		return n > 0, nil
	}
	var exists bool
	if err := admin.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return false, err
	}
	if exists {
		return false, nil
	}
	_, err := admin.ExecContext(ctx, "CREATE DATABASE "+name)
	return err == nil, err
}

// rebind turns the raw statements' "?" placeholders into PostgreSQL's
// "$1", "$2"... The statements hold no "?" inside literals.
func rebind(dialect, query string) string {
	if dialect != gormstore.DialectPostgres || !strings.Contains(query, "?") {
		return query
	}
	var sb strings.Builder
	sb.Grow(len(query) + 16)
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n))
			continue
		}
		sb.WriteRune(c)
	}
	return sb.String()
}
