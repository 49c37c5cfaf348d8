package gormstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

func TestMigrateFromEmptyIsIdempotent(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		cur, latest, err := s.MigrationVersion(ctx)
		if err != nil || cur != 0 || latest < 2 {
			t.Fatalf("before: version %d of %d, %v; want 0 of >= 2", cur, latest, err)
		}
		for run := 1; run <= 2; run++ {
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate run %d: %v", run, err)
			}
			if cur, latest, err = s.MigrationVersion(ctx); err != nil || cur != latest {
				t.Fatalf("after run %d: version %d of %d, %v", run, cur, latest, err)
			}
		}
		// The schema works, and a second store on the same database (another
		// replica starting) migrates to a no-op.
		insert(t, s, newUser("A", "B", "a@example.com", 0))
		if url != "sqlite://:memory:" {
			if err := openStore(t, url).Migrate(ctx); err != nil {
				t.Fatalf("second store Migrate: %v", err)
			}
		}
	})
}

func TestUserLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		// Nanoseconds and a non-UTC zone: stored as UTC microseconds.
		zone := time.FixedZone("CET", 3600)
		u := newUser("Ada", "Lovelace", "ada@example.com", 0)
		u.CreatedAt = time.Date(2024, 3, 1, 13, 0, 0, 123456789, zone)
		u.UpdatedAt = u.CreatedAt
		if err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.InsertUser(ctx, &u) }); err != nil {
			t.Fatalf("InsertUser: %v", err)
		}
		if u.ID <= 0 {
			t.Fatalf("InsertUser set ID %d", u.ID)
		}
		wantTime := time.Date(2024, 3, 1, 12, 0, 0, 123456000, time.UTC)
		if !u.CreatedAt.Equal(wantTime) || u.CreatedAt.Location() != time.UTC {
			t.Errorf("inserted CreatedAt = %v, want %v", u.CreatedAt, wantTime)
		}
		got, err := s.GetUser(ctx, u.ID)
		if err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		if got != u {
			t.Fatalf("GetUser = %+v\nwant     %+v", got, u)
		}

		// Update every field under lock.
		err = s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
			locked, err := tx.LockUser(ctx, u.ID)
			if err != nil {
				return err
			}
			locked.FirstName, locked.LastName, locked.Email = "Augusta", "King", "augusta@example.com"
			locked.Address, locked.PasswordHash = "Ockham Park", "new-hash"
			locked.Touch(t0.Add(time.Hour))
			u = locked
			return tx.UpdateUser(ctx, locked)
		})
		if err != nil {
			t.Fatalf("update: %v", err)
		}
		if got, err = s.GetUser(ctx, u.ID); err != nil || got != u || got.Version != 2 {
			t.Fatalf("after update GetUser = %+v, %v; want %+v (version 2)", got, err, u)
		}

		if err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.DeleteUser(ctx, u.ID) }); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		if _, err := s.GetUser(ctx, u.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("GetUser after delete: %v, want ErrNotFound", err)
		}
	})
}

func TestMissingUserIsNotFound(t *testing.T) {
	cases := []struct {
		name string
		op   func(ctx context.Context, s *Store) error
	}{
		{"get", func(ctx context.Context, s *Store) error { _, err := s.GetUser(ctx, 4242); return err }},
		{"lock", func(ctx context.Context, s *Store) error {
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { _, err := tx.LockUser(ctx, 4242); return err })
		}},
		{"update", func(ctx context.Context, s *Store) error {
			u := newUser("A", "B", "a@example.com", 0)
			u.ID = 4242
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.UpdateUser(ctx, u) })
		}},
		{"delete", func(ctx context.Context, s *Store) error {
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.DeleteUser(ctx, 4242) })
		}},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		insert(t, s, newUser("A", "B", "a@example.com", 0))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if err := c.op(context.Background(), s); !errors.Is(err, domain.ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
			})
		}
		if n, err := countAll(s.db); err != nil || n != 1 {
			t.Fatalf("count after failed deletes = %d, %v; want 1", n, err)
		}
	})
}

func TestEmailUniqueCaseInsensitive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ids := insert(t, s, newUser("A", "One", "taken@example.com", 0), newUser("B", "Two", "free@example.com", 0))
		cases := []struct {
			name    string
			op      func(ctx context.Context, tx ports.Tx) error
			wantErr error
		}{
			{"insert same email", func(ctx context.Context, tx ports.Tx) error {
				u := newUser("C", "Three", "taken@example.com", 0)
				return tx.InsertUser(ctx, &u)
			}, domain.ErrEmailTaken},
			{"insert other case", func(ctx context.Context, tx ports.Tx) error {
				u := newUser("C", "Three", "TAKEN@Example.COM", 0)
				return tx.InsertUser(ctx, &u)
			}, domain.ErrEmailTaken},
			{"update to taken email", func(ctx context.Context, tx ports.Tx) error {
				u, err := tx.LockUser(ctx, ids[1])
				if err != nil {
					return err
				}
				u.Email = "Taken@example.com"
				return tx.UpdateUser(ctx, u)
			}, domain.ErrEmailTaken},
			{"update own email case", func(ctx context.Context, tx ports.Tx) error {
				u, err := tx.LockUser(ctx, ids[0])
				if err != nil {
					return err
				}
				u.Email = "TAKEN@example.com"
				return tx.UpdateUser(ctx, u)
			}, nil},
			{"insert trailing space is another email", func(ctx context.Context, tx ports.Tx) error {
				u := newUser("C", "Three", "free@example.com ", 0)
				return tx.InsertUser(ctx, &u)
			}, nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				err := s.Do(ctx, c.op)
				if c.wantErr == nil && err != nil || c.wantErr != nil && !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
			})
		}
		if n, err := countAll(s.db); err != nil || n != 3 {
			t.Fatalf("count = %d, %v; want 3", n, err)
		}
	})
}

func TestConcurrentInsertsOfOneEmail(t *testing.T) {
	const racers = 50
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// Half of them spell the email in another case.
				email := "race@example.com"
				if i%2 == 1 {
					email = "Race@Example.COM"
				}
				u := newUser("Racer", fmt.Sprint(i), email, 0)
				errs[i] = s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.InsertUser(ctx, &u) })
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, domain.ErrEmailTaken):
				t.Errorf("racer %d: %v, want nil or ErrEmailTaken", i, err)
			}
		}
		if won != 1 {
			t.Errorf("%d inserts succeeded, want exactly 1", won)
		}
		var rows int64
		if err := s.db.Model(&userRow{}).Count(&rows).Error; err != nil || rows != 1 {
			t.Errorf("users rows = %d, %v; want 1", rows, err)
		}
		if n, err := countAll(s.db); err != nil || n != 1 {
			t.Errorf("counter = %d, %v; want 1", n, err)
		}
	})
}

func TestRollbackLeavesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		kept := insert(t, s, newUser("Kept", "User", "kept@example.com", 0))[0]
		boom := errors.New("boom")
		cases := []struct {
			name string
			fn   func(ctx context.Context, tx ports.Tx) error
			want error
		}{
			{"fn fails after writes", func(ctx context.Context, tx ports.Tx) error {
				u := newUser("Gone", "User", "gone@example.com", 0)
				if err := tx.InsertUser(ctx, &u); err != nil {
					return err
				}
				if err := tx.AppendMessage(ctx, message("ev-rollback", t0)); err != nil {
					return err
				}
				return boom
			}, boom},
			{"outbox insert fails", func(ctx context.Context, tx ports.Tx) error {
				u := newUser("Gone", "User", "gone@example.com", 0)
				if err := tx.InsertUser(ctx, &u); err != nil {
					return err
				}
				if err := tx.AppendMessage(ctx, message("ev-dup", t0)); err != nil {
					return err
				}
				return tx.AppendMessage(ctx, message("ev-dup", t0)) // duplicate event id
			}, nil},
			{"delete then fail", func(ctx context.Context, tx ports.Tx) error {
				if err := tx.DeleteUser(ctx, kept); err != nil {
					return err
				}
				return boom
			}, boom},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				err := s.Do(ctx, c.fn)
				if err == nil || c.want != nil && !errors.Is(err, c.want) {
					t.Fatalf("Do = %v, want %v", err, c.want)
				}
				if errors.Is(err, domain.ErrEmailTaken) || errors.Is(err, domain.ErrUnavailable) {
					t.Fatalf("Do = %v, mapped to a domain error it is not", err)
				}
				var users, msgs int64
				s.db.Model(&userRow{}).Count(&users)
				s.db.Model(&outboxRow{}).Count(&msgs)
				if users != 1 || msgs != 0 {
					t.Fatalf("after rollback: %d users, %d outbox rows; want 1 and 0", users, msgs)
				}
				if n, err := countAll(s.db); err != nil || n != 1 {
					t.Fatalf("counter after rollback = %d, %v; want 1", n, err)
				}
			})
		}
	})
}

func TestPanicInTransactionRollsBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		func() {
			defer func() { _ = recover() }()
			_ = s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
				u := newUser("P", "Anic", "panic@example.com", 0)
				if err := tx.InsertUser(ctx, &u); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		// The connection went back to the pool outside a transaction and
		// the write lock (SQLite) was released: the next write works.
		insert(t, s, newUser("P", "Anic", "panic@example.com", 0))
		if n, _ := countAll(s.db); n != 1 {
			t.Fatalf("counter = %d, want 1", n)
		}
	})
}

// fixture users, inserted in this order (so ids grow in this order).
var fixture = []domain.User{
	newUser("Alice", "Smith", "alice@example.com", 1*time.Second),                                // 0
	newUser("bob", "SMITH", "bob.smith@example.com", 2*time.Second),                              // 1
	newUser("ALICE", "Jones", "a_lice@example.org", 3*time.Second),                               // 2
	newUser("Carol", "Percent", "carol%50@example.net", 4*time.Second),                           // 3
	newUser("Dave", "smith", "dave@smith.io", 4*time.Second),                                     // 4
	newUser("Émile", "Zola", "emile!x@example.fr", 5500*time.Millisecond),                        // 5
	newUser("Zed", `Back\slash`, `z\ed@example.com`, 5250*time.Millisecond),                      // 6
	newUser("ann", "Smyth", "ann@example.com", 5*time.Second),                                    // 7
	newUser("Ben", "Alice", "ben@alice.dev", 5*time.Second+125*time.Millisecond+time.Nanosecond), // 8
}

// listCase is a query and the fixture indexes it must return, in order.
type listCase struct {
	name string
	q    domain.ListQuery
	want []int
}

func runListCases(t *testing.T, cases []listCase) {
	t.Helper()
	forEachBackend(t, func(t *testing.T, s *Store) {
		ids := insert(t, s, fixture...)
		index := map[int64]int{}
		for i, id := range ids {
			index[id] = i
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				q := c.q
				if q.Page == 0 {
					q.Page, q.PageSize = 1, domain.MaxPageSize
				}
				// Id bounds in cases are fixture indexes.
				if q.SinceID != nil {
					q.SinceID = ptr(ids[*q.SinceID])
				}
				if q.MaxID != nil {
					q.MaxID = ptr(ids[*q.MaxID])
				}
				page, err := s.ListUsers(context.Background(), q)
				if err != nil {
					t.Fatalf("ListUsers: %v", err)
				}
				got := make([]int, len(page.Users))
				for i, u := range page.Users {
					got[i] = index[u.ID]
				}
				if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
					t.Fatalf("got fixture users %v, want %v", got, c.want)
				}
				if q.PageSize == domain.MaxPageSize && page.Total != int64(len(c.want)) {
					t.Fatalf("Total = %d, want %d", page.Total, len(c.want))
				}
				// The page was partial, so Total came from its length: check
				// the count query too.
				if n, err := countUsers(s.db, q); err != nil || n != int64(len(c.want)) {
					t.Fatalf("countUsers = %d, %v; want %d", n, err, len(c.want))
				}
			})
		}
	})
}

func TestListFilters(t *testing.T) {
	at := func(d time.Duration) *time.Time { return ptr(t0.Add(d)) }
	runListCases(t, []listCase{
		{"no filter", domain.ListQuery{}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{"first name any case", domain.ListQuery{FirstName: "aLiCe"}, []int{0, 2}},
		{"first name non-ascii", domain.ListQuery{FirstName: "émile"}, []int{5}},
		{"first name is exact, not a prefix", domain.ListQuery{FirstName: "ali"}, nil},
		{"first name trailing space does not match", domain.ListQuery{FirstName: "alice "}, nil},
		{"last name", domain.ListQuery{LastName: "SMITH"}, []int{0, 1, 4}},
		{"email any case", domain.ListQuery{Email: "ALICE@example.COM"}, []int{0}},
		{"email is exact", domain.ListQuery{Email: "alice@example"}, nil},
		{"first and last name", domain.ListQuery{FirstName: "alice", LastName: "smith"}, []int{0}},
		{"search last name or email", domain.ListQuery{Search: "Smith"}, []int{0, 1, 4}},
		{"search email substring", domain.ListQuery{Search: "ALICE"}, []int{0, 8}},
		{"search last name only", domain.ListQuery{Search: "zola"}, []int{5}},
		{"search underscore is literal", domain.ListQuery{Search: "_"}, []int{2}},
		{"search a_l is literal", domain.ListQuery{Search: "a_l"}, []int{2}},
		{"search percent is literal", domain.ListQuery{Search: "%"}, []int{3}},
		{"search escape char is literal", domain.ListQuery{Search: "!x"}, []int{5}},
		{"search backslash is literal", domain.ListQuery{Search: `z\e`}, []int{6}},
		{"search backslash last name", domain.ListQuery{Search: `back\SLASH`}, []int{6}},
		{"search no match", domain.ListQuery{Search: "nobody"}, nil},
		{"search and last name", domain.ListQuery{Search: "smith", FirstName: "bob"}, []int{1}},
		{"since id", domain.ListQuery{SinceID: ptr(int64(5))}, []int{6, 7, 8}},
		{"max id", domain.ListQuery{MaxID: ptr(int64(2))}, []int{0, 1}},
		{"since and max id", domain.ListQuery{SinceID: ptr(int64(1)), MaxID: ptr(int64(4))}, []int{2, 3}},
		{"created after is strict", domain.ListQuery{CreatedAfter: at(4 * time.Second)}, []int{5, 6, 7, 8}},
		{"created before is strict", domain.ListQuery{CreatedBefore: at(4 * time.Second)}, []int{0, 1, 2}},
		{"created between sub-second", domain.ListQuery{CreatedAfter: at(5100 * time.Millisecond), CreatedBefore: at(5300 * time.Millisecond)}, []int{6, 8}},
		{"created before a nanosecond later", domain.ListQuery{CreatedBefore: at(time.Second + time.Nanosecond)}, []int{0}},
		{"created after a nanosecond earlier", domain.ListQuery{CreatedAfter: at(5*time.Second - time.Nanosecond), CreatedBefore: at(5*time.Second + time.Microsecond)}, []int{7}},
		{"created after the last", domain.ListQuery{CreatedAfter: at(5500 * time.Millisecond)}, nil},
		{"filters combine", domain.ListQuery{LastName: "smith", CreatedAfter: at(time.Second)}, []int{1, 4}},
		{"created after in another zone", domain.ListQuery{CreatedAfter: ptr(t0.Add(5 * time.Second).In(time.FixedZone("X", -5*3600)))}, []int{5, 6, 8}},
	})
}

func TestListOrdering(t *testing.T) {
	asc := func(f string) domain.OrderField { return domain.OrderField{Field: f} }
	desc := func(f string) domain.OrderField { return domain.OrderField{Field: f, Desc: true} }
	order := func(fs ...domain.OrderField) domain.ListQuery { return domain.ListQuery{Ordering: fs} }
	runListCases(t, []listCase{
		{"default is id", order(), []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{"-id", order(desc("id")), []int{8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{"first_name ignores case, ties by id", order(asc("first_name")), []int{0, 2, 7, 8, 1, 3, 4, 6, 5}},
		{"-first_name, ties by id ascending", order(desc("first_name")), []int{5, 6, 4, 3, 1, 8, 7, 0, 2}},
		{"last_name", order(asc("last_name")), []int{8, 6, 2, 3, 0, 1, 4, 7, 5}},
		{"-last_name", order(desc("last_name")), []int{5, 7, 0, 1, 4, 3, 2, 6, 8}},
		{"last_name,-first_name", order(asc("last_name"), desc("first_name")), []int{8, 6, 2, 3, 4, 1, 0, 7, 5}},
		{"email", order(asc("email")), []int{2, 0, 7, 8, 1, 3, 4, 5, 6}},
		{"-email", order(desc("email")), []int{6, 5, 4, 3, 1, 8, 7, 0, 2}},
		{"created_at with sub-second times", order(asc("created_at")), []int{0, 1, 2, 3, 4, 7, 8, 6, 5}},
		{"-created_at, ties by id ascending", order(desc("created_at")), []int{5, 6, 8, 7, 3, 4, 2, 1, 0}},
		{"-created_at,-id", order(desc("created_at"), desc("id")), []int{5, 6, 8, 7, 4, 3, 2, 1, 0}},
		{"unknown and repeated names ignored", order(asc("password"), desc("last_name"), asc("last_name")), []int{5, 7, 0, 1, 4, 3, 2, 6, 8}},
		{"ordering with a filter", domain.ListQuery{LastName: "smith", Ordering: []domain.OrderField{desc("first_name")}}, []int{4, 1, 0}},
	})
}

func TestListPagingAndCounts(t *testing.T) {
	page := func(n, size int, q domain.ListQuery) domain.ListQuery {
		q.Page, q.PageSize = n, size
		return q
	}
	smith := domain.ListQuery{LastName: "smith"}
	newest := domain.ListQuery{Ordering: []domain.OrderField{{Field: "created_at", Desc: true}}}
	cases := []struct {
		name      string
		q         domain.ListQuery
		want      []int
		wantTotal int64
	}{
		{"first page", page(1, 4, domain.ListQuery{}), []int{0, 1, 2, 3}, 9},
		{"middle page", page(2, 4, domain.ListQuery{}), []int{4, 5, 6, 7}, 9},
		{"last partial page", page(3, 4, domain.ListQuery{}), []int{8}, 9},
		{"past the end", page(4, 4, domain.ListQuery{}), nil, 9},
		{"exact last page", page(3, 3, domain.ListQuery{}), []int{6, 7, 8}, 9},
		{"filtered first page", page(1, 2, smith), []int{0, 1}, 3},
		{"filtered last page", page(2, 2, smith), []int{4}, 3},
		{"filtered past the end", page(3, 2, smith), nil, 3},
		{"empty result", page(1, 10, domain.ListQuery{LastName: "nobody"}), nil, 0},
		{"ordered page", page(2, 3, newest), []int{7, 3, 4}, 9},
		{"search page", page(1, 1, domain.ListQuery{Search: "alice"}), []int{0}, 2},
		{"search page with last-name-only matches", page(1, 1, domain.ListQuery{Search: "smith"}), []int{0}, 3},
		{"id range page", page(1, 2, domain.ListQuery{SinceID: ptr(int64(0))}), []int{1, 2}, 8},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ids := insert(t, s, fixture...)
		index := map[int64]int{}
		for i, id := range ids {
			index[id] = i
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				q := c.q
				if q.SinceID != nil {
					q.SinceID = ptr(ids[*q.SinceID])
				}
				p, err := s.ListUsers(ctx, q)
				if err != nil {
					t.Fatalf("ListUsers: %v", err)
				}
				var got []int
				for _, u := range p.Users {
					got = append(got, index[u.ID])
				}
				if !slices.Equal(got, c.want) || p.Total != c.wantTotal {
					t.Fatalf("got %v total %d, want %v total %d", got, p.Total, c.want, c.wantTotal)
				}
			})
		}

		// The unfiltered total comes from the counter: it must stay exact
		// through deletes and rolled-back inserts and deletes.
		total := func() int64 {
			t.Helper()
			p, err := s.ListUsers(ctx, domain.ListQuery{Page: 1, PageSize: 2})
			if err != nil {
				t.Fatalf("ListUsers: %v", err)
			}
			var rows int64
			if err := s.db.Model(&userRow{}).Count(&rows).Error; err != nil {
				t.Fatal(err)
			}
			if p.Total != rows {
				t.Fatalf("counter total %d != COUNT(*) %d", p.Total, rows)
			}
			return p.Total
		}
		for _, id := range ids[:3] {
			if err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.DeleteUser(ctx, id) }); err != nil {
				t.Fatal(err)
			}
		}
		if got := total(); got != 6 {
			t.Fatalf("total after 3 deletes = %d, want 6", got)
		}
		_ = s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
			u := newUser("X", "Y", "rolled@back.io", 0)
			if err := tx.InsertUser(ctx, &u); err != nil {
				return err
			}
			if err := tx.DeleteUser(ctx, ids[4]); err != nil {
				return err
			}
			return errors.New("roll back")
		})
		if got := total(); got != 6 {
			t.Fatalf("total after rollback = %d, want 6", got)
		}
	})
}

// TestDeadlockIsRetried makes two transactions lock two users in opposite
// orders; the server (MySQL 1213, PostgreSQL 40P01) kills one as a deadlock
// victim, and Do must run it again so that both succeed. (SQLite has one
// writer at a time: no deadlock.)
func TestDeadlockIsRetried(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		s := openMigrated(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ids := insert(t, s, newUser("A", "A", "a@example.com", 0), newUser("B", "B", "b@example.com", 0))
		var (
			both     sync.WaitGroup
			attempts [2]int
			mu       sync.Mutex
		)
		both.Add(2)
		lockBoth := func(i int, first, second int64) error {
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
				mu.Lock()
				attempts[i]++
				firstTry := attempts[i] == 1
				mu.Unlock()
				u, err := tx.LockUser(ctx, first)
				if err != nil {
					return err
				}
				if firstTry {
					both.Done() // each holds its first lock ...
					both.Wait() // ... before asking for the other's
				}
				if _, err := tx.LockUser(ctx, second); err != nil {
					return err
				}
				u.Touch(t0)
				return tx.UpdateUser(ctx, u)
			})
		}
		errs := make(chan error, 2)
		go func() { errs <- lockBoth(0, ids[0], ids[1]) }()
		go func() { errs <- lockBoth(1, ids[1], ids[0]) }()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("Do: %v", err)
			}
		}
		if attempts[0]+attempts[1] < 3 {
			t.Fatalf("attempts %v: expected one transaction to be retried after a deadlock", attempts)
		}
	})
}
