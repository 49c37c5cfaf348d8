package apidocs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/marketplace/usersvc/adapters/apidocs"
	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/httpapi"
	"github.com/marketplace/usersvc/adapters/staticgeo"
	"github.com/marketplace/usersvc/adapters/sysclock"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Client addresses the tests claim through X-Forwarded-For (the test
// client, on 127.0.0.1, is the trusted proxy).
const (
	addrFrance       = "203.0.113.7"  // located in France: 403
	addrProviderDown = "198.51.100.1" // the geolocator fails: 503
	addrBug          = "198.51.100.2" // the geolocator panics: 500
)

// faultyGeo is the static geolocator, except for the two addresses that
// stand for a provider outage and a bug.
type faultyGeo struct{ next ports.Geolocator }

func (g faultyGeo) Locate(ctx context.Context, ip netip.Addr) (domain.Location, error) {
	switch ip.String() {
	case addrProviderDown:
		return domain.Location{}, errors.New("provider answered 429")
	case addrBug:
		panic("geolocator bug")
	}
	return g.next.Locate(ctx, ip)
}

// faultyReader is the store, except for list searches that stand for a
// database outage (503) and for a bug (500).
type faultyReader struct{ ports.UserReader }

const (
	searchDatabaseDown = "database-down"
	searchBug          = "store-bug"
)

func (r faultyReader) ListUsers(ctx context.Context, q domain.ListQuery) (domain.UserPage, error) {
	switch q.Search {
	case searchDatabaseDown:
		return domain.UserPage{}, domain.Unavailable(domain.DependencyDatabase, errors.New("dial tcp: connection refused"))
	case searchBug:
		return domain.UserPage{}, errors.New("scan users: unexpected column")
	}
	return r.UserReader.ListUsers(ctx, q)
}

type noopNotifier struct{}

func (noopNotifier) Notify() {}

// contractEnv is the real API (SQLite store, static geolocation, argon2id,
// the use cases, the Gin adapter) with this package's handler mounted beside
// it, as the composition root does, behind real HTTP on 127.0.0.1.
type contractEnv struct {
	srv       *httptest.Server
	readiness *httpapi.Readiness
	doc       *openapi3.T
	// seen records, per documented operation ("GET /api/v1/users"), the
	// statuses the run observed.
	seen map[string][]int
}

func newContractEnv(t *testing.T) *contractEnv {
	t.Helper()
	ctx := context.Background()
	store, err := gormstore.Open(ctx, gormstore.Config{URL: "sqlite://:memory:"})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	static, err := staticgeo.Parse("127.0.0.0/8=CH,::1/128=CH,203.0.113.0/24=FR")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := domain.NewCountryPolicy([]string{"CH"})
	if err != nil {
		t.Fatal(err)
	}
	rules := domain.NewRules(0)
	// Cheap parameters: this checks shapes, not hashing cost.
	hasher := argon2id.New(argon2id.Cheap, 0)
	users := app.NewUsers(rules, policy, faultyGeo{next: static}, hasher, faultyReader{store}, store, sysclock.Clock{}, noopNotifier{}, nil)
	users.Verify = app.NewVerifyCredentials(rules, store, hasher, sysclock.Clock{}, nil, app.VerifyConfig{
		Policy: domain.LoginPolicy{MaxFailures: 2, Window: time.Hour, Lockout: time.Hour},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	trusted, err := httpapi.ParseTrustedProxies("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	readiness := httpapi.NewReadiness(store)
	api := httpapi.NewHandler(users, httpapi.ReadinessCheck(readiness), httpapi.Config{
		MaxPageOffset:  domain.MaxPageOffset,
		TrustedProxies: trusted,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	mux := http.NewServeMux()
	mux.Handle("/", api)
	docs := apidocs.Handler()
	for _, p := range apidocs.Paths() {
		mux.Handle(p, docs)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(apidocs.Document())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatal(err)
	}
	return &contractEnv{srv: srv, readiness: readiness, doc: doc, seen: map[string][]int{}}
}

// call is one request of the scenario. Paths and headers may name the
// user under test: {id}, {etag}, {other}.
type call struct {
	name    string
	method  string
	path    string
	body    string
	ctype   string
	headers map[string]string
	status  int
	// conforming requests are also validated against the document; the
	// others are deliberately malformed.
	conforming bool
}

// state is what earlier answers taught the scenario.
type state struct {
	id, other, etag string
}

func (s *state) expand(v string) string {
	return strings.NewReplacer("{id}", s.id, "{other}", s.other, "{etag}", s.etag).Replace(v)
}

// run sends c, checks its status and validates the answer (and, when
// conforming, the request) against the document.
func (e *contractEnv) run(t *testing.T, s *state, c call) (http.Header, []byte) {
	t.Helper()
	path := s.expand(c.path)
	var reqBody []byte
	if c.body != "" {
		reqBody = []byte(s.expand(c.body))
	}
	req, err := http.NewRequestWithContext(context.Background(), c.method, e.srv.URL+path, bytes.NewReader(reqBody))
	if err != nil {
		t.Fatal(err)
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	for k, v := range c.headers {
		req.Header.Set(k, s.expand(v))
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != c.status {
		t.Fatalf("%s %s: status %d, want %d: %.300s", c.method, path, res.StatusCode, c.status, body)
	}
	if bytes.Contains(body, []byte("s3cret-pass")) || bytes.Contains(body, []byte("$argon2id$")) {
		t.Fatalf("a password or hash leaked: %s", body)
	}

	// The router sees the canonical spelling: every route also answers
	// with a trailing slash, which the document states once.
	routed := req.Clone(req.Context())
	routed.Body = io.NopCloser(bytes.NewReader(reqBody))
	if p := routed.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") && p != apidocs.DocsPath+"/" {
		routed.URL.Path = strings.TrimSuffix(p, "/")
	}
	if routed.URL.Path == apidocs.DocsPath+"/" {
		routed.URL.Path = apidocs.DocsPath
	}
	route, params := e.findRoute(t, routed, res.StatusCode)
	if res.StatusCode == http.StatusServiceUnavailable && route.Path != "/readyz" && res.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true, // an undocumented status fails
		MultiError:            true,
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		// kin-openapi has no HTML body decoder; the status and headers are
		// still checked, and the page's content by TestHandler.
		opts.ExcludeResponseBody = true
	}
	reqInput := &openapi3filter.RequestValidationInput{Request: routed, PathParams: params, Route: route, Options: opts}
	if c.conforming {
		if err := openapi3filter.ValidateRequest(context.Background(), reqInput); err != nil {
			t.Errorf("the request does not conform to the document: %v", err)
		}
		routed.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqInput,
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                opts,
	})
	if err != nil {
		t.Errorf("%s %s -> %d does not match the document: %v\nbody: %.500s", c.method, path, res.StatusCode, err, body)
	}
	if route.PathItem != nil {
		key := route.Method + " " + route.Path
		e.seen[key] = append(e.seen[key], res.StatusCode)
	}
	return res.Header, body
}

// findRoute resolves the documented operation by matching the path against
// the document's templates segment by segment. A path the document does not
// have is validated against its generic 404 answer, a method it does not
// list against the generic 405.
func (e *contractEnv) findRoute(t *testing.T, req *http.Request, status int) (*routers.Route, map[string]string) {
	t.Helper()
	for template, item := range e.doc.Paths.Map() {
		params, ok := matchTemplate(template, req.URL.Path)
		if !ok {
			continue
		}
		if op := item.GetOperation(req.Method); op != nil {
			return &routers.Route{Spec: e.doc, Path: template, PathItem: item, Method: req.Method, Operation: op}, params
		}
		return e.genericRoute(t, req, status, http.StatusMethodNotAllowed, "MethodNotAllowed"), nil
	}
	return e.genericRoute(t, req, status, http.StatusNotFound, "NotFound"), nil
}

func (e *contractEnv) genericRoute(t *testing.T, req *http.Request, got, want int, response string) *routers.Route {
	t.Helper()
	if got != want {
		t.Fatalf("%s %s is not a documented operation, yet it answered %d (want the generic %d)", req.Method, req.URL.Path, got, want)
	}
	op := &openapi3.Operation{Responses: openapi3.NewResponses(
		openapi3.WithStatus(want, &openapi3.ResponseRef{Value: e.doc.Components.Responses[response].Value}),
	)}
	return &routers.Route{Spec: e.doc, Path: req.URL.Path, Method: req.Method, Operation: op}
}

// matchTemplate matches "/api/v1/users/{id}" against "/api/v1/users/7".
func matchTemplate(template, path string) (map[string]string, bool) {
	want, got := strings.Split(template, "/"), strings.Split(path, "/")
	if len(want) != len(got) {
		return nil, false
	}
	params := map[string]string{}
	for i, seg := range want {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") && got[i] != "" {
			params[seg[1:len(seg)-1]] = got[i]
			continue
		}
		if seg != got[i] {
			return nil, false
		}
	}
	return params, true
}

const (
	ada      = `{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.ch","password":"s3cret-pass","address":"Bahnhofstrasse 1"}`
	adaForm  = "first_name=Grace&last_name=Hopper&email=grace%40example.ch&password=s3cret-pass"
	formType = "application/x-www-form-urlencoded"
	jsonType = "application/json"
)

var stale = map[string]string{"If-Match": `"999"`}

// scenario drives every operation through its documented answers.
var scenario = []call{
	{name: "create from JSON", method: "POST", path: "/api/v1/users", body: ada, ctype: jsonType, status: 201, conforming: true},
	{name: "create from a form", method: "POST", path: "/api/v1/users", body: adaForm, ctype: formType, status: 201, conforming: true},
	{name: "create with a trailing slash", method: "POST", path: "/api/v1/users/", ctype: jsonType, status: 201, conforming: true,
		body: `{"first_name":"Alan","last_name":"Turing","email":"alan@example.ch","password":"s3cret-pass"}`},
	{name: "create without fields", method: "POST", path: "/api/v1/users", body: `{}`, ctype: jsonType, status: 400},
	{name: "create with invalid fields", method: "POST", path: "/api/v1/users", ctype: jsonType, status: 400,
		body: `{"first_name":" ","last_name":"L","email":"not-an-email","password":"short","address":42}`},
	{name: "create from a JSON array", method: "POST", path: "/api/v1/users", body: `[]`, ctype: jsonType, status: 400},
	{name: "create from broken JSON", method: "POST", path: "/api/v1/users", body: `{"first_name":`, ctype: jsonType, status: 400},
	{name: "create with a taken email", method: "POST", path: "/api/v1/users", body: strings.Replace(ada, "ada@", "ADA@", 1), ctype: jsonType, status: 400},
	{name: "create from France", method: "POST", path: "/api/v1/users", ctype: jsonType, status: 403,
		body: `{"first_name":"Marie","last_name":"Curie","email":"marie@example.fr","password":"s3cret-pass"}`, headers: map[string]string{"X-Forwarded-For": addrFrance}},
	{name: "create while the geolocator is down", method: "POST", path: "/api/v1/users", ctype: jsonType, status: 503,
		body: `{"first_name":"Marie","last_name":"Curie","email":"marie@example.fr","password":"s3cret-pass"}`, headers: map[string]string{"X-Forwarded-For": addrProviderDown}},
	{name: "create hitting a bug", method: "POST", path: "/api/v1/users", ctype: jsonType, status: 500,
		body: `{"first_name":"Marie","last_name":"Curie","email":"marie@example.fr","password":"s3cret-pass"}`, headers: map[string]string{"X-Forwarded-For": addrBug}},
	{name: "create from text", method: "POST", path: "/api/v1/users", body: "hello", ctype: "text/plain", status: 415},
	{name: "create from 2 MiB", method: "POST", path: "/api/v1/users", ctype: jsonType, status: 413,
		body: `{"address":"` + strings.Repeat("a", 2<<20) + `"}`},

	{name: "list", method: "GET", path: "/api/v1/users", status: 200, conforming: true},
	{name: "list with a trailing slash", method: "GET", path: "/api/v1/users/", status: 200, conforming: true},
	{name: "list a middle page", method: "GET", path: "/api/v1/users?page=2&page_size=1&ordering=-created_at,id", status: 200, conforming: true},
	{name: "list with every filter", method: "GET", status: 200, conforming: true,
		path: "/api/v1/users?first_name=ada&last_name=LOVELACE&email=Ada@example.ch&search=example&since_id=0&max_id=1000" +
			"&created_after=2000-01-01T00:00:00Z&created_before=2100-01-01T00:00:00Z&page=1&page_size=100&ordering=email"},
	{name: "list with a bad since_id", method: "GET", path: "/api/v1/users?since_id=abc", status: 400},
	{name: "list with a bad created_after", method: "GET", path: "/api/v1/users?created_after=yesterday", status: 400},
	{name: "list by cursor, first page", method: "GET", path: "/api/v1/users?cursor=&page_size=1&ordering=-created_at", status: 200, conforming: true},
	{name: "list with an invalid cursor", method: "GET", path: "/api/v1/users?cursor=forged", status: 400, conforming: true},
	{name: "list a page too deep", method: "GET", path: "/api/v1/users?page=1001&page_size=10", status: 400, conforming: true},
	{name: "list past the last page", method: "GET", path: "/api/v1/users?page=99", status: 404, conforming: true},
	{name: "list page zero", method: "GET", path: "/api/v1/users?page=0", status: 404},
	{name: "list while the database is down", method: "GET", path: "/api/v1/users?search=" + searchDatabaseDown, status: 503, conforming: true},
	{name: "list hitting a bug", method: "GET", path: "/api/v1/users?search=" + searchBug, status: 500, conforming: true},

	{name: "get", method: "GET", path: "/api/v1/users/{id}", status: 200, conforming: true},
	{name: "get with a trailing slash", method: "GET", path: "/api/v1/users/{id}/", status: 200, conforming: true},
	{name: "get an absent user", method: "GET", path: "/api/v1/users/999999", status: 404, conforming: true},
	{name: "get a non-numeric id", method: "GET", path: "/api/v1/users/abc", status: 404},

	{name: "replace", method: "PUT", path: "/api/v1/users/{id}", ctype: jsonType, status: 200, conforming: true, headers: map[string]string{"If-Match": "{etag}"},
		body: `{"first_name":"Ada","last_name":"King","email":"ada.king@example.ch","password":"s3cret-pass"}`},
	{name: "replace from a form", method: "PUT", path: "/api/v1/users/{id}", ctype: formType, status: 200, conforming: true,
		body: "first_name=Ada&last_name=King&email=ada.king%40example.ch&password=s3cret-pass&address=London"},
	{name: "replace a stale version", method: "PUT", path: "/api/v1/users/{id}", ctype: jsonType, status: 412, conforming: true, headers: stale,
		body: `{"first_name":"Ada","last_name":"King","email":"ada.king@example.ch","password":"s3cret-pass"}`},
	{name: "replace without fields", method: "PUT", path: "/api/v1/users/{id}", body: `{"first_name":"Ada"}`, ctype: jsonType, status: 400},
	{name: "replace from text", method: "PUT", path: "/api/v1/users/{id}", body: "x", ctype: "text/plain", status: 415},
	{name: "replace with 2 MiB", method: "PUT", path: "/api/v1/users/{id}", ctype: jsonType, status: 413,
		body: `{"address":"` + strings.Repeat("a", 2<<20) + `"}`},
	{name: "replace an absent user", method: "PUT", path: "/api/v1/users/999999", ctype: jsonType, status: 404, conforming: true,
		body: `{"first_name":"Ada","last_name":"King","email":"nobody@example.ch","password":"s3cret-pass"}`},
	{name: "replace with the other user's email", method: "PUT", path: "/api/v1/users/{id}", ctype: jsonType, status: 400,
		body: `{"first_name":"Ada","last_name":"King","email":"grace@example.ch","password":"s3cret-pass"}`},

	{name: "patch", method: "PATCH", path: "/api/v1/users/{id}", body: `{"address":"Rue du Rhône 1"}`, ctype: jsonType, status: 200, conforming: true, headers: map[string]string{"If-Match": "{etag}"}},
	{name: "patch nothing", method: "PATCH", path: "/api/v1/users/{id}", body: `{}`, ctype: jsonType, status: 200, conforming: true},
	{name: "patch from a form", method: "PATCH", path: "/api/v1/users/{id}", body: "last_name=Byron", ctype: formType, status: 200, conforming: true},
	{name: "patch a stale version", method: "PATCH", path: "/api/v1/users/{id}", body: `{"address":"x"}`, ctype: jsonType, status: 412, conforming: true, headers: stale},
	{name: "patch an invalid email", method: "PATCH", path: "/api/v1/users/{id}", body: `{"email":"nope"}`, ctype: jsonType, status: 400},
	{name: "patch a string as a number", method: "PATCH", path: "/api/v1/users/{id}", body: `{"first_name":7}`, ctype: jsonType, status: 400},
	{name: "patch from text", method: "PATCH", path: "/api/v1/users/{id}", body: "x", ctype: "text/plain", status: 415},
	{name: "patch with 2 MiB", method: "PATCH", path: "/api/v1/users/{id}", ctype: jsonType, status: 413,
		body: `{"address":"` + strings.Repeat("a", 2<<20) + `"}`},
	{name: "patch an absent user", method: "PATCH", path: "/api/v1/users/999999", body: `{"address":"x"}`, ctype: jsonType, status: 404, conforming: true},

	{name: "verify", method: "POST", path: "/api/v1/credentials/verify", ctype: jsonType, status: 200, conforming: true,
		body: `{"email":" GRACE@example.ch","password":"s3cret-pass"}`},
	{name: "verify from a form with a trailing slash", method: "POST", path: "/api/v1/credentials/verify/", ctype: formType, status: 200, conforming: true,
		body: "email=grace%40example.ch&password=s3cret-pass"},
	{name: "verify a wrong password", method: "POST", path: "/api/v1/credentials/verify", ctype: jsonType, status: 400, conforming: true,
		body: `{"email":"grace@example.ch","password":"wrong-pass"}`},
	{name: "verify without a password", method: "POST", path: "/api/v1/credentials/verify", ctype: jsonType, status: 400,
		body: `{"email":"grace@example.ch"}`},
	{name: "verify an unknown email", method: "POST", path: "/api/v1/credentials/verify", ctype: jsonType, status: 400, conforming: true,
		body: `{"email":"locked@example.ch","password":"wrong-pass"}`},
	{name: "verify an unknown email again", method: "POST", path: "/api/v1/credentials/verify", ctype: jsonType, status: 400, conforming: true,
		body: `{"email":"locked@example.ch","password":"wrong-pass"}`},
	{name: "verify a locked-out email", method: "POST", path: "/api/v1/credentials/verify", ctype: jsonType, status: 429, conforming: true,
		body: `{"email":"locked@example.ch","password":"wrong-pass"}`},
	{name: "verify from text", method: "POST", path: "/api/v1/credentials/verify", body: "x", ctype: "text/plain", status: 415},
	{name: "verify with 2 MiB", method: "POST", path: "/api/v1/credentials/verify", ctype: jsonType, status: 413,
		body: `{"password":"` + strings.Repeat("a", 2<<20) + `"}`},

	{name: "delete a stale version", method: "DELETE", path: "/api/v1/users/{id}", status: 412, conforming: true, headers: stale},
	{name: "delete", method: "DELETE", path: "/api/v1/users/{id}", status: 204, conforming: true, headers: map[string]string{"If-Match": "{etag}"}},
	{name: "delete again", method: "DELETE", path: "/api/v1/users/{id}", status: 404, conforming: true},

	{name: "POST on a user", method: "POST", path: "/api/v1/users/{other}", body: `{}`, ctype: jsonType, status: 405},
	{name: "DELETE on the collection", method: "DELETE", path: "/api/v1/users", status: 405},
	{name: "unknown route", method: "GET", path: "/api/v2/users", status: 404},

	{name: "health", method: "GET", path: "/healthz", status: 200, conforming: true},
	{name: "ready", method: "GET", path: "/readyz", status: 200, conforming: true},
	{name: "the document", method: "GET", path: "/api/v1/openapi.json", status: 200, conforming: true},
	{name: "the docs page", method: "GET", path: "/docs", status: 200, conforming: true},
	{name: "the docs page with a slash", method: "GET", path: "/docs/", status: 200, conforming: true},
	{name: "POST on the docs", method: "POST", path: "/docs", status: 405},
	{name: "the event schema", method: "GET", path: "/schemas/users-events.json", status: 200, conforming: true},
	{name: "the AsyncAPI document", method: "GET", path: "/schemas/asyncapi.json", status: 200, conforming: true},
}

// TestRealResponsesMatchTheDocument drives the real handler through every
// operation and validates each answer against openapi.json, so that the
// document and the adapter cannot drift apart.
func TestRealResponsesMatchTheDocument(t *testing.T) {
	e := newContractEnv(t)
	s := &state{}
	for _, c := range scenario {
		t.Run(c.name, func(t *testing.T) {
			header, body := e.run(t, s, c)
			s.learn(t, c, header, body)
		})
	}

	// Outages come last: they change the service's state.
	t.Run("ready while draining", func(t *testing.T) {
		e.readiness.SetDraining()
		e.run(t, s, call{method: "GET", path: "/readyz", status: 503, conforming: true})
	})
	t.Run("every status of the issue was observed", func(t *testing.T) {
		observed := map[int]bool{}
		for _, statuses := range e.seen {
			for _, s := range statuses {
				observed[s] = true
			}
		}
		for _, want := range []int{200, 201, 204, 400, 403, 404, 412, 413, 415, 500, 503} {
			if !observed[want] {
				t.Errorf("no documented operation answered %d", want)
			}
		}
	})
	t.Run("every operation was exercised", func(t *testing.T) {
		for path, item := range e.doc.Paths.Map() {
			for method, op := range item.Operations() {
				key := method + " " + path
				if path == "/metrics" {
					continue // served by the metrics adapter, not part of this handler
				}
				got := e.seen[key]
				if len(got) == 0 {
					t.Errorf("%s was never called", key)
					continue
				}
				var missed []string
				for code := range op.Responses.Map() {
					var n int
					if _, err := fmt.Sscan(code, &n); err == nil && !slices.Contains(got, n) {
						missed = append(missed, code)
					}
				}
				slices.Sort(missed)
				if len(missed) > 0 {
					// Not every documented status is reachable through every
					// operation here (e.g. 500 needs a bug); logged for review.
					t.Logf("%s: documented but not observed: %v", key, missed)
				}
			}
		}
	})
}

// learn records the ids and the current ETag of the user under test.
func (s *state) learn(t *testing.T, c call, header http.Header, body []byte) {
	t.Helper()
	if c.status != 200 && c.status != 201 {
		return
	}
	var u struct {
		ID *int64 `json:"id"`
	}
	if json.Unmarshal(body, &u) != nil || u.ID == nil {
		return
	}
	id := fmt.Sprint(*u.ID)
	switch {
	case s.id == "":
		s.id = id
	case s.other == "" && id != s.id:
		s.other = id
	}
	if id == s.id {
		s.etag = header.Get("ETag")
	}
}
