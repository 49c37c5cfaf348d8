package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/domain"
)

var discardLogger = slog.New(slog.DiscardHandler)

// classifyForFuzz maps err the way a handler answers it and checks the
// invariants of every error answer: a 4xx whose body marshals to a JSON
// object, either {"detail": "..."} or fields mapped to non-empty message
// lists.
func classifyForFuzz(t *testing.T, err error) int {
	t.Helper()
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodGet, "/api/v1/users", nil)
	status, body := errorMapper{logger: discardLogger}.classify(c, err)
	if status < 400 || status >= 500 {
		t.Fatalf("error %v answered %d", err, status)
	}
	b, merr := json.Marshal(body)
	if merr != nil {
		t.Fatalf("error body %v does not marshal: %v", body, merr)
	}
	var obj map[string]any
	if json.Unmarshal(b, &obj) != nil || len(obj) == 0 {
		t.Fatalf("error body %s is not a non-empty JSON object", b)
	}
	if d, ok := obj["detail"]; ok {
		if s, _ := d.(string); s == "" || len(obj) != 1 {
			t.Fatalf("detail body %s", b)
		}
		return status
	}
	for k, v := range obj {
		msgs, ok := v.([]any)
		if k == "" || !ok || len(msgs) == 0 {
			t.Fatalf("field body %s", b)
		}
		for _, m := range msgs {
			if s, _ := m.(string); s == "" {
				t.Fatalf("field body %s", b)
			}
		}
	}
	return status
}

// FuzzParseListQuery checks the list query parser on any query string:
// errors are an invalid page (404) or field errors on the four typed
// filters (400); accepted queries have a page from 1, a page size from 1
// to 100, known unique orderings and filters that say what was sent.
func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{
		"", "page=2&page_size=5", "page=0", "page=-1", "page=abc", "page=99999999999999999999", "page_size=0", "page_size=1000",
		"page_size=-5", "since_id=x&max_id=y", "since_id=%201%20", "created_after=2026-01-01T00:00:00Z", "created_after=2026-01-01T00:00:00 01:00",
		"created_before=yesterday", "ordering=-id,email,-email,bogus,", "search=%25_%25", "first_name=%00", "email=A%40B.CH",
		"page=1&page=2", "country=CH,de", "country=XX", "country=CH,", "country=ch&country=LI", "country=%C3%A9", "since_id=-9223372036854775808", "max_id=9223372036854775808", "ordering=" + strings.Repeat("-id,", 100),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		values, _ := url.ParseQuery(raw)
		q, err := parseListQuery(values)
		if err != nil {
			status := classifyForFuzz(t, err)
			var verr *domain.ValidationError
			switch {
			case errors.Is(err, domain.ErrInvalidPage):
				if status != http.StatusNotFound {
					t.Fatalf("invalid page answered %d", status)
				}
				if n, perr := strconv.Atoi(values.Get(paramPage)); values.Get(paramPage) == "" || perr == nil && n >= 1 {
					t.Fatalf("page %q refused", values.Get(paramPage))
				}
			case errors.As(err, &verr):
				for field, msgs := range verr.Fields {
					if field == paramCountry {
						if len(msgs) != 1 || !strings.HasSuffix(msgs[0], "is not a valid ISO 3166-1 alpha-2 country code.") || len(values[paramCountry]) == 0 {
							t.Fatalf("field errors %v for %q", verr.Fields, raw)
						}
						continue
					}
					want := map[string]string{paramSinceID: msgInvalidInteger, paramMaxID: msgInvalidInteger,
						paramCreatedAfter: msgInvalidDateTime, paramCreatedBefore: msgInvalidDateTime}[field]
					if want == "" || len(msgs) != 1 || msgs[0] != want || values.Get(field) == "" {
						t.Fatalf("field errors %v for %q", verr.Fields, raw)
					}
				}
			default:
				t.Fatalf("unexpected error %T %v", err, err)
			}
			return
		}
		if q.Page < 1 || q.PageSize < 1 || q.PageSize > domain.MaxPageSize {
			t.Fatalf("%q: page %d size %d", raw, q.Page, q.PageSize)
		}
		if n, perr := strconv.Atoi(values.Get(paramPageSize)); perr == nil && n >= 1 && n <= domain.MaxPageSize && q.PageSize != n {
			t.Fatalf("%q: page size %d, asked %d", raw, q.PageSize, n)
		}
		for _, c := range q.Countries {
			if !domain.ValidCountryCode(c) {
				t.Fatalf("%q: countries %v", raw, q.Countries)
			}
		}
		seen := map[string]bool{}
		for _, o := range q.Ordering {
			if !domain.IsSortable(o.Field) || seen[o.Field] {
				t.Fatalf("%q: ordering %v", raw, q.Ordering)
			}
			seen[o.Field] = true
		}
		if q.FirstName != values.Get(paramFirstName) || q.LastName != values.Get(paramLastName) ||
			q.Email != values.Get(paramEmail) || q.Search != values.Get(paramSearch) {
			t.Fatalf("%q: text filters %+v", raw, q)
		}
		for name, got := range map[string]*int64{paramSinceID: q.SinceID, paramMaxID: q.MaxID} {
			rawID := values.Get(name)
			if (rawID == "") != (got == nil) {
				t.Fatalf("%q: %s %v from %q", raw, name, got, rawID)
			}
			if got == nil {
				continue
			}
			if n, err := strconv.ParseInt(strings.TrimSpace(rawID), 10, 64); err != nil || n != *got {
				t.Fatalf("%q: %s %d from %q", raw, name, *got, rawID)
			}
		}
	})
}

// FuzzParseIfMatch checks If-Match on any header value: "*" holds for
// every version; otherwise the condition holds for version v only if the
// header names the strong tag "v" (possibly with leading zeros), never for
// a weak tag alone; and an exact strong tag always holds.
func FuzzParseIfMatch(f *testing.F) {
	for _, s := range []string{`"1"`, `W/"1"`, `*`, `"1", "2"`, `"01"`, `""`, ``, `"-1"`, `"99999999999999999999"`, `garbage`, `"1`, ` "7" ,*`} {
		f.Add(s, int64(1))
	}
	f.Fuzz(func(t *testing.T, header string, version int64) {
		if version < 1 {
			version = 1
		}
		pre := parseIfMatch([]string{header})
		holds := pre.Check(version) == nil
		tags := strings.Split(header, ",")
		star, named := false, false
		for _, tag := range tags {
			tag = strings.TrimSpace(tag)
			star = star || tag == "*"
			if len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"' {
				if n, err := strconv.ParseInt(tag[1:len(tag)-1], 10, 64); err == nil && n == version && !strings.ContainsAny(tag, "+-") {
					named = true
				}
			}
		}
		if holds != (star || named) {
			t.Fatalf("If-Match %q and version %d: holds %v, star %v, named %v", header, version, holds, star, named)
		}
		if exact := etag(version); parseIfMatch([]string{exact}).Check(version) != nil {
			t.Fatalf("If-Match %s does not hold for its own version", exact)
		}
	})
}
