// Package rabbitmqtest gives tests a vhost of their own on a real RabbitMQ
// (the test package's container; see containers.AMQPURL) and an exchange
// and queues of their own in it, deleted when the test ends, and reads back
// what the queues received. When USERSVC_TEST_AMQP_URL names a broker the
// tests share that URL's vhost, kept apart by the fresh exchange and queue
// names alone. A package using it calls containers.RunTests from its
// TestMain.
package rabbitmqtest

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/eventschema"
)

// URLEnv names an existing broker for tests; the user needs configure
// rights.
const URLEnv = containers.AMQPURLEnv

// URL is the test broker's AMQP URL: USERSVC_TEST_AMQP_URL, or a vhost of
// t's own on the test package's RabbitMQ container, started on first use.
// Every call of t returns the same URL.
func URL(t testing.TB) string {
	t.Helper()
	return containers.AMQPURL(t)
}

// Dial opens a connection to the test broker, closed when t ends; it fails
// t (never skips) when the broker is unreachable.
func Dial(t testing.TB) *amqp.Connection {
	t.Helper()
	conn, err := amqp.DialConfig(URL(t), amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		t.Fatalf("RabbitMQ test broker unreachable (%s names it when set): %v", URLEnv, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Name is a fresh name for an exchange or a queue of t's.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NewExchange declares a fresh durable topic exchange, as the publisher
// declares its own, and deletes it when t ends.
func NewExchange(t testing.TB) string {
	t.Helper()
	name := ExchangeName(t)
	if err := channel(t).ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatalf("declare exchange %s: %v", name, err)
	}
	return name
}

// ExchangeName is a fresh exchange name, for code under test to declare;
// the exchange is deleted when t ends (deleting a missing one is no error).
func ExchangeName(t testing.TB) string {
	t.Helper()
	name := Name("usersvc-test-")
	// The vhost first, so that it outlives this cleanup (cleanups run
	// last-in first-out).
	URL(t)
	t.Cleanup(func() {
		if err := channel(t).ExchangeDelete(name, false, false); err != nil {
			t.Errorf("delete exchange %s: %v", name, err)
		}
	})
	return name
}

// channel opens a channel on a connection of its own.
func channel(t testing.TB) *amqp.Channel {
	t.Helper()
	ch, err := Dial(t).Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	return ch
}

// Queue is a queue bound to an exchange, consumed from its creation on.
type Queue struct {
	Name string

	mu   sync.Mutex
	got  []amqp.Delivery
	more chan struct{}
}

// BindQueue declares a fresh queue bound to exchange with each of keys,
// starts consuming it (auto-ack) and deletes it when t ends.
func BindQueue(t testing.TB, exchange string, keys ...string) *Queue {
	t.Helper()
	ch := channel(t)
	q := &Queue{Name: Name("usersvc-test-q-"), more: make(chan struct{}, 1)}
	if _, err := ch.QueueDeclare(q.Name, false, false, false, false, nil); err != nil {
		t.Fatalf("declare queue: %v", err)
	}
	t.Cleanup(func() {
		if _, err := channel(t).QueueDelete(q.Name, false, false, false); err != nil {
			t.Errorf("delete queue %s: %v", q.Name, err)
		}
	})
	for _, k := range keys {
		if err := ch.QueueBind(q.Name, k, exchange, false, nil); err != nil {
			t.Fatalf("bind queue to %s with %q: %v", exchange, k, err)
		}
	}
	deliveries, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", q.Name, err)
	}
	go func() {
		for d := range deliveries {
			q.mu.Lock()
			q.got = append(q.got, d)
			q.mu.Unlock()
			select {
			case q.more <- struct{}{}:
			default:
			}
		}
	}()
	return q
}

// Receive waits until at least n messages arrived (failing t after
// timeout), lets a moment pass for stray duplicates, and returns all of
// them in arrival order. A body that is not an event valid against the
// event schema, or headers other than the AsyncAPI document's, fail t
// (without stopping it).
func (q *Queue) Receive(t testing.TB, n int, timeout time.Duration) []amqp.Delivery {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		q.mu.Lock()
		have := len(q.got)
		q.mu.Unlock()
		if have >= n {
			break
		}
		select {
		case <-q.more:
		case <-deadline.C:
			t.Fatalf("queue %s received %d messages within %v, want %d", q.Name, have, timeout, n)
		}
	}
	time.Sleep(100 * time.Millisecond)
	got := q.All()
	for _, d := range got {
		eventschema.Check(t, d.Body)
		eventschema.CheckHeaders(t, eventschema.AMQP, d.Headers)
	}
	return got
}

// All returns what arrived so far.
func (q *Queue) All() []amqp.Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]amqp.Delivery(nil), q.got...)
}
