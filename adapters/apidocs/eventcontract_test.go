package apidocs_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/apidocs"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/eventschema"
)

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at walks a decoded document along a JSON pointer ("/a/b").
func at(t *testing.T, doc any, pointer string) any {
	t.Helper()
	v := doc
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[tok]; !ok {
				t.Fatalf("%s: no %q", pointer, tok)
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				t.Fatalf("%s: no index %q", pointer, tok)
			}
			v = c[i]
		default:
			t.Fatalf("%s: %q inside a scalar", pointer, tok)
		}
	}
	return v
}

func keys(t *testing.T, doc any, pointer string) []string {
	t.Helper()
	m, ok := at(t, doc, pointer).(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object", pointer)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// jsonNames lists the JSON names of a struct's fields, promoted ones
// included, as encoding/json writes them.
func jsonNames(typ reflect.Type) []string {
	var out []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "":
			out = append(out, jsonNames(f.Type)...)
		case name == "":
			out = append(out, f.Name)
		default:
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// TestEventSchemaMatchesTheGoTypes fails when a field is added to (or
// removed from, or renamed in) the Go event body or user data and not the
// schema, or the other way round.
func TestEventSchemaMatchesTheGoTypes(t *testing.T) {
	schema := decode(t, apidocs.EventSchema())
	var envelope []string
	for _, def := range []string{"created", "updated", "deleted"} {
		envelope = append(envelope, keys(t, schema, "/$defs/"+def+"/properties")...)
	}
	slices.Sort(envelope)
	envelope = slices.Compact(envelope)
	tests := []struct {
		name   string
		goType reflect.Type
		schema []string
	}{
		{"event body", reflect.TypeFor[domain.EventBody](), envelope},
		{"user data (creates, updates)", reflect.TypeFor[domain.UserData](), keys(t, schema, "/$defs/user/properties")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			goNames := jsonNames(tt.goType)
			if len(goNames) < 5 {
				t.Fatalf("read only %v from %s", goNames, tt.goType)
			}
			for _, n := range goNames {
				if !slices.Contains(tt.schema, n) {
					t.Errorf("%s has %q; the schema does not declare it", tt.goType, n)
				}
			}
			for _, n := range tt.schema {
				if !slices.Contains(goNames, n) {
					t.Errorf("the schema declares %q; %s has no such field", n, tt.goType)
				}
			}
		})
	}
	t.Run("every user field is required", func(t *testing.T) {
		// GET and events always carry every field (null where unknown).
		var req []string
		for _, v := range at(t, schema, "/$defs/user/required").([]any) {
			req = append(req, v.(string))
		}
		slices.Sort(req)
		if want := jsonNames(reflect.TypeFor[domain.UserData]()); !slices.Equal(req, want) {
			t.Errorf("required %v, want %v", req, want)
		}
	})
	t.Run("changed lists the writable fields", func(t *testing.T) {
		var got []string
		for _, v := range at(t, schema, "/$defs/updated/properties/changed/items/enum").([]any) {
			got = append(got, v.(string))
		}
		want := []string{domain.FieldAddress, domain.FieldEmail, domain.FieldFirstName, domain.FieldLastName, domain.FieldPassword}
		if !slices.Equal(got, want) {
			t.Errorf("changed enum %v, want %v", got, want)
		}
	})
}

// events builds the messages the domain writes for each action, in the
// variants that change their shape (actor or none, country or none).
func events(t *testing.T) map[string][]byte {
	t.Helper()
	at := time.Date(2026, 11, 27, 4, 29, 36, 291834000, time.UTC)
	u := domain.User{ID: 42, Email: "ada@example.ch", FirstName: "Ada", LastName: "Lovelace", Address: "Bahnhofstrasse 1, 8001 Zürich",
		Country: "CH", PasswordHash: "never-published", CreatedAt: at, UpdatedAt: at}
	old := u
	old.Country = ""
	sub := "service-account-signup"
	out := map[string][]byte{}
	add := func(name string, e domain.Event) {
		m, err := e.Message()
		if err != nil {
			t.Fatal(err)
		}
		out[name] = m.Payload
	}
	id := "01a21b44-14a3-70c2-b31c-caf6bb843732"
	add("create", domain.NewEvent(id, domain.ActionCreate, u, nil, at))
	withActor := domain.NewEvent(id, domain.ActionCreate, u, nil, at)
	withActor.Actor = &sub
	add("create by a caller", withActor)
	add("create without country", domain.NewEvent(id, domain.ActionCreate, old, nil, at))
	add("update", domain.NewEvent(id, domain.ActionUpdate, u, []string{domain.FieldAddress, domain.FieldPassword}, at))
	add("delete", domain.NewEvent(id, domain.ActionDelete, u, nil, at))
	return out
}

// TestDomainEventsMatchTheSchema: what the domain writes is valid, and
// the schema refuses each way an event could go wrong (it is not
// vacuous).
func TestDomainEventsMatchTheSchema(t *testing.T) {
	evs := events(t)
	for name, b := range evs {
		t.Run(name, func(t *testing.T) {
			if err := eventschema.Validate(b); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("the schema's examples", func(t *testing.T) {
		exs := at(t, decode(t, apidocs.EventSchema()), "/examples").([]any)
		for _, ex := range exs {
			b, _ := json.Marshal(ex)
			if err := eventschema.Validate(b); err != nil {
				t.Error(err)
			}
		}
	})
	invalid := []struct {
		name string
		from string
		edit func(m map[string]any)
	}{
		{"personal data in a delete", "delete", func(m map[string]any) { m["data"].(map[string]any)["email"] = "ada@example.ch" }},
		{"the whole user in a delete", "delete", func(m map[string]any) { m["data"] = decode(t, evs["create"])["data"] }},
		{"update without changed", "update", func(m map[string]any) { delete(m, "changed") }},
		{"empty changed", "update", func(m map[string]any) { m["changed"] = []any{} }},
		{"unknown changed field", "update", func(m map[string]any) { m["changed"] = []any{"password_hash"} }},
		{"unknown action", "create", func(m map[string]any) { m["action"] = "restore" }},
		{"actor missing", "create", func(m map[string]any) { delete(m, "actor") }},
		{"id not a UUIDv7", "create", func(m map[string]any) { m["id"] = "evt-1" }},
		{"time without microseconds", "create", func(m map[string]any) { m["occurred_at"] = "2026-11-27T04:29:36Z" }},
		{"time not in UTC", "update", func(m map[string]any) { m["occurred_at"] = "2026-11-27T05:29:36.291834+01:00" }},
		{"user id as a string", "create", func(m map[string]any) { m["data"].(map[string]any)["id"] = "42" }},
		{"country not a code", "create", func(m map[string]any) { m["data"].(map[string]any)["country"] = "Switzerland" }},
		{"user field missing", "update", func(m map[string]any) { delete(m["data"].(map[string]any), "country") }},
	}
	for _, tt := range invalid {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			m := decode(t, evs[tt.from])
			tt.edit(m)
			b, _ := json.Marshal(m)
			if err := eventschema.Validate(b); err == nil {
				t.Errorf("accepted %s", b)
			}
		})
	}
	t.Run("refuses what is not JSON", func(t *testing.T) {
		if err := eventschema.Validate([]byte(`{"id":`)); err == nil {
			t.Error("accepted a truncated body")
		}
	})
}

// TestEventSchemaIsReleasedCompatibly compares the schema with the last
// released one (schemas/released/users-events-vN.json, the highest N):
// a breaking change fails unless the version moved (see
// eventschema.CheckCompatible for the rule the README states).
func TestEventSchemaIsReleasedCompatibly(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("schemas", "released", "users-events-v*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no released schema under schemas/released (%v)", err)
	}
	name := regexp.MustCompile(`users-events-v([1-9][0-9]*)\.json$`)
	last, lastVersion := "", 0
	for _, f := range files {
		m := name.FindStringSubmatch(f)
		if m == nil {
			t.Fatalf("%s: not named users-events-vN.json", f)
		}
		n, _ := strconv.Atoi(m[1])
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := eventschema.Version(b); err != nil || v != n {
			t.Errorf("%s: $id version %d (%v), want %d as its name says", f, v, err, n)
		}
		if _, err := eventschema.Compile(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if n > lastVersion {
			last, lastVersion = f, n
		}
	}
	released, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := eventschema.CheckCompatible(released, apidocs.EventSchema()); err != nil {
		t.Errorf("against %s: %v", last, err)
	}
}

// TestEventTypesCarryTheSchemaVersion ties the contract version to what
// consumers route on: raising the schema's version without giving the
// events new types (or the other way round) fails.
func TestEventTypesCarryTheSchemaVersion(t *testing.T) {
	v, err := eventschema.Version(apidocs.EventSchema())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []domain.Action{domain.ActionCreate, domain.ActionUpdate, domain.ActionDelete} {
		if got, want := a.EventType(), eventschema.EventType(string(a), v); got != want {
			t.Errorf("%s events have type %q; schema version %d wants %q", a, got, v, want)
		}
	}
	if got := at(t, decode(t, apidocs.AsyncAPI()), "/info/version"); got != strconv.Itoa(v) {
		t.Errorf("AsyncAPI info.version %v, want the schema version %d", got, v)
	}
}

// TestAsyncAPIDocument checks the AsyncAPI document against what the
// publishers send: every reference resolves (inside the document, or into
// the event schema), each message's type is the domain's, and the header
// names are the adapters' CloudEvents bindings.
func TestAsyncAPIDocument(t *testing.T) {
	doc := decode(t, apidocs.AsyncAPI())
	schema := decode(t, apidocs.EventSchema())
	if doc["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi %v", doc["asyncapi"])
	}
	var refs int
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch c := v.(type) {
		case map[string]any:
			if ref, ok := c["$ref"].(string); ok {
				refs++
				target, pointer, _ := strings.Cut(ref, "#")
				switch target {
				case "":
					at(t, doc, pointer)
				case "users-events.json": // beside this document under /schemas/
					at(t, schema, pointer)
				default:
					t.Errorf("%s: $ref %q leaves the served documents", path, ref)
				}
			}
			for k, x := range c {
				walk(path+"/"+k, x)
			}
		case []any:
			for i, x := range c {
				walk(path+"/"+strconv.Itoa(i), x)
			}
		}
	}
	walk("", doc)
	if refs < 20 {
		t.Errorf("only %d references: the document's structure changed, adapt this test", refs)
	}
	bus := []struct {
		prefix, typeHeader string
		required           []string
	}{
		{"kafka", "ce_type", []string{"ce_id", "ce_source", "ce_specversion", "ce_subject", "ce_time", "ce_type", "content-type"}},
		{"amqp", "cloudEvents:type", []string{"cloudEvents:id", "cloudEvents:source", "cloudEvents:specversion", "cloudEvents:subject", "cloudEvents:time", "cloudEvents:type"}},
	}
	defs := map[domain.Action]string{domain.ActionCreate: "Created", domain.ActionUpdate: "Updated", domain.ActionDelete: "Deleted"}
	for _, b := range bus {
		for action, suffix := range defs {
			msg := "/components/messages/" + b.prefix + "User" + suffix
			if got := at(t, doc, msg+"/name"); got != action.EventType() {
				t.Errorf("%s name %v, want %s", msg, got, action.EventType())
			}
			if got := at(t, doc, msg+"/headers/properties/"+b.typeHeader+"/const"); got != action.EventType() {
				t.Errorf("%s %s %v, want %s", msg, b.typeHeader, got, action.EventType())
			}
			var req []string
			for _, r := range at(t, doc, msg+"/headers/required").([]any) {
				req = append(req, r.(string))
			}
			slices.Sort(req)
			if !slices.Equal(req, b.required) {
				t.Errorf("%s required headers %v, want %v", msg, req, b.required)
			}
			if got := at(t, doc, msg+"/payload/schema/$ref"); got != "users-events.json#/$defs/"+strings.ToLower(suffix) {
				t.Errorf("%s payload %v", msg, got)
			}
		}
	}
	if got := at(t, doc, "/components/messages/kafkaTombstone/payload/type"); got != "null" {
		t.Errorf("tombstone payload %v, want null", got)
	}
	if _, ok := at(t, doc, "/channels/amqpUsersEvents/messages").(map[string]any)["tombstone"]; ok {
		t.Error("RabbitMQ gets no tombstone")
	}
}
