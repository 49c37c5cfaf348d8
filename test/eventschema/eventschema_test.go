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

// TestValidateHeaders: the headers the publishers write pass, and the
// AsyncAPI document refuses anything else.
func TestValidateHeaders(t *testing.T) {
	kafka := func(edit func(map[string]any)) map[string]any {
		h := map[string]any{"ce_specversion": "1.0", "ce_id": "01a21b44-14a3-70c2-b31c-caf6bb843732", "ce_type": "users.user.updated",
			"ce_source": "usersvc", "ce_subject": "1", "ce_time": "2026-11-27T04:29:36.291834Z", "content-type": "application/json"}
		edit(h)
		return h
	}
	amqp := func(edit func(map[string]any)) map[string]any {
		h := map[string]any{"cloudEvents:specversion": "1.0", "cloudEvents:id": "01a21b44-14a3-70c2-b31c-caf6bb843732", "cloudEvents:type": "users.user.deleted",
			"cloudEvents:source": "usersvc", "cloudEvents:subject": "1", "cloudEvents:time": "2026-11-27T04:29:36.291834Z"}
		edit(h)
		return h
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name    string
		bus     eventschema.Bus
		headers map[string]any
		valid   bool
	}{
		{"kafka", eventschema.Kafka, kafka(func(map[string]any) {}), true},
		{"kafka traced", eventschema.Kafka, kafka(func(h map[string]any) {
			h["ce_traceparent"], h["traceparent"], h["ce_tracestate"], h["tracestate"] = tp, tp, "congo=t61rcWkgMzE", "congo=t61rcWkgMzE"
		}), true},
		{"kafka header missing", eventschema.Kafka, kafka(func(h map[string]any) { delete(h, "ce_subject") }), false},
		{"kafka undocumented header", eventschema.Kafka, kafka(func(h map[string]any) { h["ce_email"] = "a@b.ch" }), false},
		{"kafka unknown type", eventschema.Kafka, kafka(func(h map[string]any) { h["ce_type"] = "users.user.restored" }), false},
		{"kafka bad time", eventschema.Kafka, kafka(func(h map[string]any) { h["ce_time"] = "yesterday" }), false},
		{"kafka bad traceparent", eventschema.Kafka, kafka(func(h map[string]any) { h["ce_traceparent"] = "x" }), false},
		{"amqp", eventschema.AMQP, amqp(func(map[string]any) {}), true},
		{"amqp with Kafka names", eventschema.AMQP, kafka(func(map[string]any) {}), false},
		{"amqp non-string value", eventschema.AMQP, amqp(func(h map[string]any) { h["cloudEvents:subject"] = int64(1) }), false},
		{"amqp wrong specversion", eventschema.AMQP, amqp(func(h map[string]any) { h["cloudEvents:specversion"] = "0.3" }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := eventschema.ValidateHeaders(tt.bus, tt.headers)
			if (err == nil) != tt.valid {
				t.Errorf("ValidateHeaders = %v, want valid %v", err, tt.valid)
			}
		})
	}
}
