package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/wire"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// ProviderSet provides the Kafka publisher as the port, closed (flushed) by
// the injector's cleanup.
var ProviderSet = wire.NewSet(Provide, wire.Bind(new(ports.EventPublisher), new(*Publisher)))

// ErrUnknownTopic means the topic does not exist on the cluster. The
// service never creates it: an operator must, and events wait meanwhile.
var ErrUnknownTopic = errors.New("kafka topic does not exist")

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("kafka publisher is closed")

// Queue-full backoff: librdkafka's local queue is full when the broker is
// slower than the relay; waiting for delivery reports frees room.
const (
	queueFullMinWait = time.Millisecond
	queueFullMaxWait = 100 * time.Millisecond
	// metadataTimeout bounds the topic lookup after a delivery timeout.
	metadataTimeout = 2 * time.Second
)

// Publisher sends events through one long-lived idempotent producer.
// Publish calls are serialised; each waits for the delivery reports of its
// own messages.
type Publisher struct {
	cfg  Config
	conf ckafka.ConfigMap
	log  *slog.Logger

	mu     sync.Mutex // guards prod, done and closed; held through Publish
	prod   *ckafka.Producer
	done   chan struct{} // closed when prod's event and log goroutines end
	closed bool

	// fatal is set by the event goroutine when librdkafka reports a fatal
	// error; the next Publish then builds a new producer.
	fatal atomic.Bool
	// suspect is set when a Publish was not wholly acknowledged: the next
	// Connect asks the cluster for the topic before the relay takes its lock.
	suspect atomic.Bool
}

var (
	_ ports.EventPublisher  = (*Publisher)(nil)
	_ ports.BrokerConnector = (*Publisher)(nil)
)

// Connect returns at once while publishing works. After a Publish that
// was not wholly acknowledged it asks the cluster for the topic's metadata
// (within 2 s, or ctx's deadline) and fails when no broker answers, so the
// relay of a replica cut off from the brokers does not take the relay lock
// to wait out message.timeout.ms again while the others could publish.
func (p *Publisher) Connect(ctx context.Context) error {
	if !p.suspect.Load() {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	wait := metadataTimeout
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	if wait <= 0 {
		return context.DeadlineExceeded
	}
	topic := p.cfg.Topic
	if _, err := p.prod.GetMetadata(&topic, false, int(wait.Milliseconds())); err != nil {
		return fmt.Errorf("ask %s for topic %s: %w", strings.Join(p.cfg.Brokers, ","), topic, err)
	}
	p.suspect.Store(false)
	return nil
}

// NewPublisher validates cfg and starts the producer. It does not contact
// the brokers: librdkafka connects in the background and retries.
func NewPublisher(cfg Config, logger *slog.Logger) (*Publisher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{cfg: cfg, conf: cfg.producerConfig(), log: logger.With(slog.String("component", "kafka-publisher"), slog.String("topic", cfg.Topic))}
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

// Provide builds the publisher with a cleanup that flushes it within
// cfg.FlushTimeout, the shape Wire injectors expect.
func Provide(cfg Config, logger *slog.Logger) (*Publisher, func(), error) {
	p, err := NewPublisher(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	return p, func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.FlushTimeout)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			p.log.Warn("closing kafka publisher", slog.Any("error", err))
		}
	}, nil
}

// start creates a producer and the goroutines draining its channels.
// Callers hold mu (or own p exclusively).
func (p *Publisher) start() error {
	conf := ckafka.ConfigMap{}
	for k, v := range p.conf {
		conf[k] = v
	}
	prod, err := ckafka.NewProducer(&conf)
	if err != nil {
		return fmt.Errorf("create kafka producer (check KAFKA_CONFIG): %w", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { p.watchEvents(prod) })
	wg.Go(func() { forwardLogs(prod.Logs(), p.log) })
	go func() { wg.Wait(); close(done) }()
	p.prod, p.done = prod, done
	p.fatal.Store(false)
	return nil
}

// stop closes the current producer and waits for its goroutines.
func (p *Publisher) stop() {
	p.prod.Close()
	<-p.done
	p.prod, p.done = nil, nil
}

// watchEvents drains the producer's event channel for its whole life:
// librdkafka stalls when it is not read. Delivery reports do not come here
// (each Publish has its own channel); errors and stray events do.
func (p *Publisher) watchEvents(prod *ckafka.Producer) {
	var last struct {
		code ckafka.ErrorCode
		at   time.Time
	}
	for ev := range prod.Events() {
		switch e := ev.(type) {
		case ckafka.Error:
			if e.IsFatal() {
				p.fatal.Store(true)
				p.log.Error("kafka producer hit a fatal error; it will be rebuilt before the next publish", slog.Any("error", e))
				continue
			}
			// Broker-down errors repeat on every reconnect attempt: one line
			// per code and 30 s is enough.
			if e.Code() == last.code && time.Since(last.at) < 30*time.Second {
				continue
			}
			last.code, last.at = e.Code(), time.Now()
			p.log.Warn("kafka producer error", slog.String("code", e.Code().String()), slog.Any("error", e))
		case *ckafka.Message:
			if err := e.TopicPartition.Error; err != nil {
				p.log.Warn("kafka delivery failed for a message without a publish call", slog.Any("error", err))
			}
		}
	}
}

// Publish produces msgs in order and waits for every delivery report (or
// ctx). Each delete event is followed by a tombstone for its key (unless
// Config.NoTombstones), so a compacted topic drops everything it kept of
// the user; both share the key, hence the partition, and keep their order.
// It returns how many leading messages the broker acknowledged, a delete
// counting only once its tombstone is acknowledged too, and, when that is
// not all of them, the first failure. librdkafka retries transient failures
// itself, within message.timeout.ms.
func (p *Publisher) Publish(ctx context.Context, msgs []domain.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err // enqueuing now would only send duplicates later
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, ErrClosed
	}
	if p.fatal.Load() || p.prod.GetFatalError() != nil {
		p.log.Warn("rebuilding the kafka producer after a fatal error")
		p.stop()
		if err := p.start(); err != nil {
			return 0, err
		}
	}
	recs := p.records(msgs)
	b := &batch{
		reports: make(chan ckafka.Event, len(recs)), // never blocks librdkafka, even after we stop waiting
		results: make([]error, len(recs)),
		settled: make([]bool, len(recs)),
	}
	produced, produceErr := p.produceAll(ctx, b, msgs, recs)
	b.await(ctx)
	acked := b.ackedPrefix()
	p.suspect.Store(acked < len(recs))
	if acked == len(recs) {
		return ackedMessages(recs, acked, len(msgs)), nil
	}
	err := b.results[acked]
	switch {
	case acked >= produced && produceErr != nil:
		err = produceErr
	case !b.settled[acked]:
		err = fmt.Errorf("waiting for delivery: %w", context.Cause(ctx))
	}
	err = p.explain(err)
	failed := recs[acked]
	m := msgs[failed.msg]
	what := "event"
	if failed.tombstone {
		what = "tombstone after event"
	}
	return ackedMessages(recs, acked, len(msgs)), fmt.Errorf("publish %s %s (seq %d) to %s: %w", what, m.EventID, m.Seq, p.cfg.Topic, err)
}

// record is one Kafka record of a Publish call: message msg's event, or
// the tombstone that follows it.
type record struct {
	msg       int
	tombstone bool
}

// ackedMessages is how many leading messages (of n in all) are wholly
// acknowledged when the first acked records are: a delete counts only once
// its tombstone is acknowledged too, so that a failed tombstone is sent
// again with its event rather than lost.
func ackedMessages(recs []record, acked, n int) int {
	if acked >= len(recs) {
		return n
	}
	return recs[acked].msg
}

// tombstoneAfter is the event type a tombstone follows.
var tombstoneAfter = domain.ActionDelete.EventType()

// records lists what msgs become on the topic, in order.
func (p *Publisher) records(msgs []domain.Message) []record {
	recs := make([]record, 0, len(msgs))
	for i, m := range msgs {
		recs = append(recs, record{msg: i})
		if m.Type == tombstoneAfter && !p.cfg.NoTombstones {
			recs = append(recs, record{msg: i, tombstone: true})
		}
	}
	return recs
}

// batch collects the delivery reports of one Publish call, one per record.
type batch struct {
	reports chan ckafka.Event
	results []error
	settled []bool
	pending int
}

func (b *batch) settle(ev ckafka.Event) {
	m, ok := ev.(*ckafka.Message)
	if !ok {
		return
	}
	i, ok := m.Opaque.(int)
	if !ok || i < 0 || i >= len(b.results) || b.settled[i] {
		return
	}
	b.results[i], b.settled[i] = m.TopicPartition.Error, true
	b.pending--
}

// await waits for every produced record's report, or for ctx.
func (b *batch) await(ctx context.Context) {
	for b.pending > 0 {
		select {
		case ev := <-b.reports:
			b.settle(ev)
		case <-ctx.Done():
			return
		}
	}
}

// ackedPrefix is the number of leading records acknowledged.
func (b *batch) ackedPrefix() int {
	n := 0
	for n < len(b.results) && b.settled[n] && b.results[n] == nil {
		n++
	}
	return n
}

// produceAll enqueues recs in order and returns how many it enqueued; it
// stops at the first record it cannot enqueue, since sending later ones
// would reorder a user's events.
func (p *Publisher) produceAll(ctx context.Context, b *batch, msgs []domain.Message, recs []record) (int, error) {
	topic := p.cfg.Topic
	wait := queueFullMinWait
	for i, r := range recs {
		if err := ctx.Err(); err != nil {
			return i, fmt.Errorf("enqueue: %w", context.Cause(ctx))
		}
		m := msgs[r.msg]
		km := &ckafka.Message{
			TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: ckafka.PartitionAny},
			Key:            []byte(m.Key),
			Timestamp:      m.OccurredAt,
			Opaque:         i,
		}
		if !r.tombstone { // a tombstone is a null value without headers
			km.Value, km.Headers = m.Payload, p.headers(m)
		}
		for {
			err := p.prod.Produce(km, b.reports)
			if err == nil {
				b.pending++
				wait = queueFullMinWait
				break
			}
			var kerr ckafka.Error
			if !errors.As(err, &kerr) || kerr.Code() != ckafka.ErrQueueFull {
				if errors.As(err, &kerr) && kerr.IsFatal() {
					p.fatal.Store(true)
				}
				return i, fmt.Errorf("enqueue: %w", err)
			}
			// The local queue is full: let deliveries free room, then retry.
			t := time.NewTimer(wait)
			select {
			case ev := <-b.reports:
				b.settle(ev)
			case <-t.C:
				wait = min(wait*2, queueFullMaxWait)
			case <-ctx.Done():
				t.Stop()
				return i, fmt.Errorf("enqueue while the local queue is full: %w", context.Cause(ctx))
			}
			t.Stop()
		}
	}
	return len(recs), nil
}

// headers are the CloudEvents binary-mode attributes of m, and its trace
// context twice: as the CloudEvents distributed-tracing extension
// (ce_traceparent, ce_tracestate) and as the plain W3C headers that Kafka
// instrumentations read (traceparent, tracestate).
func (p *Publisher) headers(m domain.Message) []ckafka.Header {
	h := []ckafka.Header{
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_id", Value: []byte(m.EventID)},
		{Key: "ce_type", Value: []byte(m.Type)},
		{Key: "ce_source", Value: []byte(p.cfg.Source)},
		{Key: "ce_subject", Value: []byte(m.Key)},
		{Key: "ce_time", Value: []byte(domain.FormatTime(m.OccurredAt))},
		{Key: "content-type", Value: []byte("application/json")},
	}
	if m.TraceParent != "" {
		h = append(h, ckafka.Header{Key: "ce_traceparent", Value: []byte(m.TraceParent)},
			ckafka.Header{Key: "traceparent", Value: []byte(m.TraceParent)})
		if m.TraceState != "" {
			h = append(h, ckafka.Header{Key: "ce_tracestate", Value: []byte(m.TraceState)},
				ckafka.Header{Key: "tracestate", Value: []byte(m.TraceState)})
		}
	}
	return h
}

// explain turns a missing topic into ErrUnknownTopic with a log line an
// operator can act on. librdkafka reports a missing topic only after
// topic.metadata.propagation.max.ms; a message that timed out earlier gets
// a metadata lookup to tell the two apart.
func (p *Publisher) explain(err error) error {
	var kerr ckafka.Error
	if !errors.As(err, &kerr) {
		return err
	}
	missing := kerr.Code() == ckafka.ErrUnknownTopicOrPart || kerr.Code() == ckafka.ErrUnknownTopic
	if !missing && kerr.Code() == ckafka.ErrMsgTimedOut {
		missing = p.topicMissing()
	}
	if missing {
		p.log.Error("kafka topic does not exist: create it (the service never auto-creates topics); events wait in the outbox",
			slog.String("brokers", strings.Join(p.cfg.Brokers, ",")))
		return fmt.Errorf("%w: %q: %w", ErrUnknownTopic, p.cfg.Topic, err)
	}
	return err
}

// topicMissing asks the cluster whether the topic exists (the producer never
// asks for auto-creation). An unreachable cluster counts as "not known missing".
func (p *Publisher) topicMissing() bool {
	topic := p.cfg.Topic
	md, err := p.prod.GetMetadata(&topic, false, int(metadataTimeout.Milliseconds()))
	if err != nil {
		return false
	}
	t, ok := md.Topics[topic]
	return !ok || t.Error.Code() == ckafka.ErrUnknownTopicOrPart || t.Error.Code() == ckafka.ErrUnknownTopic
}

// Close flushes queued messages until ctx's deadline (or FlushTimeout) and
// closes the producer. Messages not flushed stay unmarked in the outbox and
// are sent again by the next relay. Call it after the relay has stopped.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(p.cfg.FlushTimeout)
	}
	left := p.prod.Flush(int(max(time.Until(deadline), 0).Milliseconds()))
	p.stop()
	if left > 0 {
		return fmt.Errorf("close kafka publisher: %d messages or requests not flushed before the deadline", left)
	}
	return nil
}

// forwardLogs writes librdkafka's log lines (syslog levels) to logger until
// the client closes the channel. Connection failures (tag FAIL) repeat on
// every reconnect and are also reported as error events, which are logged
// with rate limiting: their log lines go to debug. The lines belong to the
// client's lifetime, not to a request: there is no context to pass on.
//
//nolint:contextcheck // see above
func forwardLogs(logs <-chan ckafka.LogEvent, logger *slog.Logger) {
	for l := range logs {
		level := slog.LevelDebug
		switch {
		case l.Tag == "FAIL":
		case l.Level <= 3:
			level = slog.LevelError
		case l.Level == 4:
			level = slog.LevelWarn
		case l.Level == 5:
			level = slog.LevelInfo
		}
		logger.Log(context.Background(), level, l.Message, slog.String("librdkafka", l.Tag), slog.String("client", l.Name))
	}
}
