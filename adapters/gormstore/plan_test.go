package gormstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
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
// on (the list page and its count), and each unfiltered page's statement,
// which the store writes itself (pages.go); take returns and forgets them.
func captureQueries(t *testing.T, s *Store) (take func() []statement) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []statement
	)
	capture := func(db *gorm.DB) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, statement{db.Statement.SQL.String(), append([]any(nil), db.Statement.Vars...)})
	}
	// Pages are read through Rows (the row callbacks), counts through Find.
	err := errors.Join(
		s.db.Callback().Query().After("gorm:query").Register("plan_test:capture", capture),
		s.db.Callback().Row().After("gorm:row").Register("plan_test:capture", capture))
	if err != nil {
		t.Fatal(err)
	}
	s.beforePage = func(_ context.Context, sql string, args []any) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, statement{sql, append([]any(nil), args...)})
		return nil
	}
	t.Cleanup(func() { s.beforePage = nil })
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
// pgSettings are extra SET LOCAL statements for PostgreSQL's EXPLAIN.
func fullScans(ctx context.Context, s *Store, st statement, pgSettings ...string) ([]string, string, error) {
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
		for _, set := range append([]string{"enable_seqscan = off"}, pgSettings...) {
			if err == nil {
				_, err = tx.ExecContext(ctx, "SET LOCAL "+set)
			}
		}
		if err == nil {
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
		if s.dialect == DialectPostgres {
			// A search's ids come from user_search_ids, whose plan EXPLAIN
			// of the calling statement does not show: its query is
			// checked as the function runs it, a generic plan.
			st := searchFunctionQuery(t, s)
			scans, plan, err := fullScans(ctx, s, st, "plan_cache_mode = force_generic_plan")
			if err != nil {
				t.Fatalf("explain user_search_ids's query %s: %v", st.sql, err)
			}
			if len(scans) > 0 || !strings.Contains(plan, "ix_users_email_ci_trgm") {
				t.Errorf("user_search_ids: a full scan of users, or not the trigram index\n%s\nplan:\n%s", st.sql, plan)
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

// searchFunctionQuery is the query of the database's user_search_ids
// (PostgreSQL), its arguments numbered, with a search's arguments.
func searchFunctionQuery(t *testing.T, s *Store) statement {
	t.Helper()
	var src string
	if err := s.db.Raw("SELECT prosrc FROM pg_proc WHERE proname = 'user_search_ids'").Scan(&src).Error; err != nil || src == "" {
		t.Fatalf("user_search_ids not found (%v)", err)
	}
	_, query, ok := strings.Cut(src, "RETURN QUERY")
	query, _, ok2 := strings.Cut(query, ";")
	if !ok || !ok2 {
		t.Fatalf("user_search_ids is not RETURN QUERY ...;:\n%s", src)
	}
	query = regexp.MustCompile(`\bterm\b`).ReplaceAllString(query, "$$1")
	query = regexp.MustCompile(`\bpattern\b`).ReplaceAllString(query, "$$2")
	return statement{sql: query, vars: []any{"user150", "%user150%"}}
}

// TestDeepCursorPageSeeksTheIndex asks each planner for an unfiltered
// cursor page deep in the table (90% in, forward; 10% in, backward: the
// few rows left either way), for every ordering: the page must start with
// a seek into the ordering's index (PostgreSQL: an Index Cond; MySQL: a
// range read; SQLite: a SEARCH) and need no sort, so its cost is the page
// whatever the depth.
func TestDeepCursorPageSeeksTheIndex(t *testing.T) {
	const rows = 3000
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		seedUserRows(t, s, rows) // no search: the trigram backfill is not needed
		analyze := "ANALYZE users"
		if s.dialect == DialectMySQL {
			analyze = "ANALYZE TABLE users"
		}
		if err := s.db.Exec(analyze).Error; err != nil {
			t.Fatal(err)
		}
		take := captureQueries(t, s)
		var all []domain.User
		for after := int64(0); ; {
			page, err := s.ListUsers(ctx, domain.ListQuery{PageSize: domain.MaxPageSize, SinceID: &after})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page.Users...)
			if len(page.Users) < domain.MaxPageSize {
				break
			}
			after = page.Users[len(page.Users)-1].ID
		}
		take()
		if len(all) != rows {
			t.Fatalf("read %d users, seeded %d", len(all), rows)
		}
		orderings := [][]domain.OrderField{nil}
		for _, f := range []string{domain.SortID, domain.SortFirstName, domain.SortLastName, domain.SortEmail, domain.SortCreatedAt} {
			orderings = append(orderings, []domain.OrderField{{Field: f}}, []domain.OrderField{{Field: f, Desc: true}})
		}
		cases := []struct {
			name     string
			backward bool
			at       int // rank of the position in the order
		}{
			{"forward at 90%", false, rows * 9 / 10},
			{"backward at 10%", true, rows / 10},
		}
		for _, order := range orderings {
			for _, c := range cases {
				q := domain.ListQuery{Ordering: order, PageSize: domain.DefaultPageSize}
				sorted := sortedBy(all, q.KeyOrder())
				from := domain.KeyOf(sorted[c.at])
				q.Keyset = &domain.Keyset{From: &from, Backward: c.backward}
				what := fmt.Sprintf("%s by %v", c.name, q.KeyOrder())
				page, err := s.ListUsers(ctx, q)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if len(page.Users) != domain.DefaultPageSize {
					t.Fatalf("%s: %d users, want a full page", what, len(page.Users))
				}
				sts := take()
				if len(sts) != 1 {
					t.Fatalf("%s: %d statements, want the page's one", what, len(sts))
				}
				// On a small table PostgreSQL prefers to sort a bitmap's few
				// rows; with both priced out, a sort left means no index
				// gives the order.
				scans, plan, err := fullScans(ctx, s, sts[0], "enable_bitmapscan = off", "enable_sort = off")
				if err != nil {
					t.Fatalf("%s: explain: %v", what, err)
				}
				if problem := seekProblem(s.dialect, scans, plan); problem != "" {
					t.Errorf("%s: %s\n%s\nplan:\n%s", what, problem, sts[0].sql, plan)
				}
			}
		}
		// The check can fail: a keyset page on a column without an index.
		unindexed := statement{sql: "SELECT id FROM users WHERE address > ? ORDER BY address, id LIMIT 10", vars: []any{"1 Main"}}
		if s.dialect == DialectPostgres {
			unindexed.sql = strings.Replace(unindexed.sql, "?", "$1", 1)
		}
		scans, plan, err := fullScans(ctx, s, unindexed, "enable_bitmapscan = off", "enable_sort = off")
		if err != nil {
			t.Fatal(err)
		}
		if seekProblem(s.dialect, scans, plan) == "" {
			t.Errorf("a page on an unindexed column passes the check:\n%s", plan)
		}
	})
}

// seekProblem says why a plan is not an index seek without a sort ("" when
// it is one).
func seekProblem(dialect string, scans []string, plan string) string {
	switch {
	case len(scans) > 0:
		return "full scan of users"
	case dialect == DialectMySQL && strings.Contains(plan, "Using filesort"):
		return "sorts (filesort)"
	case dialect == DialectMySQL && !strings.Contains(plan, "type=range"):
		return "no range read of an index"
	case dialect == DialectPostgres && regexp.MustCompile(`(^|->\s+)(Incremental )?Sort\b`).MatchString(plan):
		return "sorts"
	case dialect == DialectPostgres && !strings.Contains(plan, "Index Cond"):
		return "no index condition"
	case dialect == DialectSQLite && strings.Contains(plan, "TEMP B-TREE"):
		return "sorts (temp b-tree)"
	case dialect == DialectSQLite && !strings.Contains(plan, "SEARCH users"):
		return "no index search"
	}
	return ""
}

// sortedBy returns users in order (names and emails folded, as stored); the
// test needs only ranks near an end, not the database's exact collation.
func sortedBy(users []domain.User, order []domain.OrderField) []domain.User {
	out := slices.Clone(users)
	slices.SortFunc(out, func(a, b domain.User) int {
		for _, f := range order {
			var c int
			switch f.Field {
			case domain.SortFirstName:
				c = cmp.Compare(fold(a.FirstName), fold(b.FirstName))
			case domain.SortLastName:
				c = cmp.Compare(fold(a.LastName), fold(b.LastName))
			case domain.SortEmail:
				c = cmp.Compare(fold(a.Email), fold(b.Email))
			case domain.SortCreatedAt:
				c = a.CreatedAt.Compare(b.CreatedAt)
			default:
				c = cmp.Compare(a.ID, b.ID)
			}
			if f.Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	return out
}

// Unfiltered list pages ordered by one field run as prepared statements
// on every dialect, written by the store (pages.go); pages ordered by
// several fields run as plain statements, filtered ones through GORM. The
// answers are the conformance suite's concern.
func TestUnfilteredPagesArePrepared(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		insert(t, s, newUser("Ann", "Zed", "ann@example.com", 0), newUser("Bob", "Zed", "bob@example.com", time.Second))
		var viaGORM int
		err := s.db.Callback().Row().After("gorm:row").Register("test:gorm", func(*gorm.DB) { viaGORM++ })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.db.Callback().Row().Remove("test:gorm") })
		byName := []domain.OrderField{{Field: domain.SortLastName, Desc: true}}
		cases := []struct {
			name     string
			q        domain.ListQuery
			prepared int // statements prepared by the call (page and count)
			gorm     bool
		}{
			{"unfiltered, first page", domain.ListQuery{PageSize: 1, Keyset: &domain.Keyset{}}, 1, false},
			{"unfiltered, the same shape with another page size", domain.ListQuery{PageSize: 2, Keyset: &domain.Keyset{}}, 0, false},
			{"unfiltered, by last name after a position", domain.ListQuery{PageSize: 1, Ordering: byName,
				Keyset: &domain.Keyset{From: &domain.SortKey{ID: 1, LastName: "Zed"}}}, 1, false},
			{"unfiltered, backward from the end", domain.ListQuery{PageSize: 1, Keyset: &domain.Keyset{Backward: true}}, 1, false},
			{"unfiltered, page 2, with its count", domain.ListQuery{Page: 2, PageSize: 1}, 2, false},
			{"unfiltered, by two fields", domain.ListQuery{PageSize: 1, Keyset: &domain.Keyset{},
				Ordering: []domain.OrderField{{Field: domain.SortLastName}, {Field: domain.SortFirstName}}}, 0, false},
			{"filtered", domain.ListQuery{PageSize: 1, LastName: "Zed", Keyset: &domain.Keyset{}}, 0, true},
			{"filtered, page 2", domain.ListQuery{Page: 2, PageSize: 1, LastName: "Zed"}, 0, true},
		}
		for _, c := range cases {
			viaGORM = 0
			before := s.prepared.count()
			page, err := s.ListUsers(ctx, c.q)
			if err != nil || len(page.Users) != min(c.q.PageSize, 2) {
				t.Fatalf("%s: %d users, %v", c.name, len(page.Users), err)
			}
			if got := s.prepared.count() - before; got != c.prepared {
				t.Errorf("%s: %d statements prepared, want %d", c.name, got, c.prepared)
			}
			if (viaGORM > 0) != c.gorm {
				t.Errorf("%s: %d statements through GORM, want them there: %v", c.name, viaGORM, c.gorm)
			}
		}
	})
}

// count is how many statements are prepared.
func (p *preparedStatements) count() int {
	n := 0
	p.m.Range(func(any, any) bool { n++; return true })
	return n
}
