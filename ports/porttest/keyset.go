package porttest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// randomUsers are n users with names repeated in random case (ties for
// every name ordering), some non-ASCII, creation times with ties, and
// emails drawn from an alphabet with LIKE and GLOB wildcards, the LIKE
// escape character and non-ASCII letters.
func randomUsers(rng *rand.Rand, n int, tag string) []domain.User {
	firsts := []string{"Anna", "anna", "ÉMILE", "émile", "Zoë", "bob", "Bob", "Ärni"}
	lasts := []string{"Meier", "MEIER", "Keller", "Müller", "müller", "O'Neil", "smith"}
	alphabet := []rune("abcdeABCDE%_!*?[.-éÉß")
	out := make([]domain.User, n)
	for i := range out {
		var b strings.Builder
		for range 3 + rng.IntN(6) {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		email := fmt.Sprintf("%s.%s%d@%s.example", b.String(), tag, i, []string{"corp", "mail", "Exa%mple"}[rng.IntN(3)])
		out[i] = newUser(firsts[rng.IntN(len(firsts))], lasts[rng.IntN(len(lasts))], email, time.Duration(rng.IntN(20))*time.Second)
	}
	return out
}

// keyCompare orders users as q.KeyOrder() says stores do: text fields
// lower-cased and compared byte-wise, times, then ids.
func keyCompare(order []domain.OrderField) func(a, b domain.User) int {
	return func(a, b domain.User) int {
		for _, f := range order {
			var c int
			switch f.Field {
			case domain.SortFirstName:
				c = strings.Compare(strings.ToLower(a.FirstName), strings.ToLower(b.FirstName))
			case domain.SortLastName:
				c = strings.Compare(strings.ToLower(a.LastName), strings.ToLower(b.LastName))
			case domain.SortEmail:
				c = strings.Compare(strings.ToLower(a.Email), strings.ToLower(b.Email))
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
	}
}

// keysetOrderings are the orderings the keyset tests walk.
var keysetOrderings = [][]domain.OrderField{
	nil,
	{{Field: domain.SortID, Desc: true}},
	{{Field: domain.SortFirstName}},
	{{Field: domain.SortFirstName, Desc: true}},
	{{Field: domain.SortLastName}},
	{{Field: domain.SortLastName, Desc: true}},
	{{Field: domain.SortEmail}},
	{{Field: domain.SortEmail, Desc: true}},
	{{Field: domain.SortCreatedAt}},
	{{Field: domain.SortCreatedAt, Desc: true}},
	{{Field: domain.SortCreatedAt, Desc: true}, {Field: domain.SortID, Desc: true}},
	{{Field: domain.SortLastName}, {Field: domain.SortFirstName, Desc: true}},
}

// walk pages through q by keyset, forward from the start or backward from
// the end, and returns the users in the order of q (a backward walk's
// pages put back in order). between runs after each page.
func walk(t *testing.T, s UserStore, q domain.ListQuery, backward bool, between func()) []domain.User {
	t.Helper()
	var all []domain.User
	ks := domain.Keyset{Backward: backward}
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("keyset walk does not end")
		}
		q.Keyset = &ks
		p, err := s.ListUsers(context.Background(), q)
		mustNotFail(t, "ListUsers (keyset)", err)
		if len(p.Users) > q.PageSize {
			t.Fatalf("keyset page of %d users, page size %d", len(p.Users), q.PageSize)
		}
		if p.Total != 0 {
			t.Errorf("keyset page counted a total (%d); it must not", p.Total)
		}
		if backward {
			all = append(slices.Clone(p.Users), all...)
		} else {
			all = append(all, p.Users...)
		}
		if !p.More {
			return all
		}
		if len(p.Users) == 0 {
			t.Fatal("empty keyset page says more follow")
		}
		edge := p.Users[len(p.Users)-1]
		if backward {
			edge = p.Users[0]
		}
		k := domain.KeyOf(edge)
		ks = domain.Keyset{From: &k, Backward: backward}
		if between != nil {
			between()
		}
	}
}

func ids(users []domain.User) []int64 {
	out := make([]int64, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

// testStoreKeysetWalk: a keyset walk, either way, with any filter and any
// ordering, meets exactly the rows of the page-number listing, in its order.
func testStoreKeysetWalk(t *testing.T, newStore func(t *testing.T) UserStore) {
	s := newStore(t)
	rng := rand.New(rand.NewPCG(18, 1))
	insertUsers(t, s, randomUsers(rng, 60, "w")...)
	filters := []struct {
		name string
		q    domain.ListQuery
	}{
		{"no filter", domain.ListQuery{}},
		{"last name", domain.ListQuery{LastName: "müller"}},
		{"search", domain.ListQuery{Search: "Meier"}},
		{"indexed search", domain.ListQuery{Search: "mail.ex"}},
		{"created after", domain.ListQuery{CreatedAfter: ptr(t0.Add(7 * time.Second))}},
		{"nothing", domain.ListQuery{LastName: "nobody"}},
	}
	for _, f := range filters {
		for _, order := range keysetOrderings {
			q := f.q
			q.Ordering = order
			t.Run(f.name+" by "+fmt.Sprint(q.KeyOrder()), func(t *testing.T) {
				full := q
				full.Page, full.PageSize = 1, domain.MaxPageSize
				p, err := s.ListUsers(context.Background(), full)
				mustNotFail(t, "ListUsers", err)
				want := ids(p.Users)
				if !slices.IsSortedFunc(p.Users, keyCompare(q.KeyOrder())) {
					t.Fatalf("page-number listing is not in key order: %v", want)
				}
				q.PageSize = 7
				if got := ids(walk(t, s, q, false, nil)); !slices.Equal(got, want) {
					t.Errorf("forward walk %v\nwant %v", got, want)
				}
				if got := ids(walk(t, s, q, true, nil)); !slices.Equal(got, want) {
					t.Errorf("backward walk %v\nwant %v", got, want)
				}
			})
		}
	}
}

// testStoreKeysetConcurrentChanges: while users are inserted and deleted
// during a walk, every user that existed throughout is met exactly once,
// and no user twice or out of order.
func testStoreKeysetConcurrentChanges(t *testing.T, newStore func(t *testing.T) UserStore) {
	s := newStore(t)
	rng := rand.New(rand.NewPCG(18, 2))
	initial := insertUsers(t, s, randomUsers(rng, 50, "c")...)
	orders := [][]domain.OrderField{
		nil,
		{{Field: domain.SortFirstName, Desc: true}},
		{{Field: domain.SortCreatedAt}},
		{{Field: domain.SortEmail, Desc: true}},
	}
	for i, order := range orders {
		for _, backward := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v backward=%v", order, backward), func(t *testing.T) {
				var (
					mu      sync.Mutex
					deleted = map[int64]bool{}
					live    = slices.Clone(initial)
				)
				// mutate deletes a user and inserts two; it may run on
				// another goroutine, so it reports rather than stops.
				mutate := func(r *rand.Rand, tag string) {
					mu.Lock()
					victim := live[r.IntN(len(live))]
					mu.Unlock()
					err := s.Do(context.Background(), func(ctx context.Context, tx ports.Tx) error { return deleteUser(ctx, tx, victim) })
					mu.Lock()
					if err == nil {
						deleted[victim] = true
					}
					mu.Unlock()
					for _, u := range randomUsers(r, 2, tag) {
						err := s.Do(context.Background(), func(ctx context.Context, tx ports.Tx) error { return tx.InsertUser(ctx, &u) })
						if err != nil {
							t.Errorf("insert during the walk: %v", err)
							return
						}
						mu.Lock()
						live = append(live, u.ID)
						mu.Unlock()
					}
				}
				stop := make(chan struct{})
				done := make(chan struct{})
				var once sync.Once
				halt := func() { once.Do(func() { close(stop); <-done }) }
				defer halt() // also when the walk stops the test
				go func() {  // changes concurrent with the walk's queries
					defer close(done)
					r := rand.New(rand.NewPCG(uint64(i), 3))
					for n := 0; n < 15; n++ { // bounded: the walk must reach its end
						select {
						case <-stop:
							return
						default:
						}
						mutate(r, fmt.Sprintf("g%d-%v-%d-", i, backward, n))
					}
				}()
				r := rand.New(rand.NewPCG(uint64(i), 4))
				n := 0
				got := walk(t, s, domain.ListQuery{Ordering: order, PageSize: 4}, backward, func() {
					n++
					mutate(r, fmt.Sprintf("b%d-%v-%d-", i, backward, n)) // and between pages, for sure
				})
				halt() // before judging: a late delete must count
				if !slices.IsSortedFunc(got, func(a, b domain.User) int {
					c := keyCompare(domain.ListQuery{Ordering: order}.KeyOrder())(a, b)
					if c == 0 {
						c = -1 // equal keys mean the same row twice
					}
					return c
				}) {
					t.Errorf("walk met users out of order or twice: %v", ids(got))
				}
				met := map[int64]bool{}
				for _, id := range ids(got) {
					met[id] = true
				}
				mu.Lock()
				defer mu.Unlock()
				for _, id := range initial {
					if !deleted[id] && !met[id] {
						t.Errorf("user %d existed throughout the walk but was skipped", id)
					}
				}
				initial = slices.DeleteFunc(slices.Clone(live), func(id int64) bool { return deleted[id] })
			})
		}
	}
}

// testStoreSearchAsScan: search answers exactly what a scan of every user
// answers (last name equal, or email containing the term, both compared
// lower-cased), whatever index serves it: random emails with wildcards and
// non-ASCII letters, terms cut from them in other cases, after updates and
// deletes that the index must follow.
func testStoreSearchAsScan(t *testing.T, newStore func(t *testing.T) UserStore) {
	s := newStore(t)
	rng := rand.New(rand.NewPCG(18, 5))
	users := randomUsers(rng, 80, "s")
	idList := insertUsers(t, s, users...)
	byID := map[int64]domain.User{}
	for i, id := range idList {
		users[i].ID = id
		byID[id] = users[i]
	}
	// Change some emails and delete some users: the index follows.
	for _, id := range idList[:10] {
		err := s.Do(context.Background(), func(ctx context.Context, tx ports.Tx) error {
			u, err := tx.LockUser(ctx, id)
			if err != nil {
				return err
			}
			u.Email = "Changed" + u.Email
			byID[id] = u
			return tx.UpdateUser(ctx, u)
		})
		mustNotFail(t, "update email", err)
	}
	for _, id := range idList[10:18] {
		err := s.Do(context.Background(), func(ctx context.Context, tx ports.Tx) error { return deleteUser(ctx, tx, id) })
		mustNotFail(t, "delete", err)
		delete(byID, id)
	}
	scan := func(term string) []int64 {
		f := strings.ToLower(term)
		var out []int64
		for id, u := range byID {
			if strings.ToLower(u.LastName) == f || strings.Contains(strings.ToLower(u.Email), f) {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	terms := []string{"%", "_", "!", "*", "?", "[", "ß", "é", "%_", "[.", "CHANGED", "changedA", "meier", "MÜLLER", "o'neil",
		"Exa%mple", "xa%m", "@corp", "nobody", "a!b", "É", "ÉÉ", "eé", "[*?"}
	for range 40 {
		u := users[rng.IntN(len(users))]
		runes := []rune(u.Email)
		from := rng.IntN(len(runes))
		to := min(len(runes), from+1+rng.IntN(6))
		term := string(runes[from:to])
		if rng.IntN(2) == 0 {
			term = strings.ToUpper(term)
		}
		terms = append(terms, term)
	}
	for _, term := range terms {
		want := scan(term)
		q := domain.ListQuery{Search: term, Page: 1, PageSize: domain.MaxPageSize}
		p, err := s.ListUsers(context.Background(), q)
		mustNotFail(t, "search "+term, err)
		if got := ids(p.Users); !slices.Equal(got, want) || p.Total != int64(len(want)) {
			t.Errorf("search %q: %v total %d, a scan finds %v", term, got, p.Total, want)
		}
		q.PageSize = 1 // counted, not seen
		if p, err = s.ListUsers(context.Background(), q); err != nil || p.Total != int64(len(want)) {
			t.Errorf("search %q, page of one: total %d (%v), want %d", term, p.Total, err, len(want))
		}
		q.Page = len(want) + 1 // past the end: no row to carry the count
		if p, err = s.ListUsers(context.Background(), q); err != nil || len(p.Users) != 0 || p.Total != int64(len(want)) {
			t.Errorf("search %q, page %d of one: %d users, total %d (%v), want none and %d", term, q.Page, len(p.Users), p.Total, err, len(want))
		}
		q.Page = 1
		q.Keyset, q.PageSize = &domain.Keyset{}, domain.MaxPageSize
		p, err = s.ListUsers(context.Background(), q)
		mustNotFail(t, "keyset search "+term, err)
		if got := ids(p.Users); !slices.Equal(got, want) {
			t.Errorf("keyset search %q: %v, a scan finds %v", term, got, want)
		}
	}
}
