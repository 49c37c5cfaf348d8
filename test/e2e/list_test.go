package e2e

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// people is the list suite's data set, created in this order.
var people = []struct{ first, last, email string }{
	{"Ada", "Lovelace", "ada@analytical.example"},         // 0
	{"Grace", "Hopper", "grace@navy.example"},             // 1
	{"Alan", "Turing", "alan@bletchley.example"},          // 2
	{"Ada", "Byron", "ada.byron@analytical.example"},      // 3
	{"Edsger", "Dijkstra", "edsger@tue.example"},          // 4
	{"Grace", "Murray", "lovelace.fan@navy.example"},      // 5
	{"Barbara", "Liskov", "barbara@mit.example"},          // 6
	{"Donald", "Knuth", "don@stanford.example"},           // 7
	{"Alan", "Kay", "alan.kay@parc.example"},              // 8
	{"Margaret", "Hamilton", "margaret@nasa.example"},     // 9
	{"Frances", "Allen", "fran@ibm.example"},              // 10
	{"Adele", "Lovelace", "adele.lovelace@other.example"}, // 11
}

// page is the list envelope.
type page struct {
	Count    int64           `json:"count"`
	Next     *string         `json:"next"`
	Previous *string         `json:"previous"`
	Results  json.RawMessage `json:"results"`
}

// TestListing creates a known set of users on a service of its own and
// checks filters, ordering and paging against it. The service runs with
// AUTH_MODE=jwt against a JWKS this test serves, so its callers also prove
// who they are (testBearerTokens, after the listing: it adds users), and
// its events name them; the other services run with AUTH_MODE=none.
func TestListing(t *testing.T) {
	s := startService(t, serviceOptions{geoStatic: "127.0.0.0/8=CH", issuer: newIssuer(t)})
	users := make([]user, len(people))
	for i, p := range people {
		users[i] = s.create(t, s.input(p.first, p.last, p.email))
	}
	id := func(i int) string { return jsonInt(users[i].ID) }
	all := func() []int {
		idx := make([]int, len(users))
		for i := range idx {
			idx[i] = i
		}
		return idx
	}

	cases := []struct {
		name  string
		query string
		want  []int // indices into people, in answer order
	}{
		{"everything, default page size 10", query(), all()[:10]},
		{"first name, case-insensitive", query("first_name", "ADA"), []int{0, 3}},
		{"last name, case-insensitive", query("last_name", "lovelace"), []int{0, 11}},
		{"email, case-insensitive", query("email", "ADA@Analytical.Example"), []int{0}},
		{"search: last name equals or email contains", query("search", "LoveLace"), []int{0, 5, 11}},
		{"search: part of emails", query("search", "navy"), []int{1, 5}},
		{"since_id and max_id are exclusive", query("since_id", id(3), "max_id", id(8)), []int{4, 5, 6, 7}},
		{"created_after is exclusive", query("created_after", users[5].CreatedAt), []int{6, 7, 8, 9, 10, 11}},
		{"created_before is exclusive", query("created_before", users[2].CreatedAt), []int{0, 1}},
		{"filters combine", query("first_name", "alan", "since_id", id(2)), []int{8}},
		{"ordering by -id", query("ordering", "-id", "page_size", "100"), []int{11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{"ordering by last name then -first name", query("ordering", "last_name,-first_name", "page_size", "100"),
			[]int{10, 3, 4, 9, 1, 8, 7, 6, 11, 0, 5, 2}},
		{"unknown ordering names are ignored", query("ordering", "nonsense,first_name,-id", "page_size", "100"),
			[]int{3, 0, 11, 8, 2, 6, 7, 4, 10, 5, 1, 9}},
		{"filter and ordering", query("search", "analytical", "ordering", "-email"), []int{0, 3}},
		{"page size clamps to 100", query("page_size", "1000"), all()},
		{"invalid page size falls back to 10", query("page_size", "abc"), all()[:10]},
		{"no match", query("first_name", "Nobody"), []int{}},
		{"trailing slash", "/api/v1/users/?last_name=Hopper", []int{1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := s.listPage(t, c.query)
			got := indicesOf(t, p, users)
			if !slices.Equal(got, c.want) {
				t.Fatalf("results %v, want %v", got, c.want)
			}
		})
	}

	t.Run("paging with next and previous", func(t *testing.T) {
		var seen []int
		p := s.listPage(t, query("page_size", "5"))
		pages := 1
		for {
			if p.Count != int64(len(users)) {
				t.Fatalf("count %d, want %d", p.Count, len(users))
			}
			seen = append(seen, indicesOf(t, p, users)...)
			if p.Next == nil {
				break
			}
			next := *p.Next
			checkLink(t, next, map[string]string{"page": jsonInt(int64(pages + 1)), "page_size": "5"})
			p = s.listPage(t, next)
			pages++
			// previous leads back to the page before (page 1 has no page parameter).
			wantPrev := map[string]string{"page_size": "5"}
			if pages > 2 {
				wantPrev["page"] = jsonInt(int64(pages - 1))
			}
			if p.Previous == nil {
				t.Fatalf("page %d has no previous link", pages)
			}
			checkLink(t, *p.Previous, wantPrev)
		}
		if pages != 3 || !slices.Equal(seen, all()) {
			t.Fatalf("%d pages with %v, want 3 pages with every user in id order", pages, seen)
		}
		if first := s.listPage(t, query("page_size", "5")); first.Previous != nil {
			t.Fatalf("page 1 has a previous link %q", *first.Previous)
		}
	})

	t.Run("next and previous keep the filters", func(t *testing.T) {
		p := s.listPage(t, query("first_name", "Grace", "page_size", "1", "ordering", "-id"))
		if got := indicesOf(t, p, users); p.Count != 2 || !slices.Equal(got, []int{5}) || p.Next == nil {
			t.Fatalf("page 1: count %d results %v next %v", p.Count, got, p.Next)
		}
		checkLink(t, *p.Next, map[string]string{"first_name": "Grace", "page_size": "1", "ordering": "-id", "page": "2"})
		p = s.listPage(t, *p.Next)
		if got := indicesOf(t, p, users); !slices.Equal(got, []int{1}) || p.Next != nil || p.Previous == nil {
			t.Fatalf("page 2: results %v next %v previous %v", got, p.Next, p.Previous)
		}
		p = s.listPage(t, *p.Previous)
		if got := indicesOf(t, p, users); !slices.Equal(got, []int{5}) {
			t.Fatalf("back to page 1: results %v", got)
		}
	})

	refusals := []struct {
		name  string
		query string
		want  string
	}{
		{"page past the last", query("page_size", "5", "page", "4"), `{"detail": "Invalid page."}`},
		{"page zero", query("page", "0"), `{"detail": "Invalid page."}`},
		{"page not a number", query("page", "two"), `{"detail": "Invalid page."}`},
		{"malformed ids", query("since_id", "abc", "max_id", "1.5"),
			`{"since_id": ["A valid integer is required."], "max_id": ["A valid integer is required."]}`},
		{"malformed date", query("created_after", "yesterday"), `{"created_after": ["Enter a valid date/time."]}`},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			status := http.StatusNotFound
			if !strings.Contains(c.want, "Invalid page.") {
				status = http.StatusBadRequest
			}
			expectJSON(t, s.do(t, get(c.query)), status, c.want)
		})
	}

	t.Run("bearer tokens", func(t *testing.T) { testBearerTokens(t, s) })
	t.Run("events", func(t *testing.T) { s.checkEvents(t) })
}

func jsonInt(n int64) string { return strconv.FormatInt(n, 10) }

// listPage GETs a list and checks the envelope's shape.
func (s *service) listPage(t *testing.T, path string) page {
	t.Helper()
	r := s.do(t, get(path))
	expectStatus(t, r, http.StatusOK)
	exactKeys(t, "list", r.body, "count", "next", "previous", "results")
	var p page
	mustUnmarshal(t, r.body, &p)
	return p
}

// indicesOf maps a page's results back to the data set, checking each
// against the user as created.
func indicesOf(t *testing.T, p page, users []user) []int {
	t.Helper()
	var results []json.RawMessage
	mustUnmarshal(t, p.Results, &results)
	idx := make([]int, 0, len(results))
	for _, raw := range results {
		exactKeys(t, "list item", raw, userKeys...)
		var u user
		mustUnmarshal(t, raw, &u)
		i := slices.IndexFunc(users, func(c user) bool { return c.ID == u.ID })
		if i < 0 || users[i] != u {
			t.Fatalf("list item %+v is none of the created users", u)
		}
		idx = append(idx, i)
	}
	return idx
}

// checkLink fails t unless link is the list URL of the service with
// exactly the query parameters want.
func checkLink(t *testing.T, link string, want map[string]string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("link %q: %v", link, err)
	}
	if u.Scheme != "http" || u.Path != "/api/v1/users" {
		t.Fatalf("link %q is not the list's absolute URL", link)
	}
	got := map[string]string{}
	for k, vs := range u.Query() {
		got[k] = strings.Join(vs, ",")
	}
	if !maps.Equal(got, want) {
		t.Fatalf("link %q has the parameters %v, want %v", link, got, want)
	}
}
