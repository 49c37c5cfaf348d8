package app

import (
	"context"
	"fmt"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// GetUser reads one user.
type GetUser struct {
	users ports.UserReader
}

// NewGetUser wires the use case.
func NewGetUser(users ports.UserReader) *GetUser { return &GetUser{users: users} }

// Do returns the user or domain.ErrNotFound.
func (uc *GetUser) Do(ctx context.Context, id int64) (domain.User, error) {
	u, err := uc.users.GetUser(ctx, id)
	if err != nil {
		return domain.User{}, fmt.Errorf("get user %d: %w", id, err)
	}
	return u, nil
}

// maxPage bounds page numbers so that offsets stay far from overflowing.
const maxPage = 1 << 31 / domain.MaxPageSize

// ListUsers reads a filtered, ordered page of users.
type ListUsers struct {
	users ports.UserReader
}

// NewListUsers wires the use case.
func NewListUsers(users ports.UserReader) *ListUsers { return &ListUsers{users: users} }

// Do returns the page. Paging values out of range are normalised (page
// size defaults and clamps); a page before the first or past the last one
// is domain.ErrInvalidPage, except that the first page of nothing is empty.
// A keyset page (q.Keyset) is never invalid: past the end it is empty.
func (uc *ListUsers) Do(ctx context.Context, q domain.ListQuery) (domain.UserPage, error) {
	switch {
	case q.PageSize <= 0:
		q.PageSize = domain.DefaultPageSize
	case q.PageSize > domain.MaxPageSize:
		q.PageSize = domain.MaxPageSize
	}
	if q.Keyset != nil {
		if q.MatchesNothing() {
			return domain.UserPage{Users: []domain.User{}}, nil
		}
		page, err := uc.users.ListUsers(ctx, q)
		if err != nil {
			return domain.UserPage{}, fmt.Errorf("list users after a position: %w", err)
		}
		return page, nil
	}
	if q.Page < 1 {
		return domain.UserPage{}, domain.ErrInvalidPage
	}
	if q.Page > maxPage {
		return domain.UserPage{}, domain.ErrInvalidPage // no table is that long; avoids offset overflow
	}
	if q.MatchesNothing() {
		if q.Page > 1 {
			return domain.UserPage{}, domain.ErrInvalidPage
		}
		return domain.UserPage{Users: []domain.User{}}, nil
	}
	page, err := uc.users.ListUsers(ctx, q)
	if err != nil {
		return domain.UserPage{}, fmt.Errorf("list users: %w", err)
	}
	if q.Page > 1 && len(page.Users) == 0 {
		return domain.UserPage{}, domain.ErrInvalidPage
	}
	return page, nil
}
