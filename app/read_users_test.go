package app_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/domain"
)

func TestGetUser(t *testing.T) {
	f := newFixture(t)
	ann := f.seed(t, "Ann", "Lee", "ann@example.ch", "")
	tests := []struct {
		name    string
		id      int64
		arrange func()
		want    domain.User
		wantErr error
	}{
		{name: "found", id: ann.ID, want: ann},
		{name: "not found", id: ann.ID + 1, wantErr: domain.ErrNotFound},
		{name: "database down", id: ann.ID, wantErr: domain.ErrUnavailable,
			arrange: func() {
				f.store.FailNext(apptest.OpGetUser, domain.Unavailable(domain.DependencyDatabase, errInjected))
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.arrange != nil {
				tc.arrange()
			}
			got, err := f.users.Get.Do(ctx, tc.id)
			if tc.wantErr != nil {
				wantIs(tc.wantErr)(t, err)
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Get = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestListUsersPaging(t *testing.T) {
	full := newFixture(t) // 25 users: pages of 10 are 10, 10, 5
	for i := range 25 {
		full.seed(t, "User", fmt.Sprintf("N%02d", i), fmt.Sprintf("u%02d@example.ch", i), "")
	}
	empty := newFixture(t)
	since := int64(3)
	after := t0.Add(-48 * time.Hour)
	filters := domain.ListQuery{FirstName: "user", Search: "example", SinceID: &since, CreatedAfter: &after,
		Ordering: []domain.OrderField{{Field: domain.SortLastName, Desc: true}}}
	withPaging := func(q domain.ListQuery, page, size int) domain.ListQuery { q.Page, q.PageSize = page, size; return q }

	tests := []struct {
		name      string
		f         *fixture
		q         domain.ListQuery
		wantErr   error
		wantQuery domain.ListQuery // what the store receives
		wantUsers int
		wantTotal int64
	}{
		{name: "page 0 is invalid", f: full, q: domain.ListQuery{Page: 0, PageSize: 10}, wantErr: domain.ErrInvalidPage},
		{name: "negative page is invalid", f: full, q: domain.ListQuery{Page: -2, PageSize: 10}, wantErr: domain.ErrInvalidPage},
		{name: "absurdly large page is invalid without a query", f: full, q: domain.ListQuery{Page: 1 << 40, PageSize: 10}, wantErr: domain.ErrInvalidPage},
		{name: "first page", f: full, q: domain.ListQuery{Page: 1, PageSize: 10},
			wantQuery: domain.ListQuery{Page: 1, PageSize: 10}, wantUsers: 10, wantTotal: 25},
		{name: "last, partial page", f: full, q: domain.ListQuery{Page: 3, PageSize: 10},
			wantQuery: domain.ListQuery{Page: 3, PageSize: 10}, wantUsers: 5, wantTotal: 25},
		{name: "page past the last", f: full, q: domain.ListQuery{Page: 4, PageSize: 10},
			wantQuery: domain.ListQuery{Page: 4, PageSize: 10}, wantErr: domain.ErrInvalidPage},
		{name: "page size 0 defaults to 10", f: full, q: domain.ListQuery{Page: 1},
			wantQuery: domain.ListQuery{Page: 1, PageSize: 10}, wantUsers: 10, wantTotal: 25},
		{name: "negative page size defaults to 10", f: full, q: domain.ListQuery{Page: 2, PageSize: -5},
			wantQuery: domain.ListQuery{Page: 2, PageSize: 10}, wantUsers: 10, wantTotal: 25},
		{name: "page size over 100 clamps to 100", f: full, q: domain.ListQuery{Page: 1, PageSize: 1000},
			wantQuery: domain.ListQuery{Page: 1, PageSize: 100}, wantUsers: 25, wantTotal: 25},
		{name: "page size 100 kept", f: full, q: domain.ListQuery{Page: 1, PageSize: 100},
			wantQuery: domain.ListQuery{Page: 1, PageSize: 100}, wantUsers: 25, wantTotal: 25},
		{name: "page size 1", f: full, q: domain.ListQuery{Page: 25, PageSize: 1},
			wantQuery: domain.ListQuery{Page: 25, PageSize: 1}, wantUsers: 1, wantTotal: 25},
		{name: "filters pass through untouched", f: full, q: withPaging(filters, 2, 0),
			wantQuery: withPaging(filters, 2, 10), wantUsers: 10, wantTotal: 22},
		{name: "first page of nothing is empty, not invalid", f: empty, q: domain.ListQuery{Page: 1, PageSize: 10},
			wantQuery: domain.ListQuery{Page: 1, PageSize: 10}, wantUsers: 0, wantTotal: 0},
		{name: "second page of nothing is invalid", f: empty, q: domain.ListQuery{Page: 2, PageSize: 10},
			wantQuery: domain.ListQuery{Page: 2, PageSize: 10}, wantErr: domain.ErrInvalidPage},
		{name: "NUL in a filter matches nothing without a query", f: full, q: domain.ListQuery{Search: "\x00", Page: 1, PageSize: 10},
			wantUsers: 0, wantTotal: 0},
		{name: "invalid UTF-8 in a filter matches nothing without a query", f: full, q: domain.ListQuery{FirstName: "user\xff", Page: 1, PageSize: 10},
			wantUsers: 0, wantTotal: 0},
		{name: "second page of an impossible filter is invalid", f: full, q: domain.ListQuery{LastName: "a\x00b", Page: 2, PageSize: 10},
			wantErr: domain.ErrInvalidPage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			callsBefore := tc.f.store.Calls(apptest.OpListUsers)
			page, err := tc.f.users.List.Do(ctx, tc.q)
			queried := tc.f.store.Calls(apptest.OpListUsers) > callsBefore
			if tc.wantQuery.Page == 0 {
				if queried {
					t.Errorf("the store was queried for %+v", tc.q)
				}
			} else if got := tc.f.store.LastListQuery(); !queried || !reflect.DeepEqual(got, tc.wantQuery) {
				t.Errorf("store received %+v (queried %v), want %+v", got, queried, tc.wantQuery)
			}
			if tc.wantErr != nil {
				wantIs(tc.wantErr)(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Users) != tc.wantUsers || page.Total != tc.wantTotal {
				t.Errorf("%d users of %d, want %d of %d", len(page.Users), page.Total, tc.wantUsers, tc.wantTotal)
			}
		})
	}
}

func TestListUsersStoreFailure(t *testing.T) {
	f := newFixture(t)
	f.store.FailNext(apptest.OpListUsers, domain.Unavailable(domain.DependencyDatabase, errInjected))
	_, err := f.users.List.Do(ctx, domain.ListQuery{Page: 1})
	wantIs(domain.ErrUnavailable)(t, err)
	wantIs(errInjected)(t, err)
}
