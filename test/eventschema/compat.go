package eventschema

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The compatibility rule of the event contract. Consumers code against a
// schema version and read events of that version both new (produced after
// a change) and old (still on a topic from before it), so a change keeps
// the version only when every event valid before stays valid and every
// consumer written before still understands what it gets:
//
//   - additive: a new optional property in an open object, a new $defs
//     entry, a new enum value (consumers ignore values, properties and
//     event types they do not know), a new oneOf/anyOf branch at the end
//     (a new event type), and any change of annotations (title,
//     description, examples, $comment, deprecated, readOnly, writeOnly);
//   - breaking: everything else, among it a removed or renamed property or
//     $defs entry, a changed type (narrowed or widened), a property made
//     required or no longer required, a removed enum value, a changed
//     const, additionalProperties changed (a closed object stays closed:
//     adding a property to one is breaking), a changed length, range,
//     pattern or format, and any keyword the comparator does not know.
//
// A breaking change raises the version (the $id's ":vN" and the event
// types' ".vN"), compared with the last released schema.

// idPattern is the shape of the schema's $id; its number is the contract
// version.
var idPattern = regexp.MustCompile(`^urn:usersvc:schema:users-events:v([1-9][0-9]*)$`)

// Version reads the contract version from a schema document's $id.
func Version(schema []byte) (int, error) {
	var doc struct {
		ID string `json:"$id"`
	}
	if err := json.Unmarshal(schema, &doc); err != nil {
		return 0, fmt.Errorf("event schema: %w", err)
	}
	m := idPattern.FindStringSubmatch(doc.ID)
	if m == nil {
		return 0, fmt.Errorf("event schema $id %q does not match %s", doc.ID, idPattern)
	}
	return strconv.Atoi(m[1])
}

// EventType is the CloudEvents type of an action's event in a contract
// version: version 1 has no suffix ("users.user.created"), later ones
// carry theirs ("users.user.created.v2"), so that consumers of the old
// version never receive the new one by mistake.
func EventType(action string, version int) string {
	past := map[string]string{"create": "created", "update": "updated", "delete": "deleted"}[action]
	if past == "" {
		past = action
	}
	if version <= 1 {
		return "users.user." + past
	}
	return "users.user." + past + ".v" + strconv.Itoa(version)
}

// CheckCompatible applies the rule to the last released schema and the
// current one: the same version must be compatible; the next version may
// break; any other version is an error.
func CheckCompatible(released, current []byte) error {
	rv, err := Version(released)
	if err != nil {
		return fmt.Errorf("released: %w", err)
	}
	cv, err := Version(current)
	if err != nil {
		return fmt.Errorf("current: %w", err)
	}
	switch {
	case cv == rv+1:
		return nil // a new version: it may break, and is released as such
	case cv != rv:
		return fmt.Errorf("current schema is version %d, the last released one %d: a version moves by one", cv, rv)
	}
	changes, err := Breaking(released, current)
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		return fmt.Errorf("breaking changes to released version %d (make them additive, or raise the version and the event types):\n  %s",
			rv, strings.Join(changes, "\n  "))
	}
	return nil
}

// Breaking lists the breaking changes from schema old to schema cur (both
// JSON Schema documents), each as "JSON pointer: what changed".
func Breaking(old, cur []byte) ([]string, error) {
	var o, c any
	if err := json.Unmarshal(old, &o); err != nil {
		return nil, fmt.Errorf("old schema: %w", err)
	}
	if err := json.Unmarshal(cur, &c); err != nil {
		return nil, fmt.Errorf("current schema: %w", err)
	}
	// The $id carries the version, compared by CheckCompatible.
	if om, ok := o.(map[string]any); ok {
		delete(om, "$id")
	}
	if cm, ok := c.(map[string]any); ok {
		delete(cm, "$id")
	}
	var d differ
	d.schema("", o, c)
	return d.out, nil
}

// annotations never change what is valid or what a consumer gets.
var annotations = map[string]bool{
	"title": true, "description": true, "examples": true, "$comment": true,
	"deprecated": true, "readOnly": true, "writeOnly": true, "default": true,
}

// subschemas are keywords holding one schema, compared recursively.
var subschemas = map[string]bool{
	"items": true, "not": true, "if": true, "then": true, "else": true, "contains": true,
	"propertyNames": true, "unevaluatedProperties": true, "unevaluatedItems": true,
}

type differ struct{ out []string }

func (d *differ) add(path, format string, args ...any) {
	if path == "" {
		path = "/"
	}
	d.out = append(d.out, path+": "+fmt.Sprintf(format, args...))
}

// schema compares two schemas (objects or booleans) at path.
func (d *differ) schema(path string, old, cur any) {
	om, oObj := old.(map[string]any)
	cm, cObj := cur.(map[string]any)
	if !oObj || !cObj {
		if !reflect.DeepEqual(old, cur) {
			d.add(path, "schema changed from %s to %s", compact(old), compact(cur))
		}
		return
	}
	keys := slices.Sorted(maps.Keys(om))
	for k := range cm {
		if _, ok := om[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		ov, inOld := om[k]
		cv, inCur := cm[k]
		p := path + "/" + escape(k)
		switch {
		case annotations[k]:
		case k == "properties":
			d.properties(p, asMap(ov), asMap(cv), om["additionalProperties"])
		case k == "$defs":
			d.defs(p, asMap(ov), asMap(cv))
		case k == "type":
			if o, c := typeSet(ov), typeSet(cv); !slices.Equal(o, c) {
				d.add(p, "type changed from %v to %v", o, c)
			}
		case k == "required":
			o, c := stringSet(ov), stringSet(cv)
			for _, f := range o {
				if !slices.Contains(c, f) {
					d.add(p, "%q no longer required", f)
				}
			}
			for _, f := range c {
				if !slices.Contains(o, f) {
					d.add(p, "%q newly required", f)
				}
			}
		case k == "enum":
			o, c := asSlice(ov), asSlice(cv)
			if !inOld {
				d.add(p, "enum added")
			}
			for _, v := range o {
				if !slices.ContainsFunc(c, func(w any) bool { return reflect.DeepEqual(v, w) }) {
					d.add(p, "enum value %s removed", compact(v))
				}
			}
		case k == "oneOf" || k == "anyOf" || k == "allOf" || k == "prefixItems":
			o, c := asSlice(ov), asSlice(cv)
			grows := k == "oneOf" || k == "anyOf" // a new branch is a new kind of event
			if len(c) < len(o) || (len(c) > len(o) && !grows) || inOld != inCur {
				d.add(p, "%d entries became %d", len(o), len(c))
			}
			for i := range min(len(o), len(c)) {
				d.schema(p+"/"+strconv.Itoa(i), o[i], c[i])
			}
		case subschemas[k] || k == "additionalProperties":
			if inOld != inCur {
				d.add(p, "%s changed from %s to %s", k, compact(ov), compact(cv))
				continue
			}
			d.schema(p, ov, cv)
		default:
			// const, $ref, lengths, ranges, pattern, format, $schema,
			// and whatever this comparator does not know.
			if inOld != inCur || !reflect.DeepEqual(ov, cv) {
				d.add(p, "%s changed from %s to %s", k, compact(ov), compact(cv))
			}
		}
	}
}

func (d *differ) properties(path string, old, cur map[string]any, additional any) {
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, ok := cur[name]; !ok {
			d.add(path+"/"+escape(name), "property removed")
			continue
		}
		d.schema(path+"/"+escape(name), old[name], cur[name])
	}
	for _, name := range slices.Sorted(maps.Keys(cur)) {
		if _, ok := old[name]; !ok && additional == false {
			d.add(path+"/"+escape(name), "property added to an object closed by additionalProperties: false")
		}
	}
}

func (d *differ) defs(path string, old, cur map[string]any) {
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, ok := cur[name]; !ok {
			d.add(path+"/"+escape(name), "definition removed (documents refer to it)")
			continue
		}
		d.schema(path+"/"+escape(name), old[name], cur[name])
	}
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func asSlice(v any) []any        { s, _ := v.([]any); return s }

// typeSet is a type keyword as a sorted set; absent is every type.
func typeSet(v any) []string {
	switch t := v.(type) {
	case nil:
		return []string{"(any)"}
	case string:
		return []string{t}
	}
	return stringSet(v)
}

func stringSet(v any) []string {
	var out []string
	for _, x := range asSlice(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func compact(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, _ := json.Marshal(v) // values decoded from JSON always encode
	return string(b)
}

// escape makes a JSON pointer token (RFC 6901).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
