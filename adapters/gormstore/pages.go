package gormstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"gorm.io/gorm"

	"github.com/marketplace/usersvc/domain"
)

// Unfiltered list pages (a walk by cursor, a first page, page N of
// everyone) are the reads consumers repeat most, and they come in few
// shapes: an order and a kind of page. Their statements are written here
// rather than by GORM, whose building of them was 7% of the CPU of a first
// page of ten, and most run prepared (README.md). Filtered pages stay with
// GORM: their shapes are the filters' combinations.

// selectUsers reads userColumns from users.
var selectUsers = "SELECT " + strings.Join(userColumns, ", ") + " FROM users"

// pageSQL is the statement of an unfiltered page in order: the rows after
// from (before it, backward; from the start or, backward, the end when
// from is nil), limit of them, after skipping offset. Values are arguments,
// never text, so the statement's text depends on the shape alone.
func pageSQL(dialect string, order []domain.OrderField, from *domain.SortKey, backward bool, limit, offset int) (string, []any) {
	var b strings.Builder
	b.WriteString(selectUsers)
	var args []any
	if from != nil {
		where, whereArgs := keysetWhere(order, *from, backward)
		b.WriteString(" WHERE ")
		b.WriteString(where)
		args = whereArgs
	}
	b.WriteString(" ORDER BY ")
	for i, f := range order {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(sortColumns[f.Field])
		if f.Desc != backward {
			b.WriteString(" DESC")
		}
	}
	b.WriteString(" LIMIT ?")
	args = append(args, limit)
	if offset > 0 {
		b.WriteString(" OFFSET ?")
		args = append(args, offset)
	}
	return rebind(dialect, b.String()), args
}

// rebind numbers the "?" placeholders of query ($1, $2, ...) for
// PostgreSQL; the store's own statements have no "?" anywhere else.
func rebind(dialect, query string) string {
	if dialect != DialectPostgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	n := 0
	for {
		i := strings.IndexByte(query, '?')
		if i < 0 {
			b.WriteString(query)
			return b.String()
		}
		n++
		b.WriteString(query[:i])
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
		query = query[i+1:]
	}
}

// preparedOrder reports whether pages in order run prepared: an order by
// one field (then id, unless the field is unique). With the six kinds of
// page (first, after or before a position, the end backward, a numbered
// page with or without an offset) that is at most 60 statements, where
// orders by several fields are many and rare.
func preparedOrder(order []domain.OrderField) bool {
	return len(order) == 1 || len(order) == 2 && order[1] == domain.OrderField{Field: domain.SortID}
}

// scanPage runs an unfiltered page's statement and reads its users.
func (s *Store) scanPage(ctx context.Context, order []domain.OrderField, from *domain.SortKey, backward bool, limit, offset int) (users []domain.User, err error) {
	text, args := pageSQL(s.dialect, order, from, backward, limit, offset)
	ctx, end := s.startStatement(ctx, "select users", text)
	defer func() { end(int64(len(users)), err) }()
	if s.beforePage != nil {
		if err := s.beforePage(ctx, text, args); err != nil {
			return nil, err
		}
	}
	var rows *sql.Rows
	if preparedOrder(order) {
		rows, err = s.prepared.query(ctx, text, args...)
	} else {
		rows, err = s.sqlDB.QueryContext(ctx, text, args...)
	}
	if err != nil {
		return nil, err
	}
	users, _, err = scanUsers(rows, limit, false)
	return users, err
}

// countAllSQL is the number of users, from user_counts' slots.
const countAllSQL = "SELECT COALESCE(SUM(n), 0) FROM user_counts"

// countAll reads the number of users (an unfiltered list's count).
func (s *Store) countAll(ctx context.Context) (n int64, err error) {
	ctx, end := s.startStatement(ctx, "select user_counts", countAllSQL)
	defer func() { end(1, err) }()
	err = s.prepared.scanRow(ctx, countAllSQL, nil, &n)
	return n, err
}

// startStatement opens the span of a SELECT the store runs itself, named
// "select " and its table as GORM's plugin names them, and returns what
// ends it: the span ended and the statement logged as GORM's are (see
// gormLogger: failures at ERROR, slow ones at WARN, placeholders and never
// values; an absent row is an answer, not a failure).
func (s *Store) startStatement(ctx context.Context, name, text string) (context.Context, func(rows int64, err error)) {
	ctx, span := s.span(ctx, name, semconv.DBOperationName("select"),
		semconv.DBCollectionName(strings.TrimPrefix(name, "select ")), semconv.DBQueryText(text))
	begin := time.Now()
	return ctx, func(rows int64, err error) {
		logged := err
		if errors.Is(err, sql.ErrNoRows) {
			logged = gorm.ErrRecordNotFound
		}
		s.db.Logger.Trace(ctx, begin, func() (string, int64) { return text, rows }, logged)
		endSpan(span, err)
	}
}

// preparedStatements are prepared on first use and kept for the pool's
// life: GetUser's, the count's and the unfiltered pages' (a bounded set
// of texts, see preparedOrder). Not in Open: the tables may not exist
// before Migrate, and a failed prepare (database down) is retried by the
// next call. database/sql prepares each again on every pool connection
// that runs it. They are not closed before the pool: closing the pool
// releases them on every connection, and a statement closed first would
// answer "statement is closed" instead of the closed pool's error.
type preparedStatements struct {
	db *sql.DB
	mu sync.Mutex // held while preparing, so that each text is prepared once
	m  sync.Map   // text -> *sql.Stmt
}

func (p *preparedStatements) get(ctx context.Context, text string) (*sql.Stmt, error) {
	if st, ok := p.m.Load(text); ok {
		return st.(*sql.Stmt), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.m.Load(text); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := p.db.PrepareContext(ctx, text) //nolint:sqlclosecheck // kept for the pool's life (see preparedStatements)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	p.m.Store(text, st)
	return st, nil
}

// query runs text prepared.
func (p *preparedStatements) query(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	st, err := p.get(ctx, text) //nolint:sqlclosecheck // kept for the pool's life (see preparedStatements)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// scanRow runs text prepared and scans its one row into dest
// (sql.ErrNoRows without one).
func (p *preparedStatements) scanRow(ctx context.Context, text string, args []any, dest ...any) error {
	st, err := p.get(ctx, text) //nolint:sqlclosecheck // kept for the pool's life (see preparedStatements)
	if err != nil {
		return err
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}
