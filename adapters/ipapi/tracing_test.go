package ipapi

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The lookup is a client span of the request that caused it; the key
// still reaches ipapi.co but no span; no trace context is sent to it.
func TestTracedClientSpansWithoutTheKey(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	f := &fakeIPAPI{canned: canned{status: 200, body: bodyCH}}
	c := newClient(t, Config{BaseURL: serve(t, f), APIKey: testKey, Client: TracedClient(tp)})

	ctx, parent := tp.Tracer("t").Start(context.Background(), "POST /api/v1/users")
	loc, err := c.Locate(ctx, netip.MustParseAddr("2.16.92.0"))
	parent.End()
	if err != nil || loc.CountryCode != "CH" {
		t.Fatalf("Locate = %v, %v", loc, err)
	}
	if seen := f.requests(); len(seen) != 1 || seen[0].key != testKey {
		t.Fatalf("ipapi.co saw %+v, want one request with the key", seen)
	}
	var client []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			client = append(client, s)
		}
	}
	if len(client) != 1 {
		t.Fatalf("%d client spans, want 1", len(client))
	}
	s := client[0]
	if s.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("client span parent %v, want the request's span", s.Parent())
	}
	for _, a := range s.Attributes() {
		if strings.Contains(a.Value.String(), testKey) {
			t.Errorf("span attribute %s leaks the key: %s", a.Key, a.Value.String())
		}
	}
}
