// Package kafkatest runs an in-process Kafka-protocol broker (kfake) for
// tests, which can be stopped and restarted on the same address with its
// data, like a real broker restart, and reads topics back with franz-go.
package kafkatest

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/marketplace/usersvc/test/eventschema"
)

// Broker is a one-node kfake cluster on 127.0.0.1.
type Broker struct {
	t    testing.TB
	dir  string
	port int
	opts []kfake.Opt

	mu sync.Mutex
	c  *kfake.Cluster
}

// Start runs a broker with the topic created (partitions of them) and no
// topic auto-creation, and stops it when the test ends. Extra options are
// passed to kfake.
func Start(t testing.TB, topic string, partitions int32, opts ...kfake.Opt) *Broker {
	t.Helper()
	b := &Broker{t: t, dir: t.TempDir(), port: freePort(t), opts: append([]kfake.Opt{kfake.SeedTopics(partitions, topic)}, opts...)}
	b.Restart()
	t.Cleanup(b.Stop)
	return b
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Addr is the broker's host:port, the same across restarts.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// Restart starts the broker (again) on its port. DataDir keeps the log,
// offsets and idempotent producer state across a Stop.
func (b *Broker) Restart() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		return
	}
	opts := append([]kfake.Opt{kfake.Ports(b.port), kfake.DataDir(b.dir)}, b.opts...)
	var err error
	for range 100 { // the port may take a moment to be free after a stop
		var c *kfake.Cluster
		if c, err = kfake.NewCluster(opts...); err == nil {
			b.c = c
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatalf("start kfake on %s: %v", b.Addr(), err)
}

// Stop shuts the broker down, closing its client connections.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		b.c.Close()
		b.c = nil
	}
}

// Cluster is the running cluster (nil while stopped), for kfake controls.
func (b *Broker) Cluster() *kfake.Cluster {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.c
}

// Consume reads topic from the start until at least want records arrived,
// then for a short grace period so that duplicates show up too. It fails
// the test after timeout, and fails it (without stopping it) for every
// record that is neither a tombstone nor an event valid against the event
// schema with the headers the AsyncAPI document lists: every suite reading
// a topic checks the contract on the way.
func Consume(t testing.TB, addr, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records from %s within %v, want %d", len(recs), topic, timeout, want)
		}
		recs = append(recs, fs.Records()...)
	}
	grace, cancelGrace := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelGrace()
	for grace.Err() == nil {
		recs = append(recs, cl.PollFetches(grace).Records()...)
	}
	for _, r := range recs {
		if !IsTombstone(r) {
			eventschema.Check(t, r.Value)
			headers := make(map[string]any, len(r.Headers))
			for _, h := range r.Headers {
				headers[h.Key] = string(h.Value)
			}
			eventschema.CheckHeaders(t, eventschema.Kafka, headers)
		}
	}
	return recs
}

// Header returns the value of the record's header key.
func Header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}
