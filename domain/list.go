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

// UserPage is one page of a list and the total number of matches.
type UserPage struct {
	Users []User
	Total int64
}
