package eventbus_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/marketplace/usersvc/adapters/eventbus"
	"github.com/marketplace/usersvc/adapters/kafka"
	"github.com/marketplace/usersvc/adapters/logpublisher"
	"github.com/marketplace/usersvc/domain"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     eventbus.Config
		wantErr string // "" for valid
	}{
		{"no broker: standard output", eventbus.Config{}, ""},
		{"no broker ignores Kafka settings", eventbus.Config{Topic: "bad topic", Extra: "x"}, ""},
		{"brokers with defaults", eventbus.Config{Brokers: "127.0.0.1:9092, 127.0.0.1:9093"}, ""},
		{"everything set", eventbus.Config{Brokers: "kafka:9092", Topic: "users.v1", Source: "https://users.example/", Extra: "security.protocol=SASL_SSL", FlushTimeout: time.Second}, ""},
		{"broker without port", eventbus.Config{Brokers: "kafka"}, "KAFKA_BROKERS"},
		{"bad topic", eventbus.Config{Brokers: "kafka:9092", Topic: "users events"}, "KAFKA_TOPIC"},
		{"bad source", eventbus.Config{Brokers: "kafka:9092", Source: "a b"}, "EVENT_SOURCE"},
		{"malformed extra", eventbus.Config{Brokers: "kafka:9092", Extra: "linger.ms"}, "KAFKA_CONFIG"},
		{"reserved extra", eventbus.Config{Brokers: "kafka:9092", Extra: "enable.idempotence=false"}, "KAFKA_CONFIG"},
		{"negative flush timeout", eventbus.Config{FlushTimeout: -time.Second}, "flush timeout"},
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

func TestProvideWithoutBrokersWritesToStdout(t *testing.T) {
	var out bytes.Buffer
	pub, cleanup, err := eventbus.Provide(eventbus.Config{}, nil, &out)
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
	if _, _, err := eventbus.Provide(eventbus.Config{Brokers: "kafka:9092", Extra: "acks=1"}, nil, &bytes.Buffer{}); err == nil {
		t.Fatal("Provide accepted acks=1")
	}
}

func TestProvideWithBrokersPublishesToKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "users-events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]

	var out bytes.Buffer
	pub, cleanup, err := eventbus.Provide(eventbus.Config{Brokers: addr, Extra: "linger.ms=1"}, nil, &out)
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

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("users-events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := cl.PollFetches(ctx).Records()
	if len(recs) != 1 || string(recs[0].Value) != string(m.Payload) || string(recs[0].Key) != "7" {
		t.Fatalf("topic holds %d records (%v), want the one event keyed 7", len(recs), recs)
	}
}

func TestTailWithoutBrokersExplains(t *testing.T) {
	err := eventbus.Tail(context.Background(), eventbus.Config{}, true, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "KAFKA_BROKERS") {
		t.Errorf("Tail = %v, want an error naming KAFKA_BROKERS", err)
	}
}
