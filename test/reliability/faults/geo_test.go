// Package faults_test drives traffic through dependency faults that need no
// container: the geolocation provider down, slow and rate limiting (the real
// ipapi.co adapter behind the real cache, against a local stand-in), and the
// process killed between commit and publish (the real binary, a broker
// absent then started).
package faults_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/geoprovider"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/test/reliability/stack"
)

// swissClient is an address ipapi.co places in Switzerland; requests claim
// it through X-Forwarded-For from the trusted loopback peer, so the adapter
// really asks the provider (loopback itself is never sent out).
const swissClient = "2.16.92.0"

// provider modes of the ipapi.co stand-in.
const (
	modeOK int32 = iota
	modeRateLimited
	modeServerError
	modeSlow
	modeMalformed
	modeKeyRefused
)

// fakeIPAPI answers like ipapi.co (see ../shared/reference/ipapi.md).
type fakeIPAPI struct {
	mode atomic.Int32
	hits atomic.Int64
	srv  *httptest.Server
}

func startFakeIPAPI(t *testing.T) *fakeIPAPI {
	f := &fakeIPAPI{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch f.mode.Load() {
		case modeRateLimited:
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":true,"reason":"RateLimited","message":"Visit https://ipapi.co/ratelimited/ for details"}`)
		case modeServerError:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html><body>502 Bad Gateway</body></html>")
		case modeSlow:
			select { // far beyond GEO_TIMEOUT, but give up when the client does
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case modeMalformed:
			fmt.Fprint(w, `{"ip":"2.16.92.0","version":"IPv4"}`)
		case modeKeyRefused:
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error":true,"reason":"Invalid key"}`)
		default:
			fmt.Fprint(w, `{"ip":"2.16.92.0","version":"IPv4","city":"Zurich","country":"CH","country_name":"Switzerland","country_code":"CH","in_eu":false}`)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// closedURL is an http URL on a loopback port where nothing listens.
func closedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

const geoTimeout = 300 * time.Millisecond

// geoStack is the service with the production geolocation chain
// (geoprovider: ipapi adapter in the cache) pointed at baseURL.
func geoStack(t *testing.T, baseURL string) *stack.Stack {
	t.Helper()
	geo, cleanup, err := geoprovider.Provide(geoprovider.Config{
		Provider: geoprovider.ProviderIPAPI, IPAPIBaseURL: baseURL, Timeout: geoTimeout,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return stack.Start(t, stack.Options{
		Geolocator:     geo,
		TrustedProxies: "127.0.0.1/32",
		Relay:          true,
		RelayConfig:    app.RelayConfig{PollInterval: 50 * time.Millisecond},
	})
}

func createFrom(t *testing.T, s *stack.Stack, email string) stack.Response {
	t.Helper()
	req := stack.JSON(http.MethodPost, "/api/v1/users",
		fmt.Sprintf(`{"first_name":"Ada","last_name":"Lovelace","email":%q,"password":"correct-horse-9"}`, email))
	req.Header = http.Header{"X-Forwarded-For": {swissClient}}
	return s.Do(t, req)
}

// TestGeolocationFailuresFailClosed: whatever way the provider fails, a
// creation answers 503 with Retry-After within about GEO_TIMEOUT, nothing
// is written, no event is produced, the failure is not cached, and the
// next creation succeeds once the provider is back.
func TestGeolocationFailuresFailClosed(t *testing.T) {
	fake := startFakeIPAPI(t)
	for _, tc := range []struct {
		name    string
		mode    int32
		down    bool // the provider's port is closed
		minTime time.Duration
	}{
		{name: "provider down (connection refused)", down: true},
		{name: "rate limited (HTTP 429)", mode: modeRateLimited},
		{name: "server error (HTTP 502, HTML)", mode: modeServerError},
		{name: "slower than GEO_TIMEOUT", mode: modeSlow, minTime: geoTimeout},
		{name: "answer without a country", mode: modeMalformed},
		{name: "key refused (HTTP 403)", mode: modeKeyRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := fake.srv.URL
			if tc.down {
				base = closedURL(t)
			}
			s := geoStack(t, base)
			fake.mode.Store(tc.mode)
			for attempt := range 2 { // the second attempt proves the failure was not cached
				hits := fake.hits.Load()
				res := createFrom(t, s, fmt.Sprintf("geo%d@example.ch", attempt))
				if res.Status != http.StatusServiceUnavailable || string(res.Body) != `{"detail":"Geolocation service unavailable, try again later."}` {
					t.Fatalf("attempt %d: %d %s", attempt, res.Status, res.Body)
				}
				if res.Header.Get("Retry-After") != "10" {
					t.Errorf("Retry-After %q", res.Header.Get("Retry-After"))
				}
				if res.Elapsed < tc.minTime || res.Elapsed > geoTimeout+time.Second {
					t.Errorf("answered in %v, want between %v and %v", res.Elapsed, tc.minTime, geoTimeout+time.Second)
				}
				t.Logf("attempt %d: 503 in %v", attempt, res.Elapsed.Round(time.Millisecond))
				if called := fake.hits.Load() - hits; called != 1 && !tc.down {
					t.Errorf("the provider was called %d times for one creation", called)
				}
			}
			time.Sleep(150 * time.Millisecond) // three relay polls: an event would have been published
			if n := s.Count(t, "users"); n != 0 {
				t.Errorf("%d users written", n)
			}
			if n := s.Count(t, "outbox"); n != 0 {
				t.Errorf("%d outbox rows written", n)
			}
			if ev := s.Events.String(); ev != "" {
				t.Errorf("events published: %s", ev)
			}
			if tc.down {
				return
			}
			fake.mode.Store(modeOK)
			if res := createFrom(t, s, "back@example.ch"); res.Status != http.StatusCreated {
				t.Fatalf("after the provider recovered: %d %s", res.Status, res.Body)
			}
			s.WaitDrained(t, 5*time.Second)
			if n := s.Count(t, "users"); n != 1 {
				t.Errorf("%d users after recovery, want 1", n)
			}
			waitEvents(t, s, 1)
		})
	}
}

func waitEvents(t *testing.T, s *stack.Stack, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		got := countLines(s.Events.Bytes())
		if got == want {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%d events published, want %d", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}
