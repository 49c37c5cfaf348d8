package kafkatest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/kafka"
)

// NewPublisher returns the adapter's publisher for cfg, closed (flushing
// for up to 5 s) when the test ends. Register it before anything that
// publishes through it, so that it closes after them.
func NewPublisher(t testing.TB, cfg kafka.Config, logger *slog.Logger) *kafka.Publisher {
	t.Helper()
	p, err := kafka.NewPublisher(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}
