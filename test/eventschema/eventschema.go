// Package eventschema validates event bodies against the event contract:
// the JSON Schema the service embeds and serves (adapters/apidocs,
// schemas/users-events.json). Test suites call Check on every event they
// consume, so that an event the schema does not describe fails the suite
// that produced it.
package eventschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/marketplace/usersvc/adapters/apidocs"
)

// resourceURL names the embedded schema for the compiler; nothing is ever
// fetched from it (the compiler's loader only reads files, and the schema
// refers only to itself).
const resourceURL = "https://usersvc.invalid/schemas/users-events.json"

// compiled is the schema, compiled once per test binary.
var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	return Compile(apidocs.EventSchema())
})

// Compile compiles a schema document (the embedded one, or a variant a
// test builds), validating it against the 2020-12 meta-schema first.
func Compile(schema []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("event schema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(resourceURL, doc); err != nil {
		return nil, fmt.Errorf("event schema: %w", err)
	}
	sch, err := c.Compile(resourceURL)
	if err != nil {
		return nil, fmt.Errorf("compile the event schema: %w", err)
	}
	return sch, nil
}

// Validate reports whether body is a valid event body: JSON, and valid
// against the embedded schema.
func Validate(body []byte) error {
	sch, err := compiled()
	if err != nil {
		return err
	}
	return ValidateWith(sch, body)
}

// ValidateWith is Validate against a given compiled schema.
func ValidateWith(sch *jsonschema.Schema, body []byte) error {
	if !json.Valid(body) {
		return fmt.Errorf("event body is not JSON: %q", body)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("event body: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("event does not match the event schema: %w", err)
	}
	return nil
}

// Check fails tb (without stopping it) when body is not a valid event.
// It is safe to call from several goroutines.
func Check(tb testing.TB, body []byte) {
	tb.Helper()
	if err := Validate(body); err != nil {
		tb.Errorf("%v\nevent: %s", err, body)
	}
}

// CheckAll is Check on each body.
func CheckAll(tb testing.TB, bodies ...[]byte) {
	tb.Helper()
	for _, b := range bodies {
		Check(tb, b)
	}
}
