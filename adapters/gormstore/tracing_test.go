package gormstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// A failed statement shows in its span as failed, with the database's
// error code, but the span never quotes the data: MySQL's duplicate-key
// message names the duplicate email, and traces leave the service.
func TestFailedStatementSpansDoNotQuoteTheData(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, url string) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		s, err := Open(context.Background(), Config{URL: url, Tracing: tp})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		const email = "Taken.Address@Example.com"
		u := newUser("Ada", "Lovelace", email, 0)
		insert(t, s, u)
		dup := newUser("Other", "Person", email, time.Second)
		err = s.Do(context.Background(), func(ctx context.Context, tx ports.Tx) error { return tx.InsertUser(ctx, &dup) })
		if !errors.Is(err, domain.ErrEmailTaken) {
			t.Fatalf("duplicate insert = %v, want ErrEmailTaken", err)
		}

		failed := 0
		for _, sp := range rec.Ended() {
			if sp.Status().Code == codes.Error {
				failed++
			}
			texts := []string{sp.Name(), sp.Status().Description}
			for _, a := range sp.Attributes() {
				texts = append(texts, a.Value.String())
			}
			for _, ev := range sp.Events() {
				texts = append(texts, ev.Name)
				for _, a := range ev.Attributes {
					texts = append(texts, a.Value.String())
				}
			}
			for _, text := range texts {
				if strings.Contains(strings.ToLower(text), strings.ToLower(email)) {
					t.Errorf("span %q quotes the email: %q", sp.Name(), text)
				}
			}
		}
		if failed == 0 {
			t.Errorf("no span marked the failed insert as an error; spans: %d", len(rec.Ended()))
		}
	})
}

// The statements the store runs itself (GetUser's, an unfiltered page's,
// the count's) have spans named and described as GORM's plugin names its
// own: operation and table, and the statement with placeholders only.
func TestOwnStatementSpansNameTheirTable(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s, err := Open(context.Background(), Config{URL: "sqlite://:memory:", Tracing: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids := insert(t, s, newUser("Ada", "Lovelace", "ada@example.com", 0), newUser("Bob", "Lovelace", "bob@example.com", time.Second))
	n := len(rec.Ended())
	if _, err := s.GetUser(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListUsers(ctx, domain.ListQuery{Page: 1, PageSize: 1}); err != nil { // a full page: counted
		t.Fatal(err)
	}
	want := []struct{ name, table, text string }{
		{"select users", "users", "FROM users WHERE id = ?"},
		{"select users", "users", "FROM users ORDER BY id LIMIT ?"},
		{"select user_counts", "user_counts", "FROM user_counts"},
	}
	spans := rec.Ended()[n:]
	if len(spans) != len(want) {
		t.Fatalf("%d spans, want %d", len(spans), len(want))
	}
	for i, w := range want {
		attrs := map[string]string{}
		for _, a := range spans[i].Attributes() {
			attrs[string(a.Key)] = a.Value.String()
		}
		if spans[i].Name() != w.name || attrs["db.operation.name"] != "select" || attrs["db.collection.name"] != w.table ||
			!strings.Contains(attrs["db.query.text"], w.text) {
			t.Errorf("span %d: %q %v, want %q on %s running %q", i, spans[i].Name(), attrs, w.name, w.table, w.text)
		}
	}
}
