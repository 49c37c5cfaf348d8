package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/reliability/stack"
)

// Bounds of the restart scenario.
const (
	restartWorkers   = 4
	maxRequests      = 20000
	failFast         = time.Second // the bound for an answer during the outage
	outageHold       = 2 * time.Second
	recoveryDeadline = 20 * time.Second
)

const dbDownBody = `{"detail":"Database service unavailable, try again later."}`

type outcome struct {
	began   time.Time
	elapsed time.Duration
	status  int
	body    string
	retry   string
	email   string
	id      int64
}

type probe struct {
	at     time.Time
	status int
}

// recorder collects what the clients saw.
type recorder struct {
	mu       sync.Mutex
	outcomes []outcome
	probes   []probe
}

func (r *recorder) add(o outcome) {
	r.mu.Lock()
	r.outcomes = append(r.outcomes, o)
	r.mu.Unlock()
}

func (r *recorder) addProbe(p probe) {
	r.mu.Lock()
	r.probes = append(r.probes, p)
	r.mu.Unlock()
}

// firstCreatedAfter returns when the first request begun after t succeeded.
func (r *recorder) firstCreatedAfter(t time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.outcomes {
		if o.status == http.StatusCreated && o.began.After(t) {
			return o.began.Add(o.elapsed), true
		}
	}
	return time.Time{}, false
}

// TestDatabaseRestartDuringTraffic stops the database container under a
// stream of creations and starts it again. While it is down every request
// must fail fast with 503 and Retry-After and /readyz must say so; the
// service must recover by itself; and afterwards users and events must
// match one to one: no user without its event, no event without its user.
func TestDatabaseRestartDuringTraffic(t *testing.T) {
	env := containers.Shared(t)
	topic := containers.NewTopic(t, 3)
	pub := newPublisher(t, topic)
	s := stack.Start(t, stack.Options{
		DatabaseURL: containers.NewDatabase(t).URL,
		Relay:       true,
		Publisher:   pub,
		RelayConfig: app.RelayConfig{PollInterval: 200 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond},
	})

	rec := &recorder{}
	ctx, stopTraffic := context.WithCancel(context.Background())
	defer stopTraffic()
	var seq atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { // the orchestrator's readiness probe
		for ctx.Err() == nil {
			if res, err := s.Send(context.Background(), stack.Request{Method: http.MethodGet, Path: "/readyz"}); err == nil {
				rec.addProbe(probe{time.Now(), res.Status})
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	for range restartWorkers {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := seq.Add(1)
				if n > maxRequests {
					return
				}
				email := fmt.Sprintf("restart%d@example.ch", n)
				began := time.Now()
				res, err := s.Send(context.Background(), stack.JSON(http.MethodPost, "/api/v1/users",
					fmt.Sprintf(`{"first_name":"Ada","last_name":"Lovelace","email":%q,"password":"restart-pass-%d"}`, email, n)))
				if err != nil {
					rec.add(outcome{began: began, elapsed: time.Since(began), status: -1, body: err.Error(), email: email})
					continue
				}
				o := outcome{began: began, elapsed: res.Elapsed, status: res.Status, body: string(res.Body), retry: res.Header.Get("Retry-After"), email: email}
				if res.Status == http.StatusCreated {
					var u struct{ ID int64 }
					_ = json.Unmarshal(res.Body, &u)
					o.id = u.ID
				}
				rec.add(o)
				if o.status != http.StatusCreated {
					// Pace retries as a client would: answers during the
					// outage take under a millisecond, and unpaced they used
					// up maxRequests before the database was back.
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}

	time.Sleep(1500 * time.Millisecond)
	stopBegan := time.Now()
	stopTimeout := 10 * time.Second
	if err := env.MySQL.Container().Stop(context.Background(), &stopTimeout); err != nil {
		t.Fatalf("stop the database: %v", err)
	}
	stopped := time.Now()
	time.Sleep(outageHold)
	startBegan := time.Now()
	if err := env.MySQL.Container().Start(context.Background()); err != nil {
		t.Fatalf("start the database again: %v", err)
	}
	waitPing(t, env)
	started := time.Now()
	var recovered time.Time
	for deadline := started.Add(recoveryDeadline); ; {
		if at, ok := rec.firstCreatedAfter(started); ok {
			recovered = at
			break
		}
		if time.Now().After(deadline) {
			stopTraffic()
			wg.Wait()
			t.Fatalf("no creation succeeded within %v of the database's return", recoveryDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	stopTraffic()
	wg.Wait()

	rec.mu.Lock()
	outcomes, probes := rec.outcomes, rec.probes
	rec.mu.Unlock()
	var (
		during, refused, created int
		slowest                  time.Duration
	)
	for _, o := range outcomes {
		switch {
		case o.status == http.StatusCreated:
			created++
		case o.status == http.StatusServiceUnavailable && o.body == dbDownBody && o.retry == "10":
			refused++
		default:
			t.Errorf("request begun at +%v answered %d %q (Retry-After %q)", o.began.Sub(stopBegan), o.status, o.body, o.retry)
		}
		if o.began.After(stopBegan) && o.began.Before(recovered) {
			slowest = max(slowest, o.elapsed)
			if o.elapsed > failFast {
				t.Errorf("request begun at +%v during the outage took %v", o.began.Sub(stopBegan), o.elapsed)
			}
		}
		if o.began.After(stopped) && o.began.Add(o.elapsed).Before(startBegan) {
			during++
			if o.status != http.StatusServiceUnavailable {
				t.Errorf("request wholly inside the outage answered %d", o.status)
			}
		}
	}
	if during < 10 {
		t.Fatalf("only %d requests ran wholly inside the outage: the test did not exercise it", during)
	}
	var readyDown, readyBack bool
	for _, p := range probes {
		readyDown = readyDown || p.at.After(stopped) && p.at.Before(startBegan) && p.status == http.StatusServiceUnavailable
		readyBack = readyBack || p.at.After(recovered) && p.status == http.StatusOK
	}
	if !readyDown || !readyBack {
		t.Errorf("/readyz: 503 during the outage %v, 200 after recovery %v", readyDown, readyBack)
	}
	t.Logf("database stopped in %v, down %v, back in %v; first success %v after it answered again",
		stopped.Sub(stopBegan).Round(time.Millisecond), startBegan.Sub(stopped).Round(time.Millisecond),
		started.Sub(startBegan).Round(time.Millisecond), recovered.Sub(started).Round(time.Millisecond))
	t.Logf("%d requests: %d created, %d refused with 503 (%d wholly inside the outage); slowest answer from the stop to recovery %v",
		len(outcomes), created, refused, during, slowest.Round(time.Millisecond))

	s.WaitDrained(t, 30*time.Second)
	checkUsersMatchEvents(t, s, env.KafkaBrokers()[0], topic, outcomes)
}

func waitPing(t *testing.T, env *containers.Env) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := env.MySQL.Root().PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the database did not come back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkUsersMatchEvents asserts that the stored users and the published
// create events are the same set, and that every 201 is among them.
func checkUsersMatchEvents(t *testing.T, s *stack.Stack, broker, topic string, outcomes []outcome) {
	t.Helper()
	users := map[int64]string{}
	rows, err := s.Store.DB().Query("SELECT id, email FROM users")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var email string
		if err := rows.Scan(&id, &email); err != nil {
			t.Fatal(err)
		}
		users[id] = email
	}
	_ = rows.Close()
	for _, o := range outcomes {
		if o.status == http.StatusCreated && users[o.id] != o.email {
			t.Errorf("user %d (%s) was answered 201 but is not stored", o.id, o.email)
		}
	}
	recs := kafkatest.Consume(t, broker, topic, len(users), 30*time.Second)
	deliveries, duplicates := stack.FirstDeliveries(t, recs)
	events := map[int64]string{}
	for _, d := range deliveries {
		ev := d.Event
		if ev.Action != domain.ActionCreate || d.Key != strconv.FormatInt(ev.Data.ID, 10) {
			t.Errorf("unexpected event %+v with key %q", ev, d.Key)
		}
		if _, dup := events[ev.Data.ID]; dup {
			t.Errorf("two create events for user %d", ev.Data.ID)
		}
		events[ev.Data.ID] = ev.Data.Email
	}
	for id, email := range users {
		if events[id] != email {
			t.Errorf("user %d (%s) has no create event", id, email)
		}
	}
	for id, email := range events {
		if users[id] != email {
			t.Errorf("event for user %d (%s), who is not stored", id, email)
		}
	}
	t.Logf("%d users stored, %d create events published (%d duplicate deliveries)", len(users), len(events), duplicates)
}
