package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/staticgeo"
	"github.com/marketplace/usersvc/adapters/sysclock"
	"github.com/marketplace/usersvc/adapters/tracing"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/test/syncbuf"
)

// Test networks, from the documentation ranges: loopback is Swiss unless a
// case says otherwise; 198.51.100.0/24 and 2001:db8:c4::/48 are Swiss,
// 203.0.113.0/24 and 2001:db8:f2::/48 French, 192.0.2.0/24 unknown.
const defaultGeo = "127.0.0.0/8=CH,::1/128=CH,198.51.100.0/24=CH,2001:db8:c4::/48=CH,203.0.113.0/24=FR,2001:db8:f2::/48=FR"

// secrets are every password the tests send; no response or log line may
// contain one, nor any argon2id hash.
var secrets = []string{"s3cret-pass", "n3w-secret!", "üüüüüüüü", "другой-пароль", "$argon2id$"}

// geoMode lets a test make the geolocation port fail the way a provider
// outage does, or panic like a bug would.
type geoMode int32

const (
	geoNormal geoMode = iota
	geoFailing
	geoPanicking
)

type switchGeo struct {
	next  ports.Geolocator
	mode  atomic.Int32
	calls atomic.Int64
}

func (g *switchGeo) Locate(ctx context.Context, ip netip.Addr) (domain.Location, error) {
	g.calls.Add(1)
	switch geoMode(g.mode.Load()) {
	case geoFailing:
		return domain.Location{}, errors.New("provider answered 429")
	case geoPanicking:
		panic("geolocator exploded")
	}
	return g.next.Locate(ctx, ip)
}

// countingHasher counts the calls reaching the real hasher.
type countingHasher struct {
	next           *argon2id.Hasher
	hashes, checks atomic.Int64
}

func (h *countingHasher) Hash(ctx context.Context, password string) (string, error) {
	h.hashes.Add(1)
	return h.next.Hash(ctx, password)
}

func (h *countingHasher) Verify(ctx context.Context, hash, password string) (bool, error) {
	h.checks.Add(1)
	return h.next.Verify(ctx, hash, password)
}

func (h *countingHasher) NeedsRehash(hash string) bool { return h.next.NeedsRehash(hash) }

// calls is how many hashes and checks were asked for.
func (h *countingHasher) calls() int64 { return h.hashes.Load() + h.checks.Load() }

type noopNotifier struct{}

func (noopNotifier) Notify() {}

// logRecords decodes the JSON log records in b.
func logRecords(t *testing.T, b *syncbuf.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, rec)
	}
	return out
}

type envOptions struct {
	trusted string // TrustedProxies, ParseTrustedProxies syntax
	geo     string // staticgeo spec; defaultGeo when empty
	maxBody int64
	public  string // PublicURL, ParsePublicURL syntax
	timeout time.Duration
	// logClientIP is Config.LogClientIP (truncated when empty).
	logClientIP ClientIPLog
	// storeURL is the database (an in-memory SQLite one when empty) and
	// maxConns its pool size (the store's default when 0).
	storeURL string
	maxConns int
	// Rate limits (Config.CreateLimit, Config.PasswordLimit).
	createLimit, passwordLimit ports.RateLimiter
	// reader wraps the store's reads (e.g. to make them slow).
	reader func(*gormstore.Store) ports.UserReader
	// hashing sizes the argon2id pool (Cheap parameters, 2 slots and the
	// default queue when zero).
	hashing argon2id.Config
	// maxOffset is Config.MaxPageOffset; cursorKey is Config.CursorKey.
	maxOffset int
	cursorKey CursorKeyFunc
	// login is the credentials check's lockout (5 failures in 15m lock
	// for 15m when zero) and clock its time (the system's when nil).
	login domain.LoginPolicy
	clock ports.Clock
	// Extension points of Config.
	middleware []gin.HandlerFunc
	routes     []func(gin.IRoutes)
	// auth is Config.Auth (nil: authentication off).
	auth Authenticator
	// tracing, when set, traces the handler, the store and the hasher as
	// the composition root does, and stamps log lines with trace ids.
	tracing *tracing.Provider
}

// testEnv is the real service behind real HTTP: SQLite store, static
// geolocation, argon2id, the use cases and this adapter, served on
// 127.0.0.1 and on ::1 so tests choose the TCP peer's address family.
type testEnv struct {
	t         *testing.T
	store     *gormstore.Store
	geo       *switchGeo
	hasher    *countingHasher
	readiness *Readiness
	logs      *syncbuf.Buffer
	v4, v6    *httptest.Server
	client    *http.Client
}

func newEnv(t *testing.T, opts envOptions) *testEnv {
	t.Helper()
	ctx := context.Background()
	if opts.storeURL == "" {
		opts.storeURL = "sqlite://:memory:"
	}
	storeCfg := gormstore.Config{URL: opts.storeURL, MaxOpenConns: opts.maxConns}
	if opts.tracing != nil {
		storeCfg.Tracing = opts.tracing.TracerProvider()
	}
	store, err := gormstore.Open(ctx, storeCfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if opts.geo == "" {
		opts.geo = defaultGeo
	}
	logs := &syncbuf.Buffer{}
	static, err := staticgeo.Parse(opts.geo)
	if err != nil {
		t.Fatalf("static geolocator: %v", err)
	}
	geo := &switchGeo{next: static}
	policy, err := domain.NewCountryPolicy([]string{"CH"})
	if err != nil {
		t.Fatal(err)
	}
	rules := domain.NewRules(0)
	// Cheap parameters: the tests check wiring, not hashing cost.
	if opts.hashing == (argon2id.Config{}) {
		opts.hashing = argon2id.Config{Params: argon2id.Cheap, Concurrency: 2, Queue: argon2id.DefaultQueue}
	}
	pool := argon2id.NewPool(opts.hashing)
	hasher := &countingHasher{next: pool}
	var reader ports.UserReader = store
	if opts.reader != nil {
		reader = opts.reader(store)
	}
	var traces ports.TraceContext
	var tr *Tracing
	logHandler := slog.Handler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.tracing != nil {
		pool.WithTracing(opts.tracing.TracerProvider())
		traces = opts.tracing
		tr = &Tracing{Provider: opts.tracing.TracerProvider(), Propagator: opts.tracing.Propagator()}
		logHandler = tracing.LogHandler(logHandler)
	}
	users := app.NewUsers(rules, policy, geo, hasher, reader, store, sysclock.Clock{}, noopNotifier{}, traces)
	if opts.login == (domain.LoginPolicy{}) {
		opts.login = domain.LoginPolicy{MaxFailures: 5, Window: 15 * time.Minute, Lockout: 15 * time.Minute}
	}
	if opts.clock == nil {
		opts.clock = sysclock.Clock{}
	}
	logger := slog.New(logHandler)
	users.Verify = app.NewVerifyCredentials(rules, store, hasher, opts.clock, nil, app.VerifyConfig{Policy: opts.login, Logger: logger})
	trusted, err := ParseTrustedProxies(opts.trusted)
	if err != nil {
		t.Fatal(err)
	}
	readiness := NewReadiness(store)
	public, err := ParsePublicURL(opts.public)
	if err != nil {
		t.Fatal(err)
	}
	handler := NewHandler(users, ReadinessCheck(readiness), Config{
		TrustedProxies: trusted,
		PublicURL:      public,
		MaxBodyBytes:   opts.maxBody,
		RequestTimeout: opts.timeout,
		MaxPageOffset:  opts.maxOffset,
		CursorKey:      opts.cursorKey,
		CreateLimit:    opts.createLimit,
		PasswordLimit:  opts.passwordLimit,
		Middleware:     opts.middleware,
		Routes:         opts.routes,
		Auth:           opts.auth,
		Logger:         logger,
		LogClientIP:    opts.logClientIP,
		Tracing:        tr,
	})
	e := &testEnv{
		t: t, store: store, geo: geo, hasher: hasher, readiness: readiness, logs: logs,
		v4: serveOn(t, "tcp4", "127.0.0.1:0", handler),
		v6: serveOn(t, "tcp6", "[::1]:0", handler),
		client: &http.Client{
			// A redirect would hide the answer under test; none is expected.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	t.Cleanup(func() { e.checkLogsClean() })
	return e
}

func serveOn(t *testing.T, network, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen on %s: %v (the tests need IPv4 and IPv6 loopback)", addr, err)
	}
	s := httptest.NewUnstartedServer(h)
	_ = s.Listener.Close()
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// response is an answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r response) json(t *testing.T) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body is not JSON: %v: %q", err, r.body)
	}
	return v
}

func (r response) object(t *testing.T) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("body is not a JSON object: %q", r.body)
	}
	return m
}

// req describes one request; url is a path on the IPv4 server unless v6.
type req struct {
	method  string
	path    string
	body    string
	ctype   string // Content-Type; "" sends none
	headers map[string]string
	v6      bool
	reader  io.Reader // overrides body, sent with unknown length
}

func jsonReq(method, path, body string) req {
	return req{method: method, path: path, body: body, ctype: "application/json"}
}

// do sends r and checks what holds for every answer: security headers, a
// request id, JSON (except 204), and no secret anywhere.
func (e *testEnv) do(r req) response {
	e.t.Helper()
	base := e.v4.URL
	if r.v6 {
		base = e.v6.URL
	}
	var body io.Reader
	switch {
	case r.reader != nil:
		body = r.reader
	case r.body != "":
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, base+r.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.ctype != "" {
		hr.Header.Set("Content-Type", r.ctype)
	}
	for k, v := range r.headers {
		if k == "Host" { // the client sends req.Host, not a Host header
			hr.Host = v
			continue
		}
		hr.Header.Set(k, v)
	}
	res, err := e.client.Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", r.method, r.path, err)
	}
	out := response{status: res.StatusCode, header: res.Header, body: b}
	e.checkCommon(r, out)
	return out
}

func (e *testEnv) checkCommon(r req, res response) {
	e.t.Helper()
	where := r.method + " " + r.path
	if got := res.header.Get("X-Content-Type-Options"); got != "nosniff" {
		e.t.Errorf("%s: X-Content-Type-Options = %q", where, got)
	}
	if got := res.header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") {
		e.t.Errorf("%s: Content-Security-Policy = %q", where, got)
	}
	if res.header.Get("X-Request-ID") == "" {
		e.t.Errorf("%s: no X-Request-ID", where)
	}
	if res.status >= 300 && res.status < 400 && res.status != http.StatusNotModified {
		e.t.Errorf("%s: redirected with %d to %q", where, res.status, res.header.Get("Location"))
	}
	switch {
	case res.status == http.StatusNoContent, res.status == http.StatusNotModified, r.method == http.MethodHead:
		if len(res.body) != 0 {
			e.t.Errorf("%s: %d with a body %q", where, res.status, res.body)
		}
	default:
		if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			e.t.Errorf("%s: Content-Type = %q, body %q", where, ct, res.body)
		}
		if !json.Valid(res.body) {
			e.t.Errorf("%s: body is not JSON: %q", where, res.body)
		}
	}
	for _, s := range secrets {
		if bytes.Contains(res.body, []byte(s)) || strings.Contains(strings.Join(flatten(res.header), " "), s) {
			e.t.Errorf("%s: the answer contains the secret %q", where, s)
		}
	}
	if res.status >= 400 && res.status != http.StatusBadRequest && r.method != http.MethodHead {
		if _, ok := res.object(e.t)["detail"].(string); !ok {
			e.t.Errorf("%s: error %d without a detail: %q", where, res.status, res.body)
		}
	}
}

func flatten(h http.Header) []string {
	var out []string
	for k, vs := range h {
		out = append(out, k+": "+strings.Join(vs, ","))
	}
	return out
}

// checkLogsClean asserts that no log line carried a secret.
func (e *testEnv) checkLogsClean() {
	logs := e.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			e.t.Errorf("a log line contains the secret %q", s)
		}
	}
}

// assertJSON compares a body with the expected JSON document.
func assertJSON(t *testing.T, res response, status int, want string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d; body %s", res.status, status, res.body)
	}
	var got, exp any
	if err := json.Unmarshal(res.body, &got); err != nil {
		t.Fatalf("body is not JSON: %q", res.body)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("bad expectation %q: %v", want, err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("body = %s, want %s", res.body, want)
	}
}

// userBody is a valid creation body with the given email.
func userBody(email string) string {
	b, _ := json.Marshal(map[string]string{
		"first_name": "Alice", "last_name": "Muster", "email": email, "password": "s3cret-pass", "address": "Bahnhofstrasse 1, Zürich",
	})
	return string(b)
}

// create makes a user and returns its representation.
func (e *testEnv) create(body string) map[string]any {
	e.t.Helper()
	res := e.do(jsonReq(http.MethodPost, "/api/v1/users", body))
	if res.status != http.StatusCreated {
		e.t.Fatalf("create: status %d: %s", res.status, res.body)
	}
	return res.object(e.t)
}

func idPath(u map[string]any) string {
	return "/api/v1/users/" + jsonNumber(u["id"])
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
