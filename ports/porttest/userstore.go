package porttest

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

// UserStore is what every persistence adapter provides: users read outside
// transactions, the unit of work (users and outbox written together), the
// relay's view of the outbox and the relay lock.
type UserStore interface {
	ports.UserReader
	ports.UnitOfWork
	ports.Outbox
	ports.RelayLock
}

// RunUserStoreContract proves a store against the persistence ports.
// newStore must return an empty store of its own (a fresh database) each
// time it is called, and is called from parallel subtests; the store is the
// caller's to close (t.Cleanup).
//
// The contract, beyond the port comments:
//   - InsertUser sets a positive ID; every field, Version and Country
//     included, reads back as written, timestamps in UTC at microsecond
//     precision. UpdateUser writes every field but Country ("" = none).
//   - Emails are unique compared case-insensitively (a trailing space makes
//     another email): domain.ErrEmailTaken on insert and on update, and
//     exactly one of concurrent inserts of one email wins.
//   - A missing user is domain.ErrNotFound for GetUser, LockUser,
//     UpdateUser and DeleteUser.
//   - ListUsers filters: first_name, last_name and email equal (case
//     folded), search = last name equal OR email containing the term with
//     %, _, \ and ! taken literally; since_id, max_id, created_after and
//     created_before are strict bounds; countries keeps users created from
//     one of the codes (never those without a country). Orderings compare lower-cased text
//     byte-wise (code point order), unknown or repeated keys are ignored,
//     and id ascending breaks ties. Total counts every match, also past the
//     last page and after deletes and rollbacks.
//   - Do commits fn's writes (users and outbox messages) together, or none
//     of them when fn returns an error, which Do returns unchanged (errors.Is)
//     and unmapped, or panics, in which case the panic reaches Do's caller
//     and the store keeps working.
//   - Keyset pages (ListQuery.Keyset) walk every filter and ordering in
//     q.KeyOrder() forward from the start and backward from the end, in
//     order, meeting what page-number mode lists; rows inserted or deleted
//     during a walk never make it repeat or skip a row that existed
//     throughout. Search answers as a scan of every row would, through an
//     index or not.
//   - The outbox returns unpublished messages in Seq order (Seq growing),
//     field for field as appended, only those with a Seq above the given
//     afterSeq (published ones are skipped, not counted); MarkPublished ignores unknown and already
//     published seqs (the first publication time stays); PurgePublished
//     deletes only messages published strictly before the cutoff; Backlog
//     counts unpublished messages and gives the earliest OccurredAt.
//   - The relay lock has one holder at a time; unlock is idempotent (a stale
//     unlock never frees a later holder's lock) and the end of the holder's
//     context releases it. The held context is live while the lock is held
//     and ends on unlock.
func RunUserStoreContract(t *testing.T, newStore func(t *testing.T) UserStore) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, newStore func(t *testing.T) UserStore)
	}{
		{"lifecycle through the unit of work", testStoreLifecycle},
		{"timestamps round-trip in UTC at microsecond precision", testStoreTimestamps},
		{"missing user is not found", testStoreNotFound},
		{"email is unique case-insensitively", testStoreEmailUnique},
		{"concurrent inserts of one email: exactly one wins", testStoreEmailRace},
		{"list filters", testStoreListFilters},
		{"list ordering", testStoreListOrdering},
		{"list paging and totals", testStoreListPaging},
		{"totals after deletes and rollbacks", testStoreCountsAfterChanges},
		{"keyset walks meet the page-number listing, both ways", testStoreKeysetWalk},
		{"keyset walks under concurrent inserts and deletes", testStoreKeysetConcurrentChanges},
		{"search answers as a scan does", testStoreSearchAsScan},
		{"rollback leaves neither user nor message", testStoreRollback},
		{"panic in the unit of work rolls back and propagates", testStorePanic},
		{"outbox order, marking, purging and backlog", testStoreOutbox},
		{"outbox keeps each message's trace context", testStoreOutboxTraceContext},
		{"relay lock", testStoreRelayLock},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore)
		})
	}
}

var (
	// t0 is the fixture's time origin.
	t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	// errRollback is what the suite's transactions fail with on purpose.
	errRollback = errors.New("porttest: roll back on purpose")
)

// newUser is a valid user created at t0 plus offset.
func newUser(first, last, email string, offset time.Duration) domain.User {
	at := t0.Add(offset)
	return domain.User{
		Email: email, FirstName: first, LastName: last, Address: "1 Main St",
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Version: 1,
		CreatedAt: at, UpdatedAt: at,
	}
}

// insertUsers stores users, one transaction each, and returns their ids.
func insertUsers(t *testing.T, s UserStore, users ...domain.User) []int64 {
	t.Helper()
	ids := make([]int64, len(users))
	for i := range users {
		u := users[i]
		err := s.Do(context.Background(), func(ctx context.Context, tx ports.Tx) error { return tx.InsertUser(ctx, &u) })
		mustNotFail(t, "insert "+u.Email, err)
		if u.ID <= 0 {
			t.Fatalf("InsertUser set ID %d, want a positive one", u.ID)
		}
		ids[i] = u.ID
	}
	return ids
}

// deleteUser locks then deletes, as the port asks.
func deleteUser(ctx context.Context, tx ports.Tx, id int64) error {
	if _, err := tx.LockUser(ctx, id); err != nil {
		return err
	}
	return tx.DeleteUser(ctx, id)
}

// total is the number of users matching q (no paging in q needed).
func total(t *testing.T, s UserStore, q domain.ListQuery) int64 {
	t.Helper()
	q.Page, q.PageSize = 1, 1
	p, err := s.ListUsers(context.Background(), q)
	mustNotFail(t, "ListUsers", err)
	return p.Total
}

// sameUser reports whether a store gave want back as got (see sameTime).
func sameUser(got, want domain.User) bool {
	times := sameTime(got.CreatedAt, want.CreatedAt) && sameTime(got.UpdatedAt, want.UpdatedAt)
	got.CreatedAt, got.UpdatedAt = want.CreatedAt, want.UpdatedAt
	return times && got == want
}

func checkUser(t *testing.T, what string, got, want domain.User) {
	t.Helper()
	if !sameUser(got, want) {
		t.Errorf("%s = %+v\nwant %+v (times in UTC, to the microsecond)", what, got, want)
	}
}

func testStoreLifecycle(t *testing.T, newStore func(t *testing.T) UserStore) {
	s := newStore(t)
	ctx := context.Background()
	u := from("CH", newUser("Ada", "Lovelace", "ada@example.com", 0))
	u.Version = 7 // stored as given: the store does not own versions
	err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
		if err := tx.InsertUser(ctx, &u); err != nil {
			return err
		}
		// A transaction sees its own insert.
		own, err := tx.LockUser(ctx, u.ID)
		if err != nil {
			return fmt.Errorf("lock own insert: %w", err)
		}
		checkUser(t, "LockUser of the transaction's own insert", own, u)
		return nil
	})
	mustNotFail(t, "insert", err)
	if u.ID <= 0 {
		t.Fatalf("InsertUser set ID %d, want a positive one", u.ID)
	}
	got, err := s.GetUser(ctx, u.ID)
	mustNotFail(t, "GetUser", err)
	checkUser(t, "GetUser after insert", got, u)

	// A user without a country (created before it was recorded) reads
	// back without one.
	second := insertUsers(t, s, newUser("Bea", "Other", "bea@example.com", time.Second))[0]
	if got, err := s.GetUser(ctx, second); err != nil || got.Country != "" {
		t.Errorf("user inserted without a country reads back country %q, %v; want none", got.Country, err)
	}
	if second <= u.ID {
		t.Errorf("second insert got id %d, want more than %d", second, u.ID)
	}

	// Every field but the country changes under the lock.
	err = s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
		locked, err := tx.LockUser(ctx, u.ID)
		if err != nil {
			return err
		}
		checkUser(t, "LockUser", locked, u)
		locked.FirstName, locked.LastName, locked.Email = "Augusta", "King", "augusta@example.com"
		locked.Address, locked.PasswordHash = "Ockham Park, Surrey", "other-hash"
		locked.Touch(t0.Add(time.Hour))
		u = locked
		locked.Country = "GB" // read-only: UpdateUser leaves it as inserted
		return tx.UpdateUser(ctx, locked)
	})
	mustNotFail(t, "update", err)
	got, err = s.GetUser(ctx, u.ID)
	mustNotFail(t, "GetUser after update", err)
	checkUser(t, "GetUser after update", got, u)
	if got.Version != 8 {
		t.Errorf("version after Touch = %d, want 8", got.Version)
	}

	err = s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return deleteUser(ctx, tx, u.ID) })
	mustNotFail(t, "delete", err)
	if _, err := s.GetUser(ctx, u.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("GetUser after delete = %v, want domain.ErrNotFound", err)
	}
	if got, err := s.GetUser(ctx, second); err != nil || got.Email != "bea@example.com" {
		t.Errorf("the other user after the delete = %+v, %v", got, err)
	}
	if n := total(t, s, domain.ListQuery{}); n != 1 {
		t.Errorf("total after the delete = %d, want 1", n)
	}
}

func testStoreTimestamps(t *testing.T, newStore func(t *testing.T) UserStore) {
	cet := time.FixedZone("CET", 3600)
	cases := []struct {
		name             string
		created, updated time.Time
	}{
		{"UTC microseconds", time.Date(2024, 3, 1, 12, 0, 0, 123456000, time.UTC), time.Date(2024, 3, 2, 8, 30, 0, 1000, time.UTC)},
		{"nanoseconds are truncated", time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC), time.Date(2024, 3, 1, 12, 0, 0, 999999999, time.UTC)},
		{"another zone comes back in UTC", time.Date(2024, 3, 1, 13, 0, 0, 500, cet), time.Date(2030, 12, 31, 23, 59, 59, 0, cet)},
		{"whole seconds", time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	s := newStore(t)
	ctx := context.Background()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := newUser("Tim", "Stamp", fmt.Sprintf("time%d@example.com", i), 0)
			u.CreatedAt, u.UpdatedAt = c.created, c.updated
			id := insertUsers(t, s, u)[0]
			got, err := s.GetUser(ctx, id)
			mustNotFail(t, "GetUser", err)
			if !sameTime(got.CreatedAt, c.created) || !sameTime(got.UpdatedAt, c.updated) {
				t.Errorf("times read back %v / %v, want %v / %v in UTC", got.CreatedAt, got.UpdatedAt, storedTime(c.created), storedTime(c.updated))
			}
			// The update path stores times the same way.
			err = s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
				locked, err := tx.LockUser(ctx, id)
				if err != nil {
					return err
				}
				locked.UpdatedAt = c.created.Add(time.Hour)
				locked.Version++
				return tx.UpdateUser(ctx, locked)
			})
			mustNotFail(t, "update", err)
			got, err = s.GetUser(ctx, id)
			mustNotFail(t, "GetUser after update", err)
			if !sameTime(got.UpdatedAt, c.created.Add(time.Hour)) || !sameTime(got.CreatedAt, c.created) {
				t.Errorf("after update: %v / %v, want %v / %v in UTC", got.CreatedAt, got.UpdatedAt, storedTime(c.created), storedTime(c.created.Add(time.Hour)))
			}
			// Outbox messages keep their time the same way.
			m := testMessage(fmt.Sprintf("time-%d", i), c.created)
			appendMessages(t, s, m)
			pending, err := s.PendingMessages(ctx, 0, 100)
			mustNotFail(t, "PendingMessages", err)
			i := slices.IndexFunc(pending, func(p domain.Message) bool { return p.EventID == m.EventID })
			if i < 0 {
				t.Fatalf("message %s not pending", m.EventID)
			}
			if !sameTime(pending[i].OccurredAt, c.created) {
				t.Errorf("message OccurredAt = %v, want %v in UTC", pending[i].OccurredAt, storedTime(c.created))
			}
		})
	}
}

func testStoreNotFound(t *testing.T, newStore func(t *testing.T) UserStore) {
	const missing = 4242
	cases := []struct {
		name string
		op   func(ctx context.Context, s UserStore) error
	}{
		{"GetUser", func(ctx context.Context, s UserStore) error { _, err := s.GetUser(ctx, missing); return err }},
		{"LockUser", func(ctx context.Context, s UserStore) error {
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { _, err := tx.LockUser(ctx, missing); return err })
		}},
		{"UpdateUser", func(ctx context.Context, s UserStore) error {
			u := newUser("No", "Body", "nobody@example.com", 0)
			u.ID = missing
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.UpdateUser(ctx, u) })
		}},
		{"DeleteUser", func(ctx context.Context, s UserStore) error {
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.DeleteUser(ctx, missing) })
		}},
		{"DeleteUser of a user deleted earlier in the transaction", func(ctx context.Context, s UserStore) error {
			page, err := s.ListUsers(ctx, domain.ListQuery{Page: 1, PageSize: 1})
			if err != nil || len(page.Users) != 1 {
				return fmt.Errorf("arrange: %v, %d users", err, len(page.Users)) //nolint:errorlint // not wrapped: an arrange failure must not pass as not found
			}
			existing := page.Users[0].ID
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
				if err := deleteUser(ctx, tx, existing); err != nil {
					return fmt.Errorf("arrange: %v", err) //nolint:errorlint // not wrapped: must not count as not found
				}
				if err := tx.DeleteUser(ctx, existing); err != nil {
					return err
				}
				return nil
			})
		}},
	}
	s := newStore(t)
	insertUsers(t, s, newUser("Some", "Body", "somebody@example.com", 0))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.op(context.Background(), s); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("err = %v, want domain.ErrNotFound", err)
			}
		})
	}
	if n := total(t, s, domain.ListQuery{}); n != 1 {
		t.Errorf("users after the failed operations = %d, want 1", n)
	}
}

func testStoreEmailUnique(t *testing.T, newStore func(t *testing.T) UserStore) {
	cases := []struct {
		name string
		op   func(ctx context.Context, tx ports.Tx, taken, free int64) error
		want error // nil: must succeed
	}{
		{"insert of the same email", func(ctx context.Context, tx ports.Tx, _, _ int64) error {
			u := newUser("C", "Three", "taken@example.com", 0)
			return tx.InsertUser(ctx, &u)
		}, domain.ErrEmailTaken},
		{"insert in another case", func(ctx context.Context, tx ports.Tx, _, _ int64) error {
			u := newUser("C", "Three", "TAKEN@Example.COM", 0)
			return tx.InsertUser(ctx, &u)
		}, domain.ErrEmailTaken},
		{"update to a taken email in another case", func(ctx context.Context, tx ports.Tx, _, free int64) error {
			u, err := tx.LockUser(ctx, free)
			if err != nil {
				return err
			}
			u.Email = "Taken@example.com"
			return tx.UpdateUser(ctx, u)
		}, domain.ErrEmailTaken},
		{"update of one's own email to another case", func(ctx context.Context, tx ports.Tx, taken, _ int64) error {
			u, err := tx.LockUser(ctx, taken)
			if err != nil {
				return err
			}
			u.Email = "TAKEN@example.com"
			return tx.UpdateUser(ctx, u)
		}, nil},
		{"a trailing space makes another email", func(ctx context.Context, tx ports.Tx, _, _ int64) error {
			u := newUser("C", "Three", "free@example.com ", 0)
			return tx.InsertUser(ctx, &u)
		}, nil},
		{"email freed by a delete earlier in the transaction", func(ctx context.Context, tx ports.Tx, taken, _ int64) error {
			if err := deleteUser(ctx, tx, taken); err != nil {
				return err
			}
			u := newUser("C", "Three", "taken@example.com", 0)
			return tx.InsertUser(ctx, &u)
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			ids := insertUsers(t, s, newUser("A", "One", "taken@example.com", 0), newUser("B", "Two", "free@example.com", 0))
			err := s.Do(context.Background(), func(ctx context.Context, tx ports.Tx) error { return c.op(ctx, tx, ids[0], ids[1]) })
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if c.want != nil {
				// Nothing changed: both users as they were.
				for i, email := range []string{"taken@example.com", "free@example.com"} {
					if got, err := s.GetUser(context.Background(), ids[i]); err != nil || got.Email != email {
						t.Errorf("user %d after the refused write = %q, %v; want %q", ids[i], got.Email, err, email)
					}
				}
			}
		})
	}
}

func testStoreEmailRace(t *testing.T, newStore func(t *testing.T) UserStore) {
	const racers = 20
	s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			email := "race@example.com"
			if i%2 == 1 { // half of them in another case
				email = "Race@Example.COM"
			}
			u := newUser("Racer", fmt.Sprint(i), email, 0)
			errs[i] = s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
				if err := tx.InsertUser(ctx, &u); err != nil {
					return err
				}
				m := testMessage(fmt.Sprintf("race-%d", i), t0)
				m.Key = fmt.Sprint(u.ID)
				return tx.AppendMessage(ctx, m)
			})
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, domain.ErrEmailTaken):
			t.Errorf("racer %d: %v, want nil or domain.ErrEmailTaken", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d inserts succeeded, want exactly 1", won)
	}
	if n := total(t, s, domain.ListQuery{}); n != 1 {
		t.Errorf("users = %d, want 1", n)
	}
	page, err := s.ListUsers(ctx, domain.ListQuery{Email: "race@example.com", Page: 1, PageSize: 10})
	if err != nil || len(page.Users) != 1 {
		t.Fatalf("users with the email: %+v, %v; want 1", page.Users, err)
	}
	// The losers' transactions rolled back with their events: the one left
	// is the winner's.
	pending, err := s.PendingMessages(ctx, 0, 100)
	if err != nil || len(pending) != 1 || pending[0].Key != fmt.Sprint(page.Users[0].ID) {
		t.Errorf("outbox %+v, %v; want only the winner's (user %d) event", pending, err, page.Users[0].ID)
	}
}

// listFixture are the list tests' users, inserted in this order (so ids
// grow in this order). Cases name them by index.
var listFixture = []domain.User{
	from("CH", newUser("Alice", "Smith", "alice@example.com", 1*time.Second)),                                // 0
	from("DE", newUser("bob", "SMITH", "bob.smith@example.com", 2*time.Second)),                              // 1
	from("CH", newUser("ALICE", "Jones", "a_lice@example.org", 3*time.Second)),                               // 2
	newUser("Carol", "Percent", "carol%50@example.net", 4*time.Second),                                       // 3, created before countries were recorded
	from("FR", newUser("Dave", "smith", "dave@smith.io", 4*time.Second)),                                     // 4
	from("FR", newUser("Émile", "Zola", "emile!x@example.fr", 5500*time.Millisecond)),                        // 5
	newUser("Zed", `Back\slash`, `z\ed@example.com`, 5250*time.Millisecond),                                  // 6, no country either
	from("CH", newUser("ann", "Smyth", "ann@example.com", 5*time.Second)),                                    // 7
	from("LI", newUser("Ben", "Alice", "ben@alice.dev", 5*time.Second+125*time.Millisecond+time.Nanosecond)), // 8
}

// from sets the country a user was created from.
func from(country string, u domain.User) domain.User {
	u.Country = country
	return u
}

// listCase is a query and the fixture indexes it returns, in order. Id
// bounds in q are fixture indexes too.
type listCase struct {
	name string
	q    domain.ListQuery
	want []int
}

// listStore is a store holding listFixture, with the fixture's ids.
type listStore struct {
	s     UserStore
	ids   []int64
	index map[int64]int
}

func newListStore(t *testing.T, newStore func(t *testing.T) UserStore) listStore {
	t.Helper()
	ls := listStore{s: newStore(t), index: map[int64]int{}}
	ls.ids = insertUsers(t, ls.s, listFixture...)
	for i, id := range ls.ids {
		ls.index[id] = i
	}
	return ls
}

// list runs q (id bounds translated from fixture indexes) and returns the
// fixture indexes of the page and the total.
func (ls listStore) list(t *testing.T, q domain.ListQuery) ([]int, int64) {
	t.Helper()
	if q.SinceID != nil {
		q.SinceID = ptr(ls.ids[*q.SinceID])
	}
	if q.MaxID != nil {
		q.MaxID = ptr(ls.ids[*q.MaxID])
	}
	page, err := ls.s.ListUsers(context.Background(), q)
	mustNotFail(t, "ListUsers", err)
	got := []int{}
	for _, u := range page.Users {
		i, ok := ls.index[u.ID]
		if !ok {
			t.Fatalf("ListUsers returned unknown user %+v", u)
		}
		w := listFixture[i]
		w.ID = u.ID
		if !sameUser(u, w) {
			t.Errorf("listed user %d = %+v, want %+v", i, u, w)
		}
		got = append(got, i)
	}
	return got, page.Total
}

// runListCases checks every case on one full page, then on a page of one
// (which makes a store count the matches rather than see them).
func runListCases(t *testing.T, newStore func(t *testing.T) UserStore, cases []listCase) {
	ls := newListStore(t, newStore)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == nil {
				want = []int{}
			}
			q := c.q
			q.Page, q.PageSize = 1, domain.MaxPageSize
			got, n := ls.list(t, q)
			if !slices.Equal(got, want) || n != int64(len(want)) {
				t.Errorf("full page: users %v total %d, want %v total %d", got, n, want, len(want))
			}
			q.PageSize = 1
			got, n = ls.list(t, q)
			if n != int64(len(want)) || len(want) > 0 && !slices.Equal(got, want[:1]) || len(want) == 0 && len(got) != 0 {
				t.Errorf("page of one: users %v total %d, want %v total %d", got, n, want[:min(1, len(want))], len(want))
			}
		})
	}
}

func testStoreListFilters(t *testing.T, newStore func(t *testing.T) UserStore) {
	at := func(d time.Duration) *time.Time { return ptr(t0.Add(d)) }
	id := func(i int) *int64 { return ptr(int64(i)) } // a fixture index
	runListCases(t, newStore, []listCase{
		{"no filter", domain.ListQuery{}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{"first name in any case", domain.ListQuery{FirstName: "aLiCe"}, []int{0, 2}},
		{"first name non-ASCII", domain.ListQuery{FirstName: "émile"}, []int{5}},
		{"first name is exact, not a prefix", domain.ListQuery{FirstName: "ali"}, nil},
		{"first name with a trailing space does not match", domain.ListQuery{FirstName: "alice "}, nil},
		{"last name in any case", domain.ListQuery{LastName: "SMITH"}, []int{0, 1, 4}},
		{"last name is exact", domain.ListQuery{LastName: "smit"}, nil},
		{"email in any case", domain.ListQuery{Email: "ALICE@example.COM"}, []int{0}},
		{"email is exact, not contains", domain.ListQuery{Email: "alice@example"}, nil},
		{"email wildcard is literal", domain.ListQuery{Email: "a%@example.com"}, nil},
		{"first and last name", domain.ListQuery{FirstName: "alice", LastName: "smith"}, []int{0}},
		{"search: last name equals or email contains", domain.ListQuery{Search: "Smith"}, []int{0, 1, 4}},
		{"search: email substring in any case", domain.ListQuery{Search: "ALICE"}, []int{0, 8}},
		{"search: last name only", domain.ListQuery{Search: "zola"}, []int{5}},
		{"search: last name must be equal", domain.ListQuery{Search: "Smy"}, nil},
		{"search: underscore is literal", domain.ListQuery{Search: "_"}, []int{2}},
		{"search: a_l is literal", domain.ListQuery{Search: "a_l"}, []int{2}},
		{"search: percent is literal", domain.ListQuery{Search: "%"}, []int{3}},
		{"search: percent inside is literal", domain.ListQuery{Search: "l%5"}, []int{3}},
		{"search: exclamation mark is literal", domain.ListQuery{Search: "!x"}, []int{5}},
		{"search: backslash is literal", domain.ListQuery{Search: `z\e`}, []int{6}},
		{"search: backslash in a last name", domain.ListQuery{Search: `back\SLASH`}, []int{6}},
		{"search: no match", domain.ListQuery{Search: "nobody"}, nil},
		{"search and first name", domain.ListQuery{Search: "smith", FirstName: "bob"}, []int{1}},
		{"since_id is strict", domain.ListQuery{SinceID: id(5)}, []int{6, 7, 8}},
		{"max_id is strict", domain.ListQuery{MaxID: id(2)}, []int{0, 1}},
		{"since_id and max_id", domain.ListQuery{SinceID: id(1), MaxID: id(4)}, []int{2, 3}},
		{"since_id of the last", domain.ListQuery{SinceID: id(8)}, nil},
		{"created_after is strict", domain.ListQuery{CreatedAfter: at(4 * time.Second)}, []int{5, 6, 7, 8}},
		{"created_before is strict", domain.ListQuery{CreatedBefore: at(4 * time.Second)}, []int{0, 1, 2}},
		{"created between, sub-second", domain.ListQuery{CreatedAfter: at(5100 * time.Millisecond), CreatedBefore: at(5300 * time.Millisecond)}, []int{6, 8}},
		{"created_before a nanosecond later", domain.ListQuery{CreatedBefore: at(time.Second + time.Nanosecond)}, []int{0}},
		{"created_after a nanosecond earlier", domain.ListQuery{CreatedAfter: at(5*time.Second - time.Nanosecond), CreatedBefore: at(5*time.Second + time.Microsecond)}, []int{7}},
		{"created_after the last", domain.ListQuery{CreatedAfter: at(5500 * time.Millisecond)}, nil},
		{"created_after in another zone", domain.ListQuery{CreatedAfter: ptr(t0.Add(5 * time.Second).In(time.FixedZone("X", -5*3600)))}, []int{5, 6, 8}},
		{"filters combine", domain.ListQuery{LastName: "smith", CreatedAfter: at(time.Second)}, []int{1, 4}},
		{"country", domain.ListQuery{Countries: []string{"CH"}}, []int{0, 2, 7}},
		{"one of several countries", domain.ListQuery{Countries: []string{"LI", "CH", "DE"}}, []int{0, 1, 2, 7, 8}},
		{"country nobody was created from", domain.ListQuery{Countries: []string{"US"}}, nil},
		{"country and last name", domain.ListQuery{Countries: []string{"CH", "FR"}, LastName: "smith"}, []int{0, 4}},
		{"country and search", domain.ListQuery{Countries: []string{"LI"}, Search: "alice"}, []int{8}},
		{"country and id bounds", domain.ListQuery{Countries: []string{"CH", "FR"}, SinceID: id(2), MaxID: id(7)}, []int{4, 5}},
	})
}

func testStoreListOrdering(t *testing.T, newStore func(t *testing.T) UserStore) {
	asc := func(f string) domain.OrderField { return domain.OrderField{Field: f} }
	desc := func(f string) domain.OrderField { return domain.OrderField{Field: f, Desc: true} }
	order := func(fs ...domain.OrderField) domain.ListQuery { return domain.ListQuery{Ordering: fs} }
	runListCases(t, newStore, []listCase{
		{"default is id", order(), []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{"id", order(asc(domain.SortID)), []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{"-id", order(desc(domain.SortID)), []int{8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{"first_name ignores case, id breaks ties", order(asc(domain.SortFirstName)), []int{0, 2, 7, 8, 1, 3, 4, 6, 5}},
		{"-first_name, ties still by id ascending", order(desc(domain.SortFirstName)), []int{5, 6, 4, 3, 1, 8, 7, 0, 2}},
		{"last_name", order(asc(domain.SortLastName)), []int{8, 6, 2, 3, 0, 1, 4, 7, 5}},
		{"-last_name", order(desc(domain.SortLastName)), []int{5, 7, 0, 1, 4, 3, 2, 6, 8}},
		{"last_name,-first_name", order(asc(domain.SortLastName), desc(domain.SortFirstName)), []int{8, 6, 2, 3, 4, 1, 0, 7, 5}},
		{"email, byte-wise", order(asc(domain.SortEmail)), []int{2, 0, 7, 8, 1, 3, 4, 5, 6}},
		{"-email", order(desc(domain.SortEmail)), []int{6, 5, 4, 3, 1, 8, 7, 0, 2}},
		{"created_at with sub-second times", order(asc(domain.SortCreatedAt)), []int{0, 1, 2, 3, 4, 7, 8, 6, 5}},
		{"-created_at, ties by id ascending", order(desc(domain.SortCreatedAt)), []int{5, 6, 8, 7, 3, 4, 2, 1, 0}},
		{"-created_at,-id", order(desc(domain.SortCreatedAt), desc(domain.SortID)), []int{5, 6, 8, 7, 4, 3, 2, 1, 0}},
		{"unknown and repeated keys ignored", order(asc("password"), desc(domain.SortLastName), asc(domain.SortLastName)), []int{5, 7, 0, 1, 4, 3, 2, 6, 8}},
		{"ordering with a filter", domain.ListQuery{LastName: "smith", Ordering: []domain.OrderField{desc(domain.SortFirstName)}}, []int{4, 1, 0}},
		{"ordering with a search", domain.ListQuery{Search: "alice", Ordering: []domain.OrderField{desc(domain.SortEmail)}}, []int{8, 0}},
		{"ordering with a country", domain.ListQuery{Countries: []string{"CH"}, Ordering: []domain.OrderField{desc(domain.SortID)}}, []int{7, 2, 0}},
	})
}

func testStoreListPaging(t *testing.T, newStore func(t *testing.T) UserStore) {
	page := func(n, size int, q domain.ListQuery) domain.ListQuery {
		q.Page, q.PageSize = n, size
		return q
	}
	smith := domain.ListQuery{LastName: "smith"}
	newest := domain.ListQuery{Ordering: []domain.OrderField{{Field: domain.SortCreatedAt, Desc: true}}}
	cases := []struct {
		name      string
		q         domain.ListQuery
		want      []int
		wantTotal int64
	}{
		{"first page", page(1, 4, domain.ListQuery{}), []int{0, 1, 2, 3}, 9},
		{"middle page", page(2, 4, domain.ListQuery{}), []int{4, 5, 6, 7}, 9},
		{"last, partial page", page(3, 4, domain.ListQuery{}), []int{8}, 9},
		{"past the end: empty, with the total", page(4, 4, domain.ListQuery{}), nil, 9},
		{"exact last page", page(3, 3, domain.ListQuery{}), []int{6, 7, 8}, 9},
		{"page of the maximum size", page(1, domain.MaxPageSize, domain.ListQuery{}), []int{0, 1, 2, 3, 4, 5, 6, 7, 8}, 9},
		{"filtered first page", page(1, 2, smith), []int{0, 1}, 3},
		{"filtered last page", page(2, 2, smith), []int{4}, 3},
		{"filtered past the end", page(3, 2, smith), nil, 3},
		{"no match", page(1, 10, domain.ListQuery{LastName: "nobody"}), nil, 0},
		{"no match, second page", page(2, 10, domain.ListQuery{LastName: "nobody"}), nil, 0},
		{"ordered page", page(2, 3, newest), []int{7, 3, 4}, 9},
		{"search page", page(1, 1, domain.ListQuery{Search: "alice"}), []int{0}, 2},
		{"search page counting last-name-only matches", page(2, 2, domain.ListQuery{Search: "smith"}), []int{4}, 3},
		{"id range page", page(1, 2, domain.ListQuery{SinceID: ptr(int64(0))}), []int{1, 2}, 8},
		{"time range page", page(2, 2, domain.ListQuery{CreatedBefore: ptr(t0.Add(5 * time.Second))}), []int{2, 3}, 5},
	}
	ls := newListStore(t, newStore)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == nil {
				want = []int{}
			}
			got, n := ls.list(t, c.q)
			if !slices.Equal(got, want) || n != c.wantTotal {
				t.Errorf("users %v total %d, want %v total %d", got, n, want, c.wantTotal)
			}
		})
	}
}

func testStoreCountsAfterChanges(t *testing.T, newStore func(t *testing.T) UserStore) {
	ls := newListStore(t, newStore)
	s, ctx := ls.s, context.Background()
	check := func(when string, wantAll, wantSmith, wantSearch int64) {
		t.Helper()
		for _, c := range []struct {
			q    domain.ListQuery
			want int64
		}{
			{domain.ListQuery{}, wantAll},
			{domain.ListQuery{LastName: "smith"}, wantSmith},
			{domain.ListQuery{Search: "example"}, wantSearch},
		} {
			for _, size := range []int{1, domain.MaxPageSize} {
				q := c.q
				q.Page, q.PageSize = 1, size
				page, err := s.ListUsers(ctx, q)
				mustNotFail(t, "ListUsers", err)
				if page.Total != c.want {
					t.Errorf("%s: total of %+v with page size %d = %d, want %d", when, c.q, size, page.Total, c.want)
				}
			}
		}
	}
	check("before changes", 9, 3, 7)
	for _, i := range []int{0, 1, 2} {
		err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return deleteUser(ctx, tx, ls.ids[i]) })
		mustNotFail(t, "delete", err)
	}
	check("after three deletes", 6, 1, 4)
	err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
		u := newUser("X", "Smith", "rolled@example.com", 0)
		if err := tx.InsertUser(ctx, &u); err != nil {
			return err
		}
		if err := deleteUser(ctx, tx, ls.ids[4]); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("rolled-back transaction = %v, want its own error", err)
	}
	check("after a rolled-back insert and delete", 6, 1, 4)
	insertUsers(t, s, newUser("New", "Smith", "new@example.com", 0))
	check("after an insert", 7, 2, 5)
}

func testStoreRollback(t *testing.T, newStore func(t *testing.T) UserStore) {
	cases := []struct {
		name string
		fn   func(ctx context.Context, tx ports.Tx, kept int64) error
	}{
		{"error after an insert and a message", func(ctx context.Context, tx ports.Tx, _ int64) error {
			u := newUser("Gone", "User", "gone@example.com", 0)
			if err := tx.InsertUser(ctx, &u); err != nil {
				return err
			}
			if err := tx.AppendMessage(ctx, testMessage("ev-rollback", t0)); err != nil {
				return err
			}
			return errRollback
		}},
		{"error after an update and a message", func(ctx context.Context, tx ports.Tx, kept int64) error {
			u, err := tx.LockUser(ctx, kept)
			if err != nil {
				return err
			}
			u.FirstName, u.Email = "Changed", "changed@example.com"
			u.Touch(t0.Add(time.Hour))
			if err := tx.UpdateUser(ctx, u); err != nil {
				return err
			}
			if err := tx.AppendMessage(ctx, testMessage("ev-rollback", t0)); err != nil {
				return err
			}
			return errRollback
		}},
		{"error after a delete and a message", func(ctx context.Context, tx ports.Tx, kept int64) error {
			if err := deleteUser(ctx, tx, kept); err != nil {
				return err
			}
			if err := tx.AppendMessage(ctx, testMessage("ev-rollback", t0)); err != nil {
				return err
			}
			return errRollback
		}},
		{"error wrapped by the function", func(ctx context.Context, tx ports.Tx, _ int64) error {
			u := newUser("Gone", "User", "gone@example.com", 0)
			if err := tx.InsertUser(ctx, &u); err != nil {
				return err
			}
			return fmt.Errorf("use case: %w", errRollback)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			ctx := context.Background()
			kept := newUser("Kept", "User", "kept@example.com", 0)
			kept.ID = insertUsers(t, s, kept)[0]
			err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return c.fn(ctx, tx, kept.ID) })
			if !errors.Is(err, errRollback) {
				t.Fatalf("Do = %v, want the function's error", err)
			}
			if errors.Is(err, domain.ErrEmailTaken) || errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrUnavailable) {
				t.Errorf("Do = %v, mapped to a domain error it is not", err)
			}
			checkRolledBack(t, s, kept)
		})
	}
}

// checkRolledBack asserts that the store holds kept alone and no message.
func checkRolledBack(t *testing.T, s UserStore, kept domain.User) {
	t.Helper()
	ctx := context.Background()
	if got, err := s.GetUser(ctx, kept.ID); err != nil {
		t.Errorf("kept user after the rollback: %v", err)
	} else {
		checkUser(t, "kept user after the rollback", got, kept)
	}
	page, err := s.ListUsers(ctx, domain.ListQuery{Page: 1, PageSize: domain.MaxPageSize})
	mustNotFail(t, "ListUsers", err)
	if len(page.Users) != 1 || page.Total != 1 {
		t.Errorf("after the rollback: %d users listed, total %d; want the kept one only", len(page.Users), page.Total)
	}
	if n := total(t, s, domain.ListQuery{Email: "gone@example.com"}); n != 0 {
		t.Errorf("rolled-back user listed %d times", n)
	}
	pending, err := s.PendingMessages(ctx, 0, 100)
	mustNotFail(t, "PendingMessages", err)
	n, _, err := s.Backlog(ctx)
	mustNotFail(t, "Backlog", err)
	if len(pending) != 0 || n != 0 {
		t.Errorf("after the rollback: %d pending messages, backlog %d; want none", len(pending), n)
	}
}

func testStorePanic(t *testing.T, newStore func(t *testing.T) UserStore) {
	s := newStore(t)
	ctx := context.Background()
	kept := newUser("Kept", "User", "kept@example.com", 0)
	kept.ID = insertUsers(t, s, kept)[0]
	recovered := func() (r any) {
		defer func() { r = recover() }()
		err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
			u := newUser("Gone", "User", "gone@example.com", 0)
			if err := tx.InsertUser(ctx, &u); err != nil {
				return err
			}
			if err := tx.AppendMessage(ctx, testMessage("ev-panic", t0)); err != nil {
				return err
			}
			panic("porttest: boom")
		})
		t.Errorf("Do returned %v instead of propagating the panic", err)
		return nil
	}()
	if recovered != "porttest: boom" {
		t.Fatalf("recovered %v, want the function's panic", recovered)
	}
	checkRolledBack(t, s, kept)
	// The store is not left inside the transaction: the next writes work.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
		u := newUser("Gone", "User", "gone@example.com", 0)
		if err := tx.InsertUser(ctx, &u); err != nil {
			return err
		}
		return tx.AppendMessage(ctx, testMessage("ev-after-panic", t0))
	})
	mustNotFail(t, "write after the panic", err)
	if n := total(t, s, domain.ListQuery{}); n != 2 {
		t.Errorf("users after the next write = %d, want 2", n)
	}
}

// testMessage is a complete outbox message (payload: a JSON object).
func testMessage(id string, at time.Time) domain.Message {
	return domain.Message{
		EventID: id, Type: "users.user.created", Key: "1", OccurredAt: at,
		Payload: []byte(`{"id":"` + id + `","data":{"first_name":"Zoë \u003cb\u003e","n":1}}`),
	}
}

func appendMessages(t *testing.T, s UserStore, msgs ...domain.Message) {
	t.Helper()
	err := s.Do(context.Background(), func(ctx context.Context, tx ports.Tx) error {
		for _, m := range msgs {
			if err := tx.AppendMessage(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	mustNotFail(t, "append messages", err)
}

func eventIDs(msgs []domain.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.EventID
	}
	return ids
}

func testStoreOutbox(t *testing.T, newStore func(t *testing.T) UserStore) {
	s := newStore(t)
	ctx := context.Background()
	pendingIDs := func(afterSeq int64, limit int) []string {
		t.Helper()
		msgs, err := s.PendingMessages(ctx, afterSeq, limit)
		mustNotFail(t, "PendingMessages", err)
		return eventIDs(msgs)
	}
	backlog := func(when string, wantN int64, wantOldest time.Time) {
		t.Helper()
		n, oldest, err := s.Backlog(ctx)
		mustNotFail(t, "Backlog", err)
		if n != wantN || !oldest.Equal(wantOldest) || !wantOldest.IsZero() && oldest.Location() != time.UTC {
			t.Errorf("%s: Backlog = %d, %v; want %d, %v (UTC)", when, n, oldest, wantN, wantOldest)
		}
	}
	backlog("empty", 0, time.Time{})
	if got := pendingIDs(0, 10); len(got) != 0 {
		t.Fatalf("empty outbox has pending %v", got)
	}

	// Three transactions; e2's time is the oldest although e1 comes first.
	in := []domain.Message{
		testMessage("e1", t0.Add(2*time.Second+123456*time.Nanosecond)),
		testMessage("e2", t0.Add(time.Second)),
		testMessage("e3", t0.Add(3*time.Second)),
		testMessage("e4", t0.Add(4*time.Second)),
		testMessage("e5", t0.Add(5*time.Second)),
	}
	in[2].Key, in[2].Type = "42", "users.user.updated"
	in[3].Payload = []byte(`{"id":"e4","data":{"address":"line 1\nline 2","emoji":"🔑"},"changed":["address"]}`)
	appendMessages(t, s, in[0])
	appendMessages(t, s, in[1], in[2])
	appendMessages(t, s, in[3], in[4])

	msgs, err := s.PendingMessages(ctx, 0, 10)
	mustNotFail(t, "PendingMessages", err)
	if len(msgs) != len(in) {
		t.Fatalf("PendingMessages = %v, want %d messages", eventIDs(msgs), len(in))
	}
	for i, m := range msgs {
		want := in[i]
		if i > 0 && m.Seq <= msgs[i-1].Seq {
			t.Errorf("message %d has Seq %d, not after %d", i, m.Seq, msgs[i-1].Seq)
		}
		if m.EventID != want.EventID || m.Type != want.Type || m.Key != want.Key ||
			!sameTime(m.OccurredAt, want.OccurredAt) || string(m.Payload) != string(want.Payload) {
			t.Errorf("pending message %d = %+v (payload %s)\nwant %+v (payload %s)", i, m, m.Payload, want, want.Payload)
		}
	}
	appended := slices.Clone(msgs)
	seq := func(i int) int64 { return appended[i].Seq }
	// pages checks PendingMessages(afterSeq, limit) against the wanted ids.
	type page struct {
		afterSeq int64
		limit    int
		want     []string
	}
	pages := func(when string, cases []page) {
		t.Helper()
		for _, p := range cases {
			if got := pendingIDs(p.afterSeq, p.limit); !slices.Equal(got, p.want) {
				t.Errorf("%s: PendingMessages(after %d, limit %d) = %v, want %v", when, p.afterSeq, p.limit, got, p.want)
			}
		}
	}
	pages("after appending", []page{
		{0, 1, []string{"e1"}},
		{0, 2, []string{"e1", "e2"}},
		{0, 5, []string{"e1", "e2", "e3", "e4", "e5"}},
		{0, 100, []string{"e1", "e2", "e3", "e4", "e5"}},
		{seq(0) - 1, 100, []string{"e1", "e2", "e3", "e4", "e5"}},
		{seq(0), 100, []string{"e2", "e3", "e4", "e5"}},
		{seq(1), 2, []string{"e3", "e4"}},
		{seq(3), 100, []string{"e5"}},
		{seq(4), 100, nil},
		{seq(4) + 1000, 100, nil},
	})
	backlog("after appending", 5, t0.Add(time.Second))

	// Mark e1 and e2; e2 again later (the first time stays), unknown seqs
	// and an empty list change nothing.
	pubAt := t0.Add(time.Hour)
	unknown := msgs[len(msgs)-1].Seq + 1000
	mustNotFail(t, "MarkPublished", s.MarkPublished(ctx, []int64{msgs[0].Seq, msgs[1].Seq, unknown}, pubAt))
	mustNotFail(t, "MarkPublished again", s.MarkPublished(ctx, []int64{msgs[1].Seq}, pubAt.Add(24*time.Hour)))
	mustNotFail(t, "MarkPublished(nil)", s.MarkPublished(ctx, nil, pubAt))
	pages("after marking e1 and e2", []page{
		{0, 10, []string{"e3", "e4", "e5"}},
		{0, 1, []string{"e3"}},
		{seq(0), 10, []string{"e3", "e4", "e5"}}, // after a published message
		{seq(1), 1, []string{"e3"}},
		{seq(2), 10, []string{"e4", "e5"}},
	})
	backlog("after marking", 3, t0.Add(3*time.Second))
	// e4 published later than e1 and e2.
	mustNotFail(t, "MarkPublished e4", s.MarkPublished(ctx, []int64{msgs[3].Seq}, pubAt.Add(2*time.Hour)))
	pages("after marking e4", []page{
		{seq(2), 1, []string{"e5"}}, // the published e4 is skipped, not counted
		{seq(3), 10, []string{"e5"}},
	})
	backlog("after marking e4", 2, t0.Add(3*time.Second))

	purges := []struct {
		name   string
		before time.Time
		want   int64
	}{
		{"cutoff at the publication time keeps the messages", pubAt, 0},
		{"cutoff a microsecond later removes the first marked (e2 kept its first time)", pubAt.Add(time.Microsecond), 2},
		{"nothing more before the same cutoff", pubAt.Add(time.Microsecond), 0},
		{"a later cutoff removes e4", pubAt.Add(48 * time.Hour), 1},
	}
	for _, p := range purges {
		n, err := s.PurgePublished(ctx, p.before)
		if err != nil || n != p.want {
			t.Errorf("%s: PurgePublished = %d, %v; want %d", p.name, n, err, p.want)
		}
	}
	// Unpublished messages are never purged.
	if got := pendingIDs(0, 10); !slices.Equal(got, []string{"e3", "e5"}) {
		t.Errorf("pending after purging = %v, want [e3 e5]", got)
	}
	backlog("after purging", 2, t0.Add(3*time.Second))

	// Later appends come after the rest, and publishing all empties the backlog.
	appendMessages(t, s, testMessage("e6", t0))
	pages("after a new append", []page{{seq(4), 10, []string{"e6"}}})
	msgs, err = s.PendingMessages(ctx, 0, 10)
	mustNotFail(t, "PendingMessages", err)
	if got := eventIDs(msgs); !slices.Equal(got, []string{"e3", "e5", "e6"}) {
		t.Fatalf("pending after a new append = %v, want [e3 e5 e6]", got)
	}
	backlog("after a new append with an older time", 3, t0)
	seqs := make([]int64, len(msgs))
	for i, m := range msgs {
		seqs[i] = m.Seq
	}
	mustNotFail(t, "MarkPublished all", s.MarkPublished(ctx, seqs, pubAt))
	backlog("all published", 0, time.Time{})
	if n, err := s.PurgePublished(ctx, pubAt.Add(time.Second)); err != nil || n != 3 {
		t.Errorf("final purge = %d, %v; want 3", n, err)
	}
}

func testStoreRelayLock(t *testing.T, newStore func(t *testing.T) UserStore) {
	s := newStore(t)
	ctx := context.Background()
	tryLock := func(ctx context.Context, want bool) func() {
		t.Helper()
		held, unlock, ok, err := s.TryLock(ctx)
		if err != nil || ok != want {
			t.Fatalf("TryLock = %v, %v; want %v", ok, err, want)
		}
		if ok && (unlock == nil || held == nil) {
			t.Fatal("TryLock succeeded without an unlock function or a held context")
		}
		if ok && held.Err() != nil {
			t.Fatalf("the held context of a new lock has ended: %v", held.Err())
		}
		return unlock
	}
	held, unlock, ok, err := s.TryLock(ctx)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v; want true", ok, err)
	}
	tryLock(ctx, false)
	unlock()
	if held.Err() == nil {
		t.Error("the held context did not end on unlock: work could go on without the lock")
	}
	unlock() // idempotent
	second := tryLock(ctx, true)
	unlock() // stale: must not free the second holder's lock
	tryLock(ctx, false)
	second()

	// The end of the holder's context releases the lock.
	hctx, cancel := context.WithCancel(ctx)
	tryLock(hctx, true)
	tryLock(ctx, false)
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, unlock, ok, err := s.TryLock(ctx)
		mustNotFail(t, "TryLock", err)
		if ok {
			unlock()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("relay lock still held 5s after its holder's context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// An ended context gets no lock.
	ended, cancelEnded := context.WithCancel(ctx)
	cancelEnded()
	if _, unlock, ok, err := s.TryLock(ended); ok || !errors.Is(err, context.Canceled) {
		if ok {
			unlock()
		}
		t.Errorf("TryLock on an ended context = %v, %v; want false, context.Canceled", ok, err)
	}
}

func testStoreOutboxTraceContext(t *testing.T, newStore func(t *testing.T) UserStore) {
	s := newStore(t)
	full := testMessage("trace-full", t0)
	full.TraceParent, full.TraceState = testTraceParent, testTraceState
	parentOnly := testMessage("trace-parent-only", t0)
	parentOnly.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	untraced := testMessage("trace-none", t0)
	appendMessages(t, s, full, parentOnly, untraced)
	pending, err := s.PendingMessages(context.Background(), 0, 100)
	mustNotFail(t, "PendingMessages", err)
	if len(pending) != 3 {
		t.Fatalf("%d pending messages, want 3", len(pending))
	}
	for i, want := range []domain.Message{full, parentOnly, untraced} {
		if got := pending[i]; got.EventID != want.EventID || got.TraceParent != want.TraceParent || got.TraceState != want.TraceState {
			t.Errorf("message %d: %s with trace context %q / %q, want %s with %q / %q",
				i, got.EventID, got.TraceParent, got.TraceState, want.EventID, want.TraceParent, want.TraceState)
		}
	}
}
