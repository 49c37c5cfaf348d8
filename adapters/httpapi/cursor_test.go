package httpapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/domain"
)

// walkLinks follows next (or previous) links from path and returns the ids
// met, in the order of the listing (a backward walk's pages put back in
// order), failing on any page that is not a cursor-mode page.
func walkLinks(t *testing.T, e *testEnv, path, link string) []int64 {
	t.Helper()
	var all []int64
	for n := 0; path != ""; n++ {
		if n > 100 {
			t.Fatal("walk does not end")
		}
		res := e.do(req{method: http.MethodGet, path: path})
		if res.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, res.status, res.body)
		}
		page := res.object(t)
		if _, ok := page["count"]; ok {
			t.Fatalf("cursor page has a count: %s", res.body)
		}
		ids := resultIDs(t, page)
		if link == "previous" {
			all = append(ids, all...)
		} else {
			all = append(all, ids...)
		}
		path = ""
		if next, ok := page[link].(string); ok {
			u, err := url.Parse(next)
			if err != nil || u.Host != strings.TrimPrefix(e.v4.URL, "http://") {
				t.Fatalf("%s link %q", link, next)
			}
			if u.Query().Has("page") {
				t.Errorf("%s link keeps page: %s", link, next)
			}
			path = u.RequestURI()
		}
	}
	return all
}

func TestListCursorWalks(t *testing.T) {
	e := newEnv(t, envOptions{})
	seeds := seedUsers(t, e, 47)
	tests := []struct {
		name  string
		query string
		want  []int64
	}{
		{"default order", "", idsWhere(seeds, func(seedUser) bool { return true })},
		{"filter and ordering", "last_name=keller&ordering=-first_name", nil},
		{"search and time ordering", "search=corp.com&ordering=-created_at", nil},
		{"two-field ordering", "ordering=first_name,-created_at", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The page-number listing of everything is the reference.
			ref := e.do(req{method: http.MethodGet, path: "/api/v1/users?page_size=100&" + tt.query})
			want := resultIDs(t, ref.object(t))
			if tt.want != nil && !slices.Equal(want, tt.want) {
				t.Fatalf("reference listing %v, want %v", want, tt.want)
			}
			first := "/api/v1/users?page_size=4&cursor=&" + tt.query
			forward := walkLinks(t, e, first, "next")
			if !slices.Equal(forward, want) {
				t.Errorf("next links met %v\nwant %v", forward, want)
			}
			// The last page's previous links lead back to the start.
			path := first
			for {
				page := e.do(req{method: http.MethodGet, path: path}).object(t)
				next, ok := page["next"].(string)
				if !ok {
					break
				}
				u, _ := url.Parse(next)
				path = u.RequestURI()
			}
			if backward := walkLinks(t, e, path, "previous"); !slices.Equal(backward, want) {
				t.Errorf("previous links met %v\nwant %v", backward, want)
			}
		})
	}
}

func TestListCursorFirstPage(t *testing.T) {
	e := newEnv(t, envOptions{})
	seedUsers(t, e, 5)
	res := e.do(req{method: http.MethodGet, path: "/api/v1/users?cursor=&page_size=2&first_name=anna"})
	if res.status != http.StatusOK {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	page := res.object(t)
	if page["previous"] != nil || page["next"] != nil {
		t.Errorf("single page has links: %s", res.body)
	}
	if got := resultIDs(t, page); !slices.Equal(got, []int64{1}) {
		t.Errorf("results %v, want [1]", got)
	}
	empty := e.do(req{method: http.MethodGet, path: "/api/v1/users?cursor=&first_name=nobody"})
	if empty.status != http.StatusOK || strings.TrimSpace(string(empty.body)) != `{"next":null,"previous":null,"results":[]}` {
		t.Errorf("empty cursor page: %d %s", empty.status, empty.body)
	}
}

func TestListInvalidCursor(t *testing.T) {
	e := newEnv(t, envOptions{})
	seedUsers(t, e, 10)
	page := e.do(req{method: http.MethodGet, path: "/api/v1/users?cursor=&page_size=3"}).object(t)
	next, _ := url.Parse(page["next"].(string))
	good := next.Query().Get("cursor")
	raw, err := base64.RawURLEncoding.DecodeString(good)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(raw), `"3"`, `"7"`, 1)
	if edited == string(raw) {
		t.Fatalf("cursor payload %q does not hold the position", raw)
	}
	other := e.do(req{method: http.MethodGet, path: "/api/v1/users?cursor=&page_size=3&ordering=-id"}).object(t)
	otherNext, _ := url.Parse(other["next"].(string))
	forger := newCursorCodec(nil) // another key
	forged, err := forger.encode(context.Background(), domain.ListQuery{}.KeyOrder(), domain.Keyset{})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"garbage":                     "not a cursor!",
		"not base64":                  "%%%",
		"too short":                   "YWJj",
		"edited position":             base64.RawURLEncoding.EncodeToString([]byte(edited)),
		"truncated":                   good[:len(good)-2],
		"signed by another key":       forged,
		"of another ordering":         otherNext.Query().Get("cursor"),
		"sql in the cursor parameter": "' OR 1=1 --",
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			res := e.do(req{method: http.MethodGet, path: "/api/v1/users?page_size=3&cursor=" + url.QueryEscape(c)})
			assertJSON(t, res, http.StatusBadRequest, `{"cursor":["Invalid cursor."]}`)
		})
	}
	// The genuine cursor still works.
	if res := e.do(req{method: http.MethodGet, path: "/api/v1/users?page_size=3&cursor=" + good}); res.status != http.StatusOK {
		t.Errorf("genuine cursor: %d %s", res.status, res.body)
	}
}

func TestListCursorSharedKey(t *testing.T) {
	// Two replicas given the same key accept each other's cursors.
	key := func(context.Context) ([]byte, error) { return []byte("0123456789abcdef0123456789abcdef"), nil }
	a := newEnv(t, envOptions{cursorKey: key})
	b := newEnv(t, envOptions{cursorKey: key})
	seedUsers(t, a, 6)
	seedUsers(t, b, 6)
	page := a.do(req{method: http.MethodGet, path: "/api/v1/users?cursor=&page_size=4"}).object(t)
	next, _ := url.Parse(page["next"].(string))
	res := b.do(req{method: http.MethodGet, path: next.RequestURI()})
	if res.status != http.StatusOK || !slices.Equal(resultIDs(t, res.object(t)), []int64{5, 6}) {
		t.Errorf("replica b on replica a's cursor: %d %s", res.status, res.body)
	}
}

func TestListPageOffsetGuard(t *testing.T) {
	e := newEnv(t, envOptions{maxOffset: 100})
	seedUsers(t, e, 12)
	for _, q := range []string{"page=11", "page=2&page_size=51", "page=101&page_size=1"} {
		t.Run(q, func(t *testing.T) {
			res := e.do(req{method: http.MethodGet, path: "/api/v1/users?" + q})
			if res.status != http.StatusBadRequest || !strings.Contains(string(res.body), "cursor=") {
				t.Errorf("%d %s, want 400 pointing at cursor", res.status, res.body)
			}
		})
	}
	for _, q := range []string{"page=10", "page=2&page_size=50", "page=1&page_size=100", "page=500&cursor="} {
		t.Run(q, func(t *testing.T) {
			res := e.do(req{method: http.MethodGet, path: "/api/v1/users?" + q})
			if res.status == http.StatusBadRequest {
				t.Errorf("%d %s: within the limit (or cursor mode)", res.status, res.body)
			}
		})
	}
	lifted := newEnv(t, envOptions{})
	seedUsers(t, lifted, 3)
	if res := lifted.do(req{method: http.MethodGet, path: "/api/v1/users?page=100000"}); res.status != http.StatusNotFound {
		t.Errorf("no limit: %d %s, want 404 (past the end)", res.status, res.body)
	}
}
