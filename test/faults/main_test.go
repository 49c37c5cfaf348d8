// Package faults_test is the fault matrix's container half: the service in
// process over real HTTP against a MySQL-compatible database container and
// a Kafka-protocol broker container, with the database restarted under
// traffic, the broker down for 30 s under a stream of updates, and races
// of concurrent writers on one row.
package faults_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/marketplace/usersvc/adapters/kafka"
	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/test/containers"
)

func TestMain(m *testing.M) { containers.Main(m) }

// logger shows adapter logs only with -v.
func logger() *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newPublisher publishes to a topic of t's own on the broker container; it
// is flushed and closed after the service using it stopped (register it
// before starting the stack).
func newPublisher(t *testing.T, topic string) *kafka.Publisher {
	t.Helper()
	return kafkatest.NewPublisher(t, kafka.Config{
		Brokers: containers.Shared(t).KafkaBrokers(),
		Topic:   topic,
		Extra:   map[string]string{"reconnect.backoff.max.ms": "200"},
	}, logger())
}
