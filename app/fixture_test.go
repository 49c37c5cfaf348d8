package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/domain"
)

var (
	ctx         = context.Background()
	t0          = time.Date(2026, 4, 1, 9, 30, 0, 123456789, time.UTC)
	swissIP     = netip.MustParseAddr("192.0.2.10")
	frenchIP    = netip.MustParseAddr("2001:db8::20")
	unknownIP   = netip.MustParseAddr("198.51.100.1")
	errInjected = errors.New("injected failure")
	uuidV7      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

// Passwords the tests use; none may ever appear in an event.
const (
	oldPassword = "old-password"
	newPassword = "new-password"
)

func ptr(s string) *string { return &s }

// fixture wires the use cases to the apptest fakes: Swiss addresses are
// allowed, French ones refused, others unknown.
type fixture struct {
	store    *apptest.Store
	hasher   *apptest.Hasher
	geo      *apptest.Geolocator
	clock    *apptest.Clock
	notifier *apptest.Notifier
	onNotify func()
	users    *app.Users
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	policy, err := domain.NewCountryPolicy([]string{"CH"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		store:  apptest.NewStore(),
		hasher: apptest.NewHasher(),
		geo: apptest.NewGeolocator(map[netip.Addr]domain.Location{
			swissIP:  domain.LocationIn("CH"),
			frenchIP: domain.LocationIn("FR"),
		}),
		clock: apptest.NewClock(t0),
	}
	f.notifier = apptest.NewNotifier(func() {
		if f.onNotify != nil {
			f.onNotify()
		}
	})
	rules := domain.NewRules(0)
	m := app.NewMutations(f.store, f.clock, f.notifier, nil)
	f.users = &app.Users{
		Create:  app.NewCreateUser(rules, f.geo, policy, f.hasher, m),
		Get:     app.NewGetUser(f.store),
		List:    app.NewListUsers(f.store),
		Replace: app.NewReplaceUser(rules, f.store, f.hasher, m),
		Patch:   app.NewPatchUser(rules, f.store, f.hasher, m),
		Delete:  app.NewDeleteUser(m),
	}
	return f
}

// seed stores a committed user whose password is oldPassword.
func (f *fixture) seed(t *testing.T, first, last, email, address string) domain.User {
	t.Helper()
	created := t0.Add(-24 * time.Hour)
	u, err := f.store.Put(domain.User{FirstName: first, LastName: last, Email: email, Address: address,
		PasswordHash: apptest.HashOf(oldPassword), Version: 1, CreatedAt: created, UpdatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// assertUnchanged checks that a refused or failed request wrote nothing
// and woke nobody: the users are as before, no event, no notification.
func (f *fixture) assertUnchanged(t *testing.T, before []domain.User) {
	t.Helper()
	if got := f.store.Users(); !reflect.DeepEqual(got, before) {
		t.Errorf("users changed:\n got %+v\nwant %+v", got, before)
	}
	if n := len(f.store.Messages()); n != 0 {
		t.Errorf("%d outbox messages, want none", n)
	}
	if n := f.notifier.Count(); n != 0 {
		t.Errorf("notifier called %d times, want 0", n)
	}
}

// wantEvent is an expected outbox message.
type wantEvent struct {
	action  domain.Action
	user    domain.User
	changed []string
}

// assertEvents checks the outbox holds exactly these events, in order, each
// honouring the contract, and that the relay was woken once per event.
func (f *fixture) assertEvents(t *testing.T, want ...wantEvent) {
	t.Helper()
	msgs := f.store.Messages()
	if len(msgs) != len(want) {
		t.Fatalf("%d outbox messages, want %d", len(msgs), len(want))
	}
	seen := map[string]bool{}
	for i, m := range msgs {
		w := want[i]
		var body domain.EventBody
		if err := json.Unmarshal(m.Payload, &body); err != nil {
			t.Fatalf("message %d: payload %s: %v", i, m.Payload, err)
		}
		if m.Type != w.action.EventType() || m.Key != decimal(w.user.ID) || m.EventID != body.ID || !m.OccurredAt.Equal(t0) {
			t.Errorf("message %d envelope = %+v", i, m)
		}
		if !uuidV7.MatchString(body.ID) || seen[body.ID] {
			t.Errorf("message %d: event id %q is not a fresh UUIDv7", i, body.ID)
		} else if ms, _ := strconv.ParseInt(strings.ReplaceAll(body.ID[:13], "-", ""), 16, 64); ms != t0.UnixMilli() {
			t.Errorf("message %d: event id %q carries time %d ms, want %d", i, body.ID, ms, t0.UnixMilli())
		}
		seen[body.ID] = true
		if body.Action != w.action || body.OccurredAt != domain.FormatTime(t0) {
			t.Errorf("message %d: action %q at %q, want %q at %q", i, body.Action, body.OccurredAt, w.action, domain.FormatTime(t0))
		}
		wantData := w.user.PublicData()
		if w.action == domain.ActionDelete {
			wantData = domain.UserData{ID: w.user.ID} // the id alone
			if want := fmt.Sprintf(`"data":{"id":%d}`, w.user.ID); !bytes.Contains(m.Payload, []byte(want)) {
				t.Errorf("message %d: delete payload %s, want it to hold %s", i, m.Payload, want)
			}
		}
		if !reflect.DeepEqual(body.Data.UserData, wantData) {
			t.Errorf("message %d: data %+v, want %+v", i, body.Data, wantData)
		}
		if !reflect.DeepEqual(body.Changed, w.changed) {
			t.Errorf("message %d: changed %v, want %v", i, body.Changed, w.changed)
		}
		for _, secret := range []string{oldPassword, newPassword, w.user.PasswordHash, "fake$"} {
			if bytes.Contains(m.Payload, []byte(secret)) {
				t.Errorf("message %d carries a secret %q: %s", i, secret, m.Payload)
			}
		}
	}
	if n := f.notifier.Count(); n != len(want) {
		t.Errorf("notifier called %d times, want %d", n, len(want))
	}
}

func decimal(id int64) string { return strconv.FormatInt(id, 10) }

// wantValidation checks err is a validation error with exactly these fields.
func wantValidation(t *testing.T, err error, want map[string][]string) {
	t.Helper()
	var v *domain.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("error %v, want a *ValidationError", err)
	}
	if !reflect.DeepEqual(v.Fields, want) {
		t.Errorf("fields = %v, want %v", v.Fields, want)
	}
}
