package httpapi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/marketplace/usersvc/adapters/tracing"
)

const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

func newTracedEnv(t *testing.T) (*testEnv, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	// 127.0.0.1 is a trusted proxy; ::1 is not.
	return newEnv(t, envOptions{trusted: "127.0.0.1/32", tracing: tracing.New(tp)}), rec
}

// serverSpan is the one server span of the request whose access line
// carries requestID.
func serverSpan(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindServer && s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d server spans named %q, want 1", len(found), name)
	}
	return found[0]
}

func TestTraceContextIsBelievedOnlyFromTrustedProxies(t *testing.T) {
	cases := []struct {
		name      string
		v6        bool // from ::1, which is not trusted
		wantTrace bool // the span continues the caller's trace
	}{
		{"trusted proxy", false, true},
		{"untrusted peer", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, rec := newTracedEnv(t)
			res := e.do(req{method: "GET", path: "/healthz", v6: c.v6, headers: map[string]string{
				"traceparent": "00-" + callerTrace + "-00f067aa0ba902b7-01",
				"tracestate":  "congo=t61rcWkgMzE",
				"baggage":     "tenant=acme",
			}})
			if res.status != 200 {
				t.Fatalf("status %d", res.status)
			}
			span := serverSpan(t, rec, "GET /healthz")
			continued := span.SpanContext().TraceID().String() == callerTrace
			if continued != c.wantTrace {
				t.Errorf("span trace %s (parent %v); continues the caller's trace: %v, want %v",
					span.SpanContext().TraceID(), span.Parent(), continued, c.wantTrace)
			}
			if c.wantTrace && (span.Parent().SpanID().String() != "00f067aa0ba902b7" || !span.Parent().IsRemote()) {
				t.Errorf("parent %v, want the caller's span", span.Parent())
			}
			if !c.wantTrace && span.Parent().IsValid() {
				t.Errorf("a new trace has a parent: %v", span.Parent())
			}
		})
	}
}

// A create is one trace: the server span named by its route, and beneath
// it the password hash, the statements and the outbox write; every log line
// of the request carries the trace; no span attribute holds user data.
func TestCreateIsOneTraceWithChildSpans(t *testing.T) {
	e, rec := newTracedEnv(t)
	u := e.create(userBody("traced@example.com"))
	e.do(req{method: "GET", path: idPath(u)})
	e.do(req{method: "GET", path: "/no/such/route"})

	create := serverSpan(t, rec, "POST /api/v1/users")
	get := serverSpan(t, rec, "GET /api/v1/users/:id")
	serverSpan(t, rec, "GET") // unmatched: the method alone, never the path

	children := map[trace.SpanID][]string{}
	for _, s := range rec.Ended() {
		children[s.Parent().SpanID()] = append(children[s.Parent().SpanID()], s.Name())
		if s.SpanContext().TraceID() == create.SpanContext().TraceID() || s.SpanContext().TraceID() == get.SpanContext().TraceID() {
			for _, a := range s.Attributes() {
				v := a.Value.String()
				for _, secret := range append(slices.Clone(secrets), "traced@example.com") {
					if strings.Contains(v, secret) {
						t.Errorf("span %q attribute %s holds %q: %s", s.Name(), a.Key, secret, v)
					}
				}
			}
		}
	}
	for _, want := range []string{"password hash", "insert users", "outbox write"} {
		if !slices.Contains(children[create.SpanContext().SpanID()], want) {
			t.Errorf("children of the create span: %v, want %q among them", children[create.SpanContext().SpanID()], want)
		}
	}
	var outbox trace.SpanID
	for _, s := range rec.Ended() {
		if s.Name() == "outbox write" {
			outbox = s.SpanContext().SpanID()
		}
	}
	if !slices.Contains(children[outbox], "insert outbox") {
		t.Errorf("children of the outbox write: %v, want the insert", children[outbox])
	}
	if !slices.Contains(children[get.SpanContext().SpanID()], "select users") {
		t.Errorf("children of the get span: %v, want the prepared select", children[get.SpanContext().SpanID()])
	}

	// The access line of each request names its trace and server span.
	for _, span := range []sdktrace.ReadOnlySpan{create, get} {
		found := false
		for _, r := range logRecords(t, e.logs) {
			if r["msg"] == "http request" && r["trace_id"] == span.SpanContext().TraceID().String() {
				found = true
				if r["span_id"] != span.SpanContext().SpanID().String() {
					t.Errorf("access line span_id %v, want %s", r["span_id"], span.SpanContext().SpanID())
				}
			}
		}
		if !found {
			t.Errorf("no access line carries trace %s (%s)", span.SpanContext().TraceID(), span.Name())
		}
	}
	if got := fmt.Sprint(create.Attributes()); !strings.Contains(got, "http.route") || !strings.Contains(got, "201") {
		t.Errorf("create span attributes %s, want the route and the status", got)
	}
}
