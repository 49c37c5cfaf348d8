package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/staticgeo"
	"github.com/marketplace/usersvc/adapters/sysclock"
	"github.com/marketplace/usersvc/adapters/tracing"
	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Hot paths of the HTTP adapter: encoding a page of users, and the whole
// Gin chain (middleware, handler, use case, GORM on SQLite, JSON) for the
// reads and a patch, in process with httptest.NewRecorder.
//
//	go test -run '^$' -bench . -benchmem ./adapters/httpapi

func benchUsers(n int) []domain.User {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	users := make([]domain.User, n)
	for i := range users {
		users[i] = domain.User{
			ID: int64(1000 + i), Email: fmt.Sprintf("first%d.lastname%d@example.ch", i, i%50),
			FirstName: fmt.Sprintf("First%d", i), LastName: fmt.Sprintf("Lastname%d", i%50),
			Address: "Bahnhofstrasse 1, 8001 Zürich", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
			Version: 1, CreatedAt: at, UpdatedAt: at,
		}
	}
	return users
}

// BenchmarkEncodePage is the representation and JSON encoding of a list
// answer (what writeJSON does with it), default and largest page sizes.
func BenchmarkEncodePage(b *testing.B) {
	o := origin{Scheme: "http", Host: "users.internal:8080"}
	query := url.Values{"last_name": {"Lastname7"}, "page": {"2"}}
	for _, size := range []int{domain.DefaultPageSize, domain.MaxPageSize} {
		page := domain.UserPage{Users: benchUsers(size), Total: 100_000}
		q := domain.ListQuery{LastName: "Lastname7", Page: 2, PageSize: size}
		b.Run(strconv.Itoa(size)+" users", func(b *testing.B) {
			for b.Loop() {
				if body := representPage(o, pathUsers, query, q, page).appendJSON(nil); len(body) == 0 {
					b.Fatal("encode: empty")
				}
			}
		})
	}
}

// BenchmarkCursorPage is what cursor mode adds to a page: reading the
// request's cursor and writing the envelope with its next and previous
// links (two more cursors), then the JSON, for the walk's page of 100.
func BenchmarkCursorPage(b *testing.B) {
	ctx := context.Background()
	o := origin{Scheme: "http", Host: "users.internal:8080"}
	codec := newCursorCodec(nil)
	users := benchUsers(domain.MaxPageSize)
	for _, ordering := range []struct {
		name  string
		order []domain.OrderField
	}{{"id", nil}, {"-created_at", []domain.OrderField{{Field: domain.SortCreatedAt, Desc: true}}}} {
		q := domain.ListQuery{PageSize: domain.MaxPageSize, Ordering: ordering.order}
		order := q.KeyOrder()
		from := domain.KeyOf(users[0])
		cursor, err := codec.encode(ctx, order, domain.Keyset{From: &from})
		if err != nil {
			b.Fatal(err)
		}
		query := url.Values{"cursor": {cursor}, "page_size": {"100"}, "ordering": {ordering.name}}
		page := domain.UserPage{Users: users[1:], More: true}
		b.Run(ordering.name, func(b *testing.B) {
			var buf []byte // writeJSON's buffer comes from a pool
			for b.Loop() {
				ks, err := codec.decode(ctx, query.Get("cursor"), order)
				if err != nil {
					b.Fatal(err)
				}
				q.Keyset = ks
				body, err := representCursorPage(ctx, codec, o, pathUsers, query, q, page)
				if err != nil || body.next == nil || body.previous == nil {
					b.Fatalf("links %v %v: %v", body.next, body.previous, err)
				}
				if buf = body.appendJSON(buf[:0]); len(buf) == 0 {
					b.Fatal("encode: empty")
				}
			}
		})
	}
}

// benchHandlerUsers is the size of the SQLite table behind BenchmarkHandler:
// enough that the indexes matter, small enough to seed in about a second.
const benchHandlerUsers = 10_000

// newBenchHandler is the production chain on an SQLite file with n users:
// use cases, GORM store, static geolocation, argon2id (OWASP; only patches
// without a password run here, so it never hashes), JSON access log at
// info level written to io.Discard. With tr (nil: tracing off) it is
// instrumented as the composition root instruments it: a server span per
// request and a span per statement.
func newBenchHandler(b *testing.B, n int, tr *tracing.Provider) http.Handler {
	b.Helper()
	ctx := context.Background()
	storeCfg := gormstore.Config{URL: "sqlite://" + filepath.Join(b.TempDir(), "bench.db")}
	cfg := Config{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	if tr.Enabled() {
		storeCfg.Tracing = tr.TracerProvider()
		cfg.Logger = slog.New(tracing.LogHandler(cfg.Logger.Handler()))
		cfg.Tracing = &Tracing{Provider: tr.TracerProvider(), Propagator: tr.Propagator()}
	}
	store, err := gormstore.Open(ctx, storeCfg)
	if err != nil {
		b.Fatalf("open store: %v", err)
	}
	b.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		b.Fatalf("migrate: %v", err)
	}
	// Seeded through the port, 1000 users per transaction: a few hundred ms.
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for lo := 0; lo < n; lo += 1000 {
		err := store.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
			for i := lo; i < min(lo+1000, n); i++ {
				u := domain.User{
					Email: fmt.Sprintf("first%d.lastname%d.%d@example.ch", i%200, i%500, i), FirstName: fmt.Sprintf("First%d", i%200),
					LastName: fmt.Sprintf("Lastname%d", i%500), Address: strconv.Itoa(i) + " Main Street",
					PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Version: 1, CreatedAt: at, UpdatedAt: at,
				}
				if err := tx.InsertUser(ctx, &u); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatalf("seed: %v", err)
		}
	}
	geo, err := staticgeo.Parse("127.0.0.0/8=CH")
	if err != nil {
		b.Fatal(err)
	}
	policy, err := domain.NewCountryPolicy([]string{"CH"})
	if err != nil {
		b.Fatal(err)
	}
	rules, hasher := domain.NewRules(0), argon2id.New(argon2id.OWASP, 0)
	mutations := app.NewMutations(store, sysclock.Clock{}, noopNotifier{}, tr)
	users := &app.Users{
		Create:  app.NewCreateUser(rules, geo, policy, hasher, mutations),
		Get:     app.NewGetUser(store),
		List:    app.NewListUsers(store),
		Replace: app.NewReplaceUser(rules, store, hasher, mutations),
		Patch:   app.NewPatchUser(rules, store, hasher, mutations),
		Delete:  app.NewDeleteUser(mutations),
	}
	return NewHandler(users, nil, cfg)
}

func BenchmarkHandler(b *testing.B) {
	h := newBenchHandler(b, benchHandlerUsers, nil)
	cases := []struct {
		name   string
		method string
		target func(i int) string
		body   func(i int) string
		want   int
	}{
		{"GET by id", http.MethodGet, func(i int) string { return "/api/v1/users/" + strconv.Itoa(1+i%benchHandlerUsers) }, nil, http.StatusOK},
		{"GET list page", http.MethodGet, func(i int) string { return "/api/v1/users?page=" + strconv.Itoa(1+i%100) }, nil, http.StatusOK},
		{"GET cursor page of 100", http.MethodGet, func(i int) string { return "/api/v1/users?page_size=100&cursor=" }, nil, http.StatusOK},
		{"GET list by last_name", http.MethodGet, func(i int) string { return "/api/v1/users?last_name=Lastname" + strconv.Itoa(i%500) }, nil, http.StatusOK},
		{"GET search", http.MethodGet, func(i int) string { return "/api/v1/users?search=lastname" + strconv.Itoa(i%500) }, nil, http.StatusOK},
		{"PATCH address", http.MethodPatch, func(i int) string { return "/api/v1/users/" + strconv.Itoa(1+i%benchHandlerUsers) },
			func(i int) string { return `{"address":"` + strconv.Itoa(i) + ` Bench Street"}` }, http.StatusOK},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				var body io.Reader
				if c.body != nil {
					body = strings.NewReader(c.body(i))
				}
				req := httptest.NewRequest(c.method, c.target(i), body)
				req.RemoteAddr = "127.0.0.1:40000"
				if body != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != c.want {
					b.Fatalf("%s %s: status %d, want %d: %s", c.method, req.URL, rec.Code, c.want, rec.Body)
				}
				i++
			}
		})
	}
}

// tracingCases are the settings BenchmarkTracingGetByID compares.
var tracingCases = []struct {
	name  string
	ratio float64 // < 0: tracing off
}{
	{"off", -1},
	{"ratio 1.0", 1},
	{"ratio 0.01", 0.01},
}

// benchTracing is tracing as OTEL_TRACES_SAMPLER=parentbased_traceidratio
// with ratio sets it up, spans going through a batch span processor to an
// exporter that drops them; nil (off) for a negative ratio.
func benchTracing(b *testing.B, ratio float64) *tracing.Provider {
	b.Helper()
	if ratio < 0 {
		return nil
	}
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(tracetest.NewNoopExporter()),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.Default()),
	)
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	return tracing.New(sdk)
}

// getByID serves one get of user 1+i%benchHandlerUsers and requires 200.
func getByID(b *testing.B, h http.Handler, i int) {
	req := httptest.NewRequest(http.MethodGet, "/api/v1/users/"+strconv.Itoa(1+i%benchHandlerUsers), nil)
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: status %d: %s", req.URL, rec.Code, rec.Body)
	}
}

// BenchmarkTracingGetByID is what tracing costs on the hottest read: the
// whole chain of a get by id with tracing off (the default without
// OTEL_EXPORTER_OTLP_ENDPOINT), and on with OTEL_TRACES_SAMPLER=
// parentbased_traceidratio at 100% and 1% of the requests. Spans go, as in
// production, through a batch span processor, here to an exporter that
// drops them, so the figures are the service's own cost (span creation,
// attributes, the GORM plugin, the log handler), without the network.
//
// "paired" serves the three settings (and tracing off a second time, on a
// chain of its own) in turn within each iteration and reports each one's
// median time per request: on a shared machine whose
// load drifts, the separate sub-benchmarks compare runs taken at different
// moments, the paired one compares requests taken side by side.
func BenchmarkTracingGetByID(b *testing.B) {
	for _, c := range tracingCases {
		b.Run(c.name, func(b *testing.B) {
			h := newBenchHandler(b, benchHandlerUsers, benchTracing(b, c.ratio))
			i := 0
			for b.Loop() {
				getByID(b, h, i)
				i++
			}
		})
	}
	b.Run("paired", func(b *testing.B) {
		// A second handler with tracing off shows the spread between two
		// identical chains (their own SQLite files, caches, order): a
		// difference smaller than that is noise.
		cases := append(slices.Clone(tracingCases), tracingCases[0])
		handlers := make([]http.Handler, len(cases))
		for j, c := range cases {
			handlers[j] = newBenchHandler(b, benchHandlerUsers, benchTracing(b, c.ratio))
		}
		took := make([][]time.Duration, len(cases))
		i := 0
		for b.Loop() {
			for k := range handlers {
				j := (i + k) % len(handlers) // each setting goes first in turn
				start := time.Now()
				getByID(b, handlers[j], i)
				took[j] = append(took[j], time.Since(start))
			}
			i++
		}
		medians := make([]float64, len(took))
		for j, d := range took {
			slices.Sort(d)
			medians[j] = float64(d[len(d)/2].Nanoseconds())
		}
		b.ReportMetric(0, "ns/op") // an iteration is four requests: the medians below are the figures
		b.ReportMetric(medians[0], "ns-off")
		b.ReportMetric(medians[1], "ns-ratio1")
		b.ReportMetric(medians[2], "ns-ratio0.01")
		b.ReportMetric(medians[3], "ns-off-again")
	})
}
