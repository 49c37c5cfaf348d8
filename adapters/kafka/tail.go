package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/marketplace/usersvc/adapters/logpublisher"
	"github.com/marketplace/usersvc/adapters/tracing"
)

// tailMetadataTimeout bounds the topic lookup at the start of Tail.
const tailMetadataTimeout = 10 * time.Second

// Tail prints the topic's events to w until ctx ends, one JSON line per
// event: the message value (the event contract; the CloudEvents headers
// repeat what it holds), as the log publisher prints without a broker, so
// `| jq` works on both, with "trace_id" put first when the message carries
// a trace context (ce_traceparent): the trace of the request that caused
// the event, for a trace viewer. A value that is not JSON is printed as a
// JSON string; a tombstone (null value, written after a delete event) is
// printed as {"tombstone":true,"key":"<user id>"}. fromBeginning starts at
// the oldest retained event, otherwise at the end. Tail reads every partition present when it starts, commits
// nothing and leaves no consumer group offsets behind; transient broker
// errors are logged to slog.Default and retried.
func Tail(ctx context.Context, cfg Config, fromBeginning bool, w io.Writer) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.Default().With(slog.String("component", "events-tail"), slog.String("topic", cfg.Topic))
	conf := cfg.consumerConfig()
	c, err := ckafka.NewConsumer(&conf)
	if err != nil {
		return fmt.Errorf("create kafka consumer (check KAFKA_CONFIG): %w", err)
	}
	logsDone := make(chan struct{})
	go func() { defer close(logsDone); forwardLogs(c.Logs(), log) }()
	defer func() {
		_ = c.Close()
		<-logsDone
	}()

	parts, err := partitions(c, cfg.Topic)
	if err != nil {
		return err
	}
	start := ckafka.OffsetEnd
	if fromBeginning {
		start = ckafka.OffsetBeginning
	}
	assign := make([]ckafka.TopicPartition, len(parts))
	for i, p := range parts {
		assign[i] = ckafka.TopicPartition{Topic: &cfg.Topic, Partition: p, Offset: start}
	}
	if err := c.Assign(assign); err != nil {
		return fmt.Errorf("assign %s partitions: %w", cfg.Topic, err)
	}

	var line bytes.Buffer
	for ctx.Err() == nil {
		switch e := c.Poll(100).(type) {
		case *ckafka.Message:
			line.Reset()
			if e.Value == nil {
				writeTombstone(&line, e.Key)
			} else if err := writeLine(&line, e.Value, traceID(e.Headers)); err != nil {
				return err
			}
			if _, err := w.Write(line.Bytes()); err != nil {
				return fmt.Errorf("write event: %w", err)
			}
		case ckafka.Error:
			if e.IsFatal() {
				return fmt.Errorf("kafka consumer: %w", e)
			}
			log.Warn("kafka consumer error", slog.Any("error", e))
		}
	}
	return nil
}

// partitions lists the topic's partitions, refusing a missing topic.
func partitions(c *ckafka.Consumer, topic string) ([]int32, error) {
	md, err := c.GetMetadata(&topic, false, int(tailMetadataTimeout.Milliseconds()))
	if err != nil {
		return nil, fmt.Errorf("read metadata of %s: %w", topic, err)
	}
	t, ok := md.Topics[topic]
	if !ok || t.Error.Code() == ckafka.ErrUnknownTopicOrPart || t.Error.Code() == ckafka.ErrUnknownTopic {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	if t.Error.Code() != ckafka.ErrNoError {
		return nil, fmt.Errorf("read metadata of %s: %w", topic, t.Error)
	}
	if len(t.Partitions) == 0 {
		return nil, errors.New("topic " + topic + " has no partitions")
	}
	out := make([]int32, len(t.Partitions))
	for i, p := range t.Partitions {
		out[i] = p.ID
	}
	return out, nil
}

// writeLine appends v as one compact JSON line, led by traceID if any.
func writeLine(buf *bytes.Buffer, v []byte, traceID string) error {
	if json.Valid(v) {
		if err := logpublisher.AppendLine(buf, v, traceID); err != nil {
			return fmt.Errorf("compact event: %w", err)
		}
		return nil
	}
	s, err := json.Marshal(string(v))
	if err != nil {
		return fmt.Errorf("quote event: %w", err)
	}
	buf.Write(s)
	buf.WriteByte('\n')
	return nil
}

// traceID is the trace id the record's CloudEvents traceparent names (the
// plain W3C header as a fallback), "" when it carries none.
func traceID(headers []ckafka.Header) string {
	var plain string
	for _, h := range headers {
		switch h.Key {
		case "ce_traceparent":
			return tracing.TraceID(string(h.Value))
		case "traceparent":
			plain = string(h.Value)
		}
	}
	return tracing.TraceID(plain)
}

// tombstoneLine is how Tail shows a tombstone: no event has this shape
// (events have "id", "action" and "data").
type tombstoneLine struct {
	Tombstone bool   `json:"tombstone"`
	Key       string `json:"key"`
}

// writeTombstone appends the line of a tombstone for key.
func writeTombstone(buf *bytes.Buffer, key []byte) {
	b, _ := json.Marshal(tombstoneLine{Tombstone: true, Key: string(key)}) // cannot fail: a bool and a string
	buf.Write(b)
	buf.WriteByte('\n')
}
