// Package traceflow_test shows one trace running from an HTTP request to
// the broker: POST /api/v1/users over real HTTP, through the use case, the
// password hash, the geolocation call, the SQL statements and the outbox
// write, then, after the commit, the relay's publish span; and the message
// on the broker carries a traceparent naming that trace. It runs on Kafka
// and on RabbitMQ: the test package's broker containers, or the brokers
// USERSVC_TEST_KAFKA_BROKERS and USERSVC_TEST_AMQP_URL name. Spans are recorded in
// memory by the SDK's span recorder; the components are the production
// ones, assembled as the composition root assembles them.
package traceflow_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/adapters/eventbus"
	"github.com/marketplace/usersvc/adapters/geoprovider"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/httpapi"
	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/adapters/rabbitmq/rabbitmqtest"
	"github.com/marketplace/usersvc/adapters/sysclock"
	"github.com/marketplace/usersvc/adapters/tracing"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/containers"
)

// The brokers come from test/containers, started on first use.
func TestMain(m *testing.M) { containers.RunTests(m) }

// swissClient is the address the trusted proxy (the test, on 127.0.0.1)
// forwards; the fake geolocation provider places it in Switzerland.
const swissClient = "195.176.0.1"

// fakeIPAPI answers as ipapi.co does for a Swiss address.
func fakeIPAPI(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/"+swissClient+"/json/" {
			http.Error(w, `{"error": true, "reason": "unexpected"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ip": "`+swissClient+`", "country_code": "CH", "country_name": "Switzerland"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// serve assembles the service over SQLite with tracing recorded in memory
// and events going to bus, runs its relay, and returns its URL.
func serve(t *testing.T, bus eventbus.Config) (string, *tracetest.SpanRecorder) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	rec := tracetest.NewSpanRecorder()
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	tr := tracing.New(sdk)

	store, err := gormstore.Open(ctx, gormstore.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "users.db"), Tracing: tr.TracerProvider()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	pub, closePub, err := eventbus.Provide(bus, log, io.Discard, tr)
	if err != nil {
		t.Fatal(err)
	}
	relay := app.NewRelay(store, store, pub, sysclock.Clock{}, app.RelayConfig{PollInterval: 100 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: log})
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); _ = relay.Run(relayCtx) }()
	t.Cleanup(func() { stopRelay(); <-relayDone; closePub() }) // before the store closes

	geo, closeGeo, err := geoprovider.Provide(geoprovider.Config{Provider: geoprovider.ProviderIPAPI, IPAPIBaseURL: fakeIPAPI(t), Tracing: tr.TracerProvider()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeGeo)
	policy, err := domain.NewCountryPolicy([]string{"CH"})
	if err != nil {
		t.Fatal(err)
	}
	hasher := argon2id.Provide(argon2id.Config{Params: argon2id.Cheap, Queue: argon2id.DefaultQueue}, tr.TracerProvider())
	users := app.NewUsers(domain.NewRules(0), policy, geo, hasher, store, store, sysclock.Clock{}, relay, tr)
	srv := httptest.NewServer(httpapi.NewHandler(users, nil, httpapi.Config{
		Logger:         log,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Tracing:        &httpapi.Tracing{Provider: tr.TracerProvider(), Propagator: tr.Propagator()},
	}))
	t.Cleanup(srv.Close)
	return srv.URL, rec
}

// create posts a user over HTTP, as forwarded by a trusted proxy for a
// Swiss client, and requires 201.
func create(t *testing.T, base string) {
	t.Helper()
	body := `{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.ch", "password": "analytical-Engine-1843"}`
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/users", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", swissClient)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/users = %d %s, want 201", resp.StatusCode, answer)
	}
}

// waitSpan returns the one ended span named name, waiting for it: the
// publish span ends once the broker acknowledged, which may be after a
// consumer got the message.
func waitSpan(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var found []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == name {
				found = append(found, s)
			}
		}
		switch {
		case len(found) == 1:
			return found[0]
		case len(found) > 1:
			t.Fatalf("%d spans named %q, want 1", len(found), name)
		case time.Now().After(deadline):
			t.Fatalf("no span named %q ended; spans: %v", name, spanNames(rec.Ended()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	return names
}

// checkOneTrace asserts that the request, its inner spans and the publish
// span form one trace, that the publish span is linked to the request's
// part of it, and that the message's traceparent names the publish span.
func checkOneTrace(t *testing.T, rec *tracetest.SpanRecorder, publishName, system, traceparent string) {
	t.Helper()
	publish := waitSpan(t, rec, publishName)
	server := waitSpan(t, rec, "POST /api/v1/users")
	if server.SpanKind() != trace.SpanKindServer || server.Parent().IsValid() {
		t.Errorf("request span: kind %v, parent %v; want a server span starting the trace", server.SpanKind(), server.Parent())
	}
	traceID := server.SpanContext().TraceID()

	// Every span of the request is in its trace, beneath the server span.
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == traceID {
			byID[s.SpanContext().SpanID()] = s
		}
	}
	under := func(s sdktrace.ReadOnlySpan) bool { // s is the server span or beneath it
		for range len(byID) + 1 {
			if s.SpanContext().SpanID() == server.SpanContext().SpanID() {
				return true
			}
			p, ok := byID[s.Parent().SpanID()]
			if !ok {
				return false
			}
			s = p
		}
		return false
	}
	for _, name := range []string{"GET ipapi.co", "password hash", "insert users", "outbox write", "insert outbox"} {
		var s sdktrace.ReadOnlySpan
		for _, c := range byID {
			if c.Name() == name {
				s = c
			}
		}
		if s == nil || !under(s) {
			t.Errorf("no span %q beneath the request span in its trace; spans: %v", name, spanNames(rec.Ended()))
		}
	}

	// The publish span continues the request's trace after the commit: a
	// producer span whose parent is the trace context stored with the
	// outbox row (a span of the request), and which is linked to it.
	if publish.SpanKind() != trace.SpanKindProducer {
		t.Errorf("publish span kind %v, want producer", publish.SpanKind())
	}
	if publish.SpanContext().TraceID() != traceID {
		t.Fatalf("publish span in trace %s, want the request's %s", publish.SpanContext().TraceID(), traceID)
	}
	parent, ok := byID[publish.Parent().SpanID()]
	if !ok || !under(parent) {
		t.Errorf("publish span's parent %v is not a span of the request", publish.Parent())
	}
	if links := publish.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != publish.Parent().SpanID() ||
		links[0].SpanContext.TraceID() != traceID {
		t.Errorf("publish span links %v, want one link to the request's span %s", links, publish.Parent().SpanID())
	}
	attrs := map[string]string{}
	for _, a := range publish.Attributes() {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["messaging.system"] != system || attrs["cloudevents.event_type"] != domain.ActionCreate.EventType() {
		t.Errorf("publish span attributes %v, want messaging.system %s and the event type", attrs, system)
	}

	// The message names that trace, through the publish span.
	sent := tracing.Extract(traceparent, "")
	if !sent.IsValid() || sent.TraceID() != traceID || sent.SpanID() != publish.SpanContext().SpanID() {
		t.Errorf("message traceparent %q; want trace %s, span %s (the publish span)", traceparent, traceID, publish.SpanContext().SpanID())
	}
}

func TestOneTraceFromTheRequestToKafka(t *testing.T) {
	brokers, topic := containers.KafkaTopic(t, 3)
	base, rec := serve(t, eventbus.Config{Bus: eventbus.BusKafka, Brokers: strings.Join(brokers, ","), Topic: topic, Source: "usersvc-test"})
	create(t, base)

	recs := kafkatest.Consume(t, brokers[0], topic, 1, 20*time.Second)
	if len(recs) != 1 {
		t.Fatalf("%d records, want the create event alone", len(recs))
	}
	ceTraceparent, ok := kafkatest.Header(recs[0], "ce_traceparent")
	if !ok {
		t.Fatalf("record headers %v: no ce_traceparent", recs[0].Headers)
	}
	if plain, _ := kafkatest.Header(recs[0], "traceparent"); plain != ceTraceparent {
		t.Errorf("traceparent %q, want the same as ce_traceparent %q", plain, ceTraceparent)
	}
	checkOneTrace(t, rec, "publish "+topic, "kafka", ceTraceparent)
}

func TestOneTraceFromTheRequestToRabbitMQ(t *testing.T) {
	exchange := rabbitmqtest.NewExchange(t)
	queue := rabbitmqtest.BindQueue(t, exchange, "#")
	base, rec := serve(t, eventbus.Config{Bus: eventbus.BusRabbitMQ, AMQPURL: rabbitmqtest.URL(t), Exchange: exchange, Source: "usersvc-test"})
	create(t, base)

	got := queue.Receive(t, 1, 20*time.Second)
	if len(got) != 1 {
		t.Fatalf("%d messages, want the create event alone", len(got))
	}
	traceparent, _ := got[0].Headers["cloudEvents:traceparent"].(string)
	if traceparent == "" {
		t.Fatalf("message headers %v: no cloudEvents:traceparent", got[0].Headers)
	}
	checkOneTrace(t, rec, "publish "+exchange, "rabbitmq", traceparent)
}
