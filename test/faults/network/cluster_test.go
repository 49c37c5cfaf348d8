package network

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/ipapi"
	"github.com/marketplace/usersvc/adapters/kafka"
	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/adapters/rabbitmq"
	"github.com/marketplace/usersvc/adapters/rabbitmq/rabbitmqtest"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/eventschema"
	"github.com/marketplace/usersvc/test/netfault"
	"github.com/marketplace/usersvc/test/reliability/stack"
)

// The bounds the README's Reliability table documents for these faults.
const (
	statementTimeout = 2 * time.Second // DB_STATEMENT_TIMEOUT in the suite
	lockLease        = 3 * time.Second // DB_LOCK_LEASE in the suite
	geoTimeout       = time.Second     // GEO_TIMEOUT in the suite
	// slack is what a request may take beyond the bound that cuts it:
	// the answer, a second attempt to reach the pool, the scheduler of a
	// 2-core machine running three replicas and the load.
	slack = 1500 * time.Millisecond
	// requestBound is the longest any request may take under any fault.
	requestBound = statementTimeout + slack
	// takeoverBound is how long publishing may stop when the relay lock's
	// holder is cut off: the lease, plus a poll and a drain.
	takeoverBound = lockLease + 3*time.Second
	// confirmTimeout is the RabbitMQ publisher's ConfirmTimeout in the
	// suite: how long a relay waits for a broker that stopped answering.
	confirmTimeout = 3 * time.Second
	// brokerCutBound is how long publishing may stop when the lock holder
	// alone is cut off from RabbitMQ: the confirm timeout, then a poll and
	// a drain by another relay.
	brokerCutBound = confirmTimeout + 3*time.Second
	// variantFaultFor is the fault window of the PostgreSQL and RabbitMQ
	// variants (see faultWindow).
	variantFaultFor = 10 * time.Second
	replicas        = 3
	topic           = "users"
)

// cluster is three service replicas sharing one database (MariaDB or
// PostgreSQL) and one broker (the Kafka-protocol broker or RabbitMQ), each
// reaching the database through its own fault proxy. RabbitMQ sits behind a
// proxy per replica too; the Kafka-protocol broker behind one proxy for all
// (a Kafka client connects to the address the broker advertises, and one
// broker advertises one). The geolocation provider has one proxy.
type cluster struct {
	t        *testing.T
	opts     options
	replicas []*replica
	db       *gormstore.Store // direct, for checks
	broker   string           // the Kafka broker's own address, for reading back
	kafka    *netfault.Proxy  // in front of the Kafka broker, for every replica
	queue    *rabbitmqtest.Queue
	geo      *netfault.Proxy // in front of the geolocation provider
}

type replica struct {
	n      int
	stack  *stack.Stack
	db     *netfault.Proxy
	broker *netfault.Proxy // the Kafka proxy shared by all, or this replica's RabbitMQ proxy
}

// options choose the dependencies of a cluster; the zero value is MariaDB
// and the Kafka-protocol broker.
type options struct {
	postgres bool
	rabbitmq bool
}

func (o options) String() string {
	db, bus := "mariadb", "kafka"
	if o.postgres {
		db = "postgres"
	}
	if o.rabbitmq {
		bus = "rabbitmq"
	}
	return db + "+" + bus
}

// variants are the store and broker combinations a case runs on: MariaDB
// with Kafka always, plus the ones where the case's mechanism differs.
func variants(t *testing.T, extra []options, body func(t *testing.T, o options)) {
	for _, o := range append([]options{{}}, extra...) {
		t.Run(o.String(), func(t *testing.T) { body(t, o) })
	}
}

// faultWindow is how long a fault lasts: the 20 s on MariaDB with
// Kafka, half of it on the other variants, whose every bound is under 5 s
// (a longer window adds no new state, only CI time).
func (c *cluster) faultWindow() time.Duration {
	if c.opts != (options{}) {
		return variantFaultFor
	}
	return faultFor
}

func newCluster(t *testing.T, opts options) *cluster {
	t.Helper()
	c := &cluster{t: t, opts: opts}
	dbURL := containers.NewDatabase(t).URL
	if opts.postgres {
		dbURL = stack.FreshPostgres(t)
	}
	store, err := gormstore.Open(context.Background(), gormstore.Config{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.db = store
	var exchange, amqpURL string
	if opts.rabbitmq {
		exchange = rabbitmqtest.NewExchange(t)
		c.queue = rabbitmqtest.BindQueue(t, exchange, "#")
		amqpURL = rabbitmqtest.URL(t)
	} else {
		c.startBroker(t)
	}
	c.startGeo(t)
	logs := io.Discard
	if testing.Verbose() {
		logs = &stderrFilter{}
	}
	for i := range replicas {
		proxy, proxied := netfault.ForURL(t, fmt.Sprintf("db-%d", i), c.replicaURL(t, dbURL, i))
		geo, err := ipapi.New(ipapi.Config{BaseURL: "http://" + c.geo.Addr, Timeout: geoTimeout})
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{n: i, db: proxy, broker: c.kafka}
		var pub ports.EventPublisher
		if opts.rabbitmq {
			var viaProxy string
			r.broker, viaProxy = netfault.ForURL(t, fmt.Sprintf("amqp-%d", i), amqpURL)
			p, err := rabbitmq.NewPublisher(rabbitmq.Config{
				URL: viaProxy, Exchange: exchange, Source: "usersvc-network-test", ConfirmTimeout: confirmTimeout,
			}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close(context.Background()) }) // after the replica's relay stopped
			pub = p
		} else {
			pub = kafkatest.NewPublisher(t, kafka.Config{
				Brokers: []string{c.kafka.Addr}, Topic: topic, Source: "usersvc-network-test",
			}, slog.New(slog.DiscardHandler))
		}
		r.stack = stack.Start(t, stack.Options{
			DatabaseURL:      proxied,
			StatementTimeout: statementTimeout,
			LockLease:        lockLease,
			Geolocator:       geo,
			TrustedProxies:   "127.0.0.1/32",
			Relay:            true,
			Publisher:        pub,
			RelayConfig:      app.RelayConfig{PollInterval: 200 * time.Millisecond, MaxBackoff: time.Second},
			LogWriter:        logs,
		})
		r.stack.Client.Timeout = 30 * time.Second // longer than any bound: a hang shows as a long request, not a client error
		c.replicas = append(c.replicas, r)
	}
	return c
}

// brokers applies f to every distinct proxy in front of the broker: a
// fault there reaches every replica.
func (c *cluster) brokers(f func(p *netfault.Proxy)) {
	seen := map[*netfault.Proxy]bool{}
	for _, r := range c.replicas {
		if !seen[r.broker] {
			seen[r.broker] = true
			f(r.broker)
		}
	}
}

// startBroker runs an in-process kfake broker that advertises the proxy's
// address, so that every client connection, bootstrap and produce alike,
// goes through the proxy.
func (c *cluster) startBroker(t *testing.T) {
	port := freePort(t)
	c.broker = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c.kafka = netfault.New(t, "kafka", c.broker)
	advertised := c.kafka.Addr
	cl, err := kfake.NewCluster(
		kfake.Ports(port),
		kfake.SeedTopics(3, topic),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			return advertisedListener{ln, advertised}, nil
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
}

// advertisedListener makes kfake name the proxy in its metadata.
type advertisedListener struct {
	net.Listener
	addr string
}

func (l advertisedListener) Addr() net.Addr {
	a, _ := net.ResolveTCPAddr("tcp", l.addr)
	return a
}

// startGeo serves an ipapi.co stand-in that places every address in
// Switzerland, behind a proxy.
func (c *cluster) startGeo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"country_code": "CH", "country_name": "Switzerland"}`)
	}))
	t.Cleanup(srv.Close)
	c.geo = netfault.New(t, "geo", strings.TrimPrefix(srv.URL, "http://"))
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// stderrFilter prints the replicas' warnings and errors when the suite runs
// verbose.
type stderrFilter struct{ mu sync.Mutex }

func (f *stderrFilter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(`"level":"WARN"`)) || bytes.Contains(p, []byte(`"level":"ERROR"`)) {
		f.mu.Lock()
		defer f.mu.Unlock()
		fmt.Print(string(p))
	}
	return len(p), nil
}

// clientAddr is the public address the load's clients come from; the
// provider stand-in places every address in Switzerland.
const clientAddr = "185.12.64.1"

// outcome is one answer the load client saw.
type outcome struct {
	replica int
	op      string // create, patch, delete, get
	user    int64  // 0 for a create that failed
	email   string // create
	marker  string // the address a create or patch wrote
	status  int    // 0: no answer (transport error)
	start   time.Time
	took    time.Duration
	worker  int
	seq     int // the worker's own order of requests
}

// load is a steady mixed client: each worker owns the users it created, on
// one replica, so each user's changes are made in one known order.
type load struct {
	c        *cluster
	mu       sync.Mutex
	outcomes []outcome
	stop     chan struct{}
	done     sync.WaitGroup
	counter  atomic.Int64
	only     map[int]bool // replicas that get load; nil: all
}

func (c *cluster) startLoad(workersPerReplica int, only ...int) *load {
	l := &load{c: c, stop: make(chan struct{})}
	if len(only) > 0 {
		l.only = map[int]bool{}
		for _, n := range only {
			l.only[n] = true
		}
	}
	w := 0
	for _, r := range c.replicas {
		if l.only != nil && !l.only[r.n] {
			continue
		}
		for range workersPerReplica {
			l.done.Add(1)
			go l.worker(r, w)
			w++
		}
	}
	return l
}

func (l *load) worker(r *replica, w int) {
	defer l.done.Done()
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	var mine []int64
	for seq := 0; ; seq++ {
		select {
		case <-l.stop:
			return
		default:
		}
		n := l.counter.Add(1)
		marker := fmt.Sprintf("%d Network Street w%d-s%d", n, w, seq)
		o := outcome{replica: r.n, worker: w, seq: seq, start: time.Now()}
		switch p := rng.IntN(100); {
		case len(mine) == 0 || p < 30:
			o.op, o.email, o.marker = "create", fmt.Sprintf("u%d-w%d@network.test", n, w), marker
			var u struct {
				ID int64 `json:"id"`
			}
			o.status = l.call(r, http.MethodPost, "/api/v1/users", map[string]string{
				"email": o.email, "password": "network-fault-pw-1", "first_name": "Net",
				"last_name": "Fault", "address": marker,
			}, &u)
			if o.status == http.StatusCreated {
				o.user = u.ID
				mine = append(mine, u.ID)
			}
		case p < 60:
			o.op, o.user, o.marker = "patch", mine[rng.IntN(len(mine))], marker
			o.status = l.call(r, http.MethodPatch, fmt.Sprintf("/api/v1/users/%d", o.user), map[string]string{"address": marker}, nil)
		case p < 70:
			i := rng.IntN(len(mine))
			o.op, o.user = "delete", mine[i]
			o.status = l.call(r, http.MethodDelete, fmt.Sprintf("/api/v1/users/%d", o.user), nil, nil)
			if o.status == http.StatusNoContent {
				mine = append(mine[:i], mine[i+1:]...)
			}
		default:
			o.op, o.user = "get", mine[rng.IntN(len(mine))]
			o.status = l.call(r, http.MethodGet, fmt.Sprintf("/api/v1/users/%d", o.user), nil, nil)
		}
		o.took = time.Since(o.start)
		l.mu.Lock()
		l.outcomes = append(l.outcomes, o)
		l.mu.Unlock()
		if o.status == 0 || o.status >= 500 {
			time.Sleep(50 * time.Millisecond) // a client backs off a failing replica
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (l *load) call(r *replica, method, path string, body any, into any) int {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.stack.URL+path, rd)
	if err != nil {
		return 0
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// The load comes through a trusted proxy on loopback for a client at a
	// public address, which the geolocation provider is asked about.
	req.Header.Set("X-Forwarded-For", clientAddr)
	resp, err := r.stack.Client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if into != nil && resp.StatusCode < 300 {
		_ = json.Unmarshal(b, into)
	}
	return resp.StatusCode
}

// finish stops the load and returns every answer.
func (l *load) finish() []outcome {
	close(l.stop)
	l.done.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]outcome(nil), l.outcomes...)
}

// between returns the outcomes of requests started in [from, to) on the
// given replicas (all when none is given).
func between(all []outcome, from, to time.Time, replicas ...int) []outcome {
	var out []outcome
	for _, o := range all {
		if o.start.Before(from) || !o.start.Before(to) {
			continue
		}
		if len(replicas) > 0 && !containsInt(replicas, o.replica) {
			continue
		}
		out = append(out, o)
	}
	return out
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// summary counts answers by status class, for failure messages.
func summary(os []outcome) string {
	counts := map[string]int{}
	for _, o := range os {
		k := "no answer"
		if o.status != 0 {
			k = strconv.Itoa(o.status)
		}
		counts[k]++
	}
	b, _ := json.Marshal(counts)
	return string(b)
}

// slowest returns the longest request among os.
func slowest(os []outcome) outcome {
	var s outcome
	for _, o := range os {
		if o.took > s.took {
			s = o
		}
	}
	return s
}

// ready asks a replica's /readyz.
func (r *replica) ready() int {
	resp, err := r.stack.Client.Get(r.stack.URL + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// awaitDrained waits until the outbox is empty, so that every committed
// change has been published.
func (c *cluster) awaitDrained(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, _, err := c.db.Backlog(context.Background())
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d events (%v) %v after the fault ended", n, err, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// events reads every event from the broker itself (not through a proxy):
// the Kafka topic from its start, or what the RabbitMQ queue bound to the
// exchange received, as records keyed by user id.
func (c *cluster) events(t *testing.T) []*kgo.Record {
	t.Helper()
	if c.queue != nil {
		time.Sleep(time.Second) // deliveries still on their way to the queue's consumer
		return amqpRecords(c.queue.All())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	idle := 0
	for idle < 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			if r.Value != nil { // tombstones carry no event
				eventschema.Check(t, r.Value)
				recs = append(recs, r)
			}
			n++
		})
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return recs
}

// amqpRecords turns RabbitMQ deliveries into records keyed by the event's
// subject (the user id), as Kafka keys them, in arrival order.
func amqpRecords(ds []amqp.Delivery) []*kgo.Record {
	recs := make([]*kgo.Record, 0, len(ds))
	for _, d := range ds {
		subject, _ := d.Headers["cloudEvents:subject"].(string)
		recs = append(recs, &kgo.Record{Key: []byte(subject), Value: d.Body})
	}
	return recs
}

// verify checks what must hold after every case: each 2xx mutation has its
// event (at least once; duplicates are counted and reported), no event
// stands for a refused request or for none at all, each user's events come
// in the order of its committed changes, and the rows hold what the
// successful answers said. A request that failed with a 5xx while its
// commit was in flight may still have committed: its event is allowed,
// counted as ambiguous, and then the row may show it.
func (c *cluster) verify(t *testing.T, outs []outcome) {
	t.Helper()
	c.awaitDrained(t, 30*time.Second)
	firsts, dups := stack.FirstDeliveries(t, c.events(t))

	byEmail := map[string]outcome{}
	byMarker := map[string]outcome{}
	deletes := map[int64][]outcome{}
	for _, o := range outs {
		switch o.op {
		case "create":
			byEmail[o.email] = o
			byMarker[o.marker] = o
		case "patch":
			byMarker[o.marker] = o
		case "delete":
			deletes[o.user] = append(deletes[o.user], o)
		}
	}
	created := map[int64]bool{}
	updated := map[string]bool{}
	deleted := map[int64]bool{}
	ambiguous := 0
	order := map[int64][]domain.EventBody{}
	for _, d := range firsts {
		ev := d.Event
		order[ev.Data.ID] = append(order[ev.Data.ID], ev)
		switch ev.Action {
		case domain.ActionCreate:
			o, ok := byEmail[ev.Data.Email]
			switch {
			case !ok:
				t.Errorf("created event for %s, which no request created", ev.Data.Email)
			case o.status == http.StatusCreated:
				if o.user != ev.Data.ID {
					t.Errorf("created event for user %d, the answer said %d", ev.Data.ID, o.user)
				}
			case o.status >= 500 || o.status == 0:
				ambiguous++
			default:
				t.Errorf("created event for a create answered %d", o.status)
			}
			created[ev.Data.ID] = true
		case domain.ActionUpdate:
			o, ok := byMarker[ev.Data.Address]
			switch {
			case !ok || o.op != "patch":
				t.Errorf("updated event of user %d with address %q, which no patch wrote", ev.Data.ID, ev.Data.Address)
			case o.status == http.StatusOK:
			case o.status >= 500 || o.status == 0:
				ambiguous++
			default:
				t.Errorf("updated event for a patch answered %d", o.status)
			}
			updated[ev.Data.Address] = true
		case domain.ActionDelete:
			ds, ok := deletes[ev.Data.ID]
			if !ok {
				t.Errorf("deleted event of user %d, which no request deleted", ev.Data.ID)
			} else if !anyStatus(ds, http.StatusNoContent) {
				ambiguous++
			}
			deleted[ev.Data.ID] = true
		}
	}
	lost := 0
	for _, o := range outs {
		switch {
		case o.op == "create" && o.status == http.StatusCreated && !created[o.user],
			o.op == "patch" && o.status == http.StatusOK && !updated[o.marker],
			o.op == "delete" && o.status == http.StatusNoContent && !deleted[o.user]:
			lost++
			if lost <= 5 {
				t.Errorf("lost: %s of user %d answered %d on replica %d, no event", o.op, o.user, o.status, o.replica)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d successful mutations have no event", lost)
	}
	// Per user: created first, deleted last, updates in the order the
	// owning worker made them (its request sequence).
	for id, evs := range order {
		for i, ev := range evs {
			if (ev.Action == domain.ActionCreate) != (i == 0) || (ev.Action == domain.ActionDelete && i != len(evs)-1) {
				t.Errorf("user %d: events out of order: %v", id, actions(evs))
				break
			}
			if i > 0 && ev.Action == domain.ActionUpdate && evs[i-1].Action == domain.ActionUpdate &&
				byMarker[ev.Data.Address].seq < byMarker[evs[i-1].Data.Address].seq {
				t.Errorf("user %d: update %q published before %q, which was made earlier", id, evs[i-1].Data.Address, ev.Data.Address)
			}
		}
	}
	c.verifyRows(t, outs, byMarker)
	t.Logf("%d answers %s; %d events first delivered, %d duplicates, %d ambiguous (5xx whose change committed)",
		len(outs), summary(outs), len(firsts), dups, ambiguous)
}

// verifyRows checks each user's row against the last successful answer
// about it, allowing a later ambiguous (5xx) change.
func (c *cluster) verifyRows(t *testing.T, outs []outcome, byMarker map[string]outcome) {
	t.Helper()
	type state struct {
		last    outcome // last 2xx mutation
		later   []outcome
		deleted bool
	}
	users := map[int64]*state{}
	for _, o := range outs { // in order of completion per worker; a user has one worker
		if o.user == 0 || o.op == "get" {
			continue
		}
		s := users[o.user]
		if s == nil {
			s = &state{}
			users[o.user] = s
		}
		if o.status >= 200 && o.status < 300 {
			s.last, s.later = o, nil
			s.deleted = o.op == "delete"
		} else if o.status >= 500 || o.status == 0 {
			s.later = append(s.later, o)
		}
	}
	for id, s := range users {
		u, err := c.db.GetUser(context.Background(), id)
		switch {
		case s.deleted && err == nil:
			t.Errorf("user %d answered deleted, but its row is there", id)
		case !s.deleted && err != nil:
			if !anyOp(s.later, "delete") {
				t.Errorf("user %d: %v, but the last answer (%s, %d) said it exists", id, err, s.last.op, s.last.status)
			}
		case !s.deleted && u.Address != s.last.marker:
			if o, ok := byMarker[u.Address]; !ok || !containsOutcome(s.later, o) {
				t.Errorf("user %d holds address %q; the last successful answer wrote %q", id, u.Address, s.last.marker)
			}
		}
	}
}

func anyStatus(os []outcome, status int) bool {
	for _, o := range os {
		if o.status == status {
			return true
		}
	}
	return false
}

func anyOp(os []outcome, op string) bool {
	for _, o := range os {
		if o.op == op {
			return true
		}
	}
	return false
}

func containsOutcome(os []outcome, x outcome) bool {
	for _, o := range os {
		if o.worker == x.worker && o.seq == x.seq {
			return true
		}
	}
	return false
}

func actions(evs []domain.EventBody) []domain.Action {
	out := make([]domain.Action, len(evs))
	for i, ev := range evs {
		out[i] = ev.Action
	}
	return out
}

// relayHolder returns the replica whose relay holds the publishing lock
// now (each replica connects as its own account), or -1.
func (c *cluster) relayHolder(t *testing.T) int {
	t.Helper()
	q := "SELECT USER FROM information_schema.PROCESSLIST WHERE ID = IS_USED_LOCK(LEFT(CONCAT('usersvc.outbox-relay', '@', DATABASE()), 64))"
	if c.opts.postgres {
		// The relay's advisory lock is the only one held between migrations.
		q = `SELECT a.usename FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.granted
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1`
	}
	var user sql.NullString
	if err := c.db.DB().QueryRowContext(context.Background(), q).Scan(&user); err != nil || !user.Valid {
		return -1
	}
	var n int
	if _, err := fmt.Sscanf(user.String, "replica%d", &n); err != nil {
		return -1
	}
	return n
}

// replicaURL creates an account of replica n's own on the database dbURL
// names and returns the URL that uses it.
func (c *cluster) replicaURL(t *testing.T, dbURL string, n int) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	user := fmt.Sprintf("replica%d", n)
	qs := []string{
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY 'network-pw'", user),
		fmt.Sprintf("GRANT ALL ON `%s`.* TO '%s'@'%%'", name, user),
	}
	if c.opts.postgres {
		// Roles belong to the server, not to the database: made once,
		// allowed everywhere (a test server; the replicas run migrations).
		qs = []string{fmt.Sprintf(`DO $$ BEGIN CREATE ROLE %s LOGIN SUPERUSER PASSWORD 'network-pw';
			EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`, user)}
	}
	for _, q := range qs {
		if _, err := c.db.DB().Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u.User = url.UserPassword(user, "network-pw")
	return u.String()
}

// createUser creates a user on a replica, outside the load, and returns
// the answer as the load would have recorded it.
func createUser(t *testing.T, r *replica, email string) outcome {
	t.Helper()
	o := tryCreateUser(r, email)
	if o.status != http.StatusCreated {
		t.Fatalf("create %s on replica %d = %d", email, r.n, o.status)
	}
	return o
}

// tryCreateUser is createUser that returns whatever the answer was.
func tryCreateUser(r *replica, email string) outcome {
	l := &load{}
	var u struct {
		ID int64 `json:"id"`
	}
	o := outcome{replica: r.n, op: "create", email: email, marker: "1 Probe Street", worker: -1, start: time.Now()}
	o.status = l.call(r, http.MethodPost, "/api/v1/users", map[string]string{
		"email": email, "password": "network-fault-pw-1", "first_name": "Net", "last_name": "Fault", "address": o.marker,
	}, &u)
	o.took, o.user = time.Since(o.start), u.ID
	return o
}

// awaitEvent waits until the created event of user id is on the broker and
// returns when it was seen.
func awaitEvent(t *testing.T, c *cluster, id int64, within time.Duration) time.Time {
	t.Helper()
	key := strconv.FormatInt(id, 10)
	deadline := time.Now().Add(within)
	if c.queue != nil {
		for time.Now().Before(deadline) {
			for _, r := range amqpRecords(c.queue.All()) {
				if string(r.Key) == key {
					return time.Now()
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("the event of user %d was not published within %v", id, within)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		fs := cl.PollFetches(ctx)
		cancel()
		found := false
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == key && r.Value != nil {
				found = true
			}
		})
		if found {
			return time.Now()
		}
	}
	t.Fatalf("the event of user %d was not published within %v", id, within)
	return time.Time{}
}
