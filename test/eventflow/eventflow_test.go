// Package eventflow_test proves the event guarantees end to end: the real
// use cases commit users and outbox rows to SQLite, the relay publishes them
// through the Kafka adapter to an in-process Kafka-protocol broker (kfake),
// and a franz-go consumer checks what arrived.
package eventflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/kafka"
	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/adapters/staticgeo"
	"github.com/marketplace/usersvc/adapters/sysclock"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/test/containers"
)

// topic is the in-process broker's, for the tests that stop and restart it;
// the others take a topic of their own on the package's broker container.
const topic = "users-events"

func TestMain(m *testing.M) { containers.RunTests(m) }

var client = netip.MustParseAddr("127.0.0.1")

func logger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", t.Name())
}

// service is one "process": the store, the use cases, the publisher and a
// relay that runs only when started.
type service struct {
	store  *gormstore.Store
	pub    *kafka.Publisher
	relay  *app.Relay
	create *app.CreateUser
	patch  *app.PatchUser
	del    *app.DeleteUser

	stopRelay func()
}

// newService opens the database file dbPath (migrating it) and wires the
// real use cases to it, with a relay publishing to topic on the broker at
// addr.
func newService(t *testing.T, dbPath, addr, topic string, extra map[string]string) *service {
	t.Helper()
	ctx := context.Background()
	store, err := gormstore.Open(ctx, gormstore.Config{URL: "sqlite://" + dbPath})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Reconnect quickly after the broker comes back; librdkafka's 10 s cap
	// would only make the test slower.
	conf := map[string]string{"reconnect.backoff.max.ms": "200"}
	maps.Copy(conf, extra)
	pub, err := kafka.NewPublisher(kafka.Config{Brokers: []string{addr}, Topic: topic, Extra: conf}, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	geo, err := staticgeo.Parse("127.0.0.0/8=CH")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := domain.NewCountryPolicy([]string{"CH"})
	if err != nil {
		t.Fatal(err)
	}
	// Cheap argon2id parameters: the test is about events, not hashing cost.
	hasher := argon2id.New(argon2id.Cheap, 0)
	clock := sysclock.Clock{}
	relay := app.NewRelay(store, store, pub, clock, app.RelayConfig{
		PollInterval: 200 * time.Millisecond,
		BatchSize:    200,
		MinBackoff:   20 * time.Millisecond,
		MaxBackoff:   300 * time.Millisecond,
		Logger:       logger(t),
	})
	rules := domain.NewRules(0)
	mutations := app.NewMutations(store, clock, relay, nil)
	s := &service{
		store:     store,
		pub:       pub,
		relay:     relay,
		create:    app.NewCreateUser(rules, geo, policy, hasher, mutations),
		patch:     app.NewPatchUser(rules, store, hasher, mutations),
		del:       app.NewDeleteUser(mutations),
		stopRelay: func() {},
	}
	t.Cleanup(s.shutdown)
	return s
}

// startRelay runs the relay until stopRelay or shutdown.
func (s *service) startRelay() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.relay.Run(ctx) }()
	s.stopRelay = func() { cancel(); <-done }
}

// shutdown stops the process in the order the composition root does:
// relay, publisher flush, database.
func (s *service) shutdown() {
	s.stopRelay()
	s.stopRelay = func() {}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.pub.Close(ctx)
	_ = s.store.Close()
}

func (s *service) backlog(t *testing.T) int64 {
	t.Helper()
	n, _, err := s.store.Backlog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *service) waitDrained(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for s.backlog(t) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d unpublished events after %v", s.backlog(t), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ptr(s string) *string { return &s }

// mutate creates n users and renames each once, returning their ids and the
// latency of every use-case call.
func (s *service) mutate(t *testing.T, tag string, n int) (ids []int64, latencies []time.Duration) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		in := domain.Input{
			FirstName: ptr("Ada"), LastName: ptr("Lovelace"), Password: ptr("correct horse battery"),
			Email: ptr(fmt.Sprintf("%s-%d@example.com", tag, i)),
		}
		start := time.Now()
		u, err := s.create.Do(ctx, in, client)
		latencies = append(latencies, time.Since(start))
		if err != nil {
			t.Fatalf("create %s-%d: %v", tag, i, err)
		}
		start = time.Now()
		if _, err := s.patch.Do(ctx, u.ID, domain.Input{FirstName: ptr("Augusta")}, domain.Precondition{}); err != nil {
			t.Fatalf("rename user %d: %v", u.ID, err)
		}
		latencies = append(latencies, time.Since(start))
		ids = append(ids, u.ID)
	}
	return ids, latencies
}

// checkEvents asserts that the topic holds, for every user in ids, exactly
// a create then an update event (first deliveries, by event id), with the
// contract's key and CloudEvents headers, and nothing else. It returns the
// number of duplicate deliveries.
func checkEvents(t *testing.T, recs []*kgo.Record, ids []int64) (duplicates int) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[strconv.FormatInt(id, 10)] = true
	}
	seen := map[string]bool{}
	actions := map[string][]domain.Action{}
	for _, r := range recs {
		var body domain.EventBody
		if err := json.Unmarshal(r.Value, &body); err != nil {
			t.Fatalf("record at %d/%d is not the event contract: %v", r.Partition, r.Offset, err)
		}
		key := string(r.Key)
		if !want[key] {
			t.Fatalf("event %s for unexpected user %q", body.ID, key)
		}
		if seen[body.ID] {
			duplicates++
			continue
		}
		seen[body.ID] = true
		if strconv.FormatInt(body.Data.ID, 10) != key {
			t.Fatalf("event %s: key %q but data.id %d", body.ID, key, body.Data.ID)
		}
		for h, v := range map[string]string{
			"ce_specversion": "1.0", "ce_id": body.ID, "ce_type": body.Action.EventType(),
			"ce_source": "usersvc", "ce_subject": key, "content-type": "application/json",
		} {
			if got, _ := kafkatest.Header(r, h); got != v {
				t.Fatalf("event %s: header %s = %q, want %q", body.ID, h, got, v)
			}
		}
		actions[key] = append(actions[key], body.Action)
	}
	for key := range want {
		if got := actions[key]; !slices.Equal(got, []domain.Action{domain.ActionCreate, domain.ActionUpdate}) {
			t.Fatalf("user %s: events %v, want [create update] in that order", key, got)
		}
	}
	return duplicates
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(int(float64(len(s))*p), len(s)-1)]
}

// The scenario: users are created and updated while the broker is
// down, the broker comes back, and every event arrives, in order per user.
// The same run measures that mutations do not slow down during the outage.
//
// Deliveries time out after 1 s here, so during the outage the publisher
// fails and the relay retries with backoff many times: the path where
// events could be lost or reordered. (That librdkafka alone rides out an
// outage shorter than message.timeout.ms is tested in adapters/kafka.)
func TestEveryEventArrivesInOrderAcrossABrokerOutage(t *testing.T) {
	const usersUp, usersDown = 200, 1000
	b := kafkatest.Start(t, topic, 3)
	s := newService(t, t.TempDir()+"/u.db", b.Addr(), topic, map[string]string{"message.timeout.ms": "1000"})
	s.startRelay()

	idsUp, latUp := s.mutate(t, "up", usersUp)
	s.waitDrained(t, 10*time.Second)

	b.Stop()
	start := time.Now()
	idsDown, latDown := s.mutate(t, "down", usersDown)
	t.Logf("%d mutations with the broker down in %v", 2*usersDown, time.Since(start))
	if n := s.backlog(t); n == 0 {
		t.Fatal("the outbox is empty while the broker is down: events were lost or published elsewhere")
	}

	p50Up, p99Up := percentile(latUp, .50), percentile(latUp, .99)
	p50Down, p99Down := percentile(latDown, .50), percentile(latDown, .99)
	t.Logf("use-case latency, broker up: p50 %v p99 %v; broker down: p50 %v p99 %v", p50Up, p99Up, p50Down, p99Down)
	// Generous bounds (shared CI cores, SQLite fsyncs): what they rule out
	// is a mutation waiting for the broker, which would take seconds.
	if p50Down > 3*p50Up+5*time.Millisecond || p99Down > 5*p99Up+50*time.Millisecond {
		t.Errorf("mutations slowed down while the broker was down: p50 %v -> %v, p99 %v -> %v", p50Up, p50Down, p99Up, p99Down)
	}
	if maxDown := slices.Max(latDown); maxDown > time.Second {
		t.Errorf("a mutation took %v while the broker was down", maxDown)
	}

	// Keep the broker down until the relay has failed and retried at least
	// twice, however fast the mutations went.
	deadline := time.Now().Add(15 * time.Second)
	for s.relay.Stats().FailedAttempts < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not fail twice while the broker was down: %+v", s.relay.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Restart()
	s.waitDrained(t, 30*time.Second)
	all := slices.Concat(idsUp, idsDown)
	recs := kafkatest.Consume(t, b.Addr(), topic, 2*len(all), 20*time.Second)
	dups := checkEvents(t, recs, all)
	t.Logf("%d events for %d users arrived (%d records, %d duplicates)", 2*len(all), len(all), len(recs), dups)

	st := s.relay.Stats()
	t.Logf("relay stats: %+v", st)
	if st.Published < uint64(2*len(all)) {
		t.Errorf("relay stats count %d published, want at least %d", st.Published, 2*len(all))
	}
}

// A process that commits and dies before its relay publishes: the next
// process's relay publishes the pending events.
func TestEventsCommittedBeforeARestartArePublishedByTheNextProcess(t *testing.T) {
	const users = 50
	brokers, topic := containers.KafkaTopic(t, 3)
	dbPath := t.TempDir() + "/u.db"

	first := newService(t, dbPath, brokers[0], topic, nil) // its relay never runs
	ids, _ := first.mutate(t, "before-restart", users)
	if n := first.backlog(t); n != 2*users {
		t.Fatalf("outbox holds %d unpublished events after the commits, want %d", n, 2*users)
	}
	first.shutdown()

	second := newService(t, dbPath, brokers[0], topic, nil)
	if n := second.backlog(t); n != 2*users {
		t.Fatalf("after the restart the outbox holds %d unpublished events, want %d", n, 2*users)
	}
	second.startRelay()
	second.waitDrained(t, 15*time.Second)
	recs := kafkatest.Consume(t, brokers[0], topic, 2*users, 15*time.Second)
	if dups := checkEvents(t, recs, ids); dups != 0 {
		t.Errorf("%d duplicates without any failure", dups)
	}
}

// After a user is deleted, the only records of them the service produces
// are ones a consumer can act on without seeing their data. The user's
// events committed before the delete but not yet published go out as they
// are, in order, then the id-only delete event and its tombstone; nothing
// produced from the delete on holds the user's email, names or address.
func TestNothingPublishedAfterADeleteHoldsTheUser(t *testing.T) {
	brokers, topic := containers.KafkaTopic(t, 3)
	s := newService(t, t.TempDir()+"/u.db", brokers[0], topic, nil)
	ctx := context.Background()

	// The relay is not running yet: the create and the update of the user
	// are still unpublished when it is deleted.
	in := domain.Input{FirstName: ptr("Gretel"), LastName: ptr("Hexenhaus"), Password: ptr("correct horse battery"),
		Email: ptr("gretel.hexenhaus@example.com"), Address: ptr("Waldweg 7, 3000 Bern")}
	gone, err := s.create.Do(ctx, in, client)
	if err != nil {
		t.Fatal(err)
	}
	moved := "Lebkuchengasse 1, 3000 Bern"
	if _, err := s.patch.Do(ctx, gone.ID, domain.Input{Address: &moved}, domain.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if err := s.del.Do(ctx, gone.ID, domain.Precondition{}); err != nil {
		t.Fatal(err)
	}
	later, _ := s.mutate(t, "after-delete", 6)
	s.startRelay()
	s.waitDrained(t, 15*time.Second)

	events := 3 + 2*len(later)
	recs := kafkatest.Consume(t, brokers[0], topic, events+1, 15*time.Second)
	key := strconv.FormatInt(gone.ID, 10)
	var mine []*kgo.Record
	for _, r := range recs {
		if string(r.Key) == key {
			mine = append(mine, r)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].Offset < mine[j].Offset })
	var kinds []string
	for _, r := range mine {
		kind, _ := kafkatest.Header(r, "ce_type")
		if kafkatest.IsTombstone(r) {
			kind = "tombstone"
		}
		kinds = append(kinds, kind)
	}
	want := []string{"users.user.created", "users.user.updated", "users.user.deleted", "tombstone"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("the deleted user's records, in offset order: %v, want %v", kinds, want)
	}
	if got, want := string(mine[2].Value), `"data":{"id":`+key+`}`; !strings.Contains(got, want) {
		t.Errorf("delete event %s: data is not exactly {\"id\": %s}", got, key)
	}
	// Every record produced from the delete on: in the user's partition
	// from the delete's offset, and everything committed after it.
	deleted := mine[2]
	laterKeys := map[string]bool{}
	for _, id := range later {
		laterKeys[strconv.FormatInt(id, 10)] = true
	}
	personal := []string{"gretel", "Gretel", "Hexenhaus", "hexenhaus", "Waldweg", "Lebkuchengasse"}
	scanned := 0
	for _, r := range recs {
		after := r.Partition == deleted.Partition && r.Offset >= deleted.Offset || laterKeys[string(r.Key)]
		if !after {
			continue
		}
		scanned++
		text := string(r.Key) + " " + string(r.Value)
		for _, h := range r.Headers {
			text += " " + h.Key + "=" + string(h.Value)
		}
		for _, p := range personal {
			if strings.Contains(text, p) {
				t.Errorf("a record produced after the delete holds %q: %s", p, text)
			}
		}
	}
	if scanned < 2+2*len(later) {
		t.Errorf("scanned %d records after the delete, want at least %d", scanned, 2+2*len(later))
	}
}

// The relay is also the port the mutations notify.
var _ ports.OutboxNotifier = (*app.Relay)(nil)
