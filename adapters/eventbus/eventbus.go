// Package eventbus chooses the event publisher from configuration (EVENT_BUS):
//
//	kafka     Kafka (the default); KAFKA_BROKERS is required
//	rabbitmq  a RabbitMQ topic exchange (AMQP_URL, EVENT_EXCHANGE)
//	log       JSON lines on standard output (development: `make run` sets it)
//
// There is no fallback: a production service that silently wrote every
// user's data to standard output and marked the events published would lose
// them, so a missing broker stops the start-up instead. The former "auto"
// (stdout when KAFKA_BROKERS was empty) is refused with a message saying
// what to set.
//
// It is the only place that makes this choice: adding a bus touches this
// file, the adapter's package and the README.
package eventbus

import (
	"cmp"
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
	"github.com/marketplace/usersvc/adapters/rabbitmq"
	"github.com/marketplace/usersvc/adapters/tlsfiles"
	"github.com/marketplace/usersvc/adapters/tracing"
	"github.com/marketplace/usersvc/ports"
)

// ProviderSet provides the configured ports.EventPublisher and its cleanup.
var ProviderSet = wire.NewSet(Provide)

// Buses EVENT_BUS names.
const (
	BusKafka    = "kafka"
	BusRabbitMQ = "rabbitmq"
	BusLog      = "log"
)

// Buses lists EVENT_BUS's values.
var Buses = []string{BusKafka, BusRabbitMQ, BusLog}

// removedAuto is the value EVENT_BUS no longer accepts.
const removedAuto = "auto"

// Config is the event bus part of the environment.
type Config struct {
	// Bus (EVENT_BUS) selects the publisher; empty means BusKafka.
	Bus string
	// Brokers (KAFKA_BROKERS) is a comma-separated host:port list, required
	// by BusKafka.
	Brokers string
	// Topic (KAFKA_TOPIC, default users-events).
	Topic string
	// Source (EVENT_SOURCE, default usersvc) is the CloudEvents source.
	Source string
	// Extra (KAFKA_CONFIG) is key=value,... librdkafka settings such as SASL/TLS.
	Extra string
	// NoTombstones (KAFKA_TOMBSTONES=false) stops the tombstone after each
	// delete event on Kafka.
	NoTombstones bool
	// AMQPURL (AMQP_URL) is the RabbitMQ broker; it holds a password.
	AMQPURL string
	// AMQPTLS (AMQP_TLS_CA, AMQP_TLS_CERT, AMQP_TLS_KEY) are the broker's
	// CA and a client certificate for amqps://.
	AMQPTLS tlsfiles.Files
	// AMQPConfirmTimeout (AMQP_CONFIRM_TIMEOUT, default 30s) bounds the
	// wait for RabbitMQ's confirms of one batch.
	AMQPConfirmTimeout time.Duration
	// Exchange (EVENT_EXCHANGE, default users-events) is the RabbitMQ
	// topic exchange.
	Exchange string
	// FlushTimeout bounds the flush (Kafka) or close (RabbitMQ) at
	// shutdown (default 10s).
	FlushTimeout time.Duration
}

// Validate reports every error, naming the environment variable to fix.
// Only the selected bus's settings are checked.
func (c Config) Validate() error {
	if c.FlushTimeout < 0 {
		return fmt.Errorf("event bus flush timeout %v is negative", c.FlushTimeout)
	}
	bus, err := c.Selected()
	if err != nil {
		return err
	}
	switch bus {
	case BusKafka:
		_, err = c.kafkaConfig()
	case BusRabbitMQ:
		err = c.rabbitConfig().Validate()
	}
	return err
}

// Selected resolves EVENT_BUS to the bus in use: BusKafka, BusRabbitMQ or
// BusLog.
func (c Config) Selected() (string, error) {
	switch c.Bus {
	case "", BusKafka:
		if strings.TrimSpace(c.Brokers) == "" {
			return "", errors.New("EVENT_BUS=kafka (the default) needs KAFKA_BROKERS; for development without a broker set EVENT_BUS=log (make run does)")
		}
		return BusKafka, nil
	case BusRabbitMQ, BusLog:
		return c.Bus, nil
	case removedAuto:
		return "", errors.New("EVENT_BUS=auto is no longer accepted (it wrote events to standard output when KAFKA_BROKERS was empty): set EVENT_BUS=kafka with KAFKA_BROKERS, or EVENT_BUS=log for development")
	}
	return "", fmt.Errorf("EVENT_BUS: %q is not one of %s", c.Bus, strings.Join(Buses, ", "))
}

func (c Config) rabbitConfig() rabbitmq.Config {
	return rabbitmq.Config{
		URL: c.AMQPURL, Exchange: c.Exchange, Source: c.Source, TLS: c.AMQPTLS,
		CloseTimeout: c.FlushTimeout, ConfirmTimeout: c.AMQPConfirmTimeout,
	}
}

func (c Config) kafkaConfig() (kafka.Config, error) {
	var brokers []string
	for b := range strings.SplitSeq(c.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	extra, err := kafka.ParseExtraConfig(c.Extra)
	kc := kafka.Config{Brokers: brokers, Topic: c.Topic, Source: c.Source, Extra: extra, FlushTimeout: c.FlushTimeout, NoTombstones: c.NoTombstones}
	if kc.Topic == "" {
		kc.Topic = kafka.DefaultTopic
	}
	if kc.Source == "" {
		kc.Source = kafka.DefaultSource
	}
	return kc, errors.Join(err, kc.Validate())
}

// Provide returns the publisher cfg selects and a cleanup that flushes and
// closes it; run the cleanup after the relay has stopped. With tracing on
// (tr may be nil) each message gets a publish span (see tracing.Publisher).
func Provide(cfg Config, logger *slog.Logger, stdout io.Writer, tr *tracing.Provider) (ports.EventPublisher, func(), error) {
	pub, cleanup, system, destination, err := provide(cfg, logger, stdout)
	if err != nil {
		return nil, nil, err
	}
	return tr.Publisher(pub, system, destination), cleanup, nil
}

func provide(cfg Config, logger *slog.Logger, stdout io.Writer) (pub ports.EventPublisher, cleanup func(), system, destination string, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, "", "", err
	}
	bus, _ := cfg.Selected()
	switch bus {
	case BusLog:
		logger.Warn("events are written to standard output as JSON lines (EVENT_BUS=log): development only, no consumer receives them")
		return logpublisher.New(stdout), func() {}, "stdout", "stdout", nil
	case BusRabbitMQ:
		rc := cfg.rabbitConfig()
		p, cleanup, err := rabbitmq.Provide(rc, logger)
		if err != nil {
			return nil, nil, "", "", err
		}
		exchange := cmp.Or(rc.Exchange, rabbitmq.DefaultExchange)
		logger.Info("publishing events to RabbitMQ", slog.String("url", rabbitmq.Redact(cmp.Or(rc.URL, rabbitmq.DefaultURL))),
			slog.String("exchange", exchange))
		return p, cleanup, "rabbitmq", exchange, nil
	}
	kc, err := cfg.kafkaConfig()
	if err != nil {
		return nil, nil, "", "", err
	}
	p, cleanup, err := kafka.Provide(kc, logger)
	if err != nil {
		return nil, nil, "", "", err
	}
	logger.Info("publishing events to Kafka", slog.String("brokers", strings.Join(kc.Brokers, ",")), slog.String("topic", kc.Topic))
	return p, cleanup, "kafka", kc.Topic, nil
}

// Tail runs `usersvc events tail` against the configured bus.
func Tail(ctx context.Context, cfg Config, fromBeginning bool, w io.Writer) error {
	bus, err := cfg.Selected()
	if err != nil {
		return err
	}
	switch bus {
	case BusLog:
		return errors.New("no broker is configured (EVENT_BUS=log): there is nothing to tail; events are printed on the service's standard output")
	case BusRabbitMQ:
		return rabbitmq.Tail(ctx, cfg.rabbitConfig(), fromBeginning, w)
	}
	kc, err := cfg.kafkaConfig()
	if err != nil {
		return err
	}
	return kafka.Tail(ctx, kc, fromBeginning, w)
}
