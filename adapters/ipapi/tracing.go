package ipapi

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TracedClient is an HTTP client whose requests are client spans of tp
// (otelhttp). The API key never reaches a span: otelhttp records the full
// URL, so the key leaves the URL before otelhttp sees the request and is
// put back beneath it, on the copy that goes on the wire. No trace context
// is sent to ipapi.co: it is a third party.
func TracedClient(tp trace.TracerProvider) *http.Client {
	inner := otelhttp.NewTransport(keyRestorer{http.DefaultTransport},
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " ipapi.co" }),
	)
	return &http.Client{Transport: keyHider{inner}}
}

type keyCtx struct{}

// keyHider moves the key query parameter into the request's context.
type keyHider struct{ next http.RoundTripper }

func (h keyHider) RoundTrip(r *http.Request) (*http.Response, error) {
	q := r.URL.Query()
	key := q.Get("key")
	if key == "" {
		return h.next.RoundTrip(r)
	}
	q.Del("key")
	r = r.Clone(context.WithValue(r.Context(), keyCtx{}, key))
	r.URL.RawQuery = q.Encode()
	return h.next.RoundTrip(r)
}

// keyRestorer puts the key keyHider moved back into the URL.
type keyRestorer struct{ next http.RoundTripper }

func (k keyRestorer) RoundTrip(r *http.Request) (*http.Response, error) {
	key, ok := r.Context().Value(keyCtx{}).(string)
	if !ok {
		return k.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	q := r.URL.Query()
	q.Set("key", key)
	r.URL.RawQuery = q.Encode()
	return k.next.RoundTrip(r)
}
