package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/reliability/stack"
)

// BrokerOutageEnv sets how long the broker stays down (default 30s, the
// issue's figure; 5s with -short).
const BrokerOutageEnv = "USERSVC_BROKER_OUTAGE"

// mutationLog records, per user, which address each version got, from the
// API's answers (body and ETag), and each answer's latency by phase.
type mutationLog struct {
	mu        sync.Mutex
	versions  map[int64]map[string]int64 // user -> address -> version
	latencies map[string][]time.Duration // phase -> latencies
	failures  []string
	mutations int
}

func (l *mutationLog) record(phase string, id int64, res stack.Response, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || res.Status != http.StatusOK {
		l.failures = append(l.failures, fmt.Sprintf("%s: user %d: %v %d %s", phase, id, err, res.Status, res.Body))
		return
	}
	version, _ := strconv.ParseInt(strings.Trim(res.Header.Get("ETag"), `"`), 10, 64)
	address, _ := res.Object()["address"].(string)
	l.versions[id][address] = version
	l.latencies[phase] = append(l.latencies[phase], res.Elapsed)
	l.mutations++
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(int(float64(len(s))*q), len(s)-1)]
}

// TestBrokerOutageDuringMutations keeps updating users over HTTP while the
// broker container is down for the 30 s: the API's latency does
// not change, and after the broker returns every event is delivered, each
// user's in the order of its versions, duplicates counted.
func TestBrokerOutageDuringMutations(t *testing.T) {
	const users, workers = 20, 2
	outage := stack.DurationFromEnv(t, BrokerOutageEnv, 30*time.Second, 5*time.Second)
	env := containers.Shared(t)
	topic := containers.NewTopic(t, 3)
	pub := newPublisher(t, topic)
	s := stack.Start(t, stack.Options{
		DatabaseURL: containers.NewDatabase(t).URL,
		Relay:       true,
		Publisher:   pub,
		RelayConfig: app.RelayConfig{PollInterval: 200 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second},
	})
	log := &mutationLog{versions: map[int64]map[string]int64{}, latencies: map[string][]time.Duration{}}
	var ids []int64
	for i := range users {
		res := s.Do(t, stack.JSON(http.MethodPost, "/api/v1/users",
			fmt.Sprintf(`{"first_name":"Ada","last_name":"L","email":"outage%d@example.ch","password":"outage-pass-%d","address":"v1"}`, i, i)))
		if res.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", res.Status, res.Body)
		}
		id := int64(res.Object()["id"].(float64))
		ids = append(ids, id)
		log.versions[id] = map[string]int64{"v1": 1}
		log.mutations++
	}

	var (
		phaseMu sync.Mutex
		phase   = "broker up"
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 8))
			for n := 0; ctx.Err() == nil; n++ {
				id := ids[rng.IntN(len(ids))]
				phaseMu.Lock()
				p := phase
				phaseMu.Unlock()
				res, err := s.Send(context.Background(), stack.JSON(http.MethodPatch, fmt.Sprintf("/api/v1/users/%d", id),
					fmt.Sprintf(`{"address":"w%d-%d"}`, w, n)))
				log.record(p, id, res, err)
				time.Sleep(5 * time.Millisecond) // a steady stream, not a flood
			}
		})
	}
	setPhase := func(p string) { phaseMu.Lock(); phase = p; phaseMu.Unlock() }

	time.Sleep(3 * time.Second)
	if err := env.Kafka.Stop(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	setPhase("broker down")
	time.Sleep(outage)
	backlog, _, err := s.Store.Backlog(context.Background())
	if err != nil || backlog == 0 {
		t.Fatalf("outbox backlog at the end of the outage = %d, %v: events were lost or published elsewhere", backlog, err)
	}
	setPhase("broker back")
	if err := env.Kafka.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	stop()
	wg.Wait()
	s.WaitDrained(t, 60*time.Second)

	log.mu.Lock()
	defer log.mu.Unlock()
	for _, f := range log.failures[:min(len(log.failures), 5)] {
		t.Errorf("a mutation failed: %s", f)
	}
	up, down := log.latencies["broker up"], log.latencies["broker down"]
	if len(up) < 20 || len(down) < 20 {
		t.Fatalf("too few mutations measured: %d with the broker up, %d down", len(up), len(down))
	}
	p50Up, p99Up, p50Down, p99Down := quantile(up, .5), quantile(up, .99), quantile(down, .5), quantile(down, .99)
	t.Logf("PATCH latency, broker up: p50 %v p99 %v (%d); broker down %v: p50 %v p99 %v max %v (%d); backlog at the end of the outage %d",
		p50Up, p99Up, len(up), outage, p50Down, p99Down, slices.Max(down), len(down), backlog)
	if p50Down > 3*p50Up+5*time.Millisecond || p99Down > 5*p99Up+50*time.Millisecond || slices.Max(down) > time.Second {
		t.Errorf("mutations slowed down while the broker was down")
	}

	recs := kafkatest.Consume(t, env.KafkaBrokers()[0], topic, log.mutations, time.Minute)
	deliveries, duplicates := stack.FirstDeliveries(t, recs)
	lastVersion := map[int64]int64{}
	for _, d := range deliveries {
		id := d.Event.Data.ID
		v, known := log.versions[id][d.Event.Data.Address]
		if !known {
			t.Errorf("event for user %d with address %q, which no answer reported", id, d.Event.Data.Address)
			continue
		}
		if v <= lastVersion[id] {
			t.Errorf("user %d: the event of version %d arrived after version %d", id, v, lastVersion[id])
		}
		lastVersion[id] = v
	}
	if len(deliveries) != log.mutations {
		t.Errorf("%d distinct events delivered for %d successful mutations", len(deliveries), log.mutations)
	}
	t.Logf("%d mutations, %d events delivered in per-user order, %d duplicate deliveries", log.mutations, len(deliveries), duplicates)
}
