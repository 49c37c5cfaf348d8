package rabbitmq_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/rabbitmq"
	"github.com/marketplace/usersvc/adapters/rabbitmq/rabbitmqtest"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/netfault"
)

// A connection that goes silent without closing (a blackholed route: no
// FIN, no RST) is given up on: Publish fails within ConfirmTimeout, Connect
// fails within twice DialTimeout instead of hanging on the channel's
// set-up, and once the route is back the next Publish connects again and
// delivers.
func TestHalfOpenConnectionIsAbandoned(t *testing.T) {
	const (
		confirm = time.Second
		dial    = time.Second
		slack   = 2 * time.Second
	)
	exchange := rabbitmqtest.NewExchange(t)
	q := rabbitmqtest.BindQueue(t, exchange, "#")
	px, viaProxy := netfault.ForURL(t, "amqp", rabbitmqtest.URL(t))
	p := newPublisher(t, rabbitmq.Config{URL: viaProxy, Exchange: exchange, ConfirmTimeout: confirm, DialTimeout: dial})
	if n, err := p.Publish(context.Background(), []domain.Message{event(t, 1, domain.ActionCreate, 1)}); n != 1 || err != nil {
		t.Fatalf("Publish before the fault = %d, %v", n, err)
	}

	px.Blackhole(t)
	start := time.Now()
	n, err := p.Publish(context.Background(), []domain.Message{event(t, 2, domain.ActionUpdate, 1)})
	if took := time.Since(start); n != 0 || err == nil || took > confirm+slack {
		t.Fatalf("Publish on the silent connection = %d, %v after %v; want 0 and an error within %v", n, err, took, confirm+slack)
	}
	for i := range 2 { // a dial that gets no answer, then again on the same dead route
		start = time.Now()
		err = p.Connect(context.Background())
		if took := time.Since(start); err == nil || took > 2*dial+slack {
			t.Fatalf("Connect %d while the route is dead = %v after %v; want an error within %v", i+1, err, took, 2*dial+slack)
		}
	}

	px.Heal(t)
	if err := p.Connect(context.Background()); err != nil {
		t.Fatalf("Connect after the route is back: %v", err)
	}
	if n, err := p.Publish(context.Background(), []domain.Message{event(t, 2, domain.ActionUpdate, 1)}); n != 1 || err != nil {
		t.Fatalf("Publish after the route is back = %d, %v", n, err)
	}
	var got []string
	for _, d := range q.Receive(t, 2, 10*time.Second) {
		got = append(got, d.MessageId)
	}
	if !slices.Equal(got, []string{evt(1), evt(2)}) {
		t.Errorf("queue received %v, want the first two events (the unconfirmed copy was dropped by the fault)", got)
	}
}

// The connection is alive but its channel is gone (the broker closed it:
// here the exchange was deleted under it) when the route goes silent:
// Connect opens a new channel on the old connection, and that call, which
// takes no context in the library, still ends within twice DialTimeout
// rather than when the heartbeats give up on the connection.
func TestChannelSetUpOnASilentConnectionIsBounded(t *testing.T) {
	const (
		dial  = time.Second
		slack = 2 * time.Second
	)
	exchange := rabbitmqtest.NewExchange(t)
	px, viaProxy := netfault.ForURL(t, "amqp", rabbitmqtest.URL(t))
	p := newPublisher(t, rabbitmq.Config{URL: viaProxy, Exchange: exchange, ConfirmTimeout: time.Second, DialTimeout: dial})
	rabbitmqtest.BindQueue(t, exchange, "#")
	if n, err := p.Publish(context.Background(), []domain.Message{event(t, 1, domain.ActionCreate, 1)}); n != 1 || err != nil {
		t.Fatalf("Publish before the fault = %d, %v", n, err)
	}
	ch, err := rabbitmqtest.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDelete(exchange, false, false); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Publish(context.Background(), []domain.Message{event(t, 2, domain.ActionUpdate, 1)}); n != 0 || err == nil {
		t.Fatalf("Publish to the deleted exchange = %d, %v; want a failure", n, err)
	}

	px.Blackhole(t)
	start := time.Now()
	err = p.Connect(context.Background())
	if took := time.Since(start); err == nil || took > 2*dial+slack {
		t.Fatalf("Connect on the silent connection = %v after %v; want an error within %v", err, took, 2*dial+slack)
	}
	px.Heal(t)
	if err := p.Connect(context.Background()); err != nil {
		t.Fatalf("Connect after the route is back: %v", err)
	}
}
