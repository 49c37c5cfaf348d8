package domain_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
)

var microsRFC3339UTC = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$`)

// keysOf returns the sorted keys of a JSON object.
func keysOf(t *testing.T, v any) []string {
	t.Helper()
	obj, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v is not a JSON object", v)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// forbidSecrets fails when any key of the JSON value names a password or a
// hash, at any depth.
func forbidSecrets(t *testing.T, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if k2 := strings.ToLower(k); strings.Contains(k2, "password") || strings.Contains(k2, "hash") {
				t.Errorf("event carries a key %q", k)
			}
			forbidSecrets(t, child)
		}
	case []any:
		for _, child := range v {
			forbidSecrets(t, child)
		}
	}
}

func TestEventMessage(t *testing.T) {
	const hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
	created := time.Date(2024, 5, 1, 10, 0, 0, 987654321, time.UTC)
	updated := time.Date(2024, 5, 2, 11, 30, 0, 5000, time.UTC)
	at := time.Date(2024, 5, 2, 13, 30, 0, 123456789, time.FixedZone("CEST", 2*60*60))
	u := domain.User{ID: 1234567890123, Email: "o@example.ch", FirstName: "Odile <&>", LastName: "Deray", Address: "Lac 1",
		PasswordHash: hash, Country: "CH", Version: 3, CreatedAt: created, UpdatedAt: updated}
	wantData := map[string]any{
		"id": float64(1234567890123), "first_name": "Odile <&>", "last_name": "Deray", "email": "o@example.ch",
		"address": "Lac 1", "country": "CH", "created_at": "2024-05-01T10:00:00.987654Z", "updated_at": "2024-05-02T11:30:00.000005Z",
	}
	tests := []struct {
		action      domain.Action
		changed     []string
		wantType    string
		wantKeys    []string
		wantChanged []any
	}{
		{action: domain.ActionCreate, changed: []string{"email"}, wantType: "users.user.created",
			wantKeys: []string{"action", "actor", "data", "id", "occurred_at"}},
		{action: domain.ActionUpdate, changed: []string{"email", "password"}, wantType: "users.user.updated",
			wantKeys: []string{"action", "actor", "changed", "data", "id", "occurred_at"}, wantChanged: []any{"email", "password"}},
		{action: domain.ActionDelete, wantType: "users.user.deleted",
			wantKeys: []string{"action", "actor", "data", "id", "occurred_at"}},
	}
	for _, tc := range tests {
		t.Run(string(tc.action), func(t *testing.T) {
			const id = "0190a6d2-7c00-7abc-8def-0123456789ab"
			ev := domain.NewEvent(id, tc.action, u, tc.changed, at)
			if ev.OccurredAt.Location() != time.UTC || !ev.OccurredAt.Equal(at) {
				t.Errorf("NewEvent OccurredAt = %v, want %v in UTC", ev.OccurredAt, at)
			}
			m, err := ev.Message()
			if err != nil {
				t.Fatal(err)
			}
			if m.EventID != id || m.Type != tc.wantType || m.Key != "1234567890123" || !m.OccurredAt.Equal(at) || m.Seq != 0 {
				t.Errorf("message envelope = %+v", m)
			}
			if bytes.Contains(m.Payload, []byte(hash)) || bytes.Contains(m.Payload, []byte("argon2")) {
				t.Errorf("payload carries the hash: %s", m.Payload)
			}
			var body map[string]any
			if err := json.Unmarshal(m.Payload, &body); err != nil {
				t.Fatalf("payload is not JSON: %v", err)
			}
			if got := keysOf(t, body); !slices.Equal(got, tc.wantKeys) {
				t.Errorf("keys = %v, want %v", got, tc.wantKeys)
			}
			forbidSecrets(t, body)
			if body["id"] != id || body["action"] != string(tc.action) {
				t.Errorf("id/action = %v/%v", body["id"], body["action"])
			}
			occurred, _ := body["occurred_at"].(string)
			if occurred != "2024-05-02T11:30:00.123456Z" || !microsRFC3339UTC.MatchString(occurred) {
				t.Errorf("occurred_at = %q, want RFC 3339 UTC with microseconds", occurred)
			}
			want := wantData
			if tc.action == domain.ActionDelete {
				// A deletion publishes no personal data: the id alone.
				want = map[string]any{"id": float64(1234567890123)}
				for _, personal := range []string{u.Email, u.FirstName, u.LastName, u.Address, "CH"} {
					if bytes.Contains(m.Payload, []byte(personal)) {
						t.Errorf("delete event carries %q: %s", personal, m.Payload)
					}
				}
			}
			if !reflect.DeepEqual(body["data"], any(want)) {
				t.Errorf("data = %v, want %v", body["data"], want)
			}
			if got, _ := body["changed"].([]any); !reflect.DeepEqual(got, tc.wantChanged) {
				t.Errorf("changed = %v, want %v", body["changed"], tc.wantChanged)
			}
			if actor, present := body["actor"]; !present || actor != nil {
				t.Errorf("actor = %v (present %v), want null without a caller", actor, present)
			}
		})
	}
}

// A user created before countries were recorded has a null country, in
// events as in the API.
func TestPublicDataCountryNullWhenUnknown(t *testing.T) {
	for _, tc := range []struct {
		country string
		want    string
	}{{"", `"country":null`}, {"LI", `"country":"LI"`}} {
		b, err := json.Marshal(domain.User{ID: 1, Country: tc.country}.PublicData())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(tc.want)) {
			t.Errorf("country %q: %s, want it to contain %s", tc.country, b, tc.want)
		}
	}
}

func TestEventActor(t *testing.T) {
	ev := domain.NewEvent("0190a6d2-7c00-7abc-8def-0123456789ab", domain.ActionCreate, domain.User{ID: 7}, nil, time.Now())
	ev.Actor = domain.Principal{Subject: "service-account-billing"}.Actor()
	m, err := ev.Message()
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(m.Payload, &body); err != nil {
		t.Fatal(err)
	}
	if body["actor"] != "service-account-billing" {
		t.Fatalf("actor = %v", body["actor"])
	}
}

func TestActionEventType(t *testing.T) {
	tests := map[domain.Action]string{
		domain.ActionCreate: "users.user.created",
		domain.ActionUpdate: "users.user.updated",
		domain.ActionDelete: "users.user.deleted",
		"archive":           "users.user.archive",
	}
	for action, want := range tests {
		if got := action.EventType(); got != want {
			t.Errorf("%q.EventType() = %q, want %q", action, got, want)
		}
	}
}

func TestPublicDataHasNoSecret(t *testing.T) {
	typ := reflect.TypeOf(domain.UserData{})
	for i := range typ.NumField() {
		name := strings.ToLower(typ.Field(i).Name + " " + typ.Field(i).Tag.Get("json"))
		if strings.Contains(name, "password") || strings.Contains(name, "hash") {
			t.Errorf("UserData has a field %q", typ.Field(i).Name)
		}
	}
}
