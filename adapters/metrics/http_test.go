package metrics_test

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/adapters/metrics"
)

func init() { gin.SetMode(gin.TestMode) }

// testAPI is a Gin engine shaped like the HTTP adapter's (both spellings of
// each route, no redirects, 405 for a known path), with the middleware
// mounted first and /metrics on the same engine.
type testAPI struct {
	url     string
	entered chan struct{} // a /slow request reached its handler
	release chan struct{} // lets /slow requests answer
}

func newTestAPI(t *testing.T, m *metrics.Metrics) *testAPI {
	t.Helper()
	api := &testAPI{entered: make(chan struct{}, 1), release: make(chan struct{})}
	r := gin.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.Use(m.GinMiddleware(), gin.RecoveryWithWriter(io.Discard))

	route := func(method, path string, h gin.HandlerFunc) {
		r.Handle(method, path, h)
		r.Handle(method, path+"/", h)
	}
	route(http.MethodGet, "/api/v1/users", func(c *gin.Context) { c.Status(http.StatusOK) })
	route(http.MethodPost, "/api/v1/users", func(c *gin.Context) { c.Status(http.StatusCreated) })
	route(http.MethodGet, "/api/v1/users/:id", func(c *gin.Context) {
		// A handler's own 404 keeps the matched template.
		if strings.HasPrefix(c.Param("id"), "missing") {
			c.Status(http.StatusNotFound)
			return
		}
		c.Status(http.StatusOK)
	})
	r.GET("/panic", func(*gin.Context) { panic("boom") })
	r.GET("/slow", func(c *gin.Context) {
		api.entered <- struct{}{}
		<-api.release
		c.Status(http.StatusOK)
	})
	r.GET("/metrics", gin.WrapH(m.Handler()))

	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	api.url = srv.URL
	return api
}

func (a *testAPI) do(t *testing.T, method, path string) int {
	t.Helper()
	req, err := http.NewRequest(method, a.url+path, nil)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, path, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestGinMiddlewareCountsByRouteTemplate(t *testing.T) {
	m := metrics.New()
	api := newTestAPI(t, m)

	cases := []struct {
		name               string
		method, path       string
		times              int
		wantStatus         int
		wantMethod, wantRt string
	}{
		{"list", "GET", "/api/v1/users", 3, 200, "GET", "/api/v1/users"},
		{"list with trailing slash aggregates with list", "GET", "/api/v1/users/", 1, 200, "GET", "/api/v1/users"},
		{"create", "POST", "/api/v1/users", 2, 201, "POST", "/api/v1/users"},
		{"get by id counts under the template", "GET", "/api/v1/users/17", 2, 200, "GET", "/api/v1/users/:id"},
		{"another id shares the series", "GET", "/api/v1/users/4242/", 1, 200, "GET", "/api/v1/users/:id"},
		{"handler 404 keeps the template", "GET", "/api/v1/users/missing-1", 1, 404, "GET", "/api/v1/users/:id"},
		{"unknown path is unmatched", "GET", "/no/such/path", 2, 404, "GET", "unmatched"},
		{"another unknown path shares the series", "GET", "/etc/passwd", 1, 404, "GET", "unmatched"},
		{"405 is unmatched", "DELETE", "/api/v1/users", 1, 405, "DELETE", "unmatched"},
		{"unknown method folds into OTHER", "PROPFIND", "/api/v1/users", 1, 405, "OTHER", "unmatched"},
		{"recovered panic counts as 500", "GET", "/panic", 1, 500, "GET", "/panic"},
	}
	want := map[[3]string]int{}
	for _, tc := range cases {
		for range tc.times {
			if got := api.do(t, tc.method, tc.path); got != tc.wantStatus {
				t.Fatalf("%s: %s %s answered %d, want %d", tc.name, tc.method, tc.path, got, tc.wantStatus)
			}
		}
		want[[3]string{tc.wantMethod, tc.wantRt, fmt.Sprint(tc.wantStatus)}] += tc.times
	}

	// The scrape's own request is recorded after its answer, so this scrape
	// holds exactly the requests above.
	got := scrape(t, api.url+"/metrics")
	if n, w := len(got["http_requests_total"].GetMetric()), len(want); n != w {
		t.Errorf("http_requests_total has %d series, want %d: %s", n, w, got.describe("http_requests_total"))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := [3]string{tc.wantMethod, tc.wantRt, fmt.Sprint(tc.wantStatus)}
			lbl := labels{"method": key[0], "route": key[1], "status": key[2]}
			if v := got.value(t, "http_requests_total", lbl); v != float64(want[key]) {
				t.Errorf("http_requests_total%v = %v, want %d", lbl, v, want[key])
			}
			h := got.histogram(t, "http_request_duration_seconds", lbl)
			if h.GetSampleCount() != uint64(want[key]) {
				t.Errorf("http_request_duration_seconds%v count = %d, want %d", lbl, h.GetSampleCount(), want[key])
			}
			if h.GetSampleSum() <= 0 {
				t.Errorf("http_request_duration_seconds%v sum = %v, want > 0", lbl, h.GetSampleSum())
			}
			if got, want := upperBounds(h), []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, math.Inf(1)}; !slices.Equal(got, want) {
				t.Errorf("http_request_duration_seconds buckets %v, want %v", got, want)
			}
		})
	}

	// The first scrape is counted too, under its own template.
	again := scrape(t, api.url+"/metrics")
	if v := again.value(t, "http_requests_total", labels{"method": "GET", "route": "/metrics", "status": "200"}); v != 1 {
		t.Errorf("scrapes counted %v, want 1", v)
	}
}

func TestGinMiddlewareInFlight(t *testing.T) {
	m := metrics.New()
	api := newTestAPI(t, m)
	inFlight := func() float64 {
		t.Helper()
		// The scrape is itself in flight while it is served.
		return scrape(t, api.url+"/metrics").value(t, "http_requests_in_flight", nil) - 1
	}

	steps := []struct {
		name string
		act  func(t *testing.T, done chan int)
		want float64
	}{
		{"idle", func(*testing.T, chan int) {}, 0},
		{"one request held in its handler", func(t *testing.T, done chan int) {
			go func() {
				// No t.Fatal off the test goroutine: report 0 instead.
				resp, err := http.Get(api.url + "/slow")
				if err != nil {
					done <- 0
					return
				}
				resp.Body.Close()
				done <- resp.StatusCode
			}()
			select {
			case <-api.entered:
			case <-time.After(5 * time.Second):
				t.Fatal("the /slow request never reached its handler")
			}
		}, 1},
		{"released and answered", func(t *testing.T, done chan int) {
			close(api.release)
			if code := <-done; code != http.StatusOK {
				t.Fatalf("/slow answered %d", code)
			}
		}, 0},
	}
	done := make(chan int, 1)
	for _, s := range steps {
		s.act(t, done)
		if got := inFlight(); got != s.want {
			t.Fatalf("%s: http_requests_in_flight (less the scrape) = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestGinMiddlewareLabelsStayBounded(t *testing.T) {
	m := metrics.New()
	api := newTestAPI(t, m)

	const n = 40
	for i := range n {
		api.do(t, "GET", fmt.Sprintf("/api/v1/users/%d", i))
		api.do(t, "GET", fmt.Sprintf("/probe/%d/%x", i, i*7919))
		api.do(t, fmt.Sprintf("X-METHOD-%d", i), "/api/v1/users")
		api.do(t, fmt.Sprintf("Q%d", i), fmt.Sprintf("/nowhere/%d", i))
	}
	got := scrape(t, api.url+"/metrics")

	bounded := []struct {
		label   string
		allowed []string
	}{
		{"route", []string{"/api/v1/users/:id", "unmatched"}},
		{"method", []string{"GET", "OTHER"}},
		{"status", []string{"200", "404", "405"}},
	}
	for _, b := range bounded {
		t.Run(b.label, func(t *testing.T) {
			for _, name := range []string{"http_requests_total", "http_request_duration_seconds"} {
				for _, v := range got.labelValues(name, b.label) {
					if !slices.Contains(b.allowed, v) {
						t.Errorf("%s has %s=%q, want one of %v", name, b.label, v, b.allowed)
					}
				}
			}
		})
	}
	// 4n requests with 3n distinct paths and 2n distinct methods give four
	// series: GET :id 200, GET unmatched 404, OTHER unmatched 405 and 404.
	if s := len(got["http_requests_total"].GetMetric()); s != 4 {
		t.Errorf("http_requests_total has %d series, want 4: %s", s, got.describe("http_requests_total"))
	}
	if v := got.value(t, "http_requests_total", labels{"method": "OTHER", "route": "unmatched", "status": "405"}); v != n {
		t.Errorf("unknown methods on a known path counted %v, want %d", v, n)
	}
}
