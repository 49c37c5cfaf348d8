package porttest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Delivered is one message as a consumer of the bus received it.
type Delivered struct {
	// Key is what the bus keeps one user's events in order by (Kafka's
	// record key, an AMQP routing or message key); the user id in decimal.
	Key string
	// Payload is the message body, byte for byte.
	Payload []byte
	// Attrs are the CloudEvents context attributes the binding carried,
	// under their CloudEvents names: "specversion", "id", "type",
	// "source", "subject", "time", "datacontenttype". Nil when the bus
	// carries none (see PublisherOptions.NoAttributes).
	Attrs map[string]string
}

// Received reads back what the bus delivered to a consumer of everything
// the publisher sent since newPublisher made it: it waits until at least
// n messages arrived (failing t after a timeout of a few seconds), then
// returns every one delivered so far, duplicates included, in arrival
// order (for a bus that orders per key only, arrival order per key).
type Received func(t *testing.T, n int) []Delivered

// PublisherOptions describes what the bus under test carries beyond the
// port's guarantees.
type PublisherOptions struct {
	// Attrs are CloudEvents attributes every delivered message must carry
	// with exactly these values, besides the ones the suite derives from
	// the message (specversion "1.0", id, type, subject = key, time =
	// domain.FormatTime(OccurredAt)), e.g. {"source": "usersvc",
	// "datacontenttype": "application/json"}.
	Attrs map[string]string
	// NoAttributes says the bus carries no attributes at all (the log
	// publisher, whose lines are the payloads); the suite then checks that
	// Received reports none rather than checking their values.
	NoAttributes bool
	// GlobalOrder says the bus keeps the publication order across keys too
	// (one partition, one queue), not only per key.
	GlobalOrder bool
}

// RunEventPublisherContract proves a publisher against ports.EventPublisher.
// newPublisher returns a publisher on a bus of its own (a fresh topic or
// queue) and the reader of what that bus delivered; it is called from
// parallel subtests, and the caller closes what it opened (t.Cleanup).
//
// The contract: Publish sends in order and, on success, returns
// len(msgs) with a nil error; every message arrives exactly once with its
// key, its payload byte-identical and the CloudEvents attributes derived
// from it; one key's messages arrive in publication order within a batch
// and across batches; an empty batch is 0, nil and sends nothing; a
// context that already ended sends nothing and is an error matching the
// context's (acked 0).
func RunEventPublisherContract(t *testing.T, newPublisher func(t *testing.T) (ports.EventPublisher, Received), opts PublisherOptions) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, pub ports.EventPublisher, received Received, opts PublisherOptions)
	}{
		{"one message: key, payload and attributes", testPublishOne},
		{"a batch keeps the order per key", testPublishBatchOrder},
		{"consecutive batches keep the order per key", testPublishConsecutiveBatches},
		{"empty batch sends nothing", testPublishEmpty},
		{"ended context sends nothing", testPublishEndedContext},
		{"trace context travels with the message", testPublishTraceContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pub, received := newPublisher(t)
			tc.run(t, pub, received, opts)
		})
	}
}

// eventMessage is the message of a real event: action on user id, the
// n-th change of that user. Names with markup, quotes and non-ASCII text
// exercise the payload's bytes. Ids are UUIDv7-shaped, as the event
// schema requires.
func eventMessage(t *testing.T, seq int64, action domain.Action, userID int64, n int) domain.Message {
	t.Helper()
	created := t0.Add(time.Duration(userID) * time.Minute)
	u := domain.User{
		ID: userID, FirstName: fmt.Sprintf("Zoë <%d> \"Q\"", n), LastName: "Dupré & Søn",
		Email: fmt.Sprintf("user%d@example.com", userID), Address: "Rue 1\nCH-1000 Lausanne 🏔",
		PasswordHash: "never-published", Version: int64(n + 1), CreatedAt: created,
		UpdatedAt: created.Add(time.Duration(n) * time.Second),
	}
	var changed []string
	if action == domain.ActionUpdate {
		changed = []string{domain.FieldFirstName, domain.FieldPassword}
	}
	at := t0.Add(time.Duration(seq)*time.Second + 123456789*time.Nanosecond)
	m, err := domain.NewEvent(fmt.Sprintf("%08x-%04x-7000-8000-%012x", seq, n, userID), action, u, changed, at).Message()
	mustNotFail(t, "build event message", err)
	m.Seq = seq
	return m
}

// checkDelivered compares one delivery with the message it is of.
func checkDelivered(t *testing.T, got Delivered, want domain.Message, opts PublisherOptions) {
	t.Helper()
	if got.Key != want.Key {
		t.Errorf("event %s: key %q, want %q", want.EventID, got.Key, want.Key)
	}
	if string(got.Payload) != string(want.Payload) {
		t.Errorf("event %s: payload\n%s\nwant byte-identical\n%s", want.EventID, got.Payload, want.Payload)
	}
	if opts.NoAttributes {
		if got.Attrs != nil {
			t.Errorf("event %s: attributes %v on a bus declared to carry none", want.EventID, got.Attrs)
		}
		return
	}
	wantAttrs := map[string]string{
		"specversion": "1.0",
		"id":          want.EventID,
		"type":        want.Type,
		"subject":     want.Key,
		"time":        domain.FormatTime(want.OccurredAt),
	}
	maps.Copy(wantAttrs, opts.Attrs)
	// The CloudEvents distributed-tracing extension: present exactly when
	// the message has a trace context.
	for name, v := range map[string]string{"traceparent": want.TraceParent, "tracestate": want.TraceState} {
		if v != "" {
			wantAttrs[name] = v
		} else if got, ok := got.Attrs[name]; ok {
			t.Errorf("event %s: attribute %s = %q on a message without one", want.EventID, name, got)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(wantAttrs)) {
		if v, ok := got.Attrs[name]; !ok || v != wantAttrs[name] {
			t.Errorf("event %s: attribute %s = %q (present %v), want %q", want.EventID, name, v, ok, wantAttrs[name])
		}
	}
}

// Trace contexts of the trace-context case, as W3C traceparent/tracestate.
const (
	testTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	testTraceState  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
)

// publish sends msgs and requires full acknowledgement.
func publish(t *testing.T, pub ports.EventPublisher, msgs []domain.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	acked, err := pub.Publish(ctx, msgs)
	if err != nil || acked != len(msgs) {
		t.Fatalf("Publish of %d messages = %d, %v; want %d, nil", len(msgs), acked, err, len(msgs))
	}
}

// receiveExactly reads the deliveries and requires exactly n of them.
func receiveExactly(t *testing.T, received Received, n int) []Delivered {
	t.Helper()
	got := received(t, n)
	if len(got) != n {
		t.Fatalf("bus delivered %d messages, want exactly %d (no loss, no duplicate)", len(got), n)
	}
	return got
}

// checkOrder matches deliveries to msgs (by key and payload) and checks
// the order: per key always, overall when the bus promises it.
func checkOrder(t *testing.T, got []Delivered, msgs []domain.Message, opts PublisherOptions) {
	t.Helper()
	byPayload := make(map[string]domain.Message, len(msgs))
	for _, m := range msgs {
		byPayload[string(m.Payload)] = m
	}
	var order []int64                  // seqs in arrival order
	perKey := map[string][]int64{}     // seqs per key in arrival order
	wantPerKey := map[string][]int64{} // seqs per key in publication order
	for _, m := range msgs {
		wantPerKey[m.Key] = append(wantPerKey[m.Key], m.Seq)
	}
	for _, d := range got {
		m, ok := byPayload[string(d.Payload)]
		if !ok {
			t.Errorf("delivered a message that was not published: key %q payload %s", d.Key, d.Payload)
			continue
		}
		checkDelivered(t, d, m, opts)
		order = append(order, m.Seq)
		perKey[d.Key] = append(perKey[d.Key], m.Seq)
	}
	for key, want := range wantPerKey {
		if !slices.Equal(perKey[key], want) {
			t.Errorf("key %s: arrival order %v, want publication order %v", key, perKey[key], want)
		}
	}
	if opts.GlobalOrder {
		want := make([]int64, len(msgs))
		for i, m := range msgs {
			want[i] = m.Seq
		}
		if !slices.Equal(order, want) {
			t.Errorf("arrival order %v, want publication order %v", order, want)
		}
	}
}

func testPublishOne(t *testing.T, pub ports.EventPublisher, received Received, opts PublisherOptions) {
	m := eventMessage(t, 1, domain.ActionCreate, 7, 0)
	publish(t, pub, []domain.Message{m})
	got := receiveExactly(t, received, 1)
	checkDelivered(t, got[0], m, opts)
}

func testPublishBatchOrder(t *testing.T, pub ports.EventPublisher, received Received, opts PublisherOptions) {
	// Three users' lifecycles, interleaved as the outbox would hold them.
	var msgs []domain.Message
	actions := []domain.Action{domain.ActionCreate, domain.ActionUpdate, domain.ActionUpdate, domain.ActionDelete}
	for n, action := range actions {
		for _, user := range []int64{11, 12, 13} {
			msgs = append(msgs, eventMessage(t, int64(len(msgs)+1), action, user, n))
		}
	}
	publish(t, pub, msgs)
	checkOrder(t, receiveExactly(t, received, len(msgs)), msgs, opts)
}

func testPublishConsecutiveBatches(t *testing.T, pub ports.EventPublisher, received Received, opts PublisherOptions) {
	var all []domain.Message
	for batch := range 3 {
		var msgs []domain.Message
		for _, user := range []int64{21, 22} {
			action := domain.ActionUpdate
			if batch == 0 {
				action = domain.ActionCreate
			}
			msgs = append(msgs, eventMessage(t, int64(len(all)+len(msgs)+1), action, user, batch))
		}
		publish(t, pub, msgs)
		all = append(all, msgs...)
	}
	checkOrder(t, receiveExactly(t, received, len(all)), all, opts)
}

func testPublishEmpty(t *testing.T, pub ports.EventPublisher, received Received, opts PublisherOptions) {
	for _, msgs := range [][]domain.Message{nil, {}} {
		acked, err := pub.Publish(context.Background(), msgs)
		if acked != 0 || err != nil {
			t.Errorf("Publish(%#v) = %d, %v; want 0, nil", msgs, acked, err)
		}
	}
	// What arrives next is the next message alone.
	m := eventMessage(t, 1, domain.ActionCreate, 31, 0)
	publish(t, pub, []domain.Message{m})
	got := receiveExactly(t, received, 1)
	checkDelivered(t, got[0], m, opts)
}

func testPublishEndedContext(t *testing.T, pub ports.EventPublisher, received Received, opts PublisherOptions) {
	cases := []struct {
		name string
		ctx  func() context.Context
		want error
	}{
		{"canceled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled},
		{"deadline passed", func() context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded},
	}
	for i, c := range cases {
		msgs := []domain.Message{eventMessage(t, int64(2*i+1), domain.ActionCreate, 41, 0), eventMessage(t, int64(2*i+2), domain.ActionUpdate, 41, 1)}
		acked, err := pub.Publish(c.ctx(), msgs)
		if acked != 0 || !errors.Is(err, c.want) {
			t.Errorf("%s: Publish = %d, %v; want 0 and an error matching %v", c.name, acked, err, c.want)
		}
	}
	// Nothing of those was sent: the next message arrives alone.
	m := eventMessage(t, 9, domain.ActionCreate, 42, 0)
	publish(t, pub, []domain.Message{m})
	got := receiveExactly(t, received, 1)
	checkDelivered(t, got[0], m, opts)
}

func testPublishTraceContext(t *testing.T, pub ports.EventPublisher, received Received, opts PublisherOptions) {
	withState := eventMessage(t, 1, domain.ActionCreate, 51, 0)
	withState.TraceParent, withState.TraceState = testTraceParent, testTraceState
	parentOnly := eventMessage(t, 2, domain.ActionUpdate, 51, 1)
	parentOnly.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	untraced := eventMessage(t, 3, domain.ActionUpdate, 51, 2)
	msgs := []domain.Message{withState, parentOnly, untraced}
	publish(t, pub, msgs)
	checkOrder(t, receiveExactly(t, received, len(msgs)), msgs, opts)
}
