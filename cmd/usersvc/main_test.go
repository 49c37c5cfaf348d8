package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/marketplace/usersvc/test/eventschema"
	"github.com/marketplace/usersvc/test/usersvcproc"
)

func TestHelpDocumentsCommandsAndVariables(t *testing.T) {
	out, err := exec.Command(usersvcproc.Binary(t), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("usersvc --help: %v\n%s", err, out)
	}
	for _, want := range []string{"events tail", "migrate", "HTTP_ADDR", "DATABASE_URL", "TRUSTED_PROXIES", "GEO_ALLOWED_COUNTRIES", "KAFKA_BROKERS", "SHUTDOWN_TIMEOUT"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

func TestBadConfigurationExitsWithOneLine(t *testing.T) {
	for _, tc := range []struct{ name, env, want string }{
		{"unknown log format", "LOG_FORMAT=xml", "invalid LOG_FORMAT"},
		{"unknown allowed country", "GEO_ALLOWED_COUNTRIES=CH,XX", "invalid GEO_ALLOWED_COUNTRIES"},
		{"bad trusted proxy", "TRUSTED_PROXIES=nonsense", "invalid TRUSTED_PROXIES"},
		// The stdout fallback is gone: no broker, no start.
		{"default event bus without brokers", "KAFKA_BROKERS=", "KAFKA_BROKERS"},
		{"removed auto event bus", "EVENT_BUS=auto", "invalid EVENT_BUS"},
		{"geolocation over plain http", "IPAPI_BASE_URL=http://ipapi.co", "IPAPI_BASE_URL"},
		{"authentication by default, unconfigured", "EVENT_BUS=log",
			"AUTH_MODE=jwt needs AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE (or set AUTH_MODE=none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(usersvcproc.Binary(t), "serve")
			cmd.Env = append(os.Environ(), tc.env)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("serve with %s: err %v; want a non-zero exit", tc.env, err)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("stderr = %q; want one line containing %q", stderr.String(), tc.want)
			}
		})
	}
}

// startServer runs the binary as `make run` does, on a fresh SQLite file
// and with events on standard output; env adds or overrides variables.
func startServer(t *testing.T, env ...string) *usersvcproc.Process {
	t.Helper()
	base := []string{
		"DATABASE_URL=sqlite://" + filepath.Join(t.TempDir(), "users.db"),
		"GEO_PROVIDER=static",
		"LOG_FORMAT=json",
		"EVENT_BUS=log",
	}
	return usersvcproc.Start(t, usersvcproc.Binary(t), 20*time.Second, append(base, env...)...)
}

func createBody(i int) string {
	return fmt.Sprintf(`{"first_name":"Ada","last_name":"Lovelace","email":"ada%d@example.ch","password":"analytical-engine-%d"}`, i, i)
}

// TestServeEndToEndWithEventsOnStdout drives the binary as `make run` does
// and checks that each mutation printed exactly one event and nothing leaked
// the password.
func TestServeEndToEndWithEventsOnStdout(t *testing.T) {
	s := startServer(t)
	post := func(body string) *http.Response {
		resp, err := http.Post(s.Base+"/api/v1/users", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(createBody(1)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", resp.StatusCode)
	}
	if resp := post(createBody(1)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("duplicate create: %d; want 400", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPatch, s.Base+"/api/v1/users/1", strings.NewReader(`{"address":"London"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("patch: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodDelete, s.Base+"/api/v1/users/1", nil)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %v %v", resp, err)
	}
	resp.Body.Close()

	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.Stderr.String())
	}

	var actions []string
	sc := bufio.NewScanner(strings.NewReader(s.Stdout.String()))
	for sc.Scan() {
		var ev struct {
			Action string `json:"action"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("stdout line is not an event: %q", sc.Text())
		}
		eventschema.Check(t, sc.Bytes())
		actions = append(actions, ev.Action)
	}
	if got := strings.Join(actions, ","); got != "create,update,delete" {
		t.Fatalf("events = %s; want create,update,delete", got)
	}
	for name, out := range map[string]string{"stdout": s.Stdout.String(), "stderr": s.Stderr.String()} {
		if strings.Contains(out, "analytical-engine-1") || strings.Contains(out, "$argon2id$") {
			t.Fatalf("%s contains the password or its hash", name)
		}
	}
}

// TestSIGTERMUnderLoadFailsNoAcceptedRequest sends SIGTERM while clients
// keep creating and reading users. The clients act as a load balancer does:
// they stop sending new requests once /readyz answers 503. Every request
// sent must get a real answer, including those in flight at the signal.
func TestSIGTERMUnderLoadFailsNoAcceptedRequest(t *testing.T) {
	s := startServer(t, "SHUTDOWN_TIMEOUT=10s", "SHUTDOWN_DRAIN_DELAY=1s")
	var (
		ok, failed atomic.Int64
		seq        atomic.Int64
		draining   atomic.Bool
		wg         sync.WaitGroup
		failures   = make(chan string, 100)
	)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	go func() { // the load balancer's health check
		for ctx.Err() == nil && !draining.Load() {
			if resp, err := http.Get(s.Base + "/readyz"); err == nil {
				resp.Body.Close()
				draining.Store(resp.StatusCode == http.StatusServiceUnavailable)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A fresh connection per request: a keep-alive connection closed
			// by Shutdown between requests is not an accepted request.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			for ctx.Err() == nil && !draining.Load() {
				var resp *http.Response
				var err error
				if n := seq.Add(1); n%2 == 0 {
					resp, err = client.Post(s.Base+"/api/v1/users", "application/json", strings.NewReader(createBody(int(n))))
				} else {
					resp, err = client.Get(s.Base + "/api/v1/users?page_size=5")
				}
				if err != nil {
					failed.Add(1)
					failures <- err.Error()
					return
				}
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					failed.Add(1)
					failures <- resp.Status
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := s.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.Stderr.String())
	}
	close(failures)
	for f := range failures {
		t.Errorf("accepted request failed: %s", f)
	}
	if !draining.Load() {
		t.Fatal("/readyz never answered 503 during the shutdown")
	}
	if ok.Load() < 10 {
		t.Fatalf("only %d requests succeeded before the shutdown; the test did not load the server", ok.Load())
	}
	t.Logf("%d answered, %d failed", ok.Load(), failed.Load())
}

// The index, the documentation and the metrics are served by the binary
// (/metrics comes last, so it has counted the requests before it).
func TestServesDocsIndexAndMetrics(t *testing.T) {
	admin := freeAddr(t)
	s := startServer(t, "ADMIN_ADDR="+admin)
	adminBase := "http://" + admin
	for _, tc := range []struct {
		name, url, contentType, contains string
		status                           int
	}{
		{"index", s.Base + "/", "application/json", `"docs":"` + s.Base + `/docs"`, http.StatusOK},
		{"openapi", s.Base + "/api/v1/openapi.json", "application/json", `"openapi":"3.1`, http.StatusOK},
		{"docs", s.Base + "/docs/", "text/html", "<html", http.StatusOK},
		{"no metrics on the public port", s.Base + "/metrics", "application/json", "Notfound", http.StatusNotFound},
		{"no pprof on the public port", s.Base + "/debug/pprof/", "application/json", "Notfound", http.StatusNotFound},
		{"admin metrics", adminBase + "/metrics", "text/plain", `http_requests_total{method="GET",route="/api/v1/openapi.json",status="200"}1`, http.StatusOK},
		{"admin health", adminBase + "/healthz", "application/json", `"status":"ok"`, http.StatusOK},
		{"admin readiness", adminBase + "/readyz", "application/json", `"status":"ready"`, http.StatusOK},
		{"admin pprof index", adminBase + "/debug/pprof/", "text/html", "goroutine", http.StatusOK},
		{"admin pprof profile", adminBase + "/debug/pprof/goroutine?debug=1", "text/plain", "goroutine", http.StatusOK},
		{"admin pprof cmdline", adminBase + "/debug/pprof/cmdline", "text/plain", "serve", http.StatusOK},
		{"admin serves no API", adminBase + "/api/v1/users", "application/json", "Notfound", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) ||
				!strings.Contains(strings.ReplaceAll(body.String(), " ", ""), tc.contains) {
				t.Fatalf("GET %s = %d %s %.200q", tc.url, resp.StatusCode, resp.Header.Get("Content-Type"), body.String())
			}
		})
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
