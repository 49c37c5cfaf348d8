package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Tracing opens a server span per request. Nil in Config: no spans, at no cost.
type Tracing struct {
	Provider trace.TracerProvider
	// Propagator reads traceparent, tracestate and baggage; they are
	// believed only from a trusted proxy (TRUSTED_PROXIES), like the other
	// forwarded headers: any other peer starts a new trace.
	Propagator propagation.TextMapPropagator
}

// traceRequest runs after identify (it needs to know whether the peer is
// trusted) and around the access log, so that the access line, and every
// line logged with the request's context, carries the span's ids. The span
// is named after the route template, never the path (ids, personal data).
func traceRequest(t *Tracing) gin.HandlerFunc {
	tracer := t.Provider.Tracer("github.com/marketplace/usersvc/adapters/httpapi")
	return func(c *gin.Context) {
		r := c.Request
		ctx := r.Context()
		if infoFrom(c).Trusted {
			ctx = t.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
		}
		route := routeTemplate(c)
		name := r.Method
		attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(r.Method)}
		if route != "unmatched" {
			name += " " + route
			attrs = append(attrs, semconv.HTTPRoute(route))
		}
		if client := infoFrom(c).Client; client.IsValid() {
			attrs = append(attrs, semconv.ClientAddress(client.String()))
		}
		ctx, span := tracer.Start(ctx, name,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attrs...))
		defer span.End()
		c.Request = r.WithContext(ctx)
		c.Next()
		status := c.Writer.Status()
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
}
