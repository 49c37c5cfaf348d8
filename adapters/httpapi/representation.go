package httpapi

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/marketplace/usersvc/domain"
)

// userJSON is a user as the API shows it: the public data (never the
// password or its hash) and the user's absolute URL first.
type userJSON struct {
	URL string `json:"url"`
	domain.UserData
}

// listJSON is the paginated envelope of a list.
type listJSON struct {
	Count    int64      `json:"count"`
	Next     *string    `json:"next"`
	Previous *string    `json:"previous"`
	Results  []userJSON `json:"results"`
}

func (o origin) url(path string, query url.Values) string {
	u := url.URL{Scheme: o.Scheme, Host: o.Host, Path: path, RawQuery: query.Encode()}
	return u.String()
}

func (o origin) userURL(id int64) string {
	return o.url(pathUsers+"/"+strconv.FormatInt(id, 10), nil)
}

func representUser(o origin, u domain.User) userJSON {
	return userJSON{URL: o.userURL(u.ID), UserData: u.PublicData()}
}

// representPage builds the envelope; next and previous keep every query
// parameter but the page (the first page's link has none, as in the
// prototype).
func representPage(o origin, path string, query url.Values, q domain.ListQuery, page domain.UserPage) listJSON {
	out := listJSON{Count: page.Total, Results: make([]userJSON, 0, len(page.Users))}
	for _, u := range page.Users {
		out.Results = append(out.Results, representUser(o, u))
	}
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
		out.Next = link(q.Page + 1)
	}
	if q.Page > 1 {
		out.Previous = link(q.Page - 1)
	}
	return out
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
