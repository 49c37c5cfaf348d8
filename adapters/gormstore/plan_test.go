package gormstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/marketplace/usersvc/domain"
)

// statement is one SQL statement a store call issued, with its arguments.
type statement struct {
	sql  string
	vars []any
}

// captureQueries records every query the store's GORM handle runs from now
// on (the list page and its count); take returns and forgets them.
func captureQueries(t *testing.T, s *Store) (take func() []statement) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []statement
	)
	err := s.db.Callback().Query().After("gorm:query").Register("plan_test:capture", func(db *gorm.DB) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, statement{db.Statement.SQL.String(), append([]any(nil), db.Statement.Vars...)})
	})
	if err != nil {
		t.Fatal(err)
	}
	return func() []statement {
		mu.Lock()
		defer mu.Unlock()
		out := got
		got = nil
		return out
	}
}

// fullScans asks the database's planner for st's plan and returns the
// steps that read the whole users table (an index read in full, as for an
// ORDER BY walked until LIMIT, is not one).
func fullScans(ctx context.Context, s *Store, st statement) ([]string, string, error) {
	var (
		rows *sql.Rows
		err  error
	)
	switch s.dialect {
	case DialectSQLite:
		rows, err = s.sqlDB.QueryContext(ctx, "EXPLAIN QUERY PLAN "+st.sql, st.vars...)
	case DialectPostgres:
		// A test table is small enough for a sequential scan to be the
		// cheapest plan whatever the indexes; with it priced out, a
		// "Seq Scan on users" left in the plan means no index can serve.
		tx, terr := s.sqlDB.BeginTx(ctx, nil)
		if terr != nil {
			return nil, "", terr
		}
		defer tx.Rollback() //nolint:errcheck // read-only
		if _, err = tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err == nil {
			rows, err = tx.QueryContext(ctx, "EXPLAIN "+st.sql, st.vars...)
		}
	default:
		rows, err = s.sqlDB.QueryContext(ctx, "EXPLAIN "+st.sql, st.vars...)
	}
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var scans, plan []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, "", err
		}
		row := map[string]string{}
		var line []string
		for i, c := range cols {
			row[c] = vals[i].String
			line = append(line, c+"="+vals[i].String)
		}
		plan = append(plan, strings.Join(line, " "))
		switch s.dialect {
		case DialectSQLite:
			if row["detail"] == "SCAN users" {
				scans = append(scans, row["detail"])
			}
		case DialectPostgres:
			if strings.Contains(row["QUERY PLAN"], "Seq Scan on users") {
				scans = append(scans, row["QUERY PLAN"])
			}
		case DialectMySQL:
			if row["table"] == "users" && row["type"] == "ALL" {
				scans = append(scans, strings.Join(line, " "))
			}
		}
	}
	return scans, strings.Join(plan, "\n"), rows.Err()
}

// TestSelectiveListsUseIndexes asks each database's planner for the
// statements ListUsers issues for every selective filter (one that matches
// a small part of the table), with every ordering, in page-number mode and
// in cursor mode either way, and fails on a full scan of users. A request
// without a selective filter may scan (its LIMIT stops it early, or a
// two-field ordering sorts); a search term under three characters scans
// the emails by design (README.md).
func TestSelectiveListsUseIndexes(t *testing.T) {
	const rows = 3000
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		seedUsers(t, s, rows) // first names 200 ways, last names 5000 ways, created one per second
		if s.dialect == DialectPostgres {
			if err := s.db.Exec("ANALYZE users").Error; err != nil {
				t.Fatal(err)
			}
		}
		take := captureQueries(t, s)
		mid := domain.SortKey{ID: rows / 2, FirstName: "first42", LastName: "lastname1234", Email: "user1500.lastname1234@example45.com",
			CreatedAt: t0.Add(rows / 2 * time.Second)}
		at := func(d time.Duration) *time.Time { return ptr(t0.Add(d)) }
		filters := map[string]domain.ListQuery{
			"first_name":           {FirstName: "First42"},
			"last_name":            {LastName: "Lastname1234"},
			"email":                {Email: "user1500.lastname1234@example45.com"},
			"search":               {Search: "user150"},
			"search, name":         {Search: "lastname1234"},
			"since_id, last 1%":    {SinceID: ptr(int64(rows - 30))},
			"max_id, first 1%":     {MaxID: ptr(int64(30))},
			"created_after, 1%":    {CreatedAfter: at((rows - 30) * time.Second)},
			"created_before, 1%":   {CreatedBefore: at(30 * time.Second)},
			"last_name and search": {LastName: "Lastname1234", Search: "1500"},
		}
		orderings := [][]domain.OrderField{nil}
		for _, f := range []string{domain.SortID, domain.SortFirstName, domain.SortLastName, domain.SortEmail, domain.SortCreatedAt} {
			orderings = append(orderings, []domain.OrderField{{Field: f}}, []domain.OrderField{{Field: f, Desc: true}})
		}
		modes := map[string]*domain.Keyset{
			"page":            nil,
			"cursor first":    {},
			"cursor forward":  {From: &mid},
			"cursor backward": {From: &mid, Backward: true},
		}
		for name, f := range filters {
			for _, order := range orderings {
				for mode, ks := range modes {
					q := f
					q.Ordering, q.Keyset, q.Page, q.PageSize = order, ks, 1, 10
					what := fmt.Sprintf("%s by %v, %s", name, q.KeyOrder(), mode)
					if _, err := s.ListUsers(ctx, q); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					for _, st := range take() {
						scans, plan, err := fullScans(ctx, s, st)
						if err != nil {
							t.Fatalf("%s: explain %s: %v", what, st.sql, err)
						}
						if len(scans) > 0 {
							t.Errorf("%s: full scan of users\n%s\nplan:\n%s", what, st.sql, plan)
						}
					}
				}
			}
		}
		// The check sees scans: an unindexed condition is caught.
		if err := s.db.Table("users").Where("address LIKE ?", "%x%").Limit(1).Find(&[]userRow{}).Error; err != nil {
			t.Fatal(err)
		}
		var caught bool
		for _, st := range take() {
			scans, _, err := fullScans(ctx, s, st)
			caught = caught || err == nil && len(scans) > 0
		}
		if !caught {
			t.Error("a query on an unindexed column shows no full scan: the check cannot fail")
		}
	})
}
