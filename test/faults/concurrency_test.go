package faults_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/reliability/stack"
)

const racers = 50

// race sends the requests all at once (released together once every
// goroutine is ready) and returns the answers in order.
func race(t *testing.T, s *stack.Stack, reqs []stack.Request) []stack.Response {
	t.Helper()
	out := make([]stack.Response, len(reqs))
	errs := make([]error, len(reqs))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i, r := range reqs {
		ready.Add(1)
		done.Go(func() {
			ready.Done()
			<-start
			out[i], errs[i] = s.Send(t.Context(), r)
		})
	}
	ready.Wait()
	close(start)
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	return out
}

func tally(res []stack.Response) map[int]int {
	m := map[int]int{}
	for _, r := range res {
		m[r.Status]++
	}
	return m
}

// outboxEvents reads the outbox in publication order.
func outboxEvents(t *testing.T, s *stack.Stack) []domain.EventBody {
	t.Helper()
	rows, err := s.Store.DB().Query("SELECT payload FROM outbox ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []domain.EventBody
	for rows.Next() {
		var payload []byte
		if err := rows.Scan(&payload); err != nil {
			t.Fatal(err)
		}
		var ev domain.EventBody
		if err := json.Unmarshal(payload, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func mysqlStack(t *testing.T) *stack.Stack {
	return stack.Start(t, stack.Options{DatabaseURL: containers.NewDatabase(t).URL})
}

// TestConcurrentCreatesWithOneEmail: 50 creations of one address (in
// different cases) at once over HTTP: exactly one 201, 49 answers 400 with
// the taken-email message, no 5xx, one row and one event.
func TestConcurrentCreatesWithOneEmail(t *testing.T) {
	s := mysqlStack(t)
	reqs := make([]stack.Request, racers)
	for i := range reqs {
		email := "race@example.ch"
		if i%2 == 1 {
			email = strings.ToUpper(email)
		}
		reqs[i] = stack.JSON(http.MethodPost, "/api/v1/users",
			fmt.Sprintf(`{"first_name":"Racer","last_name":"%d","email":%q,"password":"racing-pass-%d"}`, i, email, i))
	}
	res := race(t, s, reqs)
	got := tally(res)
	t.Logf("%d concurrent creations of one email: %v", racers, got)
	if got[http.StatusCreated] != 1 || got[http.StatusBadRequest] != racers-1 {
		t.Fatalf("statuses %v, want one 201 and %d × 400", got, racers-1)
	}
	for _, r := range res {
		if r.Status == http.StatusBadRequest && string(r.Body) != `{"email":["user with this email already exists."]}` {
			t.Errorf("refusal %s", r.Body)
		}
	}
	if n := s.Count(t, "users"); n != 1 {
		t.Errorf("%d users stored", n)
	}
	if evs := outboxEvents(t, s); len(evs) != 1 || evs[0].Action != domain.ActionCreate || evs[0].Data.Email != "race@example.ch" {
		t.Errorf("outbox %+v, want the single create", evs)
	}
}

// TestConcurrentPatchesWithOneVersion: 50 PATCHes carrying the If-Match of
// one version at once: exactly one 200 (the next version's ETag), 49 × 412,
// and the stored user is the winner's.
func TestConcurrentPatchesWithOneVersion(t *testing.T) {
	s := mysqlStack(t)
	created := s.Do(t, stack.JSON(http.MethodPost, "/api/v1/users", `{"first_name":"Ada","last_name":"L","email":"ada@example.ch","password":"correct-horse"}`))
	if created.Status != http.StatusCreated || created.Header.Get("ETag") != `"1"` {
		t.Fatalf("create: %d %s %q", created.Status, created.Body, created.Header.Get("ETag"))
	}
	path := fmt.Sprintf("/api/v1/users/%v", created.Object()["id"])
	reqs := make([]stack.Request, racers)
	for i := range reqs {
		reqs[i] = stack.JSON(http.MethodPatch, path, fmt.Sprintf(`{"address":"Street %d"}`, i))
		reqs[i].Header = http.Header{"If-Match": {`"1"`}}
	}
	res := race(t, s, reqs)
	got := tally(res)
	t.Logf("%d concurrent PATCHes with If-Match \"1\": %v", racers, got)
	if got[http.StatusOK] != 1 || got[http.StatusPreconditionFailed] != racers-1 {
		t.Fatalf("statuses %v, want one 200 and %d × 412", got, racers-1)
	}
	var winner string
	for _, r := range res {
		switch r.Status {
		case http.StatusOK:
			winner, _ = r.Object()["address"].(string)
			if r.Header.Get("ETag") != `"2"` {
				t.Errorf("winner's ETag %q", r.Header.Get("ETag"))
			}
		case http.StatusPreconditionFailed:
			if string(r.Body) != `{"detail":"Precondition failed."}` {
				t.Errorf("loser's body %s", r.Body)
			}
		}
	}
	now := s.Do(t, stack.Request{Method: http.MethodGet, Path: path})
	if now.Object()["address"] != winner || now.Header.Get("ETag") != `"2"` {
		t.Errorf("stored user %s (ETag %s), want the winner's address %q at version 2", now.Body, now.Header.Get("ETag"), winner)
	}
	if evs := outboxEvents(t, s); len(evs) != 2 || evs[1].Action != domain.ActionUpdate || evs[1].Data.Address != winner {
		t.Errorf("outbox %+v, want the create and the winner's update", evs)
	}
}

// TestConcurrentUpdatesKeepUpdatedAtInOrder: 50 unconditional PATCHes of
// one user at once all succeed one after the other; each one's event must
// not say it happened before the previous one, since consumers are told to
// drop an event older than what they applied (README, Events), and the
// stored updated_at must be the latest.
func TestConcurrentUpdatesKeepUpdatedAtInOrder(t *testing.T) {
	s := mysqlStack(t)
	created := s.Do(t, stack.JSON(http.MethodPost, "/api/v1/users", `{"first_name":"Ada","last_name":"L","email":"ada@example.ch","password":"correct-horse"}`))
	if created.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", created.Status, created.Body)
	}
	path := fmt.Sprintf("/api/v1/users/%v", created.Object()["id"])
	reqs := make([]stack.Request, racers)
	for i := range reqs {
		reqs[i] = stack.JSON(http.MethodPatch, path, fmt.Sprintf(`{"address":"Street %d"}`, i))
	}
	if got := tally(race(t, s, reqs)); got[http.StatusOK] != racers {
		t.Fatalf("statuses %v, want %d × 200", got, racers)
	}
	evs := outboxEvents(t, s)
	if len(evs) != racers+1 {
		t.Fatalf("%d events, want %d", len(evs), racers+1)
	}
	backwards := 0
	for i := 1; i < len(evs); i++ {
		if evs[i].Data.UpdatedAt < evs[i-1].Data.UpdatedAt {
			backwards++
			if backwards <= 3 {
				t.Errorf("event %d (%s) says updated_at %s, before event %d's %s: a consumer keeping the newest would drop it",
					i, evs[i].Data.Address, evs[i].Data.UpdatedAt, i-1, evs[i-1].Data.UpdatedAt)
			}
		}
	}
	final := s.Do(t, stack.Request{Method: http.MethodGet, Path: path}).Object()
	last := evs[len(evs)-1]
	if final["address"] != last.Data.Address || final["updated_at"] != last.Data.UpdatedAt {
		t.Errorf("stored user %v, want the last event's state %+v", final, last.Data)
	}
	if backwards > 0 {
		t.Errorf("%d of %d updates went back in time", backwards, racers)
	}
}
