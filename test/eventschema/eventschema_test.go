package eventschema_test

import (
	"fmt"
	"testing"

	"github.com/marketplace/usersvc/test/eventschema"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestCheckFailsTheTestOnAnInvalidEvent: the helper the suites call does
// fail them, for an event the schema refuses and for a body that is not
// JSON, and lets a valid event pass.
func TestCheckFailsTheTestOnAnInvalidEvent(t *testing.T) {
	const valid = `{"id":"01a21b44-14a3-70c2-b31c-caf6bb843732","action":"delete","occurred_at":"2026-11-27T04:29:36.291834Z","actor":null,"data":{"id":1}}`
	tests := []struct {
		name  string
		body  string
		fails bool
	}{
		{"valid delete", valid, false},
		{"delete with personal data", `{"id":"01a21b44-14a3-70c2-b31c-caf6bb843732","action":"delete","occurred_at":"2026-11-27T04:29:36.291834Z","actor":null,"data":{"id":1,"email":"a@b.ch"}}`, true},
		{"not JSON", `{"id":`, true},
		{"empty", ``, true},
		{"null (a tombstone is not an event)", `null`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			eventschema.Check(r, []byte(tt.body))
			if failed := len(r.errors) > 0; failed != tt.fails {
				t.Errorf("Check failed the test: %v, want %v (%q)", failed, tt.fails, r.errors)
			}
		})
	}
}
