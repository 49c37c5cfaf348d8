// Package network puts a TCP fault proxy (Toxiproxy) between three service
// replicas and each dependency, under a steady mixed load, and checks what
// clients see during each fault and that nothing is lost or stuck after it.
// The README's Reliability section documents each outcome and bound.
package network

import (
	"context"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/netfault"
)

func TestMain(m *testing.M) { containers.Main(m) }

// faultFor is how long each fault lasts, as the issue sets it.
const faultFor = 20 * time.Second

// A database that stops answering without closing its connections, on one
// replica: that replica answers 503 within the statement bound and reports
// not ready; the others keep serving; afterwards it recovers by itself
// with a pool back within its bound.
func TestDatabaseBlackholedOnOneReplica(t *testing.T) {
	variants(t, []options{{postgres: true}}, testDatabaseBlackholedOnOneReplica)
}

func testDatabaseBlackholedOnOneReplica(t *testing.T, o options) {
	c := newCluster(t, o)
	l := c.startLoad(2)
	time.Sleep(2 * time.Second)
	cut := c.replicas[0]

	from := time.Now()
	cut.db.Blackhole(t)
	time.Sleep(statementTimeout + slack)
	if got := cut.ready(); got != http.StatusServiceUnavailable {
		t.Errorf("readiness of the cut-off replica = %d during the fault, want 503", got)
	}
	if got := c.replicas[1].ready(); got != http.StatusOK {
		t.Errorf("readiness of a healthy replica = %d during the fault, want 200", got)
	}
	time.Sleep(time.Until(from.Add(c.faultWindow())))
	cut.db.Heal(t)
	to := time.Now()

	recovered := awaitStatus(t, cut, http.StatusOK, 15*time.Second)
	t.Logf("the cut-off replica was ready again %v after the fault ended", recovered)
	time.Sleep(2 * time.Second)
	outs := l.finish()

	if s := slowest(outs); s.took > requestBound {
		t.Errorf("a %s on replica %d took %v, over the bound %v", s.op, s.replica, s.took, requestBound)
	}
	// Requests that started once the fault had surely taken hold.
	during := between(outs, from.Add(200*time.Millisecond), to, 0)
	for _, o := range during {
		if o.status != http.StatusServiceUnavailable {
			t.Errorf("cut-off replica answered a %s with %d during the fault, want 503: %s", o.op, o.status, summary(during))
			break
		}
	}
	if len(during) == 0 {
		t.Error("no request reached the cut-off replica during the fault")
	}
	others := between(outs, from, to, 1, 2)
	for _, o := range others {
		if o.status >= 500 || o.status == 0 {
			t.Errorf("a healthy replica answered a %s with %d during the fault: %s", o.op, o.status, summary(others))
			break
		}
	}
	after := between(outs, to.Add(recovered), time.Now(), 0)
	if len(after) == 0 || !allBelow(after, 500) {
		t.Errorf("the cut-off replica after recovery: %s, want only 2xx/4xx", summary(after))
	}
	assertPoolHealthy(t, cut)
	c.verify(t, outs)
}

// The replica whose relay holds the publishing lock is cut off from the
// database: the lease ends its hold, and another replica's relay publishes
// within takeoverBound. Nothing is lost.
//
// On PostgreSQL the lease is the holder session's idle_session_timeout
// (PostgreSQL 14 or later): the server ends the silent session, and its
// advisory lock with it.
func TestRelayLockHolderCutOff(t *testing.T) {
	variants(t, []options{{postgres: true}}, testRelayLockHolderCutOff)
}

func testRelayLockHolderCutOff(t *testing.T, o options) {
	c := newCluster(t, o)
	// A slow broker keeps each drain, and so each hold of the lock, long
	// enough to cut the holder off in the middle of one.
	c.brokers(func(p *netfault.Proxy) { p.Latency(t, 300*time.Millisecond) })
	l := c.startLoad(1)
	holder := -1
	for deadline := time.Now().Add(20 * time.Second); holder < 0; {
		if time.Now().After(deadline) {
			t.Fatal("no relay held the publishing lock within 20s")
		}
		holder = c.relayHolder(t)
	}
	cut := c.replicas[holder]
	cut.db.Blackhole(t)
	from := time.Now()
	if c.relayHolder(t) != holder {
		t.Log("the holder released the lock before the cut took hold; the takeover is then immediate")
	}
	c.brokers(func(p *netfault.Proxy) { p.Heal(t) })

	// A change made on another replica after the cut must be published
	// within the bound: that needs another relay to hold the lock.
	other := c.replicas[(holder+1)%replicas]
	// A new user needs no row the cut-off replica's open transaction may
	// hold (writers skip a held counter slot), so it is created at once.
	probe := tryCreateUser(other, "after-the-cut@network.test")
	probes := []outcome{probe} // for verify
	if probe.status != http.StatusCreated {
		t.Fatalf("create on replica %d = %d while another replica was cut off", other.n, probe.status)
	}
	id := probe.user
	took := awaitEvent(t, c, id, takeoverBound+5*time.Second).Sub(from)
	if took > takeoverBound {
		t.Errorf("publishing resumed %v after the lock holder was cut off, over the bound %v", took, takeoverBound)
	}
	t.Logf("replica %d held the lock when cut off; a change made elsewhere was published %v later", holder, took)
	time.Sleep(time.Until(from.Add(c.faultWindow())))
	cut.db.Heal(t)
	awaitStatus(t, cut, http.StatusOK, 15*time.Second)
	outs := append(l.finish(), probes...)
	c.verify(t, outs)
}

// The broker blackholed, then answering 2 s late, then resetting
// connections: requests keep their latency (the API never waits for the
// broker); the outbox grows, then drains; nothing is lost.
//
// On RabbitMQ every replica has its own proxy to the broker, and the fault
// hits all of them: each publisher must notice a connection that went
// silent (publisher confirms bounded by ConfirmTimeout, heartbeats) and
// connect again once the broker answers.
func TestBrokerFaults(t *testing.T) {
	variants(t, []options{{rabbitmq: true}}, testBrokerFaults)
}

func testBrokerFaults(t *testing.T, o options) {
	c := newCluster(t, o)
	l := c.startLoad(1)
	time.Sleep(3 * time.Second)
	base := time.Now()

	type phase struct {
		name  string
		apply func()
	}
	var grew bool
	for _, p := range []phase{
		{"blackholed", func() { c.brokers(func(p *netfault.Proxy) { p.Blackhole(t) }) }},
		{"2s latency", func() { c.brokers(func(p *netfault.Proxy) { p.Latency(t, 2*time.Second) }) }},
		{"connection resets", func() { c.brokers(func(p *netfault.Proxy) { p.ResetPeer(t, 0) }) }},
	} {
		p.apply()
		end := time.Now().Add(c.faultWindow())
		for time.Now().Before(end) {
			if n, _, err := c.db.Backlog(context.Background()); err == nil && n > 0 {
				grew = true
			}
			time.Sleep(500 * time.Millisecond)
		}
		c.brokers(func(p *netfault.Proxy) { p.Heal(t) })
		t.Logf("broker %s for %v", p.name, c.faultWindow())
	}
	to := time.Now()
	time.Sleep(2 * time.Second)
	outs := l.finish()
	if !grew {
		t.Error("the outbox never held an event while the broker was unreachable")
	}
	before := between(outs, time.Time{}, base)
	during := between(outs, base, to)
	if !allBelow(during, 500) {
		t.Errorf("requests failed while only the broker was faulty: %s", summary(during))
	}
	pb, pd := percentile(before, 0.95), percentile(during, 0.95)
	if pd > 3*pb+250*time.Millisecond {
		t.Errorf("p95 latency %v during the broker faults against %v before: the API waited for the broker", pd, pb)
	}
	t.Logf("p95 latency before %v, during the broker faults %v", pb, pd)
	c.verify(t, outs)
}

// One replica cut off from the broker alone while the others reach it
// (RabbitMQ, a proxy per replica). If its relay holds the publishing lock
// when the route dies, it gives the lock up once the broker has not
// confirmed within ConfirmTimeout; from then on it fails to connect
// before taking the lock, so the other relays publish everything, the
// cut-off replica's own changes included. Its requests are served as
// usual: they never wait for the broker.
func TestBrokerCutOffFromOneReplica(t *testing.T) {
	c := newCluster(t, options{rabbitmq: true})
	// A slow broker keeps each drain, and so each hold of the lock, long
	// enough to cut the holder off in the middle of one.
	c.brokers(func(p *netfault.Proxy) { p.Latency(t, 300*time.Millisecond) })
	l := c.startLoad(1)
	holder := -1
	for deadline := time.Now().Add(20 * time.Second); holder < 0; {
		if time.Now().After(deadline) {
			t.Fatal("no relay held the publishing lock within 20s")
		}
		holder = c.relayHolder(t)
	}
	cut := c.replicas[holder]
	cut.broker.Blackhole(t)
	from := time.Now()
	for _, r := range c.replicas {
		if r != cut {
			r.broker.Heal(t)
		}
	}

	// A change made on the cut-off replica itself: only another relay can
	// publish it.
	probe := createUser(t, cut, "cut-from-the-broker@network.test")
	took := awaitEvent(t, c, probe.user, brokerCutBound+5*time.Second).Sub(from)
	if took > brokerCutBound {
		t.Errorf("publishing resumed %v after the lock holder was cut off from the broker, over the bound %v", took, brokerCutBound)
	}
	t.Logf("replica %d held the lock when cut off from the broker; its own change was published by another %v later", holder, took)
	// Once it gave the lock up, the cut-off replica must not take it again
	// while it cannot reach the broker: each hold would stop every relay
	// for a connection attempt's length.
	retaken := 0
	for end := from.Add(c.faultWindow()); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if time.Since(from) > brokerCutBound && c.relayHolder(t) == holder {
			retaken++
		}
	}
	if retaken > 0 {
		t.Errorf("the replica cut off from the broker held the publishing lock again (%d samples)", retaken)
	}
	to := time.Now()
	cut.broker.Heal(t)
	time.Sleep(2 * time.Second)
	outs := append(l.finish(), probe)
	if during := between(outs, from, to, holder); len(during) == 0 || !allBelow(during, 500) {
		t.Errorf("the replica cut off from the broker answered %s, want only 2xx/4xx", summary(during))
	}
	if s := slowest(between(outs, from, to)); s.took > requestBound {
		t.Errorf("a %s on replica %d took %v while a replica was cut off from the broker", s.op, s.replica, s.took)
	}
	c.verify(t, outs)
}

// Every packet to and from the database 200 ms late on every replica:
// requests slow down, none takes longer than its bound, and the pools do
// not grow past theirs.
func TestDatabaseLatency(t *testing.T) {
	c := newCluster(t, options{})
	l := c.startLoad(2)
	time.Sleep(2 * time.Second)
	for _, r := range c.replicas {
		r.db.Latency(t, 200*time.Millisecond)
	}
	end := time.Now().Add(faultFor)
	most := 0
	for time.Now().Before(end) {
		for _, r := range c.replicas {
			most = max(most, r.stack.Store.DB().Stats().OpenConnections)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, r := range c.replicas {
		r.db.Heal(t)
	}
	time.Sleep(2 * time.Second)
	outs := l.finish()
	if s := slowest(outs); s.took > requestBound {
		t.Errorf("a %s on replica %d took %v under database latency, over the bound %v", s.op, s.replica, s.took, requestBound)
	}
	if limit := c.replicas[0].stack.Store.DB().Stats().MaxOpenConnections; most > limit {
		t.Errorf("a pool held %d connections, over its bound %d", most, limit)
	}
	t.Logf("most connections in one pool: %d; answers %s", most, summary(outs))
	for _, r := range c.replicas {
		assertPoolHealthy(t, r)
	}
	c.verify(t, outs)
}

// Connections reset in the middle of transactions that write a user and
// its outbox row: each change is all there or not at all.
func TestResetMidTransaction(t *testing.T) {
	variants(t, []options{{postgres: true}}, testResetMidTransaction)
}

func testResetMidTransaction(t *testing.T, o options) {
	c := newCluster(t, o)
	l := c.startLoad(2)
	// PostgreSQL sessions take longer to set up (SCRAM): resets spaced
	// as on MariaDB would leave hardly a transaction to cut.
	every := 300 * time.Millisecond
	if o.postgres {
		every = time.Second
	}
	end := time.Now().Add(c.faultWindow())
	for time.Now().Before(end) {
		time.Sleep(every)
		for _, r := range c.replicas {
			r.db.ResetPeer(t, 0)
		}
		time.Sleep(30 * time.Millisecond)
		for _, r := range c.replicas {
			r.db.Heal(t)
		}
	}
	time.Sleep(2 * time.Second)
	outs := l.finish()
	if !anyFailed(outs) {
		t.Error("no request failed: the resets never hit a connection in use")
	}
	// verify finds an event for every row change the answers reported and
	// a row state for every event; the outbox check makes it exact: every
	// user row was created together with its event.
	c.verify(t, outs)
	idText := "CAST(u.id AS CHAR)"
	if o.postgres {
		idText = "CAST(u.id AS TEXT)"
	}
	var orphans int
	err := c.db.DB().QueryRow(`SELECT COUNT(*) FROM users u WHERE NOT EXISTS (
		SELECT 1 FROM outbox o WHERE o.event_type = 'users.user.created' AND o.msg_key = ` + idText + `)`).Scan(&orphans)
	if err != nil {
		t.Fatal(err)
	}
	if orphans > 0 {
		t.Errorf("%d users have no created event in the outbox: a transaction committed half", orphans)
	}
}

// The geolocation provider answering slowly, then resetting connections:
// creates fail closed with 503 within GEO_TIMEOUT plus a small bound, and
// nothing else slows down.
func TestGeolocationSlowThenReset(t *testing.T) {
	c := newCluster(t, options{})
	l := c.startLoad(1)
	time.Sleep(2 * time.Second)
	base := time.Now()
	c.geo.Latency(t, 3*time.Second)
	time.Sleep(faultFor / 2)
	c.geo.Heal(t)
	switched := time.Now()
	c.geo.ResetPeer(t, 0)
	time.Sleep(faultFor / 2)
	c.geo.Heal(t)
	to := time.Now()
	time.Sleep(2 * time.Second)
	outs := l.finish()

	// A create is judged when its whole lookup ran inside one fault phase:
	// one that started just before a phase ended may get the provider's
	// delayed answer once the fault is lifted, as it should.
	var creates, others []outcome
	for _, o := range between(outs, base.Add(100*time.Millisecond), to) {
		switch {
		case o.op != "create":
			others = append(others, o)
		case o.start.Before(switched.Add(-geoTimeout)) || (o.start.After(switched) && o.start.Before(to.Add(-geoTimeout))):
			creates = append(creates, o)
		}
	}
	if len(creates) == 0 {
		t.Fatal("no create during the geolocation faults")
	}
	for _, o := range creates {
		if o.status != http.StatusServiceUnavailable {
			t.Errorf("a create started %v into the faults (switch at %v) answered %d after %v, want 503 (fail closed): %s",
				o.start.Sub(base), faultFor/2, o.status, o.took, summary(creates))
		}
		if o.took > geoTimeout+slack {
			t.Errorf("a create took %v while the provider failed, over GEO_TIMEOUT+%v", o.took, slack)
			break
		}
	}
	if !allBelow(others, 500) {
		t.Errorf("other requests failed during the geolocation faults: %s", summary(others))
	}
	before := between(outs, time.Time{}, base)
	var beforeOthers []outcome
	for _, o := range before {
		if o.op != "create" {
			beforeOthers = append(beforeOthers, o)
		}
	}
	if pb, pd := percentile(beforeOthers, 0.95), percentile(others, 0.95); pd > 3*pb+250*time.Millisecond {
		t.Errorf("p95 of other requests %v during the geolocation faults against %v before", pd, pb)
	}
	c.verify(t, outs)
}

// awaitStatus waits until a replica is ready and answers a read, and
// returns how long that took.
func awaitStatus(t *testing.T, r *replica, status int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for r.ready() != status {
		if time.Since(start) > within {
			t.Fatalf("replica %d not back to %d %v after the fault", r.n, status, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// assertPoolHealthy checks that, with the load stopped, the replica's pool
// has no connection in use and stays within its bound.
func assertPoolHealthy(t *testing.T, r *replica) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(requestBound)
	for {
		st := r.stack.Store.DB().Stats()
		if st.InUse == 0 && st.OpenConnections <= st.MaxOpenConnections {
			t.Logf("replica %d's pool had nothing in use %v after the check began", r.n, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("replica %d's pool after the fault: %d in use, %d open of %d", r.n, st.InUse, st.OpenConnections, st.MaxOpenConnections)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func allBelow(os []outcome, status int) bool {
	for _, o := range os {
		if o.status == 0 || o.status >= status {
			return false
		}
	}
	return true
}

func anyFailed(os []outcome) bool { return !allBelow(os, 500) }

func percentile(os []outcome, p float64) time.Duration {
	if len(os) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(os))
	for i, o := range os {
		ds[i] = o.took
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}
