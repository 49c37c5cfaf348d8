package gormstore

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// benchSQLiteRows is the size of BenchmarkSQLiteQueries's table: seeded in
// about a second, large enough that every query needs its index.
const benchSQLiteRows = 20_000

// BenchmarkSQLiteQueries measures each repository query the API issues,
// and the write transactions, against an SQLite file (WAL) holding
// benchSQLiteRows users seeded like BenchmarkLargeTable's. Every run starts
// from a fresh file, so it needs no setup:
//
//	go test -run '^$' -bench SQLiteQueries -benchmem ./adapters/gormstore
func BenchmarkSQLiteQueries(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, Config{URL: "sqlite://" + filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	seedUsers(b, s, benchSQLiteRows)

	// seedUsers gives user i the last name Lastname<(i*7919)%5000>: four
	// users per name at this size, so a filtered page is partial (no count).
	lastName := func(i int) string { return "Lastname" + strconv.Itoa((i*7919)%5000) }
	read := func(q func(i int) domain.ListQuery) func(i int) error {
		return func(i int) error {
			p, err := s.ListUsers(ctx, q(i))
			if err == nil && len(p.Users) == 0 {
				err = errors.New("empty page")
			}
			return err
		}
	}
	page := func(q domain.ListQuery) domain.ListQuery {
		q.PageSize = domain.DefaultPageSize
		if q.Page == 0 {
			q.Page = 1
		}
		return q
	}
	userID := func(i int) int64 { return int64(1 + i%benchSQLiteRows) }
	// Unique across sub-benchmarks and -count repetitions (emails and event ids).
	seq := 0
	next := func() string { seq++; return strconv.Itoa(seq) }
	// The same point select and page through database/sql with a prepared
	// statement: what the queries cost without GORM.
	rawGet, err := s.sqlDB.PrepareContext(ctx, "SELECT id, email, first_name, last_name, address, password_hash, country, version, created_at, updated_at FROM users WHERE id = ? LIMIT 1") //nolint:sqlclosecheck // closed by the defer below
	if err != nil {
		b.Fatal(err)
	}
	defer rawGet.Close()
	rawPage, err := s.sqlDB.PrepareContext(ctx, "SELECT id, email, first_name, last_name, address, password_hash, country, version, created_at, updated_at FROM users ORDER BY id LIMIT ? OFFSET ?")
	if err != nil {
		b.Fatal(err)
	}
	defer rawPage.Close()
	scan := func(sc interface{ Scan(...any) error }) error {
		var r userRow
		return sc.Scan(&r.ID, &r.Email, &r.FirstName, &r.LastName, &r.Address, &r.PasswordHash, &r.Country, &r.Version, &r.CreatedAt, &r.UpdatedAt)
	}
	cases := []struct {
		name string
		op   func(i int) error
	}{
		{"GetUser", func(i int) error { _, err := s.GetUser(ctx, userID(i)); return err }},
		{"GetUser/raw database/sql", func(i int) error { return scan(rawGet.QueryRowContext(ctx, userID(i))) }},
		{"ListUsers/page 1-100", read(func(i int) domain.ListQuery { return page(domain.ListQuery{Page: 1 + i%100}) })},
		{"ListUsers/page 1-100/raw database/sql, page only", func(i int) error {
			rows, err := rawPage.QueryContext(ctx, domain.DefaultPageSize, (i%100)*domain.DefaultPageSize)
			if err != nil {
				return err
			}
			defer rows.Close()
			n := 0
			for ; rows.Next(); n++ {
				if err := scan(rows); err != nil {
					return err
				}
			}
			if n == 0 {
				return errors.New("empty page")
			}
			return rows.Err()
		}},
		{"ListUsers/last_name", read(func(i int) domain.ListQuery { return page(domain.ListQuery{LastName: lastName(i)}) })},
		{"ListUsers/search", read(func(i int) domain.ListQuery { return page(domain.ListQuery{Search: lastName(i)}) })},
		{"ListUsers/newest first", read(func(int) domain.ListQuery {
			return page(domain.ListQuery{Ordering: []domain.OrderField{{Field: domain.SortCreatedAt, Desc: true}}})
		})},
		{"count/counter table", func(int) error { _, err := s.countAll(ctx); return err }},
		{"Tx/insert user and event", func(int) error {
			n := next()
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
				u := domain.User{
					Email: "bench" + n + "@example.ch", FirstName: "Bench", LastName: "User",
					PasswordHash: "x", Version: 1, CreatedAt: t0, UpdatedAt: t0,
				}
				if err := tx.InsertUser(ctx, &u); err != nil {
					return err
				}
				return tx.AppendMessage(ctx, domain.Message{EventID: "bench-" + n, Type: "users.user.created", Key: "1", OccurredAt: t0, Payload: []byte(`{}`)})
			})
		}},
		{"Tx/lock, update user and event", func(i int) error {
			n := next()
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
				u, err := tx.LockUser(ctx, userID(i))
				if err != nil {
					return err
				}
				u.Address = strconv.Itoa(i) + " Bench Street"
				u.Touch(t0)
				if err := tx.UpdateUser(ctx, u); err != nil {
					return err
				}
				return tx.AppendMessage(ctx, domain.Message{EventID: "bench-" + n, Type: "users.user.updated", Key: "1", OccurredAt: t0, Payload: []byte(`{}`)})
			})
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if err := c.op(i); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
