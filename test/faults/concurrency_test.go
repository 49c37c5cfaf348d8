package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/eventschema"
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
		eventschema.Check(t, payload) // what the relay will publish as it is
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

// TestUpdateWaitingForALockDoesNotGoBackInTime: an update that waited for
// the row lock while another writer committed must not store (nor
// announce) an updated_at older than that writer's: consumers are told to
// drop an event older than what they applied (README, Events), and a later
// GET must not show time going backwards. Another transaction holds the
// row, the PATCH starts and waits, the holder commits a change stamped
// now, then the PATCH completes.
func TestUpdateWaitingForALockDoesNotGoBackInTime(t *testing.T) {
	s := mysqlStack(t)
	created := s.Do(t, stack.JSON(http.MethodPost, "/api/v1/users", `{"first_name":"Ada","last_name":"L","email":"ada@example.ch","password":"correct-horse"}`))
	if created.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", created.Status, created.Body)
	}
	id := created.Object()["id"]
	path := fmt.Sprintf("/api/v1/users/%v", id)

	ctx := t.Context()
	conn, err := s.Store.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	holder, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := holder.ExecContext(ctx, "SELECT id FROM users WHERE id = ? FOR UPDATE", id); err != nil {
		t.Fatal(err)
	}
	patched := make(chan stack.Response, 1)
	go func() {
		res, _ := s.Send(context.Background(), stack.JSON(http.MethodPatch, path, `{"address":"Waited"}`))
		patched <- res
	}()
	time.Sleep(300 * time.Millisecond) // the PATCH is now waiting for the row
	select {
	case res := <-patched:
		t.Fatalf("the PATCH did not wait for the row lock: %d %s", res.Status, res.Body)
	default:
	}
	other := time.Now().UTC().Truncate(time.Microsecond)
	if _, err := holder.ExecContext(ctx, "UPDATE users SET address = ?, updated_at = ?, version = version + 1 WHERE id = ?", "Other writer", other, id); err != nil {
		t.Fatal(err)
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	res := <-patched
	if res.Status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", res.Status, res.Body)
	}
	got, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(res.Object()["updated_at"]))
	if got.Before(other) {
		t.Errorf("the PATCH committed after a change stamped %s but says updated_at %s: time went back %v",
			other.Format(domain.TimeLayout), got.Format(domain.TimeLayout), other.Sub(got))
	}
	evs := outboxEvents(t, s)
	if last := evs[len(evs)-1]; last.Data.Address != "Waited" || last.Data.UpdatedAt < other.Format(domain.TimeLayout) {
		t.Errorf("the PATCH's event says updated_at %s, before the other writer's %s", last.Data.UpdatedAt, other.Format(domain.TimeLayout))
	}
}
