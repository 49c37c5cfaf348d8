package gormstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
)

// BenchmarkLargeTable measures counts and list pages on a big users table.
// It runs only when USERSVC_BENCH_ROWS is set (e.g. 1000000), against
// USERSVC_BENCH_URL (default: a database usersvc_bench_<rows> on the test
// MySQL server, seeded once and kept for later runs; drop it when done):
//
//	USERSVC_BENCH_ROWS=1000000 go test -run '^$' -bench LargeTable -benchtime 20x ./adapters/gormstore
func BenchmarkLargeTable(b *testing.B) {
	rows, _ := strconv.Atoi(os.Getenv("USERSVC_BENCH_ROWS"))
	if rows <= 0 {
		b.Skip("set USERSVC_BENCH_ROWS to run (seeding takes minutes at 1,000,000 rows)")
	}
	ctx := context.Background()
	url := os.Getenv("USERSVC_BENCH_URL")
	if url == "" {
		root, err := ParseURL(mysqlServerURL(b))
		if err != nil {
			b.Fatal(err)
		}
		c := root.MySQL
		name := fmt.Sprintf("usersvc_bench_%d", rows)
		admin, err := Open(ctx, Config{URL: mysqlServerURL(b)})
		if err != nil {
			b.Fatal(err)
		}
		if err := admin.db.Exec("CREATE DATABASE IF NOT EXISTS " + name).Error; err != nil {
			b.Fatal(err)
		}
		admin.Close()
		url = mysqlURL(c, name)
	}
	s, err := Open(ctx, Config{URL: url})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	seedUsers(b, s, rows)

	count := func(q domain.ListQuery) func() error {
		return func() error {
			_, err := s.countUsers(s.db.WithContext(ctx), q)
			return err
		}
	}
	list := func(q domain.ListQuery) func() error {
		return func() error {
			if q.Page == 0 {
				q.Page = 1
			}
			q.PageSize = domain.DefaultPageSize
			p, err := s.ListUsers(ctx, q)
			if err == nil && len(p.Users) == 0 {
				err = fmt.Errorf("empty page")
			}
			return err
		}
	}
	newest := []domain.OrderField{{Field: domain.SortCreatedAt, Desc: true}}
	byName := []domain.OrderField{{Field: domain.SortLastName}, {Field: domain.SortFirstName}}
	cases := []struct {
		name string
		op   func() error
	}{
		{"count/COUNT(*) unfiltered", count(domain.ListQuery{})},
		{"count/counter table", func() error { _, err := s.countAll(ctx); return err }},
		{"count/last_name", count(domain.ListQuery{LastName: "lastname7"})},
		{"count/first_name", count(domain.ListQuery{FirstName: "first3"})},
		{"count/since_id half", count(domain.ListQuery{SinceID: ptr(int64(rows / 2))})},
		{"count/created_after last 10%", count(domain.ListQuery{CreatedAfter: ptr(t0.Add(time.Duration(rows*9/10) * time.Second))})},
		{"count/search", count(domain.ListQuery{Search: "lastname7"})},
		{"list/page 1 unfiltered", list(domain.ListQuery{})},
		{"list/page 1 newest first", list(domain.ListQuery{Ordering: newest})},
		{"list/page 1 by -first_name", list(domain.ListQuery{Ordering: []domain.OrderField{{Field: domain.SortFirstName, Desc: true}}})},
		{"list/page 1 by last,first name", list(domain.ListQuery{Ordering: byName})},
		{"list/page 1 last_name filter", list(domain.ListQuery{LastName: "lastname7"})},
		{"list/page 1 search", list(domain.ListQuery{Search: "lastname7"})},
		{"list/page 1000 unfiltered", list(domain.ListQuery{Page: 1000})},
		{"list/page 50000 unfiltered (offset 499990)", list(domain.ListQuery{Page: 50000})},
		{"list/since_id keyset page", list(domain.ListQuery{SinceID: ptr(int64(rows / 2))})},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.op(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// seedUserRows fills the users table up to n rows with batched multi-row
// inserts (and sets the counter), unless it already holds n rows (then it
// returns false). Names repeat (first names 200 ways, last names 5000
// ways) like real data. The search index is not filled (seedUsers does).
func seedUserRows(b testing.TB, s *Store, n int) bool {
	ctx := context.Background()
	var have int64
	if err := s.db.WithContext(ctx).Model(&userRow{}).Count(&have).Error; err != nil {
		b.Fatal(err)
	}
	if have == int64(n) {
		return false
	}
	if have != 0 {
		b.Fatalf("bench database holds %d users, want 0 or %d: drop it", have, n)
	}
	start := time.Now()
	const batch = 1000
	cols := "(email, email_ci, first_name, first_name_ci, last_name, last_name_ci, address, password_hash, version, created_at, updated_at)"
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		var sb strings.Builder
		args := make([]any, 0, (hi-lo)*11)
		sb.WriteString("INSERT INTO users " + cols + " VALUES ")
		for i := lo; i < hi; i++ {
			if i > lo {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,?,?,?,?,?)")
			first, last := fmt.Sprintf("First%d", i%200), fmt.Sprintf("Lastname%d", (i*7919)%5000)
			email := fmt.Sprintf("user%d.%s@example%d.com", i, strings.ToLower(last), i%97)
			at := dbTime(t0.Add(time.Duration(i) * time.Second))
			args = append(args, email, email, first, fold(first), last, fold(last), "1 Main Street",
				"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA", 1, at, at)
		}
		if err := s.db.WithContext(ctx).Exec(sb.String(), args...).Error; err != nil {
			b.Fatalf("seed rows %d-%d: %v", lo, hi, err)
		}
	}
	if _, err := s.RecountUsers(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("inserted %d users in %v", n, time.Since(start).Round(time.Second))
	return true
}

// seedUsers is seedUserRows, then the search index rebuilt for the rows
// and the planner's statistics refreshed.
func seedUsers(b testing.TB, s *Store, n int) {
	ctx := context.Background()
	start := time.Now()
	if !seedUserRows(b, s, n) {
		return
	}
	if err := s.RebuildSearchIndex(ctx); err != nil {
		b.Fatal(err)
	}
	if s.dialect == DialectMySQL {
		s.db.WithContext(ctx).Exec("ANALYZE TABLE users, user_email_trigrams")
	} else {
		s.db.WithContext(ctx).Exec("ANALYZE")
	}
	b.Logf("seeded %d users in %v", n, time.Since(start).Round(time.Second))
}
