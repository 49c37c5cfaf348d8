package e2e

import (
	"net/http"
	"testing"
	"time"
)

// TestForwardedHeadersIgnoredWithoutTrustedProxies runs a service with no
// TRUSTED_PROXIES whose geolocator places loopback, where the test
// connects from, in France. A client claiming a Swiss address in
// X-Forwarded-For is still located by its TCP peer and refused; its
// X-Forwarded-Host and X-Request-ID are not believed either; nothing is
// stored and no event is produced.
func TestForwardedHeadersIgnoredWithoutTrustedProxies(t *testing.T) {
	s := startService(t, serviceOptions{geoStatic: "127.0.0.0/8=FR,198.51.100.0/24=CH"})
	const refusedFR = `{"detail": "Only users located in Switzerland can be created (remote address in France)"}`
	cases := []struct {
		name      string
		forwarded string
	}{
		{"no header", ""},
		{"spoofed Swiss address", swissAddr},
		{"spoofed chain ending in a Swiss address", "127.0.0.1, " + swissAddr},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := jsonCall(http.MethodPost, "/api/v1/users", s.input("Spoof", "Er", "spoofer@example.ch")).
				with("X-Request-ID", "e2e-untrusted-1")
			if c.forwarded != "" {
				req = req.with("X-Forwarded-For", c.forwarded).with("X-Forwarded-Host", "evil.example")
			}
			r := s.do(t, req)
			expectJSON(t, r, http.StatusForbidden, refusedFR)
			if id := r.header.Get("X-Request-ID"); id == "" || id == "e2e-untrusted-1" {
				t.Errorf("X-Request-ID %q: the untrusted client's id was believed (or none was given)", id)
			}
		})
	}
	t.Run("nothing stored", func(t *testing.T) {
		expectJSON(t, s.do(t, get("/api/v1/users")), http.StatusOK, `{"count": 0, "next": null, "previous": null, "results": []}`)
	})
	t.Run("absolute URLs keep the request's own host", func(t *testing.T) {
		r := s.do(t, get("/").with("X-Forwarded-Host", "evil.example").with("X-Forwarded-Proto", "https"))
		expectStatus(t, r, http.StatusOK)
		var index struct {
			Users string `json:"users"`
		}
		mustUnmarshal(t, r.body, &index)
		if want := s.base + "/api/v1/users"; index.Users != want {
			t.Fatalf("the index links the users at %q, want %q", index.Users, want)
		}
	})
	t.Run("no event", func(t *testing.T) { s.noEvents(t, 2*time.Second) })
}
