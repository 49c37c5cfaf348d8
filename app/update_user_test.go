package app_test

import (
	"strings"
	"testing"

	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/domain"
)

const (
	opPut   = "PUT"
	opPatch = "PATCH"
)

// update runs the PUT or PATCH use case.
func (f *fixture) update(op string, id int64, in domain.Input, pre domain.Precondition) (domain.User, error) {
	if op == opPut {
		return f.users.Replace.Do(ctx, id, in, pre)
	}
	return f.users.Patch.Do(ctx, id, in, pre)
}

// newUpdateFixture seeds Ann (the user updated) and Bob (whose email is
// taken), then runs arrange when set.
func newUpdateFixture(t *testing.T, arrange func(*testing.T, *fixture)) (*fixture, domain.User) {
	t.Helper()
	f := newFixture(t)
	ann := f.seed(t, "Ann", "Lee", "ann@example.ch", "Main St 1")
	f.seed(t, "Bob", "Ray", "bob@example.ch", "")
	if arrange != nil {
		arrange(t, f)
	}
	return f, ann
}

// replacement is a PUT body equal to the seeded user's data.
func replacement() domain.Input {
	return domain.Input{FirstName: ptr("Ann"), LastName: ptr("Lee"), Email: ptr("ann@example.ch"),
		Password: ptr(oldPassword), Address: ptr("Main St 1")}
}

func TestUpdateUser(t *testing.T) {
	allNew := domain.Input{FirstName: ptr("Bo"), LastName: ptr("Li"), Email: ptr("bo@example.ch"), Password: ptr(newPassword), Address: ptr("Lake 2")}
	tests := []struct {
		name        string
		op          string
		in          domain.Input
		pre         domain.Precondition
		arrange     func(t *testing.T, f *fixture)
		wantChanged []string           // nil: no mutation at all
		wantUser    func(*domain.User) // the expected profile change
		wantHash    int
	}{
		{name: "patch one field", op: opPatch, in: domain.Input{FirstName: ptr(" Anna ")},
			wantChanged: []string{"first_name"}, wantUser: func(u *domain.User) { u.FirstName = "Anna" }},
		{name: "patch with identical data is not a mutation", op: opPatch,
			in: domain.Input{FirstName: ptr(" Ann "), Email: ptr("ANN@Example.ch"), Address: ptr("Main St 1")}},
		{name: "empty patch is not a mutation", op: opPatch, in: domain.Input{}},
		// Never compared with the stored hash: that comparison was an oracle.
		{name: "patch with the same password is a change", op: opPatch, in: domain.Input{Password: ptr(oldPassword)},
			wantChanged: []string{"password"}, wantUser: func(u *domain.User) { u.PasswordHash = apptest.HashOf(oldPassword) },
			wantHash: 1},
		{name: "patch a new password", op: opPatch, in: domain.Input{Password: ptr(newPassword)},
			wantChanged: []string{"password"}, wantUser: func(u *domain.User) { u.PasswordHash = apptest.HashOf(newPassword) },
			wantHash: 1},
		{name: "patch password and name, sorted", op: opPatch, in: domain.Input{Password: ptr(newPassword), LastName: ptr("Leigh")},
			wantChanged: []string{"last_name", "password"},
			wantUser: func(u *domain.User) {
				u.LastName, u.PasswordHash = "Leigh", apptest.HashOf(newPassword)
			},
			wantHash: 1},
		{name: "put with identical data changes the password", op: opPut, in: replacement(),
			wantChanged: []string{"password"}, wantUser: func(u *domain.User) {}, wantHash: 1},
		{name: "put without address clears it", op: opPut,
			in:          func() domain.Input { in := replacement(); in.Address = nil; return in }(),
			wantChanged: []string{"address", "password"}, wantUser: func(u *domain.User) { u.Address = "" }, wantHash: 1},
		{name: "put changing everything", op: opPut, in: allNew,
			wantChanged: []string{"address", "email", "first_name", "last_name", "password"},
			wantUser: func(u *domain.User) {
				u.FirstName, u.LastName, u.Email, u.Address = "Bo", "Li", "bo@example.ch", "Lake 2"
				u.PasswordHash = apptest.HashOf(newPassword)
			},
			wantHash: 1},
		{name: "matching If-Match", op: opPatch, in: domain.Input{Address: ptr("Elsewhere")}, pre: domain.MatchVersions(7, 1),
			wantChanged: []string{"address"}, wantUser: func(u *domain.User) { u.Address = "Elsewhere" }},
		{name: "own email in another case is no change", op: opPatch, in: domain.Input{Email: ptr("ANN@EXAMPLE.CH")}},
		{name: "an email freed by another user can be taken", op: opPatch, in: domain.Input{Email: ptr("bob@example.ch")},
			arrange: func(t *testing.T, f *fixture) {
				bob, _ := f.store.User(2)
				bob.Email = "robert@example.ch"
				if _, err := f.store.Put(bob); err != nil {
					t.Fatal(err)
				}
			},
			wantChanged: []string{"email"}, wantUser: func(u *domain.User) { u.Email = "bob@example.ch" }},
	}
	for _, tc := range tests {
		t.Run(tc.op+" "+tc.name, func(t *testing.T) {
			f, ann := newUpdateFixture(t, tc.arrange)
			before := f.store.Users()
			got, err := f.update(tc.op, ann.ID, tc.in, tc.pre)
			if err != nil {
				t.Fatal(err)
			}
			if f.hasher.VerifyCalls() != 0 || f.hasher.HashCalls() != tc.wantHash {
				t.Errorf("verify %d hash %d, want 0 and %d", f.hasher.VerifyCalls(), f.hasher.HashCalls(), tc.wantHash)
			}
			if tc.wantChanged == nil {
				if got != ann {
					t.Errorf("a no-op returned %+v, want the user as stored %+v", got, ann)
				}
				if n := f.store.Calls(apptest.OpUpdateUser); n != 0 {
					t.Errorf("a no-op wrote the user %d times", n)
				}
				f.assertUnchanged(t, before)
				return
			}
			want := ann
			tc.wantUser(&want)
			want.Version, want.UpdatedAt = 2, t0
			if got != want {
				t.Errorf("updated %+v\nwant    %+v", got, want)
			}
			if stored, _ := f.store.User(ann.ID); stored != want {
				t.Errorf("stored %+v, want %+v", stored, want)
			}
			f.assertEvents(t, wantEvent{action: domain.ActionUpdate, user: want, changed: tc.wantChanged})
		})
	}
}

func TestUpdateUserRefusals(t *testing.T) {
	tests := []struct {
		name    string
		op      string
		id      int64 // 0: the seeded user
		in      domain.Input
		pre     domain.Precondition
		arrange func(t *testing.T, f *fixture)
		check   func(t *testing.T, err error)
	}{
		{name: "put without the required fields", op: opPut, in: domain.Input{FirstName: ptr("Ann")},
			check: func(t *testing.T, err error) {
				wantValidation(t, err, map[string][]string{"last_name": {domain.MsgRequired}, "email": {domain.MsgRequired}, "password": {domain.MsgRequired}})
			}},
		{name: "patch with an invalid field", op: opPatch, in: domain.Input{Email: ptr("ann@example"), LastName: ptr(" ")},
			check: func(t *testing.T, err error) {
				wantValidation(t, err, map[string][]string{"email": {domain.MsgEmail}, "last_name": {domain.MsgBlank}})
			}},
		{name: "patch to another user's email", op: opPatch, in: domain.Input{Email: ptr("BOB@example.ch")}, check: wantIs(domain.ErrEmailTaken)},
		{name: "put with another user's email", op: opPut,
			in:    func() domain.Input { in := replacement(); in.Email = ptr("bob@example.ch"); return in }(),
			check: wantIs(domain.ErrEmailTaken)},
		{name: "patch with a stale If-Match", op: opPatch, in: domain.Input{FirstName: ptr("X")}, pre: domain.MatchVersions(2),
			check: wantIs(domain.ErrPreconditionFailed)},
		{name: "put with a stale If-Match", op: opPut, in: replacement(), pre: domain.MatchVersions(0, 2),
			check: wantIs(domain.ErrPreconditionFailed)},
		{name: "If-Match naming no version", op: opPatch, in: domain.Input{}, pre: domain.MatchVersions(),
			check: wantIs(domain.ErrPreconditionFailed)},
		{name: "stale If-Match on a no-op is still refused", op: opPatch, in: domain.Input{FirstName: ptr("Ann")}, pre: domain.MatchVersions(9),
			check: wantIs(domain.ErrPreconditionFailed)},
		{name: "patch of a missing user", op: opPatch, id: 404, in: domain.Input{FirstName: ptr("X")}, check: wantIs(domain.ErrNotFound)},
		{name: "password patch of a missing user", op: opPatch, id: 404, in: domain.Input{Password: ptr(newPassword)}, check: wantIs(domain.ErrNotFound)},
		{name: "put of a missing user", op: opPut, id: 404, in: replacement(), check: wantIs(domain.ErrNotFound)},
		{name: "failing user write", op: opPatch, in: domain.Input{FirstName: ptr("X")},
			arrange: func(t *testing.T, f *fixture) { f.store.FailNext(apptest.OpUpdateUser, errInjected) }, check: wantIs(errInjected)},
		{name: "failing outbox append rolls the update back", op: opPut, in: domain.Input{FirstName: ptr("X"), LastName: ptr("Y"), Email: ptr("x@y.ch"), Password: ptr(newPassword)},
			arrange: func(t *testing.T, f *fixture) { f.store.FailNext(apptest.OpAppendMessage, errInjected) }, check: wantIs(errInjected)},
		{name: "failing commit", op: opPatch, in: domain.Input{FirstName: ptr("X")},
			arrange: func(t *testing.T, f *fixture) { f.store.FailNext(apptest.OpCommit, errInjected) }, check: wantIs(errInjected)},
		{name: "stale If-Match with a password", op: opPatch, in: domain.Input{Password: ptr(oldPassword)}, pre: domain.MatchVersions(2),
			check: wantIs(domain.ErrPreconditionFailed)},
		{name: "put with a password and a stale If-Match", op: opPut, in: replacement(), pre: domain.MatchVersions(0),
			check: wantIs(domain.ErrPreconditionFailed)},
		{name: "hashing pool full", op: opPatch, in: domain.Input{Password: ptr(newPassword)},
			arrange: func(t *testing.T, f *fixture) {
				f.hasher.FailHash(&domain.OverloadedError{Resource: domain.ResourcePasswordHashing})
			}, check: wantIs(domain.ErrOverloaded)},
		{name: "failing password hash", op: opPatch, in: domain.Input{Password: ptr(newPassword)},
			arrange: func(t *testing.T, f *fixture) { f.hasher.FailHash(errInjected) }, check: wantIs(errInjected)},
		{name: "database down while reading the stored hash", op: opPatch, in: domain.Input{Password: ptr(newPassword)},
			arrange: func(t *testing.T, f *fixture) {
				f.store.FailNext(apptest.OpGetUser, domain.Unavailable(domain.DependencyDatabase, errInjected))
			}, check: wantIs(domain.ErrUnavailable)},
	}
	for _, tc := range tests {
		t.Run(tc.op+" "+tc.name, func(t *testing.T) {
			f, ann := newUpdateFixture(t, tc.arrange)
			id := tc.id
			if id == 0 {
				id = ann.ID
			}
			before := f.store.Users()
			got, err := f.update(tc.op, id, tc.in, tc.pre)
			if err == nil {
				t.Fatalf("update succeeded: %+v", got)
			}
			tc.check(t, err)
			if got != (domain.User{}) {
				t.Errorf("a refused update returned %+v", got)
			}
			f.assertUnchanged(t, before)
		})
	}
}

// A refused write does no password work at all, so neither its answer
// nor its time can depend on the password or the stored hash.
func TestRefusedUpdateDoesNoPasswordWork(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   int64
		pre  domain.Precondition
		want error
	}{
		{"stale If-Match, right password", 1, domain.MatchVersions(2), domain.ErrPreconditionFailed},
		{"If-Match naming no version", 1, domain.MatchVersions(), domain.ErrPreconditionFailed},
		{"missing user", 404, domain.Precondition{}, domain.ErrNotFound},
	} {
		for _, pw := range []string{oldPassword, newPassword} {
			t.Run(tc.name+" "+pw, func(t *testing.T) {
				f, _ := newUpdateFixture(t, nil)
				_, err := f.users.Patch.Do(ctx, tc.id, domain.Input{Password: ptr(pw)}, tc.pre)
				wantIs(tc.want)(t, err)
				if h, v := f.hasher.HashCalls(), f.hasher.VerifyCalls(); h != 0 || v != 0 {
					t.Errorf("hash %d verify %d calls for a refused write, want none", h, v)
				}
			})
		}
	}
}

// A write that moves the version between the precondition check made before
// hashing and the lock is caught by the check made again under the lock.
func TestUpdatePreconditionRecheckedUnderLock(t *testing.T) {
	f := newFixture(t)
	ann := f.seed(t, "Ann", "Lee", "ann@example.ch", "")
	f.hasher.OnHash(func() {
		other := ann
		other.FirstName, other.Version = "Anne", 2
		if _, err := f.store.Put(other); err != nil {
			t.Error(err)
		}
	})
	_, err := f.users.Patch.Do(ctx, ann.ID, domain.Input{Password: ptr(newPassword)}, domain.MatchVersions(1))
	wantIs(domain.ErrPreconditionFailed)(t, err)
	if stored, _ := f.store.User(ann.ID); stored.PasswordHash != ann.PasswordHash || stored.Version != 2 {
		t.Errorf("stored %+v: the refused write changed the password or version", stored)
	}
	if n := len(f.store.Messages()); n != 0 {
		t.Errorf("%d events, want none", n)
	}
}

// The country is read-only: an update keeps it, and its event carries it.
func TestUpdateKeepsCountry(t *testing.T) {
	f := newFixture(t)
	ann := f.seed(t, "Ann", "Lee", "ann@example.ch", "")
	ann.Country = "CH"
	if _, err := f.store.Put(ann); err != nil {
		t.Fatal(err)
	}
	got, err := f.users.Patch.Do(ctx, ann.ID, domain.Input{Address: ptr("Lac 2")}, domain.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Country != "CH" {
		t.Errorf("patched user country %q, want CH", got.Country)
	}
	if stored, _ := f.store.User(ann.ID); stored.Country != "CH" {
		t.Errorf("stored country %q, want CH", stored.Country)
	}
	f.assertEvents(t, wantEvent{action: domain.ActionUpdate, user: got, changed: []string{"address"}})
	if p := f.store.Messages()[0].Payload; !strings.Contains(string(p), `"country":"CH"`) {
		t.Errorf("updated event %s does not carry the country", p)
	}
}
