package rabbitmq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/marketplace/usersvc/adapters/logpublisher"
	"github.com/marketplace/usersvc/adapters/tracing"
)

// ErrNoHistory is Tail's answer to fromBeginning: an exchange keeps no
// messages, so there is no beginning to read from.
var ErrNoHistory = errors.New("RabbitMQ keeps no history of an exchange: tail shows events published from now on (drop --from-beginning)")

// Tail prints the exchange's events to w until ctx ends, one compact JSON
// line per event: the message body, printed as the log publisher prints it
// and with "trace_id" first when the message carries a trace context
// (cloudEvents:traceparent), so the lines are those the Kafka tail prints. A body that is not JSON (not one of ours) is skipped with a
// warning on slog.Default. It reads through a queue of its own
// (server-named, exclusive, deleted when Tail ends) bound with "#", so it
// takes nothing from other consumers.
func Tail(ctx context.Context, cfg Config, fromBeginning bool, w io.Writer) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if fromBeginning {
		return ErrNoHistory
	}
	dc, err := cfg.dialConfig("events tail")
	if err != nil {
		return err
	}
	conn, err := amqp.DialConfig(cfg.URL, dc)
	if err != nil {
		return fmt.Errorf("connect to %s: %s", Redact(cfg.URL), redactIn(err.Error(), cfg.URL))
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	// Declared as the publisher declares it, so a tail started before the
	// service's first event waits for it instead of failing.
	if err := ch.ExchangeDeclare(cfg.Exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare topic exchange %q: %w", cfg.Exchange, err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return fmt.Errorf("declare the tail's queue: %w", err)
	}
	if err := ch.QueueBind(q.Name, "#", cfg.Exchange, false, nil); err != nil {
		return fmt.Errorf("bind the tail's queue to %q: %w", cfg.Exchange, err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, q.Name, "", true, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	var line bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("the broker closed the tail's channel")
			}
			if !json.Valid(d.Body) {
				slog.Default().Warn("events tail: skipped a message that is not JSON", slog.String("routing_key", d.RoutingKey))
				continue
			}
			line.Reset()
			traceparent, _ := d.Headers["cloudEvents:traceparent"].(string)
			if err := logpublisher.AppendLine(&line, d.Body, tracing.TraceID(traceparent)); err != nil {
				return fmt.Errorf("compact event %s: %w", d.MessageId, err)
			}
			if _, err := w.Write(line.Bytes()); err != nil {
				return fmt.Errorf("write event %s: %w", d.MessageId, err)
			}
		}
	}
}
