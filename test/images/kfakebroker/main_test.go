package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestOptionsRejectBadEnvironment(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"port missing", map[string]string{}, "KFAKE_PORT must be set"},
		{"port not a number", map[string]string{"KFAKE_PORT": "x"}, `KFAKE_PORT="x"`},
		{"port out of range", map[string]string{"KFAKE_PORT": "70000"}, "KFAKE_PORT must be set"},
		{"no partitions", map[string]string{"KFAKE_PORT": "9092", "KFAKE_PARTITIONS": "0"}, "KFAKE_PARTITIONS must be at least 1"},
		{"unknown log level", map[string]string{"KFAKE_PORT": "9092", "KFAKE_LOG_LEVEL": "loud"}, "KFAKE_LOG_LEVEL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := options(envFunc(c.env))
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("options() error = %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}

// A broker configured from the environment listens on 127.0.0.1:KFAKE_PORT,
// has the seeded topics with KFAKE_PARTITIONS partitions, creates no topic
// implicitly when KFAKE_AUTO_CREATE=false, and keeps its log in
// KFAKE_DATA_DIR across a restart.
func TestBrokerFromEnvironment(t *testing.T) {
	port := freePort(t)
	env := map[string]string{
		"KFAKE_PORT":        strconv.Itoa(port),
		"KFAKE_SEED_TOPICS": "alpha, beta",
		"KFAKE_PARTITIONS":  "2",
		"KFAKE_AUTO_CREATE": "false",
		"KFAKE_DATA_DIR":    t.TempDir(),
		"KFAKE_LOG_LEVEL":   "none",
	}
	start := func() *kfake.Cluster {
		opts, gotPort, err := options(envFunc(env))
		if err != nil || gotPort != port {
			t.Fatalf("options() = port %d, %v", gotPort, err)
		}
		var c *kfake.Cluster
		for range 50 { // the port may linger for a moment after a close
			if c, err = kfake.NewCluster(opts...); err == nil {
				return c
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal(err)
		return nil
	}
	cluster := start()
	if addrs := cluster.ListenAddrs(); len(addrs) != 1 || addrs[0] != net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) {
		t.Fatalf("listens on %v, want 127.0.0.1:%d only", addrs, port)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()[0]), kgo.RecordDeliveryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	partitions := map[string]int{}
	for _, topic := range meta.Topics {
		partitions[*topic.Topic] = len(topic.Partitions)
	}
	if partitions["alpha"] != 2 || partitions["beta"] != 2 || len(partitions) != 2 {
		t.Errorf("topics and partitions %v, want alpha and beta with 2 each", partitions)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "gamma", Value: []byte("x")}).FirstErr(); err == nil {
		t.Error("producing to an unseeded topic succeeded with KFAKE_AUTO_CREATE=false")
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "alpha", Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatalf("produce to alpha: %v", err)
	}
	cl.Close()
	cluster.Close()

	cluster = start()
	defer cluster.Close()
	consumer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()[0]), kgo.ConsumeTopics("alpha"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	for {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the record produced before the restart is gone")
		}
		if recs := fetches.Records(); len(recs) > 0 {
			if string(recs[0].Value) != "kept" {
				t.Fatalf("read %q after the restart, want kept", recs[0].Value)
			}
			return
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
