package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/marketplace/usersvc/adapters/kafka"
	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/adapters/sysclock"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/test/containers"
)

const eventSource = "usersvc-integration"

func newPublisher(t *testing.T, topic string) *kafka.Publisher {
	t.Helper()
	return kafkatest.NewPublisher(t, kafka.Config{Brokers: containers.Shared(t).KafkaBrokers(), Topic: topic, Source: eventSource}, testLogger(t))
}

// sentEvents records the messages a test sent, in send order.
type sentEvents struct {
	mu   sync.Mutex
	byID map[string]domain.Message
	ids  []string
}

func (s *sentEvents) add(m domain.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[string]domain.Message{}
	}
	s.byID[m.EventID] = m
	s.ids = append(s.ids, m.EventID)
}

// checkDelivered is kafkatest.CheckDelivered on the messages sent so far.
func (s *sentEvents) checkDelivered(t *testing.T, recs []*kgo.Record) int {
	t.Helper()
	s.mu.Lock()
	sent := make([]domain.Message, len(s.ids))
	for i, id := range s.ids {
		sent[i] = s.byID[id]
	}
	s.mu.Unlock()
	return kafkatest.CheckDelivered(t, recs, sent, eventSource)
}

// Every event the publisher sends arrives with its key, value and
// CloudEvents headers, in order per user, on several partitions.
func TestPublisherDeliversEventsWithHeaders(t *testing.T) {
	topic := containers.NewTopic(t, 3)
	p := newPublisher(t, topic)
	var sent sentEvents
	var batch []domain.Message
	actions := []domain.Action{domain.ActionCreate, domain.ActionUpdate, domain.ActionUpdate, domain.ActionDelete}
	for i := range 60 {
		u := newUser(fmt.Sprintf("user%d@example.com", i%5), i%5)
		u.ID = int64(i%5) + 1
		m := eventMessage(t, fmt.Sprintf("00000000-0000-7000-8000-%012d", i), actions[(i/5)%len(actions)], u, t0.Add(time.Duration(i)*time.Millisecond))
		m.Seq = int64(i) + 1
		batch = append(batch, m)
		sent.add(m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if acked, err := p.Publish(ctx, batch); err != nil || acked != len(batch) {
		t.Fatalf("Publish = %d, %v; want %d, nil", acked, err, len(batch))
	}
	// Every delete is followed by its tombstone (CheckDelivered checks where).
	tombstones := 0
	for _, m := range batch {
		if m.Type == domain.ActionDelete.EventType() {
			tombstones++
		}
	}
	recs := kafkatest.Consume(t, containers.Shared(t).KafkaBrokers()[0], topic, len(batch)+tombstones, 20*time.Second)
	if dups := sent.checkDelivered(t, recs); dups != 0 {
		t.Errorf("%d duplicates without any failure", dups)
	}
	partitions := map[int32]bool{}
	for _, r := range recs {
		partitions[r.Partition] = true
	}
	if len(partitions) < 2 {
		t.Errorf("five users' events all went to %d partition(s)", len(partitions))
	}
}

// The outbox relay keeps publishing while the broker container is stopped
// and started again in the middle of a stream of commits: afterwards every
// committed event is on the topic, in commit order per user.
func TestRelayLosesNothingWhenTheBrokerRestartsMidStream(t *testing.T) {
	const (
		users    = 8
		perPhase = 80 // commits before, during and after the outage
	)
	env := containers.Shared(t)
	store := migratedStore(t)
	topic := containers.NewTopic(t, 3)
	relay := app.NewRelay(store, store, newPublisher(t, topic), sysclock.Clock{}, app.RelayConfig{
		PollInterval: 100 * time.Millisecond,
		BatchSize:    25,
		MinBackoff:   50 * time.Millisecond,
		MaxBackoff:   time.Second,
		Logger:       testLogger(t),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	relayDone := make(chan error, 1)
	relayCtx, stopRelay := context.WithCancel(ctx)
	go func() { relayDone <- relay.Run(relayCtx) }()
	defer func() {
		stopRelay()
		if err := <-relayDone; err != nil {
			t.Errorf("relay.Run: %v", err)
		}
	}()

	var sent sentEvents
	n := 0
	commit := func(count int) {
		t.Helper()
		for range count {
			u := newUser(fmt.Sprintf("user%d@example.com", n%users), n%users)
			u.ID = int64(n%users) + 1
			m := eventMessage(t, fmt.Sprintf("00000000-0000-7000-8001-%012d", n), domain.ActionUpdate, u, time.Now())
			if err := store.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.AppendMessage(ctx, m) }); err != nil {
				t.Fatalf("commit %d: %v", n, err)
			}
			sent.add(m)
			relay.Notify()
			n++
			time.Sleep(2 * time.Millisecond) // a stream, not one batch
		}
	}

	commit(perPhase)
	if err := env.Kafka.Stop(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	commit(perPhase)
	time.Sleep(time.Second) // let the relay fail and back off
	if backlog, _, err := store.Backlog(ctx); err != nil || backlog == 0 {
		t.Fatalf("outbox backlog during the outage = %d, %v; want the events committed meanwhile", backlog, err)
	}
	if err := env.Kafka.Start(ctx); err != nil {
		t.Fatal(err)
	}
	commit(perPhase)

	waitForEmptyOutbox(ctx, t, store)
	recs := kafkatest.Consume(t, env.KafkaBrokers()[0], topic, len(sent.ids), 30*time.Second)
	dups := sent.checkDelivered(t, recs)
	stats := relay.Stats()
	t.Logf("%d events, %d records, %d duplicates; relay published %d, failed attempts %d",
		len(sent.ids), len(recs), dups, stats.Published, stats.FailedAttempts)
}

func waitForEmptyOutbox(ctx context.Context, t *testing.T, store ports.Outbox) {
	t.Helper()
	var count int64
	for {
		var err error
		count, _, err = store.Backlog(ctx)
		if err == nil && count == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("outbox still holds %d unpublished events (last error %v)", count, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
