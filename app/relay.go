package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Relay defaults, used for zero fields of RelayConfig.
const (
	DefaultPollInterval  = time.Second
	DefaultBatchSize     = 500
	DefaultRetention     = 24 * time.Hour
	DefaultPurgeInterval = time.Minute
	DefaultMinBackoff    = 200 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
)

// errRelayLockLost ends a drain whose relay lock was lost.
var errRelayLockLost = errors.New("relay lock lost")

// markTimeout bounds the MarkPublished call made after the relay's context
// ended, so that acknowledged messages are recorded even during shutdown.
const markTimeout = 5 * time.Second

// RelayConfig tunes the relay. Zero fields take the defaults above.
type RelayConfig struct {
	// PollInterval (OUTBOX_POLL_INTERVAL) is how often the relay looks for
	// rows written by other processes; commits in this process wake it at once.
	PollInterval time.Duration
	// BatchSize is how many messages one Publish call carries at most.
	BatchSize int
	// Retention (OUTBOX_RETENTION) is how long published rows are kept.
	Retention time.Duration
	// PurgeInterval is how often the lock holder deletes expired rows.
	PurgeInterval time.Duration
	// MinBackoff and MaxBackoff bound the exponential wait after a failure.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Logger receives failures; nil discards them.
	Logger *slog.Logger
}

func (c RelayConfig) withDefaults() RelayConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.Retention, DefaultRetention)
	def(&c.PurgeInterval, DefaultPurgeInterval)
	def(&c.MinBackoff, DefaultMinBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// RelayStats is what the relay reports to metrics.
type RelayStats struct {
	// Backlog is the number of unpublished messages at the last check.
	// Run checks when it starts, after each poll tick's drain and after
	// each failed attempt, not after drains woken by Notify (two queries a
	// drain would slow a busy relay down): a check is at most a
	// PollInterval old, plus the drain or backoff under way.
	Backlog int64
	// OldestAge is the age of the oldest unpublished message at the last
	// check (0 when there was none).
	OldestAge time.Duration
	// CheckedAt is when the backlog was last measured (zero before the first check).
	CheckedAt time.Time
	// Published counts messages the broker acknowledged since the relay started.
	Published uint64
	// FailedAttempts counts drain attempts (read, publish or mark) that failed.
	FailedAttempts uint64
}

// Relay moves committed outbox messages to the event publisher: in Seq
// order, marking only what the broker acknowledged, retrying the rest with
// a capped exponential backoff. Delivery is at least once: a message may be
// sent again after a failure, never skipped.
type Relay struct {
	outbox ports.Outbox
	lock   ports.RelayLock
	pub    ports.EventPublisher
	clock  ports.Clock
	cfg    RelayConfig
	log    *slog.Logger

	wake chan struct{}

	// sleep waits d or until ctx ends; tests replace it to run without delays.
	sleep func(ctx context.Context, d time.Duration)
	// jitter spreads a backoff over [d/2, d] so that replicas do not retry in step.
	jitter func(d time.Duration) time.Duration

	mu        sync.Mutex
	stats     RelayStats
	lastPurge time.Time
}

var _ ports.OutboxNotifier = (*Relay)(nil)

// NewRelay wires the relay; call Run to start it.
func NewRelay(outbox ports.Outbox, lock ports.RelayLock, pub ports.EventPublisher, clock ports.Clock, cfg RelayConfig) *Relay {
	cfg = cfg.withDefaults()
	return &Relay{
		outbox: outbox,
		lock:   lock,
		pub:    pub,
		clock:  clock,
		cfg:    cfg,
		log:    cfg.Logger,
		wake:   make(chan struct{}, 1),
		sleep:  sleepCtx,
		jitter: halfJitter,
	}
}

// Notify wakes the relay without blocking; several calls before the relay
// runs again coalesce into one drain.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the relay's counters.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Run publishes until ctx ends, then returns nil. It drains on every
// Notify and every poll tick, and after a failure retries with backoff
// (notifications do not cut a backoff short, so a burst of commits during
// an outage does not hammer the broker). It measures the backlog as
// RelayStats says.
func (r *Relay) Run(ctx context.Context) error {
	ticker := time.NewTicker(r.cfg.PollInterval)
	defer ticker.Stop()
	failures := 0
	measure := true // at start, then after poll ticks and failures
	for {
		err := r.cycle(ctx)
		if measure || err != nil {
			r.refreshBacklog(ctx)
			measure = false
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failures++
			r.count(0, 1)
			wait := r.backoff(failures)
			r.log.LogAttrs(ctx, slog.LevelWarn, "outbox relay: publishing failed, will retry",
				slog.Int("attempt", failures), slog.Duration("retry_in", wait), slog.Any("error", err))
			r.sleep(ctx, wait)
			continue
		}
		failures = 0
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-ticker.C:
			measure = true
		}
	}
}

// cycle takes the relay lock and drains the outbox. Not getting the lock is
// not an error: another replica is publishing, and the next tick tries again.
// Flush publishes what is pending once more, after Run has returned: at
// shutdown it sends the events of the last requests served instead of
// leaving them to the next start. ctx bounds it (a broker that is down
// keeps them in the outbox, where they wait for the next relay).
func (r *Relay) Flush(ctx context.Context) error {
	return r.cycle(ctx)
}

func (r *Relay) cycle(ctx context.Context) error {
	// A publisher that cannot reach the broker fails here, before the lock:
	// holding it through a connection attempt to an unreachable broker
	// would stop every replica publishing for as long as the attempt lasts.
	if c, ok := r.pub.(ports.BrokerConnector); ok {
		if err := c.Connect(ctx); err != nil {
			return fmt.Errorf("connect to the broker: %w", err)
		}
	}
	held, unlock, ok, err := r.lock.TryLock(ctx)
	if err != nil {
		return fmt.Errorf("take relay lock: %w", err)
	}
	if !ok {
		return nil
	}
	defer unlock()
	err = r.drain(held)
	if ctx.Err() == nil && held.Err() != nil {
		// Cut off from the lock's database: what is left is published by
		// whoever holds the lock next, maybe this relay after a backoff.
		return errors.Join(errRelayLockLost, err)
	}
	if err != nil {
		return err
	}
	r.maybePurge(held)
	return nil
}

// drain publishes batches until one comes back short. The mark of batch n
// runs while batch n+1, read as the unpublished messages after n's last
// Seq, is published: Publish calls stay sequential and in Seq order, and
// batch n+1 is marked only after batch n's mark succeeded. A failure stops
// the drain after the mark in flight ended; the next drain reads from the
// first unpublished message again, so nothing is skipped (acknowledged but
// unmarked messages are sent again: duplicates, never losses), and a
// message that committed late with a Seq below the read position is
// published then.
func (r *Relay) drain(ctx context.Context) (drainErr error) {
	var marking chan error // the running mark of the previous batch, nil when none
	endMark := func() error {
		if marking == nil {
			return nil
		}
		err := <-marking
		marking = nil
		return err
	}
	defer func() { // no mark outlives the drain
		if err := endMark(); err != nil {
			drainErr = errors.Join(drainErr, err)
		}
	}()
	var after int64
	for ctx.Err() == nil {
		msgs, err := r.outbox.PendingMessages(ctx, after, r.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		if len(msgs) == 0 {
			return nil
		}
		acked, pubErr := r.pub.Publish(ctx, msgs)
		acked = min(max(acked, 0), len(msgs))
		if pubErr == nil && acked < len(msgs) {
			pubErr = fmt.Errorf("publisher acknowledged %d of %d messages without an error", acked, len(msgs))
		}
		if merr := endMark(); merr != nil {
			// This batch stays unmarked, so the next drain sends both
			// batches again in order.
			return errors.Join(merr, pubErr)
		}
		if pubErr != nil {
			if err := r.mark(ctx, msgs[:acked]); err != nil {
				// The acknowledged messages will be sent again: a duplicate, not a loss.
				return errors.Join(pubErr, err)
			}
			return fmt.Errorf("publish %d messages from seq %d: %w", len(msgs)-acked, msgs[acked].Seq, pubErr)
		}
		done := make(chan error, 1)
		go func() { done <- r.mark(ctx, msgs) }()
		marking = done
		if len(msgs) < r.cfg.BatchSize {
			return nil
		}
		after = msgs[len(msgs)-1].Seq
	}
	return nil
}

// mark records acknowledged messages. It survives the end of ctx so that a
// shutdown right after a publish does not cause needless duplicates.
func (r *Relay) mark(ctx context.Context, msgs []domain.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	seqs := make([]int64, len(msgs))
	for i, m := range msgs {
		seqs[i] = m.Seq
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	if err := r.outbox.MarkPublished(mctx, seqs, r.clock.Now().UTC()); err != nil {
		return fmt.Errorf("mark %d messages published from seq %d: %w", len(seqs), seqs[0], err)
	}
	r.count(uint64(len(seqs)), 0)
	return nil
}

// maybePurge deletes rows published more than Retention ago, at most once
// per PurgeInterval. A failure is only logged: it delays cleanup, not events.
func (r *Relay) maybePurge(ctx context.Context) {
	now := r.clock.Now()
	r.mu.Lock()
	due := r.lastPurge.IsZero() || now.Sub(r.lastPurge) >= r.cfg.PurgeInterval
	r.mu.Unlock()
	if !due || ctx.Err() != nil {
		return
	}
	n, err := r.outbox.PurgePublished(ctx, now.Add(-r.cfg.Retention).UTC())
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "outbox relay: purge failed", slog.Any("error", err))
		return
	}
	r.mu.Lock()
	r.lastPurge = now
	r.mu.Unlock()
	if n > 0 {
		r.log.LogAttrs(ctx, slog.LevelDebug, "outbox relay: purged published messages", slog.Int64("count", n))
	}
}

// refreshBacklog measures the backlog for Stats. Every replica measures it,
// lock holder or not, so any of them can report it.
func (r *Relay) refreshBacklog(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	count, oldest, err := r.outbox.Backlog(ctx)
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "outbox relay: measuring backlog failed", slog.Any("error", err))
		return
	}
	now := r.clock.Now()
	var age time.Duration
	if count > 0 && !oldest.IsZero() {
		age = max(now.Sub(oldest), 0)
	}
	r.mu.Lock()
	r.stats.Backlog, r.stats.OldestAge, r.stats.CheckedAt = count, age, now
	r.mu.Unlock()
}

func (r *Relay) count(published, failed uint64) {
	r.mu.Lock()
	r.stats.Published += published
	r.stats.FailedAttempts += failed
	r.mu.Unlock()
}

// backoff returns the wait after the given number of consecutive failures:
// MinBackoff doubled each time, capped at MaxBackoff, then jittered.
func (r *Relay) backoff(failures int) time.Duration {
	d := r.cfg.MinBackoff
	for i := 1; i < failures && d < r.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return r.jitter(min(d, r.cfg.MaxBackoff))
}

func halfJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1) //nolint:gosec // G404: jitter, not a secret
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
