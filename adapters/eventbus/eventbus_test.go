package eventbus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/marketplace/usersvc/adapters/eventbus"
	"github.com/marketplace/usersvc/adapters/kafka"
	"github.com/marketplace/usersvc/adapters/logpublisher"
	"github.com/marketplace/usersvc/adapters/rabbitmq"
	"github.com/marketplace/usersvc/adapters/rabbitmq/rabbitmqtest"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/eventschema"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     eventbus.Config
		wantErr string // "" for valid
	}{
		{"the default is Kafka, which needs brokers", eventbus.Config{}, "KAFKA_BROKERS"},
		{"no silent fallback to stdout without brokers", eventbus.Config{Topic: "users-events"}, "EVENT_BUS=log"},
		{"brokers with defaults", eventbus.Config{Brokers: "127.0.0.1:9092, 127.0.0.1:9093"}, ""},
		{"everything set", eventbus.Config{Brokers: "kafka:9092", Topic: "users.v1", Source: "https://users.example/", Extra: "security.protocol=SASL_SSL", FlushTimeout: time.Second}, ""},
		{"broker without port", eventbus.Config{Brokers: "kafka"}, "KAFKA_BROKERS"},
		{"bad topic", eventbus.Config{Brokers: "kafka:9092", Topic: "users events"}, "KAFKA_TOPIC"},
		{"bad source", eventbus.Config{Brokers: "kafka:9092", Source: "a b"}, "EVENT_SOURCE"},
		{"malformed extra", eventbus.Config{Brokers: "kafka:9092", Extra: "linger.ms"}, "KAFKA_CONFIG"},
		{"reserved extra", eventbus.Config{Brokers: "kafka:9092", Extra: "enable.idempotence=false"}, "KAFKA_CONFIG"},
		{"negative flush timeout", eventbus.Config{Bus: "log", FlushTimeout: -time.Second}, "flush timeout"},
		{"auto is refused", eventbus.Config{Bus: "auto"}, "EVENT_BUS=auto"},
		{"auto is refused even with brokers", eventbus.Config{Bus: "auto", Brokers: "kafka:9092"}, "EVENT_BUS=auto"},
		{"log ignores Kafka settings", eventbus.Config{Bus: "log", Brokers: "kafka", Topic: "bad topic"}, ""},
		{"kafka needs brokers", eventbus.Config{Bus: "kafka"}, "KAFKA_BROKERS"},
		{"kafka checks its settings", eventbus.Config{Bus: "kafka", Brokers: "kafka:9092", Topic: "bad topic"}, "KAFKA_TOPIC"},
		{"rabbitmq with defaults", eventbus.Config{Bus: "rabbitmq"}, ""},
		{"rabbitmq ignores Kafka settings", eventbus.Config{Bus: "rabbitmq", Brokers: "kafka", Extra: "acks=1"}, ""},
		{"rabbitmq bad URL", eventbus.Config{Bus: "rabbitmq", AMQPURL: "http://mq/"}, "AMQP_URL"},
		{"rabbitmq bad exchange", eventbus.Config{Bus: "rabbitmq", Exchange: "amq.topic"}, "EVENT_EXCHANGE"},
		{"rabbitmq bad source", eventbus.Config{Bus: "rabbitmq", Source: "a b"}, "EVENT_SOURCE"},
		{"unknown bus", eventbus.Config{Bus: "nats"}, "EVENT_BUS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.wantErr)
			}
		})
	}
}

func event(t *testing.T) domain.Message {
	t.Helper()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m, err := domain.NewEvent("00000000-0000-7000-8000-000000000001", domain.ActionCreate, domain.User{ID: 7, CreatedAt: at, UpdatedAt: at}, nil, at).Message()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestProvideLogWritesToStdout(t *testing.T) {
	var out bytes.Buffer
	pub, cleanup, err := eventbus.Provide(eventbus.Config{Bus: "log"}, nil, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if _, ok := pub.(*logpublisher.Publisher); !ok {
		t.Fatalf("Provide gave %T, want the log publisher", pub)
	}
	m := event(t)
	if acked, err := pub.Publish(context.Background(), []domain.Message{m}); err != nil || acked != 1 {
		t.Fatalf("Publish = %d, %v", acked, err)
	}
	if got := out.String(); got != string(m.Payload)+"\n" {
		t.Errorf("stdout = %q, want the event line", got)
	}
}

func TestProvideRefusesInvalidConfig(t *testing.T) {
	if _, _, err := eventbus.Provide(eventbus.Config{Brokers: "kafka:9092", Extra: "acks=1"}, nil, &bytes.Buffer{}, nil); err == nil {
		t.Fatal("Provide accepted acks=1")
	}
}

func TestProvideWithBrokersPublishesToKafka(t *testing.T) {
	brokers, topic := containers.KafkaTopic(t, 1)
	addr := brokers[0]

	var out bytes.Buffer
	pub, cleanup, err := eventbus.Provide(eventbus.Config{Brokers: addr, Topic: topic, Extra: "linger.ms=1"}, nil, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pub.(*kafka.Publisher); !ok {
		t.Fatalf("Provide gave %T, want the Kafka publisher", pub)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m := event(t)
	if acked, err := pub.Publish(ctx, []domain.Message{m}); err != nil || acked != 1 {
		t.Fatalf("Publish = %d, %v", acked, err)
	}
	cleanup()
	if _, err := pub.Publish(ctx, []domain.Message{m}); err == nil {
		t.Error("Publish after cleanup succeeded: cleanup did not close the producer")
	}
	if out.Len() != 0 {
		t.Errorf("with brokers, nothing should go to stdout; got %q", out.String())
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := cl.PollFetches(ctx).Records()
	for _, r := range recs {
		eventschema.Check(t, r.Value)
	}
	if len(recs) != 1 || string(recs[0].Value) != string(m.Payload) || string(recs[0].Key) != "7" {
		t.Fatalf("topic holds %d records (%v), want the one event keyed 7", len(recs), recs)
	}
}

// EVENT_BUS picks the publisher; only an explicit log writes to stdout.
func TestProvideSelectsTheBus(t *testing.T) {
	cases := []struct {
		name string
		cfg  eventbus.Config
		want any
	}{
		{"empty is Kafka", eventbus.Config{Brokers: "127.0.0.1:1"}, &kafka.Publisher{}},
		{"log even with brokers", eventbus.Config{Bus: "log", Brokers: "127.0.0.1:1"}, &logpublisher.Publisher{}},
		{"kafka", eventbus.Config{Bus: "kafka", Brokers: "127.0.0.1:1"}, &kafka.Publisher{}},
		{"rabbitmq, even with brokers", eventbus.Config{Bus: "rabbitmq", Brokers: "127.0.0.1:1", AMQPURL: "amqp://guest:guest@127.0.0.1:1/"}, &rabbitmq.Publisher{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub, cleanup, err := eventbus.Provide(c.cfg, nil, &bytes.Buffer{}, nil)
			if err != nil {
				t.Fatalf("Provide: %v", err)
			}
			defer cleanup()
			if got, want := fmt.Sprintf("%T", pub), fmt.Sprintf("%T", c.want); got != want {
				t.Fatalf("Provide gave %s, want %s", got, want)
			}
		})
	}
}

func TestProvideWithRabbitMQPublishesToTheExchange(t *testing.T) {
	exchange := rabbitmqtest.NewExchange(t)
	q := rabbitmqtest.BindQueue(t, exchange, "#")
	var out bytes.Buffer
	pub, cleanup, err := eventbus.Provide(eventbus.Config{Bus: "rabbitmq", AMQPURL: rabbitmqtest.URL(t), Exchange: exchange, Source: "usersvc"}, nil, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m := event(t)
	if acked, err := pub.Publish(ctx, []domain.Message{m}); err != nil || acked != 1 {
		t.Fatalf("Publish = %d, %v", acked, err)
	}
	cleanup()
	if _, err := pub.Publish(ctx, []domain.Message{m}); err == nil {
		t.Error("Publish after cleanup succeeded: cleanup did not close the publisher")
	}
	got := q.Receive(t, 1, 10*time.Second)
	if len(got) != 1 || string(got[0].Body) != string(m.Payload) || got[0].RoutingKey != m.Type {
		t.Fatalf("queue holds %d messages, want the one event routed by its type", len(got))
	}
	if out.Len() != 0 {
		t.Errorf("with RabbitMQ, nothing should go to stdout; got %q", out.String())
	}
}

func TestTailOnRabbitMQHasNoHistory(t *testing.T) {
	err := eventbus.Tail(context.Background(), eventbus.Config{Bus: "rabbitmq", AMQPURL: rabbitmqtest.URL(t)}, true, &bytes.Buffer{})
	if !errors.Is(err, rabbitmq.ErrNoHistory) {
		t.Errorf("Tail --from-beginning on RabbitMQ = %v, want ErrNoHistory", err)
	}
}

// The finding: without KAFKA_BROKERS every event went to stdout and was
// marked published. Now nothing is provided and the error says what to set.
func TestProvideRefusesTheStdoutFallback(t *testing.T) {
	for _, cfg := range []eventbus.Config{{}, {Bus: "auto"}, {Bus: "kafka", Brokers: " "}} {
		var out bytes.Buffer
		pub, _, err := eventbus.Provide(cfg, nil, &out, nil)
		if err == nil || pub != nil {
			t.Fatalf("Provide(%+v) = %T, %v; want an error and no publisher", cfg, pub, err)
		}
		if !strings.Contains(err.Error(), "KAFKA_BROKERS") && !strings.Contains(err.Error(), "EVENT_BUS=auto") {
			t.Errorf("Provide(%+v) error %q does not say what to set", cfg, err)
		}
		if out.Len() != 0 {
			t.Errorf("Provide(%+v) wrote to stdout: %q", cfg, out.String())
		}
	}
}

func TestTailWithoutBrokersExplains(t *testing.T) {
	err := eventbus.Tail(context.Background(), eventbus.Config{}, true, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "KAFKA_BROKERS") {
		t.Errorf("Tail = %v, want an error naming KAFKA_BROKERS", err)
	}
}
