package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/wire"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// ProviderSet provides the RabbitMQ publisher as the port, closed by the
// injector's cleanup.
var ProviderSet = wire.NewSet(Provide, wire.Bind(new(ports.EventPublisher), new(*Publisher)))

var (
	// ErrUnroutable means the exchange had no queue bound for a message's
	// routing key, so the broker dropped it (it came back as a mandatory
	// return). The message counts as not published: it waits in the
	// outbox until a consumer binds a queue, as Kafka events wait for a
	// missing topic.
	ErrUnroutable = errors.New("no queue is bound for the event's routing key")
	// ErrNacked means the broker refused a message (basic.nack).
	ErrNacked = errors.New("broker did not confirm the message")
	// ErrConnectionLost means there was no working connection: it could
	// not be made, or it closed before the broker confirmed the message,
	// which may or may not have been stored.
	ErrConnectionLost = errors.New("no working connection to the broker")
	// ErrBlocked means the broker blocked publishing (a memory or disk
	// alarm): publishing now would only hang.
	ErrBlocked = errors.New("broker blocks publishing (resource alarm)")
	// ErrClosed is returned by Publish after Close.
	ErrClosed = errors.New("rabbitmq publisher is closed")
)

// chunkSize bounds the messages in flight at once. Returns of unroutable
// messages arrive before their confirms in a buffered channel of this size,
// so that none is dropped while Publish waits for the confirms.
const chunkSize = 256

// Publisher sends events on one connection and one confirm-mode channel,
// opened on first use and reopened by the next Publish after a failure, so
// a broker restart costs one failed batch that the relay retries. Publish
// calls are serialised.
type Publisher struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex // guards everything below; held through Publish
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
	blocked chan amqp.Blocking
	isBlock bool
	closed  bool
}

var (
	_ ports.EventPublisher  = (*Publisher)(nil)
	_ ports.BrokerConnector = (*Publisher)(nil)
)

// NewPublisher validates cfg. It does not connect: the first Publish does,
// so the service starts while the broker is down and events wait.
func NewPublisher(cfg Config, logger *slog.Logger) (*Publisher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{cfg: cfg, log: logger.With(slog.String("component", "rabbitmq-publisher"), slog.String("exchange", cfg.Exchange))}, nil
}

// Provide builds the publisher with a cleanup that closes it within
// cfg.CloseTimeout, the shape Wire injectors expect.
func Provide(cfg Config, logger *slog.Logger) (*Publisher, func(), error) {
	p, err := NewPublisher(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	return p, func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CloseTimeout)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			p.log.Warn("closing rabbitmq publisher", slog.Any("error", err))
		}
	}, nil
}

// Publish sends msgs in order to the exchange, each with its event type as
// routing key, persistent and mandatory, and waits for the broker's
// confirms. It returns how many leading messages the broker confirmed and
// routed to at least one queue and, when that is not all, why the next one
// was not. Messages after the first failure may have been delivered too:
// they are sent again later (at least once).
func (p *Publisher) Publish(ctx context.Context, msgs []domain.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err // sending now would only give duplicates later
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.ConfirmTimeout)
		defer cancel()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, ErrClosed
	}
	acked := 0
	for start := 0; start < len(msgs); start += chunkSize {
		part := msgs[start:min(start+chunkSize, len(msgs))]
		n, err := p.publishChunk(ctx, part)
		acked += n
		if err != nil {
			m := msgs[acked]
			return acked, fmt.Errorf("publish event %s (seq %d) to exchange %s: %w", m.EventID, m.Seq, p.cfg.Exchange, err)
		}
	}
	return acked, nil
}

// Connect makes sure the publisher has a working connection and channel,
// making them when it has none; it sends nothing. Without a deadline of
// ctx's own it is bounded by twice DialTimeout: the dial, then the
// channel's set-up. The relay calls it before taking its lock, so a
// replica that cannot reach the broker does not hold the lock meanwhile.
func (p *Publisher) Connect(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*p.cfg.DialTimeout)
		defer cancel()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	return p.ensureChannel(ctx)
}

// publishChunk publishes at most chunkSize messages and waits for all their
// confirms. Callers hold mu.
func (p *Publisher) publishChunk(ctx context.Context, msgs []domain.Message) (int, error) {
	if err := p.ensureChannel(ctx); err != nil {
		return 0, err
	}
	if p.isBlocked() {
		return 0, ErrBlocked
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	var sendErr error
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			sendErr = err
			break
		}
		dc, err := p.ch.PublishWithDeferredConfirm(p.cfg.Exchange, m.Type, true, false, p.publishing(m))
		if err != nil {
			sendErr = p.connectionError(err)
			break
		}
		confirms = append(confirms, dc)
	}
	// Every sent message's confirm, in order, or the reason there is none.
	results := make([]error, len(confirms))
	settled := true
	for i, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		switch {
		case err != nil:
			results[i], settled = err, false
		case !ok && p.ch.IsClosed():
			results[i] = p.connectionError(nil)
		case !ok:
			results[i] = ErrNacked
		}
		if !settled {
			break
		}
	}
	if !settled {
		// The broker did not confirm in time: the connection is suspect
		// (blocked, half-open), and late confirms and returns must stay out
		// of the next Publish, which starts on a new connection.
		p.dropConnection()
	}
	returned := p.drainReturns()
	for i, m := range msgs[:len(confirms)] {
		if results[i] == nil && returned[m.EventID] {
			results[i] = fmt.Errorf("%w: exchange %q, routing key %q", ErrUnroutable, p.cfg.Exchange, m.Type)
			p.log.Error("an event has no queue bound for its routing key: bind one (the service never creates queues); events wait in the outbox",
				slog.String("routing_key", m.Type))
		}
		if results[i] != nil {
			return i, results[i]
		}
	}
	if sendErr != nil {
		return len(confirms), sendErr
	}
	return len(confirms), nil
}

// publishing is the AMQP message of m (CloudEvents binary mode).
// The trace context travels as the CloudEvents distributed-tracing
// extension (cloudEvents:traceparent, cloudEvents:tracestate).
func (p *Publisher) publishing(m domain.Message) amqp.Publishing {
	headers := amqp.Table{
		"cloudEvents:specversion": "1.0",
		"cloudEvents:id":          m.EventID,
		"cloudEvents:type":        m.Type,
		"cloudEvents:source":      p.cfg.Source,
		"cloudEvents:subject":     m.Key,
		"cloudEvents:time":        domain.FormatTime(m.OccurredAt),
	}
	if m.TraceParent != "" {
		headers["cloudEvents:traceparent"] = m.TraceParent
		if m.TraceState != "" {
			headers["cloudEvents:tracestate"] = m.TraceState
		}
	}
	return amqp.Publishing{
		Headers:      headers,
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		// Plain AMQP consumers and the management UI see the same
		// identity without reading headers.
		MessageId: m.EventID,
		Type:      m.Type,
		Timestamp: m.OccurredAt.UTC(),
		AppId:     p.cfg.Source,
		Body:      m.Payload,
	}
}

// ensureChannel (re)opens the connection and the confirm-mode channel and
// declares the exchange. Callers hold mu.
func (p *Publisher) ensureChannel(ctx context.Context) error {
	if p.ch != nil && !p.ch.IsClosed() && !p.conn.IsClosed() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.dropChannel()
	if p.conn == nil || p.conn.IsClosed() {
		if err := p.dial(); err != nil {
			return err
		}
	}
	// The channel's set-up calls take no context: a connection that went
	// silent after the dial would hold them until the heartbeats give up
	// on it. Ending ctx closes the connection, which ends them.
	conn := p.conn
	defer context.AfterFunc(ctx, func() { _ = conn.CloseDeadline(time.Now()) })()
	ch, err := conn.Channel()
	if err != nil {
		return p.connectionError(err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return fmt.Errorf("enable publisher confirms: %w", p.connectionError(err))
	}
	// Durable, so it survives a broker restart with its bindings; declaring
	// an existing identical exchange is a no-op.
	if err := ch.ExchangeDeclare(p.cfg.Exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare topic exchange %q (an exchange of another type or durability under this name is refused): %w", p.cfg.Exchange, p.connectionError(err))
	}
	p.returns = ch.NotifyReturn(make(chan amqp.Return, chunkSize))
	p.ch = ch
	return nil
}

func (p *Publisher) dial() error {
	dc, err := p.cfg.dialConfig("event publisher")
	if err != nil {
		return err
	}
	conn, err := amqp.DialConfig(p.cfg.URL, dc)
	if err != nil {
		// The library's dial errors name the host, never the credentials.
		return fmt.Errorf("connect to %s: %w", Redact(p.cfg.URL), p.connectionError(err))
	}
	p.blocked = conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	p.isBlock = false
	p.conn = conn
	p.log.Info("connected to RabbitMQ", slog.String("url", Redact(p.cfg.URL)))
	return nil
}

// isBlocked reads the latest connection.blocked/unblocked notifications.
func (p *Publisher) isBlocked() bool {
	for {
		select {
		case b, ok := <-p.blocked:
			if !ok {
				return p.isBlock
			}
			p.isBlock = b.Active
			if b.Active {
				p.log.Warn("RabbitMQ blocks publishing", slog.String("reason", b.Reason))
			}
		default:
			return p.isBlock
		}
	}
}

// drainReturns collects the returns received so far, by event id.
func (p *Publisher) drainReturns() map[string]bool {
	returned := map[string]bool{}
	for {
		select {
		case r, ok := <-p.returns:
			if !ok {
				return returned
			}
			returned[r.MessageId] = true
		default:
			return returned
		}
	}
}

// dropChannel closes the channel, keeping the connection.
func (p *Publisher) dropChannel() {
	if p.ch != nil {
		_ = p.ch.Close()
		p.ch, p.returns = nil, nil
	}
}

// closeGrace bounds the close handshake of a connection given up on.
const closeGrace = time.Second

// dropConnection abandons the connection and its channel without waiting
// for a broker that may not answer.
func (p *Publisher) dropConnection() {
	if conn := p.conn; conn != nil {
		go func() { _ = conn.CloseDeadline(time.Now().Add(closeGrace)) }()
	}
	p.conn, p.ch, p.returns, p.blocked = nil, nil, nil, nil
}

// connectionError tells a refusal by the broker (access refused, an
// inequivalent exchange, a missing virtual host), which a reconnect alone
// does not fix, from a lost or failed connection, which it may: those
// match ErrConnectionLost. err is the library's error, or nil when only the
// closed state is known.
func (p *Publisher) connectionError(err error) error {
	var aerr *amqp.Error
	if errors.As(err, &aerr) && aerr.Code != amqp.ChannelError && !aerr.Temporary() && (aerr.Server || aerr.Code == amqp.AccessRefused) {
		return err
	}
	if err == nil {
		return ErrConnectionLost
	}
	return fmt.Errorf("%w: %w", ErrConnectionLost, err)
}

// Close closes the channel and the connection. Unconfirmed messages stay
// unmarked in the outbox and are sent again by the next relay. Call it
// after the relay has stopped.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.dropChannel()
	if p.conn == nil || p.conn.IsClosed() {
		return nil
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(p.cfg.CloseTimeout)
	}
	if err := p.conn.CloseDeadline(deadline); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("close rabbitmq connection: %w", err)
	}
	return nil
}
