package app_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/domain"
)

func validInput() domain.Input {
	return domain.Input{FirstName: ptr(" Odile "), LastName: ptr("Deray"), Email: ptr(" Odile@Example.CH "), Password: ptr(newPassword)}
}

func TestCreateUserRefusals(t *testing.T) {
	tests := []struct {
		name      string
		in        domain.Input
		ip        netip.Addr
		arrange   func(t *testing.T, f *fixture)
		check     func(t *testing.T, err error)
		wantGeo   int // Locate calls
		wantHash  int // Hash calls
		wantWrite bool
	}{
		{
			name: "invalid input is refused before geolocation",
			in:   domain.Input{FirstName: ptr(" "), Email: ptr("Bob <b@c.ch>"), Password: ptr("short")},
			ip:   swissIP,
			check: func(t *testing.T, err error) {
				wantValidation(t, err, map[string][]string{
					"first_name": {domain.MsgBlank}, "last_name": {domain.MsgRequired},
					"email": {domain.MsgEmail}, "password": {domain.MsgMinLength(8)},
				})
			},
		},
		{
			name: "invalid input from a refused country is still a validation error",
			in:   domain.Input{FirstName: ptr("A"), LastName: ptr("B"), Email: ptr("a@b.ch")},
			ip:   frenchIP,
			check: func(t *testing.T, err error) {
				wantValidation(t, err, map[string][]string{"password": {domain.MsgRequired}})
			},
			wantGeo: 0,
		},
		{
			name:    "invalid input while the geolocator is down is still a validation error",
			in:      domain.Input{FirstName: ptr("A"), LastName: ptr("B"), Email: ptr("a@b"), Password: ptr(newPassword)},
			ip:      swissIP,
			arrange: func(t *testing.T, f *fixture) { f.geo.Fail(errInjected) },
			check:   func(t *testing.T, err error) { wantValidation(t, err, map[string][]string{"email": {domain.MsgEmail}}) },
		},
		{
			name: "a disallowed country is refused before hashing",
			in:   validInput(),
			ip:   frenchIP,
			check: func(t *testing.T, err error) {
				wantRefusal(t, err, "Only users located in Switzerland can be created (remote address in France)")
			},
			wantGeo: 1,
		},
		{
			name: "an unknown location is refused",
			in:   validInput(),
			ip:   unknownIP,
			check: func(t *testing.T, err error) {
				wantRefusal(t, err, "Only users located in Switzerland can be created (remote address location unknown)")
			},
			wantGeo: 1,
		},
		{
			name:    "a geolocator failure is unavailable, not a guess",
			in:      validInput(),
			ip:      swissIP,
			arrange: func(t *testing.T, f *fixture) { f.geo.Fail(errInjected) },
			check: func(t *testing.T, err error) {
				var u *domain.UnavailableError
				if !errors.Is(err, domain.ErrUnavailable) || !errors.As(err, &u) || u.Dependency != domain.DependencyGeolocation || !errors.Is(err, errInjected) {
					t.Errorf("error %v, want a geolocation UnavailableError wrapping the cause", err)
				}
			},
			wantGeo: 1,
		},
		{
			name:    "an UnavailableError from the geolocator keeps its dependency",
			in:      validInput(),
			ip:      swissIP,
			arrange: func(t *testing.T, f *fixture) { f.geo.Fail(domain.Unavailable("ipapi", errInjected)) },
			check: func(t *testing.T, err error) {
				var u *domain.UnavailableError
				if !errors.Is(err, domain.ErrUnavailable) || !errors.As(err, &u) || u.Dependency != "ipapi" {
					t.Errorf("error %v, want the geolocator's UnavailableError", err)
				}
			},
			wantGeo: 1,
		},
		{
			name:    "a refused country wins over a taken email",
			in:      validInput(),
			ip:      frenchIP,
			arrange: func(t *testing.T, f *fixture) { f.seed(t, "X", "Y", "odile@example.ch", "") },
			check: func(t *testing.T, err error) {
				wantRefusal(t, err, "Only users located in Switzerland can be created (remote address in France)")
			},
			wantGeo: 1,
		},
		{
			name:     "a taken email, in another case, is refused after geolocation",
			in:       validInput(),
			ip:       swissIP,
			arrange:  func(t *testing.T, f *fixture) { f.seed(t, "X", "Y", "odile@example.ch", "") },
			check:    wantIs(domain.ErrEmailTaken),
			wantGeo:  1,
			wantHash: 1,
		},
		{
			name:     "a hasher failure stores nothing",
			in:       validInput(),
			ip:       swissIP,
			arrange:  func(t *testing.T, f *fixture) { f.hasher.FailHash(errInjected) },
			check:    wantIs(errInjected),
			wantGeo:  1,
			wantHash: 1,
		},
		{
			name:     "a failing insert leaves no event",
			in:       validInput(),
			ip:       swissIP,
			arrange:  func(t *testing.T, f *fixture) { f.store.FailNext(apptest.OpInsertUser, errInjected) },
			check:    wantIs(errInjected),
			wantGeo:  1,
			wantHash: 1,
		},
		{
			name:     "a failing outbox append rolls the user back",
			in:       validInput(),
			ip:       swissIP,
			arrange:  func(t *testing.T, f *fixture) { f.store.FailNext(apptest.OpAppendMessage, errInjected) },
			check:    wantIs(errInjected),
			wantGeo:  1,
			wantHash: 1,
		},
		{
			name:     "a failing commit keeps neither user nor event",
			in:       validInput(),
			ip:       swissIP,
			arrange:  func(t *testing.T, f *fixture) { f.store.FailNext(apptest.OpCommit, errInjected) },
			check:    wantIs(errInjected),
			wantGeo:  1,
			wantHash: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.arrange != nil {
				tc.arrange(t, f)
			}
			before := f.store.Users()
			u, err := f.users.Create.Do(ctx, tc.in, tc.ip)
			if err == nil {
				t.Fatalf("Create succeeded: %+v", u)
			}
			tc.check(t, err)
			if u != (domain.User{}) {
				t.Errorf("a refused create returned a user: %+v", u)
			}
			if got := f.geo.Calls(); got != tc.wantGeo {
				t.Errorf("geolocator called %d times, want %d", got, tc.wantGeo)
			}
			if got := f.hasher.HashCalls(); got != tc.wantHash {
				t.Errorf("hasher called %d times, want %d", got, tc.wantHash)
			}
			f.assertUnchanged(t, before)
		})
	}
}

func wantIs(target error) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Errorf("error %v, want %v", err, target)
		}
	}
}

func wantRefusal(t *testing.T, err error, msg string) {
	t.Helper()
	var refusal *domain.CountryNotAllowedError
	if !errors.As(err, &refusal) || err.Error() != msg {
		t.Errorf("error %v, want a *CountryNotAllowedError %q", err, msg)
	}
}

func TestCreateUser(t *testing.T) {
	f := newFixture(t)
	var committedAtNotify int
	f.onNotify = func() { committedAtNotify = len(f.store.Messages()) }

	u, err := f.users.Create.Do(ctx, validInput(), netip.MustParseAddr("::ffff:192.0.2.10"))
	if err != nil {
		t.Fatal(err)
	}
	// Country: where the geolocation placed the client (read-only).
	want := domain.User{ID: u.ID, FirstName: "Odile", LastName: "Deray", Email: "odile@example.ch", Address: "",
		PasswordHash: apptest.HashOf(newPassword), Country: "CH", Version: 1, CreatedAt: t0, UpdatedAt: t0}
	if u != want || u.ID == 0 {
		t.Fatalf("created %+v, want %+v", u, want)
	}
	if stored, ok := f.store.User(u.ID); !ok || stored != u {
		t.Errorf("stored %+v, want %+v", stored, u)
	}
	if strings.Contains(u.PasswordHash, newPassword) {
		t.Error("the stored hash contains the password")
	}
	f.assertEvents(t, wantEvent{action: domain.ActionCreate, user: u})
	if p := f.store.Messages()[0].Payload; !strings.Contains(string(p), `"country":"CH"`) {
		t.Errorf("created event %s does not carry the country", p)
	}
	if committedAtNotify != 1 {
		t.Errorf("notified with %d committed messages, want 1: the relay must be woken after the commit", committedAtNotify)
	}
	if f.hasher.HashCalls() != 1 || f.hasher.VerifyCalls() != 0 || f.geo.Calls() != 1 {
		t.Errorf("calls: hash %d verify %d locate %d", f.hasher.HashCalls(), f.hasher.VerifyCalls(), f.geo.Calls())
	}

	second := validInput()
	second.Email, second.Address = ptr("other@example.ch"), ptr(" Lac 1 ")
	u2, err := f.users.Create.Do(ctx, second, swissIP)
	if err != nil {
		t.Fatal(err)
	}
	if u2.ID <= u.ID || u2.Address != "Lac 1" {
		t.Errorf("second user %+v", u2)
	}
	f.assertEvents(t, wantEvent{action: domain.ActionCreate, user: u}, wantEvent{action: domain.ActionCreate, user: u2})
}
