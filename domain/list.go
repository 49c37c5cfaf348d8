package domain

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Paging defaults and limits.
const (
	DefaultPageSize = 10
	MaxPageSize     = 100
)

// Sortable fields for ListQuery.Ordering.
const (
	SortID        = "id"
	SortFirstName = "first_name"
	SortLastName  = "last_name"
	SortEmail     = "email"
	SortCreatedAt = "created_at"
)

// IsSortable reports whether name is a field lists can be ordered by.
func IsSortable(name string) bool {
	switch name {
	case SortID, SortFirstName, SortLastName, SortEmail, SortCreatedAt:
		return true
	}
	return false
}

// OrderField is one ordering key.
type OrderField struct {
	Field string
	Desc  bool
}

// ListQuery selects a page of users. Empty strings and nil pointers mean
// "no filter". Text filters compare case-insensitively.
type ListQuery struct {
	FirstName     string
	LastName      string
	Email         string
	Search        string     // last name equals, or email contains
	SinceID       *int64     // id > SinceID
	MaxID         *int64     // id < MaxID
	CreatedAfter  *time.Time // created_at > CreatedAfter
	CreatedBefore *time.Time // created_at < CreatedBefore
	// Countries keeps users created from one of these ISO 3166-1 alpha-2
	// codes (upper case); users without a recorded country never match.
	Countries []string
	// Ordering applies in order; id ascending is the default and the final
	// tie-breaker, so pages are stable.
	Ordering []OrderField
	Page     int // from 1
	PageSize int // 1..MaxPageSize
	// Keyset, when set, selects the page by position (cursor mode): Page
	// is ignored and no Total is counted.
	Keyset *Keyset
}

// MatchesNothing reports a text filter that no stored user can match:
// stored text is valid UTF-8 without NUL. Databases disagree on such
// values (SQLite's LIKE stops at a NUL), so callers answer without asking.
func (q ListQuery) MatchesNothing() bool {
	for _, f := range []string{q.FirstName, q.LastName, q.Email, q.Search} {
		if strings.ContainsRune(f, 0) || !utf8.ValidString(f) {
			return true
		}
	}
	return false
}

// Offset is the number of rows before the page.
func (q ListQuery) Offset() int { return (q.Page - 1) * q.PageSize }

// UserPage is one page of a list and the total number of matches (page
// number mode), or whether more rows follow in the direction of the walk
// (keyset mode, where Total is not counted).
type UserPage struct {
	Users []User
	Total int64
	More  bool
}

// KeyOrder is the total order a list is sorted by: the requested keys
// (unknown or repeated ones dropped), then id ascending as the
// tie-breaker, unless a unique key (id, email) already made the order
// total. Stores sort by it and keyset positions are expressed in it.
func (q ListQuery) KeyOrder() []OrderField {
	var out []OrderField
	seen := map[string]bool{}
	for _, f := range q.Ordering {
		if !IsSortable(f.Field) || seen[f.Field] {
			continue
		}
		seen[f.Field] = true
		out = append(out, f)
		if f.Field == SortID || f.Field == SortEmail {
			return out
		}
	}
	return append(out, OrderField{Field: SortID})
}

// SortKey is a row's position in a KeyOrder: the values of its sort
// fields. Only the fields of the order are meaningful; text fields compare
// lower-cased, byte-wise, as the order does.
type SortKey struct {
	ID        int64
	FirstName string
	LastName  string
	Email     string
	CreatedAt time.Time
}

// KeyOf is u's position in any order.
func KeyOf(u User) SortKey {
	return SortKey{ID: u.ID, FirstName: u.FirstName, LastName: u.LastName, Email: u.Email, CreatedAt: u.CreatedAt}
}

// Keyset selects a page by position in the KeyOrder instead of by number
// (cursor pagination). Its cost is the page, whatever the depth, and rows
// inserted or deleted elsewhere never shift it.
type Keyset struct {
	// From is the position the page is next to, excluded from it; nil is
	// the start of the order (forward) or its end (backward).
	From *SortKey
	// Backward asks for the PageSize rows just before From instead of just
	// after it. They are returned in the KeyOrder all the same.
	Backward bool
}

// MaxPageOffset is the default deepest row page-number mode reaches
// (page × page_size); cursor mode has no limit.
const MaxPageOffset = 10000
