package hostile_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/test/reliability/stack"
)

// TestInjectionPayloadsAreStoredVerbatim is the other half of the corpus:
// payloads that are valid text are accepted, stored and returned exactly
// (only trimmed, like every name), found by the exact filters, and change
// no statement: afterwards the table holds exactly the users created.
func TestInjectionPayloadsAreStoredVerbatim(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			s := stack.Start(t, stack.Options{DatabaseURL: db.url(t)})
			for i, p := range payloads {
				t.Run(p.name, func(t *testing.T) { roundTrip(t, s, i, p.s) })
			}
			res := s.Do(t, stackRequest{Method: http.MethodGet, Path: usersPath + "?page_size=100"})
			if got := res.Object()["count"]; got != float64(len(payloads)) {
				t.Errorf("the list counts %v users, want %d", got, len(payloads))
			}
			if n := s.Count(t, "users"); n != len(payloads) {
				t.Errorf("the users table holds %d rows, want %d", n, len(payloads))
			}
			if leaks := stack.Leaks(s.Logs.Bytes(), stack.HashMarker); len(leaks) > 0 {
				t.Errorf("the logs contain %q", leaks)
			}
		})
	}
}

func roundTrip(t *testing.T, s *stack.Stack, i int, payload string) {
	want := strings.TrimSpace(payload)
	email := fmt.Sprintf("payload%d@example.ch", i)
	body := encode(map[string]any{"first_name": payload, "last_name": payload, "email": email, "password": payload + "-pad", "address": payload})
	res := s.Do(t, stack.JSON(http.MethodPost, usersPath, body))
	if res.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	created := res.Object()
	path := fmt.Sprintf("%s/%v", usersPath, created["id"])
	if loc := res.Header.Get("Location"); loc != s.URL+path {
		t.Errorf("Location %q, want %q", loc, s.URL+path)
	}
	res = s.Do(t, stackRequest{Method: http.MethodGet, Path: path})
	got := res.Object()
	for _, f := range []string{"first_name", "last_name", "address"} {
		if got[f] != want {
			t.Errorf("%s read back as %q, want %q", f, got[f], want)
		}
	}
	if _, ok := got["password"]; ok {
		t.Error("the representation carries the password")
	}
	for _, f := range []string{"first_name", "last_name", "search"} {
		res := s.Do(t, stackRequest{Method: http.MethodGet, Path: query(f, want)})
		page := res.Object()
		results, _ := page["results"].([]any)
		if page["count"] != float64(1) || len(results) != 1 || results[0].(map[string]any)["id"] != created["id"] {
			t.Errorf("filter %s=%q: %s", f, want, clip(res.Body))
		}
	}
	patched := payload + " (patched)"
	res = s.Do(t, stack.JSON(http.MethodPatch, path, encode(map[string]any{"address": patched})))
	if res.Status != http.StatusOK || res.Object()["address"] != strings.TrimSpace(patched) {
		t.Errorf("patch address: %d %s", res.Status, clip(res.Body))
	}
}
