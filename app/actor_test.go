package app_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/marketplace/usersvc/domain"
)

// TestEventActor: every mutation's event names the authenticated caller
// from the context, and null without one (AUTH_MODE=none, or no caller).
func TestEventActor(t *testing.T) {
	f := newFixture(t)
	billing := domain.ContextWithPrincipal(ctx, domain.Principal{Subject: "service-account-billing", Scopes: domain.AllScopes()})
	anonymous := domain.ContextWithPrincipal(ctx, domain.AnonymousPrincipal())

	u, err := f.users.Create.Do(billing, validInput(), swissIP)
	if err != nil {
		t.Fatal(err)
	}
	second := validInput()
	second.Email = ptr("second@example.ch")
	if _, err := f.users.Create.Do(anonymous, second, swissIP); err != nil {
		t.Fatal(err)
	}
	third := validInput()
	third.Email = ptr("third@example.ch")
	if _, err := f.users.Create.Do(ctx, third, swissIP); err != nil {
		t.Fatal(err)
	}
	if err := f.users.Delete.Do(billing, u.ID, domain.Precondition{}); err != nil {
		t.Fatal(err)
	}
	var actors []any
	for _, m := range f.store.Messages() {
		var body map[string]any
		if err := json.Unmarshal(m.Payload, &body); err != nil {
			t.Fatal(err)
		}
		actor, present := body["actor"]
		if !present {
			t.Fatalf("event without actor: %s", m.Payload)
		}
		actors = append(actors, actor)
	}
	want := []any{"service-account-billing", nil, nil, "service-account-billing"}
	if !reflect.DeepEqual(actors, want) {
		t.Fatalf("actors %v, want %v", actors, want)
	}
}
