package eventschema_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/adapters/apidocs"
	"github.com/marketplace/usersvc/test/eventschema"
)

// edited is the embedded schema changed by edit (on its decoded form).
func edited(t *testing.T, edit func(root map[string]any)) []byte {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal(apidocs.EventSchema(), &root); err != nil {
		t.Fatal(err)
	}
	edit(root)
	b, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func def(root map[string]any, name string) map[string]any {
	return root["$defs"].(map[string]any)[name].(map[string]any)
}

func props(schema map[string]any) map[string]any { return schema["properties"].(map[string]any) }

func bumpVersion(root map[string]any) { root["$id"] = "urn:usersvc:schema:users-events:v2" }

// TestComparator: the comparator on changes a maintainer could make, each
// judged by the rule written in the README.
func TestComparator(t *testing.T) {
	user := func(r map[string]any) map[string]any { return def(r, "user") }
	tests := []struct {
		name string
		edit func(root map[string]any)
		// breaking names the expected finding ("" = compatible).
		breaking string
	}{
		{"unchanged", func(map[string]any) {}, ""},
		{"description reworded", func(r map[string]any) { user(r)["description"] = "Another wording." }, ""},
		{"optional property added to the user", func(r map[string]any) {
			props(user(r))["phone"] = map[string]any{"type": []any{"string", "null"}}
		}, ""},
		{"new value in changed", func(r map[string]any) {
			items := props(def(r, "updated"))["changed"].(map[string]any)["items"].(map[string]any)
			items["enum"] = append(items["enum"].([]any), "phone")
		}, ""},
		{"new event type at the end", func(r map[string]any) {
			r["oneOf"] = append(r["oneOf"].([]any), map[string]any{"$ref": "#/$defs/restored"})
			r["$defs"].(map[string]any)["restored"] = map[string]any{"type": "object"}
		}, ""},
		{"property removed", func(r map[string]any) { delete(props(user(r)), "address") }, "/$defs/user/properties/address: property removed"},
		{"property renamed", func(r map[string]any) {
			p := props(user(r))
			p["surname"] = p["last_name"]
			delete(p, "last_name")
			req := user(r)["required"].([]any)
			for i, f := range req {
				if f == "last_name" {
					req[i] = "surname"
				}
			}
		}, "/$defs/user/properties/last_name: property removed"},
		{"new required field", func(r map[string]any) {
			props(user(r))["phone"] = map[string]any{"type": "string"}
			user(r)["required"] = append(user(r)["required"].([]any), "phone")
		}, `/$defs/user/required: "phone" newly required`},
		{"field no longer required", func(r map[string]any) {
			user(r)["required"] = user(r)["required"].([]any)[1:]
		}, `/$defs/user/required: "id" no longer required`},
		{"type narrowed", func(r map[string]any) { props(user(r))["country"].(map[string]any)["type"] = "string" }, "/$defs/user/properties/country/type: type changed"},
		{"type widened", func(r map[string]any) { def(r, "actor")["type"] = []any{"string", "null", "integer"} }, "/$defs/actor/type: type changed"},
		{"enum value removed", func(r map[string]any) {
			items := props(def(r, "updated"))["changed"].(map[string]any)["items"].(map[string]any)
			items["enum"] = items["enum"].([]any)[1:]
		}, `enum value "address" removed`},
		{"additionalProperties tightened", func(r map[string]any) { user(r)["additionalProperties"] = false }, "/$defs/user/additionalProperties: additionalProperties changed"},
		{"personal field added to the closed delete data", func(r map[string]any) {
			props(props(def(r, "deleted"))["data"].(map[string]any))["email"] = map[string]any{"type": "string"}
		}, "/$defs/deleted/properties/data/properties/email: property added to an object closed"},
		{"delete data opened", func(r map[string]any) {
			delete(props(def(r, "deleted"))["data"].(map[string]any), "additionalProperties")
		}, "/$defs/deleted/properties/data/additionalProperties: additionalProperties changed"},
		{"const changed", func(r map[string]any) { props(def(r, "created"))["action"] = map[string]any{"const": "created"} }, "/$defs/created/properties/action/const: const changed"},
		{"length limit lowered", func(r map[string]any) { props(user(r))["address"].(map[string]any)["maxLength"] = 200 }, "maxLength changed from 300 to 200"},
		{"definition removed", func(r map[string]any) {
			delete(r["$defs"].(map[string]any), "deleted")
			r["oneOf"] = r["oneOf"].([]any)[:2]
		}, "/$defs/deleted: definition removed"},
		{"unknown keyword added", func(r map[string]any) { user(r)["minProperties"] = 3 }, "/$defs/user/minProperties: minProperties changed"},
	}
	cur := apidocs.EventSchema()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changed := edited(t, tt.edit)
			got, err := eventschema.Breaking(cur, changed)
			if err != nil {
				t.Fatal(err)
			}
			if tt.breaking == "" {
				if len(got) != 0 {
					t.Fatalf("judged breaking: %q", got)
				}
				if err := eventschema.CheckCompatible(cur, changed); err != nil {
					t.Fatalf("CheckCompatible: %v", err)
				}
				return
			}
			if !containsSubstring(got, tt.breaking) {
				t.Fatalf("findings %q, want one containing %q", got, tt.breaking)
			}
			// The same change passes once the version moved by one, and
			// only by one.
			if err := eventschema.CheckCompatible(cur, changed); err == nil || !strings.Contains(err.Error(), tt.breaking) {
				t.Errorf("CheckCompatible without a version bump = %v, want the finding", err)
			}
			bumped := edited(t, func(r map[string]any) { tt.edit(r); bumpVersion(r) })
			if err := eventschema.CheckCompatible(cur, bumped); err != nil {
				t.Errorf("CheckCompatible with the version raised: %v", err)
			}
			skipped := edited(t, func(r map[string]any) { tt.edit(r); r["$id"] = "urn:usersvc:schema:users-events:v3" })
			if err := eventschema.CheckCompatible(cur, skipped); err == nil {
				t.Error("CheckCompatible accepted a version that skipped one")
			}
		})
	}
}

func containsSubstring(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestVersionMovesOnlyForward(t *testing.T) {
	cur := apidocs.EventSchema()
	if v, err := eventschema.Version(cur); err != nil || v != 1 {
		t.Fatalf("Version = %d, %v; want 1", v, err)
	}
	v2 := edited(t, bumpVersion)
	if err := eventschema.CheckCompatible(v2, cur); err == nil {
		t.Error("a version going back was accepted")
	}
	for _, id := range []string{"", "urn:usersvc:schema:users-events", "urn:usersvc:schema:users-events:v0", "https://example.com/v1"} {
		bad := edited(t, func(r map[string]any) { r["$id"] = id })
		if _, err := eventschema.Version(bad); err == nil {
			t.Errorf("$id %q accepted", id)
		}
	}
}

func TestEventTypeCarriesTheVersion(t *testing.T) {
	tests := []struct {
		action  string
		version int
		want    string
	}{
		{"create", 1, "users.user.created"},
		{"update", 1, "users.user.updated"},
		{"delete", 1, "users.user.deleted"},
		{"create", 2, "users.user.created.v2"},
		{"delete", 12, "users.user.deleted.v12"},
	}
	for _, tt := range tests {
		if got := eventschema.EventType(tt.action, tt.version); got != tt.want {
			t.Errorf("EventType(%q, %d) = %q, want %q", tt.action, tt.version, got, tt.want)
		}
	}
}
