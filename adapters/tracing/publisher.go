package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Instrumentation scope of the spans this adapter opens itself.
const scope = "github.com/marketplace/usersvc"

// Publisher returns inner with a producer span per message: a child of the
// request that wrote the message (its stored trace context), linked to it,
// so the request's trace runs on to the broker. The message then carries
// the publish span's context, so a consumer continues the same trace. When
// tracing is off inner is returned as it is, and messages carry the context
// stored with them.
func (p *Provider) Publisher(inner ports.EventPublisher, system, destination string) ports.EventPublisher {
	if !p.Enabled() {
		return inner
	}
	return &publisher{
		inner:  inner,
		tracer: p.tp.Tracer(scope),
		name:   "publish " + destination,
		attrs: []attribute.KeyValue{
			semconv.MessagingSystemKey.String(system),
			semconv.MessagingDestinationName(destination),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
		},
	}
}

type publisher struct {
	inner  ports.EventPublisher
	tracer trace.Tracer
	name   string
	attrs  []attribute.KeyValue
}

func (p *publisher) Publish(ctx context.Context, msgs []domain.Message) (int, error) {
	spans := make([]trace.Span, len(msgs))
	out := make([]domain.Message, len(msgs))
	for i, m := range msgs {
		opts := []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(p.attrs...),
			trace.WithAttributes(
				semconv.MessagingMessageID(m.EventID),
				attribute.String("cloudevents.event_type", m.Type),
				attribute.String("cloudevents.event_subject", m.Key),
			),
		}
		parent := ctx
		if sc := Extract(m.TraceParent, m.TraceState); sc.IsValid() {
			parent = trace.ContextWithRemoteSpanContext(ctx, sc)
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		} else {
			opts = append(opts, trace.WithNewRoot())
		}
		sctx, span := p.tracer.Start(parent, p.name, opts...)
		spans[i] = span
		out[i] = m
		out[i].TraceParent, out[i].TraceState = inject(sctx)
	}
	acked, err := p.inner.Publish(ctx, out)
	for i, span := range spans {
		if err != nil && i >= acked {
			span.RecordError(err)
			span.SetStatus(codes.Error, "not acknowledged by the broker")
		}
		span.End()
	}
	return acked, err
}

// Connect passes ports.BrokerConnector on, so the relay still checks the
// broker before taking its lock when tracing is on.
func (p *publisher) Connect(ctx context.Context) error {
	if c, ok := p.inner.(ports.BrokerConnector); ok {
		return c.Connect(ctx)
	}
	return nil
}
