package app_test

import (
	"testing"

	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/domain"
)

func TestDeleteUser(t *testing.T) {
	tests := []struct {
		name    string
		id      int64 // 0: the seeded user
		pre     domain.Precondition
		arrange func(f *fixture)
		wantErr error // nil: deleted
	}{
		{name: "delete"},
		{name: "delete with a matching If-Match", pre: domain.MatchVersions(1)},
		{name: "stale If-Match", pre: domain.MatchVersions(2), wantErr: domain.ErrPreconditionFailed},
		{name: "missing user", id: 404, wantErr: domain.ErrNotFound},
		{name: "failing delete", arrange: func(f *fixture) { f.store.FailNext(apptest.OpDeleteUser, errInjected) }, wantErr: errInjected},
		{name: "failing outbox append keeps the user", arrange: func(f *fixture) { f.store.FailNext(apptest.OpAppendMessage, errInjected) }, wantErr: errInjected},
		{name: "failing commit keeps the user", arrange: func(f *fixture) { f.store.FailNext(apptest.OpCommit, errInjected) }, wantErr: errInjected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ann := f.seed(t, "Ann", "Lee", "ann@example.ch", "Main St 1")
			bob := f.seed(t, "Bob", "Ray", "bob@example.ch", "")
			if tc.arrange != nil {
				tc.arrange(f)
			}
			id := tc.id
			if id == 0 {
				id = ann.ID
			}
			before := f.store.Users()
			err := f.users.Delete.Do(ctx, id, tc.pre)
			if tc.wantErr != nil {
				wantIs(tc.wantErr)(t, err)
				f.assertUnchanged(t, before)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f.store.Users(); len(got) != 1 || got[0] != bob {
				t.Errorf("users after delete = %+v, want only %+v", got, bob)
			}
			// The event carries the user's id alone, without a "changed" list.
			f.assertEvents(t, wantEvent{action: domain.ActionDelete, user: ann})
		})
	}
}
