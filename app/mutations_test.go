package app_test

import (
	"context"
	"testing"

	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
)

type traceKey struct{}

// fakeTraces reads the "trace context" a test put in the context.
type fakeTraces struct{}

func (fakeTraces) Inject(ctx context.Context) (string, string) {
	if tp, ok := ctx.Value(traceKey{}).(string); ok {
		return tp, "vendor=1"
	}
	return "", ""
}

// Every mutation's event remembers the trace context of the request that
// made it, so the relay can continue that trace; an untraced request
// leaves it empty.
func TestMutationsStoreTheTraceContext(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	f := newFixture(t)
	m := app.NewMutations(f.store, f.clock, f.notifier, fakeTraces{})
	policy, err := domain.NewCountryPolicy([]string{"CH"})
	if err != nil {
		t.Fatal(err)
	}
	create := app.NewCreateUser(domain.NewRules(0), f.geo, policy, f.hasher, m)
	del := app.NewDeleteUser(m)

	u, err := create.Do(context.WithValue(ctx, traceKey{}, tp), validInput(), swissIP)
	if err != nil {
		t.Fatal(err)
	}
	if err := del.Do(ctx, u.ID, domain.Precondition{}); err != nil {
		t.Fatal(err)
	}
	msgs := f.store.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d events, want 2", len(msgs))
	}
	if msgs[0].TraceParent != tp || msgs[0].TraceState != "vendor=1" {
		t.Errorf("create event trace context %q / %q, want %q / vendor=1", msgs[0].TraceParent, msgs[0].TraceState, tp)
	}
	if msgs[1].TraceParent != "" || msgs[1].TraceState != "" {
		t.Errorf("untraced delete event carries %q / %q", msgs[1].TraceParent, msgs[1].TraceState)
	}
}
