package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/marketplace/usersvc/adapters/tracing"
)

func TestOffWithoutEndpointOrWhenDisabled(t *testing.T) {
	cases := []struct {
		name string
		cfg  tracing.Config
	}{
		{"no endpoint", tracing.Config{}},
		{"blank endpoint", tracing.Config{Endpoint: "  "}},
		{"OTEL_SDK_DISABLED", tracing.Config{Endpoint: "http://127.0.0.1:4318", Disabled: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, cleanup, err := tracing.Provide(context.Background(), c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			if p.Enabled() {
				t.Fatal("tracing is on")
			}
			ctx, span := p.TracerProvider().Tracer("t").Start(context.Background(), "x")
			defer span.End()
			if span.IsRecording() || span.SpanContext().IsValid() {
				t.Error("the tracer provider of tracing off records spans")
			}
			if tp, ts := p.Inject(ctx); tp != "" || ts != "" {
				t.Errorf("Inject = %q, %q; want nothing", tp, ts)
			}
		})
	}
}

func TestProtocolIsValidated(t *testing.T) {
	_, _, err := tracing.Provide(context.Background(), tracing.Config{Endpoint: "http://127.0.0.1:4318", Protocol: "http/json"})
	if err == nil {
		t.Fatal("http/json accepted")
	}
}

// receiver is an OTLP/HTTP collector: it decodes each protobuf export.
type receiver struct {
	mu    sync.Mutex
	spans map[string]string // span name -> service.name
	paths []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var export collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &export); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paths = append(r.paths, req.URL.Path)
	for _, rs := range export.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans[s.GetName()] = service
			}
		}
	}
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *receiver) snapshot() (map[string]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	spans := make(map[string]string, len(r.spans))
	for k, v := range r.spans {
		spans[k] = v
	}
	return spans, slices.Clone(r.paths)
}

// The exporter is configured by the standard variables alone: endpoint,
// service name and sampler come from the environment, as in production.
func TestExportsOverOTLPHTTP(t *testing.T) {
	cases := []struct {
		name      string
		env       map[string]string
		wantSpans bool
		service   string
	}{
		{"defaults", nil, true, "usersvc"},
		{"OTEL_SERVICE_NAME", map[string]string{"OTEL_SERVICE_NAME": "users-eu"}, true, "users-eu"},
		{"OTEL_RESOURCE_ATTRIBUTES", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"}, true, "from-attrs"},
		{"OTEL_TRACES_SAMPLER=always_off", map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, false, ""},
		{"traceidratio 0", map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rcv := &receiver{spans: map[string]string{}}
			srv := httptest.NewServer(rcv) // 127.0.0.1
			defer srv.Close()
			for _, k := range []string{"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
				t.Setenv(k, "")
			}
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			p, cleanup, err := tracing.Provide(context.Background(), tracing.Config{Endpoint: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			if !p.Enabled() {
				t.Fatal("tracing is off with an endpoint")
			}
			_, span := p.TracerProvider().Tracer("t").Start(context.Background(), "exported span")
			span.End()
			cleanup() // flushes the batch
			spans, paths := rcv.snapshot()
			if !c.wantSpans {
				if len(spans) != 0 {
					t.Errorf("exported %v, want nothing sampled", spans)
				}
				return
			}
			if got, ok := spans["exported span"]; !ok || got != c.service {
				t.Errorf("exported %v, want \"exported span\" of service %q", spans, c.service)
			}
			if !slices.Contains(paths, "/v1/traces") {
				t.Errorf("exported to %v, want /v1/traces", paths)
			}
		})
	}
}

func newRecorded(t *testing.T) (*tracing.Provider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.New(tp), rec
}

func TestInjectAndExtractRoundTrip(t *testing.T) {
	p, _ := newRecorded(t)
	ctx, span := p.TracerProvider().Tracer("t").Start(context.Background(), "request")
	defer span.End()
	tp, _ := p.Inject(ctx)
	sc := tracing.Extract(tp, "")
	if !sc.IsValid() || sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("Inject gave %q, which names %v; want the span %v", tp, sc, span.SpanContext())
	}
	if tp, ts := p.Inject(context.Background()); tp != "" || ts != "" {
		t.Errorf("Inject outside a span = %q, %q; want nothing", tp, ts)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-0000000000000000-01"} {
		if tracing.Extract(bad, "").IsValid() {
			t.Errorf("Extract(%q) is valid", bad)
		}
	}
}

func TestLogHandlerStampsTraceAndSpanIDs(t *testing.T) {
	p, _ := newRecorded(t)
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil)))
	ctx, span := p.TracerProvider().Tracer("t").Start(context.Background(), "request")
	log.InfoContext(ctx, "inside")
	span.End()
	log.InfoContext(context.Background(), "outside")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	var inside, outside map[string]any
	_ = json.Unmarshal(lines[0], &inside)
	_ = json.Unmarshal(lines[1], &outside)
	if inside["trace_id"] != span.SpanContext().TraceID().String() || inside["span_id"] != span.SpanContext().SpanID().String() {
		t.Errorf("line inside the span: %s; want its trace_id and span_id", lines[0])
	}
	if _, ok := outside["trace_id"]; ok {
		t.Errorf("line outside any span carries a trace_id: %s", lines[1])
	}
	if tracing.LogHandler(log.Handler()) != log.Handler() {
		t.Error("wrapping twice stamps twice")
	}
}

// ended waits until the recorder holds n ended spans, and returns them.
func ended(t *testing.T, rec *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.Ended()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return rec.Ended()
}
