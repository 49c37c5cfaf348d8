package tracing_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/marketplace/usersvc/adapters/tracing"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// recordingPublisher keeps what it was asked to send and acknowledges acks.
type recordingPublisher struct {
	got  []domain.Message
	acks int
	err  error
}

func (r *recordingPublisher) Publish(_ context.Context, msgs []domain.Message) (int, error) {
	r.got = append(r.got, msgs...)
	if r.err != nil {
		return r.acks, r.err
	}
	return len(msgs), nil
}

func TestPublisherContinuesTheRequestsTrace(t *testing.T) {
	p, rec := newRecorded(t)
	reqCtx, req := p.TracerProvider().Tracer("t").Start(context.Background(), "POST /api/v1/users")
	tp, ts := p.Inject(trace.ContextWithSpan(reqCtx, req))
	req.End()

	inner := &recordingPublisher{}
	pub := p.Publisher(inner, "kafka", "users-events")
	traced := domain.Message{Seq: 1, EventID: "e1", Type: "users.user.created", Key: "7", TraceParent: tp, TraceState: ts}
	untraced := domain.Message{Seq: 2, EventID: "e2", Type: "users.user.updated", Key: "7"}
	if n, err := pub.Publish(context.Background(), []domain.Message{traced, untraced}); n != 2 || err != nil {
		t.Fatalf("Publish = %d, %v", n, err)
	}
	spans := ended(t, rec, 3)
	var publish []trace.SpanContext
	for _, s := range spans {
		if s.Name() != "publish users-events" {
			continue
		}
		if s.SpanKind() != trace.SpanKindProducer {
			t.Errorf("publish span kind %v, want producer", s.SpanKind())
		}
		publish = append(publish, s.SpanContext())
		if s.Parent().SpanID() == req.SpanContext().SpanID() {
			if len(s.Links()) != 1 || s.Links()[0].SpanContext.SpanID() != req.SpanContext().SpanID() {
				t.Errorf("publish span links %v, want the request's span", s.Links())
			}
		}
	}
	if len(publish) != 2 {
		t.Fatalf("%d publish spans, want 2", len(publish))
	}
	// The traced message is published in the request's trace, and carries
	// the publish span's context on; the untraced one starts its own.
	sent := tracing.Extract(inner.got[0].TraceParent, inner.got[0].TraceState)
	if sent.TraceID() != req.SpanContext().TraceID() || sent.SpanID() == req.SpanContext().SpanID() {
		t.Errorf("sent traceparent %q: want the request's trace %s through the publish span", inner.got[0].TraceParent, req.SpanContext().TraceID())
	}
	if inner.got[0].TraceState != ts {
		t.Errorf("sent tracestate %q, want %q", inner.got[0].TraceState, ts)
	}
	if other := tracing.Extract(inner.got[1].TraceParent, ""); !other.IsValid() || other.TraceID() == req.SpanContext().TraceID() {
		t.Errorf("untraced message sent with %q, want a trace of its own", inner.got[1].TraceParent)
	}
}

func TestPublisherMarksUnacknowledgedMessages(t *testing.T) {
	p, rec := newRecorded(t)
	inner := &recordingPublisher{acks: 1, err: errors.New("broker down")}
	msgs := []domain.Message{{Seq: 1, EventID: "a"}, {Seq: 2, EventID: "b"}}
	if n, err := p.Publisher(inner, "kafka", "t").Publish(context.Background(), msgs); n != 1 || err == nil {
		t.Fatalf("Publish = %d, %v; want 1 and the error", n, err)
	}
	statuses := map[codes.Code]int{}
	for _, s := range ended(t, rec, 2) {
		statuses[s.Status().Code]++
	}
	if statuses[codes.Error] != 1 || statuses[codes.Unset] != 1 {
		t.Errorf("span statuses %v, want one error (the unacknowledged message) and one unset", statuses)
	}
}

func TestPublisherOffIsTheInnerPublisher(t *testing.T) {
	inner := &recordingPublisher{}
	if got := tracing.Off().Publisher(inner, "kafka", "t"); got != inner {
		t.Errorf("tracing off wraps the publisher: %T", got)
	}
	var none *tracing.Provider
	if got := none.Publisher(inner, "kafka", "t"); got != inner {
		t.Errorf("nil tracing wraps the publisher: %T", got)
	}
}

// connectingPublisher is also a ports.BrokerConnector.
type connectingPublisher struct {
	recordingPublisher
	err error
}

func (c *connectingPublisher) Connect(context.Context) error { return c.err }

// The relay asks the publisher to connect before it takes its lock; the
// traced publisher passes that on, and reports success for a publisher
// that has no such step.
func TestPublisherPassesConnectOn(t *testing.T) {
	p, _ := newRecorded(t)
	down := errors.New("broker unreachable")
	for _, c := range []struct {
		name  string
		inner ports.EventPublisher
		want  error
	}{
		{"connector down", &connectingPublisher{err: down}, down},
		{"connector up", &connectingPublisher{}, nil},
		{"publisher without a connect step", &recordingPublisher{}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			pub, ok := p.Publisher(c.inner, "rabbitmq", "x").(ports.BrokerConnector)
			if !ok {
				t.Fatal("the traced publisher is not a ports.BrokerConnector")
			}
			if err := pub.Connect(context.Background()); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Errorf("Connect = %v, want %v", err, c.want)
			}
		})
	}
}
