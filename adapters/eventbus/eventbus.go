// Package eventbus chooses the event publisher from configuration: Kafka
// when KAFKA_BROKERS is set, JSON lines on standard output otherwise (the
// `make run` default). It is the only place that makes this choice.
package eventbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/google/wire"

	"github.com/marketplace/usersvc/adapters/kafka"
	"github.com/marketplace/usersvc/adapters/logpublisher"
	"github.com/marketplace/usersvc/ports"
)

// ProviderSet provides the configured ports.EventPublisher and its cleanup.
var ProviderSet = wire.NewSet(Provide)

// Config is the event bus part of the environment.
type Config struct {
	// Brokers (KAFKA_BROKERS) is a comma-separated host:port list; empty
	// selects the standard-output publisher.
	Brokers string
	// Topic (KAFKA_TOPIC, default users-events).
	Topic string
	// Source (EVENT_SOURCE, default usersvc) is the CloudEvents source.
	Source string
	// Extra (KAFKA_CONFIG) is key=value,... librdkafka settings such as SASL/TLS.
	Extra string
	// FlushTimeout bounds the flush at shutdown (default 10s).
	FlushTimeout time.Duration
}

// Validate reports every error, naming the environment variable to fix. The
// Kafka settings are checked only when KAFKA_BROKERS is set.
func (c Config) Validate() error {
	if c.FlushTimeout < 0 {
		return fmt.Errorf("event bus flush timeout %v is negative", c.FlushTimeout)
	}
	if !c.kafkaEnabled() {
		return nil
	}
	_, err := c.kafkaConfig()
	return err
}

func (c Config) kafkaEnabled() bool { return strings.TrimSpace(c.Brokers) != "" }

func (c Config) kafkaConfig() (kafka.Config, error) {
	var brokers []string
	for b := range strings.SplitSeq(c.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	extra, err := kafka.ParseExtraConfig(c.Extra)
	kc := kafka.Config{Brokers: brokers, Topic: c.Topic, Source: c.Source, Extra: extra, FlushTimeout: c.FlushTimeout}
	if kc.Topic == "" {
		kc.Topic = kafka.DefaultTopic
	}
	if kc.Source == "" {
		kc.Source = kafka.DefaultSource
	}
	return kc, errors.Join(err, kc.Validate())
}

// Provide returns the publisher cfg selects and a cleanup that flushes and
// closes it; run the cleanup after the relay has stopped.
func Provide(cfg Config, logger *slog.Logger, stdout io.Writer) (ports.EventPublisher, func(), error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if !cfg.kafkaEnabled() {
		logger.Info("KAFKA_BROKERS is empty: events are written to standard output as JSON lines")
		return logpublisher.New(stdout), func() {}, nil
	}
	kc, err := cfg.kafkaConfig()
	if err != nil {
		return nil, nil, err
	}
	p, cleanup, err := kafka.Provide(kc, logger)
	if err != nil {
		return nil, nil, err
	}
	logger.Info("publishing events to Kafka", slog.String("brokers", strings.Join(kc.Brokers, ",")), slog.String("topic", kc.Topic))
	return p, cleanup, nil
}

// Tail runs `usersvc events tail` against the configured cluster.
func Tail(ctx context.Context, cfg Config, fromBeginning bool, w io.Writer) error {
	if !cfg.kafkaEnabled() {
		return errors.New("KAFKA_BROKERS is empty: there is no topic to tail (without a broker, events are printed on the service's standard output)")
	}
	kc, err := cfg.kafkaConfig()
	if err != nil {
		return err
	}
	return kafka.Tail(ctx, kc, fromBeginning, w)
}
