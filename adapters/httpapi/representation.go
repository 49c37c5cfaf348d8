package httpapi

import (
	"cmp"
	"context"
	"net/url"
	"strconv"
	"strings"

	"github.com/marketplace/usersvc/domain"
)

func (o origin) url(path string, query url.Values) string {
	u := url.URL{Scheme: o.Scheme, Host: o.Host, Path: path, RawQuery: query.Encode()}
	return u.String()
}

// representPage builds the envelope; next and previous keep every query
// parameter but the page (the first page's link has none, as in the
// prototype).
func representPage(o origin, path string, query url.Values, q domain.ListQuery, page domain.UserPage) listBody {
	out := listBody{enc: newUserEncoder(o), counted: true, count: page.Total, users: page.Users}
	link := func(n int) *string {
		v := url.Values{}
		for k, vs := range query {
			v[k] = vs
		}
		if n == 1 {
			v.Del(paramPage)
		} else {
			v.Set(paramPage, strconv.Itoa(n))
		}
		s := o.url(path, v)
		return &s
	}
	if int64(q.Page)*int64(q.PageSize) < page.Total {
		out.next = link(q.Page + 1)
	}
	if q.Page > 1 {
		out.previous = link(q.Page - 1)
	}
	return out
}

// representCursorPage builds the cursor-mode envelope. Its links keep every
// query parameter but page and cursor, and carry the cursor of the page
// after the last row (next) and before the first one (previous). A page
// left empty by deletes links to the end the walk came from.
func representCursorPage(ctx context.Context, codec *cursorCodec, o origin, path string, query url.Values, q domain.ListQuery, page domain.UserPage) (listBody, error) {
	out := listBody{enc: newUserEncoder(o), users: page.Users}
	order := q.KeyOrder()
	var firstErr error
	link := func(ks domain.Keyset) *string {
		token, err := codec.encode(ctx, order, ks)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			return nil
		}
		v := url.Values{}
		for k, vs := range query {
			v[k] = vs
		}
		v.Del(paramPage)
		v.Set(paramCursor, token)
		s := o.url(path, v)
		return &s
	}
	at := func(i int) *domain.SortKey {
		if len(page.Users) == 0 {
			return nil // the end the walk came from
		}
		k := domain.KeyOf(page.Users[(i+len(page.Users))%len(page.Users)])
		return &k
	}
	ks := *q.Keyset
	// Forward: more follow if the store says so, and rows precede unless
	// this is the first page. Backward: the mirror image.
	hasNext, hasPrev := page.More, ks.From != nil
	if ks.Backward {
		hasNext, hasPrev = ks.From != nil, page.More
	}
	if hasNext {
		out.next = link(domain.Keyset{From: at(-1)})
	}
	if hasPrev {
		out.previous = link(domain.Keyset{From: at(0), Backward: true})
	}
	return out, firstErr
}

// etag is a strong entity tag derived from the user's version.
func etag(version int64) string {
	return `"` + strconv.FormatInt(version, 10) + `"`
}

// noneMatch reports whether If-None-Match header values name the given
// version (weak comparison, RFC 9110 13.1.2: W/"3" matches "3") or are "*".
func noneMatch(values []string, version int64) bool {
	want := etag(version)
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
				return true
			}
		}
	}
	return false
}

// parseIfMatch turns If-Match header values into a precondition. "*" (or no
// header) holds for any version; otherwise only strong tags naming a
// version count: weak tags never match under If-Match's strong comparison,
// and a header naming no version of ours fails.
func parseIfMatch(values []string) domain.Precondition {
	if len(values) == 0 {
		return domain.Precondition{}
	}
	var versions []int64
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return domain.Precondition{}
			}
			if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' {
				continue
			}
			inner := tag[1 : len(tag)-1]
			if inner == "" || strings.Trim(inner, "0123456789") != "" {
				continue // not one of our tags
			}
			n, err := strconv.ParseInt(inner, 10, 64)
			if err != nil || n < 1 {
				continue
			}
			versions = append(versions, n)
		}
	}
	return domain.MatchVersions(versions...)
}
