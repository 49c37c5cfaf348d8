// Package tracing is the OpenTelemetry adapter: it builds the tracer
// provider from the standard OTEL_* environment variables (read by the SDK
// itself), and gives the other adapters what they need to take part in a
// trace: a tracer provider, the W3C propagator, the trace context of an
// outbox row (ports.TraceContext), a publisher decorator that opens the
// publish spans, and a log handler that stamps trace_id and span_id.
//
// Without an exporter endpoint (or with OTEL_SDK_DISABLED=true) tracing is
// off: the tracer provider is the no-op one and the adapters skip their
// instrumentation altogether.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/wire"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/marketplace/usersvc/ports"
)

// ServiceName is the service.name spans carry unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES names another.
const ServiceName = "usersvc"

// Protocols OTEL_EXPORTER_OTLP_PROTOCOL accepts.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Samplers OTEL_TRACES_SAMPLER accepts (those the Go SDK implements).
var Samplers = []string{
	"always_on", "always_off", "traceidratio",
	"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
}

// Config is the part of the OTEL_* variables that decides whether, and how,
// spans are exported. The SDK reads the others (service name, resource
// attributes, sampler, and the endpoint itself) from the environment.
type Config struct {
	// Endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): empty turns tracing off.
	Endpoint string
	// Protocol (OTEL_EXPORTER_OTLP_PROTOCOL): ProtocolHTTP (default) or ProtocolGRPC.
	Protocol string
	// Disabled (OTEL_SDK_DISABLED=true) turns tracing off whatever the endpoint.
	Disabled bool
}

// Enabled reports whether c exports spans.
func (c Config) Enabled() bool { return !c.Disabled && strings.TrimSpace(c.Endpoint) != "" }

// Validate names the variable to fix.
func (c Config) Validate() error {
	switch c.Protocol {
	case "", ProtocolHTTP, ProtocolGRPC:
		return nil
	}
	return fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not one of %s, %s", c.Protocol, ProtocolHTTP, ProtocolGRPC)
}

// Provider is the service's tracing: on (an SDK tracer provider) or off.
type Provider struct {
	tp   trace.TracerProvider // noop when off
	sdk  *sdktrace.TracerProvider
	prop propagation.TextMapPropagator
}

var _ ports.TraceContext = (*Provider)(nil)

// ProviderSet provides the tracing and binds it to the port the app uses.
var ProviderSet = wire.NewSet(Provide, TracerProvider, wire.Bind(new(ports.TraceContext), new(*Provider)))

// shutdownTimeout bounds the export of the last spans at exit.
const shutdownTimeout = 5 * time.Second

// Provide builds the tracing cfg asks for; the cleanup exports the spans
// still buffered. An exporter is created without connecting: a collector
// that is down loses spans, never requests.
func Provide(ctx context.Context, cfg Config) (*Provider, func(), error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if !cfg.Enabled() {
		return Off(), func() {}, nil
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	if cfg.Protocol == ProtocolGRPC {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := Resource(ctx)
	if err != nil {
		return nil, nil, err
	}
	// The sampler is left out on purpose: the SDK then reads
	// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG itself.
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	p := New(sdk)
	return p, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		_ = sdk.Shutdown(sctx)
	}, nil
}

// Resource describes this process: service.name usersvc unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise.
func Resource(ctx context.Context) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(ServiceName)),
		resource.WithFromEnv(), // after the default, so the environment wins
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return res, nil
}

// New turns tracing on with tp (tests pass one recording in memory).
func New(tp *sdktrace.TracerProvider) *Provider {
	return &Provider{
		tp:   tp,
		sdk:  tp,
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
}

// Off is tracing turned off.
func Off() *Provider { return &Provider{tp: noop.NewTracerProvider()} }

// Enabled reports whether spans are recorded; instrumentation that costs
// anything is installed only then.
func (p *Provider) Enabled() bool { return p != nil && p.sdk != nil }

// TracerProvider is the provider to instrument with (no-op when off).
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return noop.NewTracerProvider()
	}
	return p.tp
}

// Propagator reads and writes W3C traceparent, tracestate and baggage.
func (p *Provider) Propagator() propagation.TextMapPropagator {
	if !p.Enabled() {
		return propagation.NewCompositeTextMapPropagator()
	}
	return p.prop
}

// Inject returns ctx's span context as W3C traceparent and tracestate
// values, empty when tracing is off or ctx carries no span.
func (p *Provider) Inject(ctx context.Context) (traceparent, tracestate string) {
	if !p.Enabled() {
		return "", ""
	}
	return inject(ctx)
}

func inject(ctx context.Context) (traceparent, tracestate string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "", ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"], c["tracestate"]
}

// Extract is the remote span context a stored traceparent/tracestate pair
// names (invalid when they are empty or malformed). It parses strings: the
// empty context only carries the result out of the propagator.
//
//nolint:contextcheck // see above
func Extract(traceparent, tracestate string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	c := propagation.MapCarrier{"traceparent": traceparent}
	if tracestate != "" {
		c["tracestate"] = tracestate
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), c))
}

// TraceID is the trace id a traceparent value names, "" when it names none.
func TraceID(traceparent string) string {
	sc := Extract(traceparent, "")
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

// LogHandler wraps h so that a record logged with the context of a span
// carries its "trace_id" and "span_id", which is how a log line leads to
// its trace and back. Records without a span pass through untouched.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(logHandler); ok {
		return h
	}
	return logHandler{h}
}

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }

// TracerProvider gives the instrumented adapters p's provider (no-op when off).
func TracerProvider(p *Provider) trace.TracerProvider { return p.TracerProvider() }
