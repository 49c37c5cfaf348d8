package rabbitmq_test

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/marketplace/usersvc/adapters/rabbitmq"
	"github.com/marketplace/usersvc/adapters/rabbitmq/rabbitmqtest"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/ports/porttest"
)

const testSource = "usersvc-test"

// newPublisher publishes to exchange on the test broker, closed when t ends.
func newPublisher(t *testing.T, cfg rabbitmq.Config) *rabbitmq.Publisher {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = rabbitmqtest.URL(t)
	}
	if cfg.Source == "" {
		cfg.Source = testSource
	}
	p, err := rabbitmq.NewPublisher(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// delivered reads an AMQP delivery as the CloudEvents binding defines it:
// headers cloudEvents:<name>, the content-type property as
// datacontenttype; any other header is an error. The user id (the port's
// key) travels as the subject, the routing key being the event type.
func delivered(t *testing.T, d amqp.Delivery) porttest.Delivered {
	t.Helper()
	attrs := map[string]string{}
	for k, v := range d.Headers {
		name, ok := strings.CutPrefix(k, "cloudEvents:")
		s, isString := v.(string)
		if !ok || !isString {
			t.Errorf("message with unexpected header %q = %#v", k, v)
			continue
		}
		attrs[name] = s
	}
	if d.ContentType != "" {
		attrs["datacontenttype"] = d.ContentType
	}
	if d.RoutingKey != attrs["type"] {
		t.Errorf("routing key %q, want the event type %q", d.RoutingKey, attrs["type"])
	}
	return porttest.Delivered{Key: attrs["subject"], Payload: d.Body, Attrs: attrs}
}

// TestEventPublisherContract runs the publisher suite on an exchange of its
// own with one queue bound to every routing key: one queue keeps the
// publication order across keys too.
func TestEventPublisherContract(t *testing.T) {
	porttest.RunEventPublisherContract(t, func(t *testing.T) (ports.EventPublisher, porttest.Received) {
		exchange := rabbitmqtest.NewExchange(t)
		q := rabbitmqtest.BindQueue(t, exchange, "#")
		received := func(t *testing.T, n int) []porttest.Delivered {
			t.Helper()
			ds := q.Receive(t, n, 10*time.Second)
			got := make([]porttest.Delivered, len(ds))
			for i, d := range ds {
				got[i] = delivered(t, d)
			}
			return got
		}
		return newPublisher(t, rabbitmq.Config{Exchange: exchange}), received
	}, porttest.PublisherOptions{
		Attrs:       map[string]string{"source": testSource, "datacontenttype": "application/json"},
		GlobalOrder: true,
	})
}
