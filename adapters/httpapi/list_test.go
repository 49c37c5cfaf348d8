package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// seedUser is what seedUsers stored, to compute expected answers.
type seedUser struct {
	id        int64
	first     string
	last      string
	email     string
	country   string
	createdAt time.Time
}

var seedBase = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// seedUsers stores n users through the real store (faster than n POSTs):
// user i was created i minutes after seedBase, first names cycle through
// five, every third is a Keller, every fourth has a corp.com address, and
// one Frei has "keller" in its address; users were created from CH, DE, LI
// and (every fourth, as if created before countries were recorded) none.
func seedUsers(t *testing.T, e *testEnv, n int) []seedUser {
	t.Helper()
	firsts := []string{"Anna", "Ben", "Chris", "Dora", "Emil"}
	var out []seedUser
	err := e.store.Do(context.Background(), func(ctx context.Context, tx ports.Tx) error {
		out = out[:0]
		for i := 1; i <= n; i++ {
			s := seedUser{first: firsts[(i-1)%5], last: "Meier", email: fmt.Sprintf("user%d@example.ch", i), createdAt: seedBase.Add(time.Duration(i) * time.Minute)}
			if i%3 == 0 {
				s.last = "Keller"
			}
			if i%4 == 0 {
				s.email = fmt.Sprintf("user%d@corp.com", i)
			}
			if i == 7 {
				s.last, s.email = "Frei", "hans.keller@example.ch"
			}
			s.country = []string{"", "CH", "DE", "LI"}[i%4]
			in := domain.Input{FirstName: &s.first, LastName: &s.last, Email: &s.email, Address: new(string)}
			u := domain.NewUser(in, "$argon2id$v=19$m=64,t=1,p=1$c2VlZA$c2VlZA", s.createdAt)
			u.Country = s.country
			if err := tx.InsertUser(ctx, &u); err != nil {
				return err
			}
			s.id = u.ID
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	return out
}

func idsWhere(seeds []seedUser, keep func(seedUser) bool) []int64 {
	var ids []int64
	for _, s := range seeds {
		if keep(s) {
			ids = append(ids, s.id)
		}
	}
	return ids
}

func resultIDs(t *testing.T, page map[string]any) []int64 {
	t.Helper()
	results, ok := page["results"].([]any)
	if !ok {
		t.Fatalf("results is not a list: %v", page["results"])
	}
	ids := make([]int64, 0, len(results))
	for _, r := range results {
		ids = append(ids, int64(r.(map[string]any)["id"].(float64)))
	}
	return ids
}

func TestListFiltersAndOrdering(t *testing.T) {
	e := newEnv(t, envOptions{})
	seeds := seedUsers(t, e, 30)
	all := func(seedUser) bool { return true }
	at := func(i int) string { return seeds[i-1].createdAt.Format(time.RFC3339) }
	tests := []struct {
		name  string
		query string
		keep  func(seedUser) bool
		order []int64 // explicit expected order of the first page, when not ascending ids
	}{
		{name: "everything", query: "page_size=100", keep: all},
		{name: "first_name exact, case-insensitive", query: "first_name=aNNa", keep: func(s seedUser) bool { return s.first == "Anna" }},
		{name: "last_name exact", query: "last_name=KELLER&page_size=50", keep: func(s seedUser) bool { return s.last == "Keller" }},
		{name: "last_name is not a prefix match", query: "last_name=Kell", keep: func(seedUser) bool { return false }},
		{name: "email exact, case-insensitive", query: "email=USER5@example.CH", keep: func(s seedUser) bool { return s.id == seeds[4].id }},
		{name: "search: last name equals or email contains", query: "search=Keller&page_size=50",
			keep: func(s seedUser) bool { return s.last == "Keller" || strings.Contains(s.email, "keller") }},
		{name: "search: email substring", query: "search=CORP.com&page_size=50", keep: func(s seedUser) bool { return strings.HasSuffix(s.email, "corp.com") }},
		{name: "search: LIKE wildcards are literal", query: "search=%25", keep: func(seedUser) bool { return false }},
		{name: "since_id", query: "since_id=25", keep: func(s seedUser) bool { return s.id > 25 }},
		{name: "max_id", query: "max_id=4", keep: func(s seedUser) bool { return s.id < 4 }},
		{name: "since_id and max_id", query: "since_id=2&max_id=6", keep: func(s seedUser) bool { return s.id > 2 && s.id < 6 }},
		{name: "created_after is exclusive", query: "created_after=" + url.QueryEscape(at(27)), keep: func(s seedUser) bool { return s.id > 27 }},
		{name: "created_before with an offset", query: "created_before=" + url.QueryEscape(seeds[2].createdAt.In(time.FixedZone("", 3600)).Format(time.RFC3339)),
			keep: func(s seedUser) bool { return s.id < 3 }},
		{name: "unencoded + of an offset is forgiven", query: "created_before=" + seeds[2].createdAt.In(time.FixedZone("", 3600)).Format(time.RFC3339),
			keep: func(s seedUser) bool { return s.id < 3 }},
		{name: "created range and first name", query: "first_name=Ben&created_after=" + url.QueryEscape(at(2)) + "&created_before=" + url.QueryEscape(at(22)),
			keep: func(s seedUser) bool { return s.first == "Ben" && s.id > 2 && s.id < 22 }},
		{name: "empty filter values are no filter", query: "first_name=&since_id=&created_after=&country=&page_size=100", keep: all},
		{name: "country", query: "country=CH", keep: func(s seedUser) bool { return s.country == "CH" }},
		{name: "countries, comma-separated, any case", query: "country=de,%20li&page_size=50", keep: func(s seedUser) bool { return s.country == "DE" || s.country == "LI" }},
		{name: "countries, parameter repeated", query: "country=DE&country=LI,DE&page_size=50", keep: func(s seedUser) bool { return s.country == "DE" || s.country == "LI" }},
		{name: "country nobody was created from", query: "country=FR", keep: func(seedUser) bool { return false }},
		{name: "country and last name", query: "country=CH,LI&last_name=Keller", keep: func(s seedUser) bool { return s.last == "Keller" && (s.country == "CH" || s.country == "LI") }},
		{name: "country and -id ordering", query: "country=DE&ordering=-id&page_size=3", keep: func(s seedUser) bool { return s.country == "DE" }, order: []int64{30, 26, 22}},
		{name: "ordering -id", query: "ordering=-id&page_size=3", keep: all, order: []int64{30, 29, 28}},
		{name: "ordering by last name then -first_name then id", query: "ordering=last_name,-first_name&page_size=4", keep: all,
			order: []int64{7, 15, 30, 9}},
		{name: "unknown ordering names ignored", query: "ordering=password,-id,bogus&page_size=2", keep: all, order: []int64{30, 29}},
		{name: "ordering only by unknown names falls back to id", query: "ordering=password&page_size=2", keep: all, order: []int64{1, 2}},
		{name: "ordering by -created_at", query: "ordering=-created_at&page_size=2", keep: all, order: []int64{30, 29}},
		{name: "ordering by email", query: "ordering=email&page_size=2", keep: all, order: []int64{7, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(req{method: http.MethodGet, path: "/api/v1/users?" + tt.query})
			if res.status != http.StatusOK {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			page := res.object(t)
			want := idsWhere(seeds, tt.keep)
			if page["count"] != float64(len(want)) {
				t.Errorf("count = %v, want %d", page["count"], len(want))
			}
			got := resultIDs(t, page)
			if tt.order != nil {
				want = tt.order
			} else if len(want) > 10 && !strings.Contains(tt.query, "page_size") {
				want = want[:10]
			}
			if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Errorf("ids = %v, want %v", got, want)
			}
		})
	}
}

func TestListMalformedFilters(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		query string
		want  string
	}{
		{"since_id=abc", `{"since_id":["A valid integer is required."]}`},
		{"max_id=1.5", `{"max_id":["A valid integer is required."]}`},
		{"since_id=99999999999999999999", `{"since_id":["A valid integer is required."]}`},
		{"created_after=yesterday", `{"created_after":["Enter a valid date/time."]}`},
		{"created_before=2024-03-01", `{"created_before":["Enter a valid date/time."]}`},
		{"since_id=x&created_before=y&max_id=3", `{"since_id":["A valid integer is required."],"created_before":["Enter a valid date/time."]}`},
		{"country=XX", `{"country":["\"XX\" is not a valid ISO 3166-1 alpha-2 country code."]}`},
		{"country=CHE", `{"country":["\"CHE\" is not a valid ISO 3166-1 alpha-2 country code."]}`},
		{"country=CH,", `{"country":["\"\" is not a valid ISO 3166-1 alpha-2 country code."]}`},
		{"country=CH&country=Switzerland", `{"country":["\"Switzerland\" is not a valid ISO 3166-1 alpha-2 country code."]}`},
		{"country=" + strings.Repeat("A", 40), `{"country":["\"AAAAAAAAAAAAAAAA...\" is not a valid ISO 3166-1 alpha-2 country code."]}`},
		{"country=C%00", `{"country":["\"C\\x00\" is not a valid ISO 3166-1 alpha-2 country code."]}`},
		{"country=XX&since_id=a", `{"since_id":["A valid integer is required."],"country":["\"XX\" is not a valid ISO 3166-1 alpha-2 country code."]}`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			assertJSON(t, e.do(req{method: http.MethodGet, path: "/api/v1/users?" + tt.query}), 400, tt.want)
		})
	}
}

func TestListPaging(t *testing.T) {
	e := newEnv(t, envOptions{})
	seedUsers(t, e, 105)
	base := e.v4.URL + "/api/v1/users"
	tests := []struct {
		name     string
		path     string
		count    int
		results  int
		first    int64
		next     string // query of next, "" for null
		previous string // query of previous, "-" for null
	}{
		{name: "defaults", path: "/api/v1/users", count: 105, results: 10, first: 1, next: "page=2", previous: "-"},
		{name: "second page links back without page", path: "/api/v1/users?page=2", count: 105, results: 10, first: 11, next: "page=3", previous: ""},
		{name: "third page", path: "/api/v1/users?page=3", count: 105, results: 10, first: 21, next: "page=4", previous: "page=2"},
		{name: "empty page means the first", path: "/api/v1/users?page=", count: 105, results: 10, first: 1, next: "page=2", previous: "-"},
		{name: "invalid page_size falls back to 10", path: "/api/v1/users?page_size=abc", count: 105, results: 10, first: 1, next: "page=2&page_size=abc", previous: "-"},
		{name: "zero page_size falls back to 10", path: "/api/v1/users?page_size=0", count: 105, results: 10, first: 1, next: "page=2&page_size=0", previous: "-"},
		{name: "page_size clamps to 100", path: "/api/v1/users?page_size=1000", count: 105, results: 100, first: 1, next: "page=2&page_size=1000", previous: "-"},
		{name: "last partial page", path: "/api/v1/users?page_size=100&page=2", count: 105, results: 5, first: 101, next: "-", previous: "page_size=100"},
		{name: "links keep every other parameter", path: "/api/v1/users/?first_name=anna&ordering=-id&page=2&page_size=5&custom=x%20y",
			count: 21, results: 5, first: 76, next: "custom=x+y&first_name=anna&ordering=-id&page=3&page_size=5", previous: "custom=x+y&first_name=anna&ordering=-id&page_size=5"},
		{name: "empty first page is 200", path: "/api/v1/users?first_name=nobody", count: 0, results: 0, next: "-", previous: "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(req{method: http.MethodGet, path: tt.path})
			if res.status != http.StatusOK {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			page := res.object(t)
			if page["count"] != float64(tt.count) {
				t.Errorf("count = %v, want %d", page["count"], tt.count)
			}
			ids := resultIDs(t, page)
			if len(ids) != tt.results {
				t.Errorf("%d results, want %d", len(ids), tt.results)
			}
			if len(ids) > 0 && ids[0] != tt.first {
				t.Errorf("first id %d, want %d", ids[0], tt.first)
			}
			path := base
			if strings.HasPrefix(tt.path, "/api/v1/users/") {
				path += "/"
			}
			checkLink(t, "next", page["next"], path, tt.next)
			checkLink(t, "previous", page["previous"], path, tt.previous)
			for _, r := range page["results"].([]any) {
				u := r.(map[string]any)
				if want := fmt.Sprintf("%s/%v", base, u["id"]); u["url"] != want {
					t.Errorf("url = %v, want %s", u["url"], want)
				}
			}
		})
	}
}

// checkLink compares a next/previous link; wantQuery "-" means null.
func checkLink(t *testing.T, name string, got any, path, wantQuery string) {
	t.Helper()
	if wantQuery == "-" {
		if got != nil {
			t.Errorf("%s = %v, want null", name, got)
		}
		return
	}
	want := path
	if wantQuery != "" {
		want += "?" + wantQuery
	}
	if got != want {
		t.Errorf("%s = %v, want %s", name, got, want)
	}
}

func TestListInvalidPage(t *testing.T) {
	e := newEnv(t, envOptions{})
	seedUsers(t, e, 12)
	for _, q := range []string{"page=3", "page=0", "page=-1", "page=abc", "page=1.0", "page=last", "page=99999999999999999999", "page=2&first_name=nobody"} {
		t.Run(q, func(t *testing.T) {
			assertJSON(t, e.do(req{method: http.MethodGet, path: "/api/v1/users?" + q}), 404, `{"detail":"Invalid page."}`)
		})
	}
}

// A user created before countries were recorded shows "country": null,
// in a list and on its own; others show their code.
func TestCountryRepresentation(t *testing.T) {
	e := newEnv(t, envOptions{})
	seeds := seedUsers(t, e, 4)
	page := e.do(req{method: http.MethodGet, path: "/api/v1/users"}).object(t)
	results, _ := page["results"].([]any)
	if len(results) != 4 {
		t.Fatalf("results %v", page["results"])
	}
	for i, r := range results {
		got, present := r.(map[string]any)["country"]
		var want any
		if seeds[i].country != "" {
			want = seeds[i].country
		}
		if !present || got != want {
			t.Errorf("listed user %d: country %v (present %v), want %v", seeds[i].id, got, present, want)
		}
	}
	one := e.do(req{method: http.MethodGet, path: fmt.Sprintf("/api/v1/users/%d", seeds[3].id)}).object(t)
	if got, present := one["country"]; !present || got != nil {
		t.Errorf("user without a country: %v (present %v), want null", got, present)
	}
}
