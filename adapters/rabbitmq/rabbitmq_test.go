package rabbitmq_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/marketplace/usersvc/adapters/rabbitmq"
	"github.com/marketplace/usersvc/adapters/rabbitmq/rabbitmqtest"
	"github.com/marketplace/usersvc/adapters/tlsfiles"
	"github.com/marketplace/usersvc/domain"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// event is the message of action on user id, the n-th change.
func event(t *testing.T, seq int64, action domain.Action, userID int64) domain.Message {
	t.Helper()
	u := domain.User{ID: userID, Email: fmt.Sprintf("u%d@example.com", userID), CreatedAt: t0, UpdatedAt: t0}
	var changed []string
	if action == domain.ActionUpdate {
		changed = []string{domain.FieldEmail}
	}
	m, err := domain.NewEvent(evt(seq), action, u, changed, t0.Add(time.Duration(seq)*time.Second)).Message()
	if err != nil {
		t.Fatal(err)
	}
	m.Seq = seq
	return m
}

// evt is the id of the seq-th event: UUIDv7-shaped, as the contract says.
func evt(seq int64) string { return fmt.Sprintf("00000000-0000-7000-8000-%012d", seq) }

func publishCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		cfg     rabbitmq.Config
		wantErr string // "" for valid
	}{
		{"defaults", rabbitmq.Config{URL: rabbitmq.DefaultURL, Exchange: rabbitmq.DefaultExchange, Source: "usersvc"}, ""},
		{"tls and vhost", rabbitmq.Config{URL: "amqps://app:s3cret@mq.internal:5671/prod", Exchange: "users.events:v1", Source: "https://users.example/"}, ""},
		{"not an AMQP scheme", rabbitmq.Config{URL: "http://mq:5672/", Exchange: "x", Source: "s"}, "AMQP_URL"},
		{"TLS files with a plain amqp URL", rabbitmq.Config{URL: "amqp://app:s3cret@mq:5672/", Exchange: "x", Source: "s", TLS: tlsfiles.Files{CA: "/etc/ca.pem"}}, "amqps://"},
		{"TLS CA file missing", rabbitmq.Config{URL: "amqps://app:s3cret@mq:5671/", Exchange: "x", Source: "s", TLS: tlsfiles.Files{CA: "/nonexistent/ca.pem"}}, "AMQP_TLS_CA"},
		{"client certificate without key", rabbitmq.Config{URL: "amqps://app:s3cret@mq:5671/", Exchange: "x", Source: "s", TLS: tlsfiles.Files{Cert: "/etc/client.pem"}}, "AMQP_TLS_KEY"},
		{"bad URL hides the password", rabbitmq.Config{URL: "amqp://u:hunter2@mq:port/", Exchange: "x", Source: "s"}, "AMQP_URL"},
		{"zero fields take the defaults", rabbitmq.Config{}, ""},
		{"blank exchange", rabbitmq.Config{URL: rabbitmq.DefaultURL, Exchange: " ", Source: "s"}, "EVENT_EXCHANGE"},
		{"reserved exchange", rabbitmq.Config{URL: rabbitmq.DefaultURL, Exchange: "amq.topic", Source: "s"}, "EVENT_EXCHANGE"},
		{"exchange with a space", rabbitmq.Config{URL: rabbitmq.DefaultURL, Exchange: "users events", Source: "s"}, "EVENT_EXCHANGE"},
		{"exchange too long", rabbitmq.Config{URL: rabbitmq.DefaultURL, Exchange: strings.Repeat("x", 256), Source: "s"}, "EVENT_EXCHANGE"},
		{"bad source", rabbitmq.Config{URL: rabbitmq.DefaultURL, Exchange: "x", Source: "a b"}, "EVENT_SOURCE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("Validate = %v, want an error naming %s", err, c.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q shows the password", err)
			}
		})
	}
}

// Every message carries the CloudEvents AMQP binding's application
// properties and nothing else, as strings, plus persistent delivery and
// the AMQP properties plain consumers read.
func TestMessagePropertiesAndHeaders(t *testing.T) {
	exchange := rabbitmqtest.NewExchange(t)
	q := rabbitmqtest.BindQueue(t, exchange, "#")
	p := newPublisher(t, rabbitmq.Config{Exchange: exchange})
	m := event(t, 1, domain.ActionUpdate, 42)
	if n, err := p.Publish(publishCtx(t), []domain.Message{m}); n != 1 || err != nil {
		t.Fatalf("Publish = %d, %v", n, err)
	}
	d := q.Receive(t, 1, 10*time.Second)[0]
	wantHeaders := amqp.Table{
		"cloudEvents:specversion": "1.0",
		"cloudEvents:id":          m.EventID,
		"cloudEvents:type":        "users.user.updated",
		"cloudEvents:source":      testSource,
		"cloudEvents:subject":     "42",
		"cloudEvents:time":        domain.FormatTime(m.OccurredAt),
	}
	if len(d.Headers) != len(wantHeaders) {
		t.Errorf("headers %v, want exactly %v", d.Headers, wantHeaders)
	}
	for k, v := range wantHeaders {
		if d.Headers[k] != v {
			t.Errorf("header %s = %#v, want %#v", k, d.Headers[k], v)
		}
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"routing key", d.RoutingKey, "users.user.updated"},
		{"exchange", d.Exchange, exchange},
		{"content type", d.ContentType, "application/json"},
		{"delivery mode", d.DeliveryMode, amqp.Persistent},
		{"message id", d.MessageId, m.EventID},
		{"type", d.Type, "users.user.updated"},
		{"app id", d.AppId, testSource},
		{"timestamp (AMQP keeps seconds)", d.Timestamp.Unix(), m.OccurredAt.Unix()},
		{"body", string(d.Body), string(m.Payload)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

// The routing key is the event type: a queue bound to one type gets only
// those events.
func TestRoutingKeysAreEventTypes(t *testing.T) {
	exchange := rabbitmqtest.NewExchange(t)
	all := rabbitmqtest.BindQueue(t, exchange, "users.user.*")
	deletes := rabbitmqtest.BindQueue(t, exchange, "users.user.deleted")
	changes := rabbitmqtest.BindQueue(t, exchange, "users.user.created", "users.user.updated")
	p := newPublisher(t, rabbitmq.Config{Exchange: exchange})
	msgs := []domain.Message{
		event(t, 1, domain.ActionCreate, 1), event(t, 2, domain.ActionUpdate, 1),
		event(t, 3, domain.ActionCreate, 2), event(t, 4, domain.ActionDelete, 1),
	}
	if n, err := p.Publish(publishCtx(t), msgs); n != len(msgs) || err != nil {
		t.Fatalf("Publish = %d, %v", n, err)
	}
	ids := func(ds []amqp.Delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.MessageId)
		}
		return out
	}
	cases := []struct {
		name string
		q    *rabbitmqtest.Queue
		want []string
	}{
		{"users.user.*", all, []string{evt(1), evt(2), evt(3), evt(4)}},
		{"users.user.deleted", deletes, []string{evt(4)}},
		{"created and updated", changes, []string{evt(1), evt(2), evt(3)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ids(c.q.Receive(t, len(c.want), 10*time.Second)); !slices.Equal(got, c.want) {
				t.Fatalf("queue received %v, want %v", got, c.want)
			}
		})
	}
}

// A message no queue is bound for is dropped by the broker: it is not
// acknowledged, so the relay keeps it, and the messages before it are.
func TestUnroutableMessageIsNotAcknowledged(t *testing.T) {
	exchange := rabbitmqtest.NewExchange(t)
	p := newPublisher(t, rabbitmq.Config{Exchange: exchange})
	msgs := []domain.Message{event(t, 1, domain.ActionCreate, 1), event(t, 2, domain.ActionUpdate, 1), event(t, 3, domain.ActionCreate, 2)}

	// No queue at all.
	n, err := p.Publish(publishCtx(t), msgs)
	if n != 0 || !errors.Is(err, rabbitmq.ErrUnroutable) || !strings.Contains(err.Error(), evt(1)) {
		t.Fatalf("Publish with no queue = %d, %v; want 0 and ErrUnroutable naming %s", n, err, evt(1))
	}
	// Only creations are routed: the update stops the acknowledged prefix.
	created := rabbitmqtest.BindQueue(t, exchange, "users.user.created")
	n, err = p.Publish(publishCtx(t), msgs)
	if n != 1 || !errors.Is(err, rabbitmq.ErrUnroutable) || !strings.Contains(err.Error(), "users.user.updated") {
		t.Fatalf("Publish with creations bound = %d, %v; want 1 and ErrUnroutable for users.user.updated", n, err)
	}
	// Once every type is routed, the rest goes through.
	rabbitmqtest.BindQueue(t, exchange, "#")
	if n, err = p.Publish(publishCtx(t), msgs[1:]); n != 2 || err != nil {
		t.Fatalf("Publish with everything bound = %d, %v; want 2, nil", n, err)
	}
	// At least once: the creations queue saw evt-1 and evt-3, each time
	// they were routable.
	var got []string
	for _, d := range created.Receive(t, 3, 10*time.Second) {
		got = append(got, d.MessageId)
	}
	if want := []string{evt(1), evt(3), evt(3)}; !slices.Equal(got, want) {
		t.Fatalf("creations queue received %v, want %v", got, want)
	}
}

// Batches larger than the publisher's in-flight window go out in order and
// are all confirmed.
func TestLargeBatchIsConfirmedInOrder(t *testing.T) {
	const n = 700
	exchange := rabbitmqtest.NewExchange(t)
	q := rabbitmqtest.BindQueue(t, exchange, "#")
	p := newPublisher(t, rabbitmq.Config{Exchange: exchange})
	msgs := make([]domain.Message, n)
	for i := range msgs {
		msgs[i] = event(t, int64(i+1), domain.ActionUpdate, int64(i%7)+1)
	}
	if acked, err := p.Publish(publishCtx(t), msgs); acked != n || err != nil {
		t.Fatalf("Publish = %d, %v; want %d", acked, err, n)
	}
	got := q.Receive(t, n, 20*time.Second)
	if len(got) != n {
		t.Fatalf("received %d, want %d", len(got), n)
	}
	for i, d := range got {
		if d.MessageId != msgs[i].EventID {
			t.Fatalf("message %d is %s, want %s", i, d.MessageId, msgs[i].EventID)
		}
	}
}

func TestPublishAfterCloseFails(t *testing.T) {
	p := newPublisher(t, rabbitmq.Config{Exchange: rabbitmqtest.NewExchange(t)})
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Publish(publishCtx(t), []domain.Message{event(t, 1, domain.ActionCreate, 1)}); n != 0 || !errors.Is(err, rabbitmq.ErrClosed) {
		t.Fatalf("Publish after Close = %d, %v; want 0, ErrClosed", n, err)
	}
}

// An existing exchange of another type is refused with a message saying
// so, not taken for an outage.
func TestExchangeOfAnotherTypeIsRefused(t *testing.T) {
	name := rabbitmqtest.Name("usersvc-test-fanout-")
	ch, err := rabbitmqtest.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(name, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.ExchangeDelete(name, false, false) })
	p := newPublisher(t, rabbitmq.Config{Exchange: name})
	n, err := p.Publish(publishCtx(t), []domain.Message{event(t, 1, domain.ActionCreate, 1)})
	if n != 0 || err == nil || !strings.Contains(err.Error(), "declare topic exchange") || errors.Is(err, rabbitmq.ErrConnectionLost) {
		t.Fatalf("Publish = %d, %v; want 0 and an exchange declaration error", n, err)
	}
}

func TestWrongCredentialsAreReportedWithoutThePassword(t *testing.T) {
	u, err := url.Parse(rabbitmqtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("guest", "wrong-hunter2")
	p := newPublisher(t, rabbitmq.Config{URL: u.String(), Exchange: "usersvc-test-never"})
	n, err := p.Publish(publishCtx(t), []domain.Message{event(t, 1, domain.ActionCreate, 1)})
	if n != 0 || err == nil {
		t.Fatalf("Publish = %d, %v; want a refusal", n, err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %q shows the password", err)
	}
}

// proxy forwards TCP to the broker. Its listener stays, so clients can
// reconnect after cut; holdReplies stops the broker's answers (confirms)
// from reaching the client, as a connection dying mid-batch would.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	hold  chan struct{} // closed: forward; open: hold replies
	down  bool          // refuse new connections
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, hold: make(chan struct{})}
	close(p.hold)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { p.copyReplies(c, up); c.Close() }()
	}
}

func (p *proxy) copyReplies(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			hold := p.hold
			p.mu.Unlock()
			<-hold
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) holdReplies() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = make(chan struct{})
}

// cut closes every connection and, until restore, refuses new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns, p.down = nil, true
	select {
	case <-p.hold:
	default:
		close(p.hold)
	}
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func (p *proxy) url(t *testing.T) string {
	u, err := url.Parse(rabbitmqtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// The connection dies after the broker stored a batch but before its
// confirms reached the publisher: Publish reports the loss with nothing
// acknowledged, fails fast while the broker is unreachable, and the next
// Publish after it is back reconnects and succeeds. The batch arrives twice
// (at least once), never partly lost.
func TestConnectionLostMidBatchThenRecovers(t *testing.T) {
	exchange := rabbitmqtest.NewExchange(t)
	q := rabbitmqtest.BindQueue(t, exchange, "#")
	u, err := url.Parse(rabbitmqtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, u.Host)
	p := newPublisher(t, rabbitmq.Config{URL: px.url(t), Exchange: exchange})
	first := []domain.Message{event(t, 1, domain.ActionCreate, 1)}
	if n, err := p.Publish(publishCtx(t), first); n != 1 || err != nil {
		t.Fatalf("first Publish = %d, %v", n, err)
	}
	q.Receive(t, 1, 10*time.Second)

	batch := []domain.Message{event(t, 2, domain.ActionUpdate, 1), event(t, 3, domain.ActionCreate, 2), event(t, 4, domain.ActionDelete, 1)}
	px.holdReplies()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := p.Publish(publishCtx(t), batch)
		done <- result{n, err}
	}()
	q.Receive(t, 1+len(batch), 10*time.Second) // stored by the broker, confirms held
	px.cut()
	r := <-done
	if r.n != 0 || !errors.Is(r.err, rabbitmq.ErrConnectionLost) {
		t.Fatalf("Publish across the cut = %d, %v; want 0 and ErrConnectionLost", r.n, r.err)
	}
	start := time.Now()
	if n, err := p.Publish(publishCtx(t), batch); n != 0 || !errors.Is(err, rabbitmq.ErrConnectionLost) {
		t.Fatalf("Publish while unreachable = %d, %v; want 0 and ErrConnectionLost", n, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Publish while unreachable took %v, want a fast failure", d)
	}

	px.restore()
	if n, err := p.Publish(publishCtx(t), batch); n != len(batch) || err != nil {
		t.Fatalf("Publish after the broker is back = %d, %v; want %d, nil", n, err, len(batch))
	}
	var got []string
	for _, d := range q.Receive(t, 1+2*len(batch), 10*time.Second) {
		got = append(got, d.MessageId)
	}
	want := []string{evt(1), evt(2), evt(3), evt(4), evt(2), evt(3), evt(4)}
	if !slices.Equal(got, want) {
		t.Fatalf("queue received %v, want %v", got, want)
	}
}

// Without a deadline of its own, Publish gives up after ConfirmTimeout when
// the broker does not confirm, rather than holding the relay forever.
func TestUnconfirmedPublishTimesOut(t *testing.T) {
	exchange := rabbitmqtest.NewExchange(t)
	rabbitmqtest.BindQueue(t, exchange, "#")
	u, err := url.Parse(rabbitmqtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, u.Host)
	p := newPublisher(t, rabbitmq.Config{URL: px.url(t), Exchange: exchange, ConfirmTimeout: 500 * time.Millisecond})
	if n, err := p.Publish(context.Background(), []domain.Message{event(t, 1, domain.ActionCreate, 1)}); n != 1 || err != nil {
		t.Fatalf("Publish = %d, %v", n, err)
	}
	px.holdReplies()
	start := time.Now()
	n, err := p.Publish(context.Background(), []domain.Message{event(t, 2, domain.ActionUpdate, 1)})
	if n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish with confirms held = %d, %v; want 0 and DeadlineExceeded", n, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Publish took %v, want about the confirm timeout", d)
	}
}

// Tail declares the exchange when the service has not yet, and prints
// what is published from then on, with the trace id of each message that
// carries a trace context.
func TestTailPrintsEventsAsJSONLines(t *testing.T) {
	exchange := rabbitmqtest.ExchangeName(t)
	cfg := rabbitmq.Config{URL: rabbitmqtest.URL(t), Exchange: exchange, Source: testSource}
	if err := rabbitmq.Tail(context.Background(), cfg, true, io.Discard); !errors.Is(err, rabbitmq.ErrNoHistory) {
		t.Fatalf("Tail from the beginning = %v, want ErrNoHistory", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, in := io.Pipe()
	tailed := make(chan error, 1)
	go func() { tailed <- rabbitmq.Tail(ctx, cfg, false, in) }()
	lines := make(chan string, 10)
	go func() {
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			lines <- line
		}
	}()
	// The tail is ready once a probe is routable (to its queue, the only
	// one); lines before the probe's last copy are the probe's.
	p := newPublisher(t, rabbitmq.Config{Exchange: exchange})
	probe := event(t, 99, domain.ActionCreate, 9)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := p.Publish(publishCtx(t), []domain.Message{probe})
		if n == 1 && err == nil {
			break
		}
		if !errors.Is(err, rabbitmq.ErrUnroutable) || time.Now().After(deadline) {
			t.Fatalf("Publish probe = %d, %v", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case line := <-lines:
		if line != string(probe.Payload)+"\n" {
			t.Fatalf("tail printed %q, want the probe", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail printed nothing for the probe")
	}
	// A message with a trace context prints its trace id first, for a
	// trace viewer; one without (or with a malformed one) prints its body.
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	msgs := []domain.Message{event(t, 1, domain.ActionCreate, 1), event(t, 2, domain.ActionUpdate, 1), event(t, 3, domain.ActionDelete, 1)}
	msgs[0].TraceParent, msgs[0].TraceState = "00-"+traceID+"-00f067aa0ba902b7-01", "congo=t61rcWkgMzE"
	msgs[1].TraceParent = "not-a-traceparent"
	wants := []string{`{"trace_id":"` + traceID + `",` + string(msgs[0].Payload[1:]), string(msgs[1].Payload), string(msgs[2].Payload)}
	if n, err := p.Publish(publishCtx(t), msgs); n != len(msgs) || err != nil {
		t.Fatalf("Publish = %d, %v", n, err)
	}
	for i, m := range msgs {
		select {
		case line := <-lines:
			if want := wants[i] + "\n"; line != want {
				t.Fatalf("tail printed %q, want %q", line, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("tail printed no line for %s", m.EventID)
		}
	}
	cancel()
	if err := <-tailed; err != nil {
		t.Fatalf("Tail = %v", err)
	}
	_ = out.Close()
}
