package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/marketplace/usersvc/adapters/kafka"
	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/syncbuf"
)

const topic = "users-events"

// testLogger shows the adapter's logs only with -v.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

func TestMain(m *testing.M) { containers.RunTests(m) }

// target is where a test publishes and reads back: a broker address and a
// topic.
type target struct{ addr, topic string }

// Addr is the broker's host:port.
func (b target) Addr() string { return b.addr }

// startBroker gives the test a three-partition topic of its own on the
// package's Kafka-protocol broker: a container (Testcontainers: the
// upstream apache/kafka image, or the local stand-in), or the broker
// USERSVC_TEST_KAFKA_BROKERS names.
func startBroker(t *testing.T) target {
	t.Helper()
	brokers, name := containers.KafkaTopic(t, 3)
	return target{brokers[0], name}
}

// startFaultyBroker runs a broker in this process for the tests that inject
// faults no container offers: a stop and restart on the same address in
// milliseconds, a request intercepted at the protocol level, compaction on
// demand.
func startFaultyBroker(t *testing.T, partitions int32) (*kafkatest.Broker, target) {
	t.Helper()
	b := kafkatest.Start(t, topic, partitions)
	return b, target{b.Addr(), topic}
}

func newPublisher(t *testing.T, b target, extra map[string]string) *kafka.Publisher {
	t.Helper()
	return kafkatest.NewPublisher(t, kafka.Config{Brokers: []string{b.addr}, Topic: b.topic, Source: "usersvc-test", Extra: extra}, testLogger(t))
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

// messages builds n contract messages spread over users round-robin, with
// seqs from firstSeq.
func messages(t *testing.T, firstSeq int64, n, users int) []domain.Message {
	t.Helper()
	out := make([]domain.Message, n)
	for i := range out {
		seq := firstSeq + int64(i)
		u := domain.User{ID: int64(i%users) + 1, Email: fmt.Sprintf("u%d@example.com", i%users), FirstName: "Ada", LastName: "L", CreatedAt: t0, UpdatedAt: t0}
		action := domain.ActionUpdate
		m, err := domain.NewEvent(fmt.Sprintf("00000000-0000-7000-8000-%012d", seq), action, u, []string{"first_name"}, t0.Add(time.Duration(seq)*time.Millisecond)).Message()
		if err != nil {
			t.Fatal(err)
		}
		m.Seq = seq
		out[i] = m
	}
	return out
}

func consume(t *testing.T, b target, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	return kafkatest.Consume(t, b.addr, b.topic, want, timeout)
}

// TestPublishKeepsEachUserOnOnePartition sends a volume of events for many
// users (the contract suite sends few) and checks that each user's events
// share a partition, the Kafka way of keeping their order.
func TestPublishKeepsEachUserOnOnePartition(t *testing.T) {
	b := startBroker(t)
	p := newPublisher(t, b, nil)
	msgs := messages(t, 1, 300, 17)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, chunk := range [][]domain.Message{msgs[:100], msgs[100:]} {
		acked, err := p.Publish(ctx, chunk)
		if err != nil || acked != len(chunk) {
			t.Fatalf("Publish = %d, %v; want %d, nil", acked, err, len(chunk))
		}
	}
	recs := consume(t, b, len(msgs), 10*time.Second)
	if dups := kafkatest.CheckDelivered(t, recs, msgs, "usersvc-test"); dups != 0 {
		t.Errorf("%d duplicates from an idempotent producer without failures", dups)
	}
	// One user, one partition.
	part := map[string]int32{}
	for _, r := range recs {
		if p, ok := part[string(r.Key)]; ok && p != r.Partition {
			t.Fatalf("key %s in partitions %d and %d", r.Key, p, r.Partition)
		}
		part[string(r.Key)] = r.Partition
	}
}

func TestPublishWaitsWhenTheLocalQueueIsFull(t *testing.T) {
	b := startBroker(t)
	// A 5-message local queue forces ErrQueueFull on a 200-message batch.
	p := newPublisher(t, b, map[string]string{"queue.buffering.max.messages": "5"})
	msgs := messages(t, 1, 200, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if acked, err := p.Publish(ctx, msgs); err != nil || acked != len(msgs) {
		t.Fatalf("Publish = %d, %v; want every message despite the full queue", acked, err)
	}
	kafkatest.CheckDelivered(t, consume(t, b, len(msgs), 10*time.Second), msgs, "usersvc-test")
}

func TestPublishToMissingTopicFailsWithoutCreatingIt(t *testing.T) {
	kb, b := startFaultyBroker(t, 3)
	// Record whether any metadata request asks the broker to create topics.
	var mu sync.Mutex
	autoCreate := false
	kb.Cluster().ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kb.Cluster().KeepControl()
		if mr := req.(*kmsg.MetadataRequest); mr.AllowAutoTopicCreation {
			mu.Lock()
			autoCreate = true
			mu.Unlock()
		}
		return nil, nil, false
	})
	p, err := kafka.NewPublisher(kafka.Config{
		Brokers: []string{b.Addr()}, Topic: "no-such-topic",
		Extra: map[string]string{"message.timeout.ms": "1500"},
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())

	start := time.Now()
	acked, err := p.Publish(context.Background(), messages(t, 1, 5, 2))
	if acked != 0 || !errors.Is(err, kafka.ErrUnknownTopic) {
		t.Fatalf("Publish = %d, %v; want 0 and ErrUnknownTopic", acked, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failing took %v", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if autoCreate {
		t.Error("the producer asked the broker to auto-create the topic")
	}
}

func TestPublishStopsWaitingWhenTheContextEnds(t *testing.T) {
	kb, b := startFaultyBroker(t, 3)
	p := newPublisher(t, b, nil)
	kb.Stop() // nothing will ever acknowledge

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	acked, err := p.Publish(ctx, messages(t, 1, 3, 1))
	if acked != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish = %d, %v; want 0 and the context's error", acked, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Publish returned %v after its context ended", d)
	}
}

// While the broker is down, Publish waits (librdkafka retries) and
// delivers everything once the broker is back on the same address.
func TestPublisherRidesOutABrokerRestart(t *testing.T) {
	kb, b := startFaultyBroker(t, 3)
	p := newPublisher(t, b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	before := messages(t, 1, 50, 7)
	if acked, err := p.Publish(ctx, before); err != nil || acked != 50 {
		t.Fatalf("Publish before the outage = %d, %v", acked, err)
	}

	kb.Stop()
	during := messages(t, 51, 200, 7)
	type result struct {
		acked int
		err   error
	}
	res := make(chan result, 1)
	go func() {
		acked, err := p.Publish(ctx, during)
		res <- result{acked, err}
	}()
	time.Sleep(1500 * time.Millisecond)
	select {
	case r := <-res:
		t.Fatalf("Publish returned while the broker was down: %d, %v", r.acked, r.err)
	default:
	}
	kb.Restart()
	r := <-res
	if r.err != nil || r.acked != len(during) {
		t.Fatalf("Publish across the restart = %d, %v; want %d, nil", r.acked, r.err, len(during))
	}
	recs := consume(t, b, 250, 15*time.Second)
	dups := kafkatest.CheckDelivered(t, recs, append(before, during...), "usersvc-test")
	t.Logf("%d records, %d duplicates", len(recs), dups)
}

// When the outage outlasts message.timeout.ms, Publish fails with the
// acknowledged prefix; sending the rest again after the restart delivers
// everything (the relay's retry), with the idempotent producer still usable.
func TestPublishRetriedAfterTimeoutDeliversEverything(t *testing.T) {
	kb, b := startFaultyBroker(t, 3)
	// Short timeouts so the outage outlasts message.timeout.ms, and a short
	// reconnect backoff so the test does not wait for librdkafka's 10 s cap.
	p := newPublisher(t, b, map[string]string{"message.timeout.ms": "1000", "reconnect.backoff.max.ms": "200"})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	all := messages(t, 1, 120, 9)
	// The first publish also fetches metadata and a producer id, which on
	// a loaded machine can outlast the 1 s timeout: retried like the rest.
	publishWithRetries(ctx, t, p, all[:20])
	kb.Stop()
	acked, err := p.Publish(ctx, all[20:])
	if err == nil || acked != 0 {
		t.Fatalf("Publish during the outage = %d, %v; want 0 and an error", acked, err)
	}
	kb.Restart()
	publishWithRetries(ctx, t, p, all[20:])
	recs := consume(t, b, len(all), 15*time.Second)
	dups := kafkatest.CheckDelivered(t, recs, all, "usersvc-test")
	t.Logf("%d records, %d duplicates", len(recs), dups)
}

// publishWithRetries sends msgs again from the first unacknowledged one
// until all are acknowledged, as the relay does, failing t after 20 tries.
func publishWithRetries(ctx context.Context, t *testing.T, p *kafka.Publisher, msgs []domain.Message) {
	t.Helper()
	for attempt := 1; len(msgs) > 0; attempt++ {
		acked, err := p.Publish(ctx, msgs)
		msgs = msgs[acked:]
		if err != nil {
			if attempt > 20 {
				t.Fatalf("still failing after %d attempts: %v", attempt, err)
			}
			t.Logf("attempt %d: %d acked, %v", attempt, acked, err)
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// Connect is free while publishing works; after a failed Publish it asks
// the cluster and fails, within its 2 s bound, while no broker answers, so
// the relay of a replica cut off from the brokers does not take the relay
// lock; once the broker is back it succeeds and publishing resumes.
func TestConnectAfterAFailureAsksTheCluster(t *testing.T) {
	kb, b := startFaultyBroker(t, 3)
	p := newPublisher(t, b, map[string]string{"message.timeout.ms": "1000", "reconnect.backoff.max.ms": "200"})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	all := messages(t, 1, 20, 3)
	// As in TestPublishRetriedAfterTimeoutDeliversEverything: the first
	// publish can outlast the 1 s timeout on a loaded machine. A wholly
	// acknowledged publish clears the suspicion, so Connect is still free.
	publishWithRetries(ctx, t, p, all[:10])
	kb.Stop()
	start := time.Now()
	if err := p.Connect(ctx); err != nil || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("Connect before any failure = %v after %v; want nil at once", err, time.Since(start))
	}
	if acked, err := p.Publish(ctx, all[10:]); err == nil || acked != 0 {
		t.Fatalf("Publish during the outage = %d, %v; want 0 and an error", acked, err)
	}
	start = time.Now()
	if err := p.Connect(ctx); err == nil || time.Since(start) > 4*time.Second {
		t.Fatalf("Connect with the broker down = %v after %v; want an error within 4s", err, time.Since(start))
	}
	kb.Restart()
	for attempt := 1; p.Connect(ctx) != nil; attempt++ {
		if attempt > 20 {
			t.Fatal("Connect still failing 20 attempts after the broker came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if acked, err := p.Publish(ctx, all[10:]); err != nil || acked != 10 {
		t.Fatalf("Publish after the broker is back = %d, %v", acked, err)
	}
	kafkatest.CheckDelivered(t, consume(t, b, 20, 15*time.Second), all, "usersvc-test")
}

func TestPublisherRebuildsTheProducerAfterAFatalError(t *testing.T) {
	b := startBroker(t)
	p := newPublisher(t, b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all := messages(t, 1, 20, 3)
	if acked, err := p.Publish(ctx, all[:10]); err != nil || acked != 10 {
		t.Fatalf("Publish = %d, %v", acked, err)
	}
	first := kafka.ProducerOf(p)
	kafka.InjectFatalError(p)
	if acked, err := p.Publish(ctx, all[10:]); err != nil || acked != 10 {
		t.Fatalf("Publish after a fatal error = %d, %v; want a rebuilt producer to deliver", acked, err)
	}
	if kafka.ProducerOf(p) == first {
		t.Error("the producer was not replaced after its fatal error")
	}
	kafkatest.CheckDelivered(t, consume(t, b, len(all), 10*time.Second), all, "usersvc-test")
}

// The library's default channels hold 1,000,000 slots each, allocated up
// front: 24 MB of heap for channels the publisher barely uses.
func TestProducerChannelsAreSmall(t *testing.T) {
	b := startBroker(t)
	p := newPublisher(t, b, nil)
	events, produce := kafka.ChannelCapacities(p)
	if events > 1000 || produce > 1 {
		t.Errorf("producer channel capacities: events %d, produce %d; want at most 1000 and 1", events, produce)
	}
	// Errors still reach the events channel's reader and deliveries still work.
	if acked, err := p.Publish(context.Background(), messages(t, 1, 2000, 7)); err != nil || acked != 2000 {
		t.Fatalf("Publish = %d, %v", acked, err)
	}
}

func TestPublishAfterCloseFails(t *testing.T) {
	b := startBroker(t)
	p := newPublisher(t, b, nil)
	if acked, err := p.Publish(context.Background(), messages(t, 1, 3, 1)); err != nil || acked != 3 {
		t.Fatalf("Publish = %d, %v", acked, err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := p.Publish(context.Background(), messages(t, 4, 1, 1)); !errors.Is(err, kafka.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
}

func TestNewPublisherRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     kafka.Config
		wantEnv string
	}{
		{"no brokers", kafka.Config{}, "KAFKA_BROKERS"},
		{"blank broker", kafka.Config{Brokers: []string{" "}}, "KAFKA_BROKERS"},
		{"broker without port", kafka.Config{Brokers: []string{"localhost"}}, "KAFKA_BROKERS"},
		{"bad topic name", kafka.Config{Brokers: []string{"127.0.0.1:1"}, Topic: "users events"}, "KAFKA_TOPIC"},
		{"source with spaces", kafka.Config{Brokers: []string{"127.0.0.1:1"}, Source: "user svc"}, "EVENT_SOURCE"},
		{"idempotence switched off", kafka.Config{Brokers: []string{"127.0.0.1:1"}, Extra: map[string]string{"enable.idempotence": "false"}}, "KAFKA_CONFIG"},
		{"acks lowered", kafka.Config{Brokers: []string{"127.0.0.1:1"}, Extra: map[string]string{"acks": "1"}}, "KAFKA_CONFIG"},
		{"auto-creation", kafka.Config{Brokers: []string{"127.0.0.1:1"}, Extra: map[string]string{"allow.auto.create.topics": "true"}}, "KAFKA_CONFIG"},
		{"go channel settings", kafka.Config{Brokers: []string{"127.0.0.1:1"}, Extra: map[string]string{"go.delivery.reports": "false"}}, "KAFKA_CONFIG"},
		{"unknown librdkafka property", kafka.Config{Brokers: []string{"127.0.0.1:1"}, Extra: map[string]string{"no.such.property": "1"}}, "KAFKA_CONFIG"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := kafka.NewPublisher(tc.cfg, nil)
			if err == nil {
				p.Close(context.Background())
				t.Fatal("NewPublisher accepted the configuration")
			}
			if !strings.Contains(err.Error(), tc.wantEnv) {
				t.Errorf("error %q does not name %s", err, tc.wantEnv)
			}
		})
	}
}

// KAFKA_CONFIG cannot switch off what TLS verifies (the security review's
// finding), whatever the spelling of the value; the verifying values pass.
func TestValidateRefusesVerificationDisablingKeys(t *testing.T) {
	tests := []struct {
		key, value string
		refused    bool
	}{
		{"enable.ssl.certificate.verification", "false", true},
		{"enable.ssl.certificate.verification", "FALSE", true},
		{"enable.ssl.certificate.verification", "0", true},
		{"enable.ssl.certificate.verification", "", true},
		{"enable.ssl.certificate.verification", "true", false},
		{"ssl.endpoint.identification.algorithm", "none", true},
		{"ssl.endpoint.identification.algorithm", "", true},
		{"ssl.endpoint.identification.algorithm", "https", false},
		{"enable.sasl.oauthbearer.unsecure.jwt", "true", true},
		{"enable.sasl.oauthbearer.unsecure.jwt", "false", false},
		{"ssl.ca.location", "/etc/kafka/ca.pem", false},
	}
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			cfg := kafka.Config{Brokers: []string{"127.0.0.1:1"}, Topic: "t", Source: "s",
				Extra: map[string]string{"security.protocol": "SSL", tc.key: tc.value}}
			err := cfg.Validate()
			if refused := err != nil; refused != tc.refused {
				t.Fatalf("Validate = %v, want refused %v", err, tc.refused)
			}
			if err != nil && (!strings.Contains(err.Error(), "KAFKA_CONFIG") || !strings.Contains(err.Error(), tc.key)) {
				t.Errorf("error %q does not name KAFKA_CONFIG and %s", err, tc.key)
			}
		})
	}
}

func TestParseExtraConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr bool
	}{
		{"empty", "", map[string]string{}, false},
		{"pairs with spaces", " security.protocol = SASL_SSL , sasl.mechanism=PLAIN ", map[string]string{"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}, false},
		{"value with equals sign", "sasl.password=a=b", map[string]string{"sasl.password": "a=b"}, false},
		{"escaped comma and backslash", `ssl.cipher.suites=A\,B,x=c:\\d`, map[string]string{"ssl.cipher.suites": "A,B", "x": `c:\d`}, false},
		{"trailing comma", "a=1,", map[string]string{"a": "1"}, false},
		{"empty value", "a=", map[string]string{"a": ""}, false},
		{"missing equals", "a=1,b", nil, true},
		{"empty key", "=1", nil, true},
		{"duplicate key", "a=1,a=2", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kafka.ParseExtraConfig(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "KAFKA_CONFIG") {
					t.Errorf("error %q does not name KAFKA_CONFIG", err)
				}
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestParseExtraConfigDoesNotEchoValues(t *testing.T) {
	_, err := kafka.ParseExtraConfig("sasl.password.is.here.supersecret")
	if err == nil || strings.Contains(err.Error(), "supersecret") {
		t.Errorf("error %v should not contain the whole malformed item", err)
	}
}

func startTail(t *testing.T, b target, fromBeginning bool) (*syncbuf.Buffer, func() error) {
	t.Helper()
	out := &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- kafka.Tail(ctx, kafka.Config{Brokers: []string{b.addr}, Topic: b.topic}, fromBeginning, out)
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Error("Tail did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return out, stop
}

func waitLines(t *testing.T, out *syncbuf.Buffer, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(out.Lines()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("tail printed %d lines within %v, want %d", len(out.Lines()), within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out.Lines()
}

func TestTailFromBeginningPrintsEveryEventValue(t *testing.T) {
	b := startBroker(t)
	p := newPublisher(t, b, nil)
	msgs := messages(t, 1, 30, 1) // one user: one partition, so the order is total
	if acked, err := p.Publish(context.Background(), msgs); err != nil || acked != 30 {
		t.Fatalf("Publish = %d, %v", acked, err)
	}
	out, stop := startTail(t, b, true)
	lines := waitLines(t, out, 30, 15*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Tail returned %v after cancel, want nil", err)
	}
	want := make([]string, len(msgs))
	for i, m := range msgs {
		want[i] = string(m.Payload)
	}
	if !slices.Equal(lines, want) {
		t.Errorf("tail printed\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestTailFromEndSkipsOldEvents(t *testing.T) {
	b := startBroker(t)
	p := newPublisher(t, b, nil)
	old := messages(t, 1, 10, 3)
	if _, err := p.Publish(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	out, _ := startTail(t, b, false)
	// The tail joins at some point: keep publishing fresh events until some
	// show up, then check none of the old ones did.
	deadline := time.Now().Add(15 * time.Second)
	for seq := int64(100); len(out.Lines()) == 0; seq++ {
		if time.Now().After(deadline) {
			t.Fatal("tail printed nothing new")
		}
		if _, err := p.Publish(context.Background(), messages(t, seq, 1, 1)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, line := range out.Lines() {
		for _, m := range old {
			if line == string(m.Payload) {
				t.Fatalf("tail from the end printed an old event: %s", line)
			}
		}
	}
}

func TestTailRefusesAMissingTopic(t *testing.T) {
	b := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := kafka.Tail(ctx, kafka.Config{Brokers: []string{b.Addr()}, Topic: "no-such-topic"}, true, &bytes.Buffer{})
	if !errors.Is(err, kafka.ErrUnknownTopic) {
		t.Errorf("Tail = %v, want ErrUnknownTopic", err)
	}
}

// Each line names the trace of the request behind its event: the trace id
// of the message's ce_traceparent (or, from another producer, of a plain
// traceparent header), first in the line; a message without a valid trace
// context prints as its value alone.
func TestTailPrintsTheTraceIDOfEachMessage(t *testing.T) {
	const (
		traceA = "4bf92f3577b34da6a3ce929d0e0e4736"
		traceB = "0af7651916cd43dd8448eb211c80319c"
	)
	b := startBroker(t)
	p := newPublisher(t, b, nil)
	msgs := messages(t, 1, 3, 1)
	msgs[0].TraceParent, msgs[0].TraceState = "00-"+traceA+"-00f067aa0ba902b7-01", "congo=t61rcWkgMzE"
	msgs[1].TraceParent = "not-a-traceparent"
	if acked, err := p.Publish(context.Background(), msgs); err != nil || acked != len(msgs) {
		t.Fatalf("Publish = %d, %v", acked, err)
	}
	// Another producer, with the plain W3C header only.
	plain := messages(t, 10, 1, 1)[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: b.topic, Key: []byte(plain.Key), Value: plain.Payload,
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-" + traceB + "-b7ad6b7169203331-01")}}}
	if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}

	out, stop := startTail(t, b, true)
	lines := waitLines(t, out, 4, 15*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"trace_id":"` + traceA + `",` + string(msgs[0].Payload[1:]),
		string(msgs[1].Payload),
		string(msgs[2].Payload),
		`{"trace_id":"` + traceB + `",` + string(plain.Payload[1:]),
	}
	// Two producers may choose different partitions: compare as sets.
	slices.Sort(lines)
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Errorf("tail printed\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
