package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/marketplace/usersvc/adapters/argon2id"
)

// A write carrying a password must not tell a caller whether it guessed the
// stored password: refused writes do no password work, and an accepted one
// always replaces the hash (issue 20, item 1).
func TestPasswordWriteRevealsNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("oracle@example.ch")) // password s3cret-pass
	path := idPath(u)
	put := func(pw string) string {
		return fmt.Sprintf(`{"first_name":"Alice","last_name":"Muster","email":"oracle@example.ch","password":%q,"address":"Bahnhofstrasse 1, Zürich"}`, pw)
	}

	t.Run("stale If-Match: 412 without hashing, right or wrong guess", func(t *testing.T) {
		for _, r := range []req{
			jsonReq(http.MethodPatch, path, `{"password":"s3cret-pass"}`),
			jsonReq(http.MethodPatch, path, `{"password":"n3w-secret!"}`),
			jsonReq(http.MethodPut, path, put("s3cret-pass")),
			jsonReq(http.MethodPut, path, put("n3w-secret!")),
		} {
			r.headers = map[string]string{"If-Match": `"7"`}
			before := e.hasher.calls()
			res := e.do(r)
			assertJSON(t, res, http.StatusPreconditionFailed, `{"detail":"Precondition failed."}`)
			if n := e.hasher.calls() - before; n != 0 {
				t.Errorf("%s %s: %d hashing calls for a refused write, want none", r.method, r.body, n)
			}
		}
	})

	t.Run("the stored password again is a change with a new ETag and event", func(t *testing.T) {
		for i, r := range []req{
			jsonReq(http.MethodPatch, path, `{"password":"s3cret-pass"}`),
			jsonReq(http.MethodPut, path, put("s3cret-pass")),
		} {
			r.headers = map[string]string{"If-Match": fmt.Sprintf(`"%d"`, i+1)}
			checksBefore := e.hasher.checks.Load()
			res := e.do(r)
			if res.status != http.StatusOK {
				t.Fatalf("%s: status %d: %s", r.method, res.status, res.body)
			}
			if got, want := res.header.Get("ETag"), fmt.Sprintf(`"%d"`, i+2); got != want {
				t.Errorf("%s: ETag %s, want %s", r.method, got, want)
			}
			if n := e.hasher.checks.Load() - checksBefore; n != 0 {
				t.Errorf("%s: the new password was checked against the stored hash %d times", r.method, n)
			}
			if changed := lastEventChanged(t, e); !slices.Contains(changed, "password") {
				t.Errorf("%s: event changed = %v, want it to list password", r.method, changed)
			}
		}
	})
}

// lastEventChanged is the "changed" list of the newest outbox message.
func lastEventChanged(t *testing.T, e *testEnv) []string {
	t.Helper()
	msgs, err := e.store.PendingMessages(context.Background(), 0, 1000)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("outbox: %d messages, %v", len(msgs), err)
	}
	var body struct {
		Changed []string `json:"changed"`
	}
	if err := json.Unmarshal(msgs[len(msgs)-1].Payload, &body); err != nil {
		t.Fatal(err)
	}
	return body.Changed
}

// A flood of password work is refused at once with 503 and Retry-After
// once the hashing queue is full, instead of waiting in an unbounded queue.
func TestHashingQueueFullAnswers503(t *testing.T) {
	// Slow enough (tens of milliseconds a hash) that the flood arrives while
	// the single slot and the single queue place are taken.
	slow := argon2id.Params{MemoryKiB: 32 * 1024, Iterations: 3, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	e := newEnv(t, envOptions{hashing: argon2id.Config{Params: slow, Concurrency: 1, Queue: 1}})
	const flood = 12
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		got   = map[int]int{}
	)
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res := e.do(jsonReq(http.MethodPost, "/api/v1/users", userBody(fmt.Sprintf("flood%d@example.ch", i))))
			mu.Lock()
			got[res.status]++
			mu.Unlock()
			if res.status == http.StatusServiceUnavailable {
				if ra := res.header.Get("Retry-After"); ra != "1" {
					t.Errorf("503 with Retry-After %q, want 1", ra)
				}
				if string(res.body) != `{"detail":"Service busy, try again later."}` {
					t.Errorf("503 body %s", res.body)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if got[http.StatusCreated] == 0 || got[http.StatusServiceUnavailable] == 0 || got[http.StatusCreated]+got[http.StatusServiceUnavailable] != flood {
		t.Fatalf("statuses %v, want some 201 and the rest 503", got)
	}
	// Refused work left nothing behind: the pool serves again.
	e.create(userBody("after-flood@example.ch"))
}
