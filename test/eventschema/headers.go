package eventschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/marketplace/usersvc/adapters/apidocs"
)

// Bus names a binding of the AsyncAPI document: its messages are
// components/messages/<bus>User<Type>, and the header carrying the event
// type differs.
type Bus string

const (
	Kafka Bus = "kafka"
	AMQP  Bus = "amqp"
)

func (b Bus) typeHeader() string {
	if b == Kafka {
		return "ce_type"
	}
	return "cloudEvents:type"
}

const asyncAPIURL = "https://usersvc.invalid/schemas/asyncapi.json"

// headerSchemas maps bus and event type to the compiled header schema of
// that message in the embedded AsyncAPI document.
var headerSchemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	raw := apidocs.AsyncAPI()
	var doc struct {
		Components struct {
			Messages map[string]struct {
				Name    string          `json:"name"`
				Headers json.RawMessage `json:"headers"`
			} `json:"messages"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("AsyncAPI document: %w", err)
	}
	out := map[string]*jsonschema.Schema{}
	for id, m := range doc.Components.Messages {
		if len(m.Headers) == 0 {
			continue // the tombstone: no headers at all
		}
		// Each header schema is compiled on its own: the AsyncAPI document
		// as a whole is not a JSON Schema.
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.Headers))
		if err != nil {
			return nil, fmt.Errorf("AsyncAPI message %s headers: %w", id, err)
		}
		url := asyncAPIURL + "/" + id
		c := jsonschema.NewCompiler()
		if err := c.AddResource(url, inst); err != nil {
			return nil, fmt.Errorf("AsyncAPI message %s headers: %w", id, err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("AsyncAPI message %s headers: %w", id, err)
		}
		bus, _, _ := strings.Cut(id, "User")
		out[bus+" "+m.Name] = sch
	}
	return out, nil
})

// ValidateHeaders checks a message's headers (or AMQP application
// properties) against the AsyncAPI message of its event type on bus:
// exactly the documented headers, with their values' shapes.
func ValidateHeaders(bus Bus, headers map[string]any) error {
	schemas, err := headerSchemas()
	if err != nil {
		return err
	}
	typ, _ := headers[bus.typeHeader()].(string)
	sch, ok := schemas[string(bus)+" "+typ]
	if !ok {
		return fmt.Errorf("%s message with %s %q: no such message in the AsyncAPI document", bus, bus.typeHeader(), typ)
	}
	if err := sch.Validate(headers); err != nil {
		return fmt.Errorf("%s headers do not match the AsyncAPI document: %w", bus, err)
	}
	return nil
}

// CheckHeaders fails tb (without stopping it) when ValidateHeaders does.
func CheckHeaders(tb testing.TB, bus Bus, headers map[string]any) {
	tb.Helper()
	if err := ValidateHeaders(bus, headers); err != nil {
		tb.Errorf("%v\nheaders: %v", err, headers)
	}
}
