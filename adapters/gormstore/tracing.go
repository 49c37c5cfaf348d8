package gormstore

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// statementTracing is tp for the statements' spans, which must record that
// a statement failed and with which code, but never the driver's message:
// it can quote the row (MySQL's duplicate-key error names the duplicate
// email), and traces leave the service for a collector.
type statementTracing struct{ trace.TracerProvider }

func (p statementTracing) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return statementTracer{p.TracerProvider.Tracer(name, opts...)}
}

type statementTracer struct{ trace.Tracer }

// Start puts the wrapped span in the context, where GORM's plugin finds it
// again when the statement ends.
func (t statementTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, span := t.Tracer.Start(ctx, name, opts...)
	s := statementSpan{span}
	return trace.ContextWithSpan(ctx, s), s
}

type statementSpan struct{ trace.Span }

func (s statementSpan) RecordError(err error, opts ...trace.EventOption) {
	s.Span.RecordError(statementError(err), opts...)
}

func (s statementSpan) SetStatus(code codes.Code, _ string) {
	if code == codes.Error {
		s.Span.SetStatus(code, "statement failed")
		return
	}
	s.Span.SetStatus(code, "")
}

// statementError is what a span may say of err: what the log says of it
// (safeError), the database's error code rather than the driver's words.
func statementError(err error) error { return errors.New(safeError(err)) }
