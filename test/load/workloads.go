package main

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/marketplace/usersvc/adapters/argon2id"
)

// client drives the service over HTTP/1.1 keep-alive connections: one
// http.Client whose transport keeps an idle connection per worker, so a
// closed loop of N workers settles on N connections.
// workload is one row of the report: the same requests through the
// service and through the raw baseline.
type workload struct {
	Name string
	// What it does, for the report and the README.
	Doc string
	// MinRatio is the target for service/raw throughput (0: none).
	MinRatio float64
	// Sides names the two sides when they are not the service and the raw
	// baseline (e.g. with and without a token).
	Sides [2]string
	// MaxMedianGap is a target on the sides' medians: the larger at most
	// this much above the smaller (0: none).
	MaxMedianGap float64
	// Timing makes the workload a timing comparison (runPaired): the two
	// sides interleaved request by request at -timing-concurrency.
	Timing  bool
	service func(*env) Op
	raw     func(*env) Op
}

// env is what the operations need: the population to pick from, the
// service's client, the raw baseline and a per-run nonce for unique
// emails and event ids.
type env struct {
	pop     population
	client  *client
	raw     *rawDB
	hasher  *argon2id.Hasher
	maxPage int
	nonce   string
	seq     *atomic.Uint64 // shared by copies of env
	// servicePool is the store's pool, watched for waits and reconnects.
	servicePool *sql.DB
	auth        *authEnv // workloads_auth.go
	// deep holds the cursors of the deep workload (see workloads_scale.go).
	deep *deepCursors
}

func (e *env) unique() string {
	return e.nonce + "-" + strconv.FormatUint(e.seq.Add(1), 36)
}

func (e *env) randomLastName(rng *rand.Rand) string { return lastName(rng.IntN(e.pop.LastNames)) }

// loadPassword is what created users get; it is never printed.
const loadPassword = "correct horse battery staple"

func (e *env) serviceGet(ctx context.Context, rng *rand.Rand) error {
	return e.client.do(ctx, http.MethodGet, "/api/v1/users/{id}", "/api/v1/users/"+strconv.FormatInt(e.pop.randomID(rng), 10), nil, http.StatusOK)
}

func (e *env) serviceList(ctx context.Context, rng *rand.Rand) error {
	return e.client.do(ctx, http.MethodGet, "/api/v1/users?page", "/api/v1/users?page="+strconv.Itoa(1+rng.IntN(e.maxPage)), nil, http.StatusOK)
}

func (e *env) serviceFilter(ctx context.Context, rng *rand.Rand) error {
	return e.client.do(ctx, http.MethodGet, "/api/v1/users?last_name", "/api/v1/users?last_name="+e.randomLastName(rng), nil, http.StatusOK)
}

func (e *env) serviceCreate(ctx context.Context, rng *rand.Rand) error {
	return e.client.do(ctx, http.MethodPost, "/api/v1/users", "/api/v1/users", e.createBody(rng), http.StatusCreated)
}

// createBody is a new user with a new email.
func (e *env) createBody(rng *rand.Rand) []byte {
	return []byte(`{"first_name":"Load","last_name":"` + e.randomLastName(rng) + `","email":"load.` + e.unique() +
		`@example.com","password":"` + loadPassword + `","address":"1 Load Street"}`)
}

func (e *env) servicePatch(ctx context.Context, rng *rand.Rand) error {
	body := `{"address":"` + e.unique() + ` Patch Street"}`
	return e.client.do(ctx, http.MethodPatch, "/api/v1/users/{id}", "/api/v1/users/"+strconv.FormatInt(e.pop.randomID(rng), 10), []byte(body), http.StatusOK)
}

func (e *env) rawGet(ctx context.Context, rng *rand.Rand) error {
	_, err := e.raw.getUser(ctx, e.pop.randomID(rng))
	return err
}

func (e *env) rawList(ctx context.Context, rng *rand.Rand) error {
	return e.raw.listPage(ctx, 1+rng.IntN(e.maxPage))
}

func (e *env) rawFilter(ctx context.Context, rng *rand.Rand) error {
	return e.raw.filterByLastName(ctx, e.randomLastName(rng))
}

func (e *env) rawCreate(ctx context.Context, _ *rand.Rand) error {
	_, err := e.hasher.Hash(ctx, loadPassword)
	return err
}

func (e *env) rawPatch(ctx context.Context, rng *rand.Rand) error {
	u := e.unique()
	return e.raw.patchAddress(ctx, e.pop.randomID(rng), u+" Patch Street", "raw-"+u)
}

// weighted is one share of a mixed workload.
type weighted struct {
	weight int
	op     Op
}

// mix picks an operation per request in proportion to the weights.
func mix(parts ...weighted) Op {
	total := 0
	for _, p := range parts {
		total += p.weight
	}
	return func(ctx context.Context, rng *rand.Rand) error {
		x := rng.IntN(total)
		for _, p := range parts {
			if x < p.weight {
				return p.op(ctx, rng)
			}
			x -= p.weight
		}
		panic("unreachable")
	}
}

// Mixed workload shares: 80% reads, 20% writes.
const (
	mixGet, mixList, mixFilter = 50, 15, 15
	mixPatch, mixCreate        = 15, 5
)

var workloads = []workload{
	{Name: "get", MinRatio: 0.5,
		Doc:     "GET /api/v1/users/{id}, id uniform over the seeded users | raw: the point select",
		service: func(e *env) Op { return e.serviceGet }, raw: func(e *env) Op { return e.rawGet }},
	{Name: "list", MinRatio: 0.4,
		Doc:     "GET /api/v1/users?page=P, P uniform in 1..max-page | raw: page select + counter-table sum",
		service: func(e *env) Op { return e.serviceList }, raw: func(e *env) Op { return e.rawList }},
	{Name: "first", MinRatio: 0.4,
		Doc:     "GET /api/v1/users?cursor= (first page, cursor mode) | raw: the keyset select of the first page",
		service: func(e *env) Op { return e.serviceFirst }, raw: func(e *env) Op { return e.rawFirst }},
	{Name: "deep", MinRatio: 0.4,
		Doc:     "GET /api/v1/users?cursor=C, C one of 64 next-page cursors at 90% of the table's depth | raw: the keyset select after the same row",
		service: func(e *env) Op { return e.serviceDeep }, raw: func(e *env) Op { return e.rawDeep }},
	{Name: "filter", MinRatio: 0.4,
		Doc:     "GET /api/v1/users?last_name=X, X uniform over the last names (20 users each) | raw: page select + count",
		service: func(e *env) Op { return e.serviceFilter }, raw: func(e *env) Op { return e.rawFilter }},
	{Name: "search", MinRatio: 0.4,
		Doc:     "GET /api/v1/users?search=x, x the six-letter e-mail tag of one last name (20 users) | raw: the store's trigram-index page select + count",
		service: func(e *env) Op { return e.serviceSearch }, raw: func(e *env) Op { return e.rawSearch }},
	{Name: "create", MinRatio: 0.8,
		Doc:     "POST /api/v1/users with a new email (argon2id OWASP, country check, insert + outbox) | raw: argon2id hash alone",
		service: func(e *env) Op { return e.serviceCreate }, raw: func(e *env) Op { return e.rawCreate }},
	{Name: "patch",
		Doc:     "PATCH /api/v1/users/{id} {\"address\"} (no password) | raw: the same transaction (lock, update, outbox insert)",
		service: func(e *env) Op { return e.servicePatch }, raw: func(e *env) Op { return e.rawPatch }},
	{Name: "mixed",
		Doc: "50% get, 15% list, 15% filter (80% reads), 15% patch, 5% create | raw: the same mix of raw operations",
		service: func(e *env) Op {
			return mix(weighted{mixGet, e.serviceGet}, weighted{mixList, e.serviceList}, weighted{mixFilter, e.serviceFilter},
				weighted{mixPatch, e.servicePatch}, weighted{mixCreate, e.serviceCreate})
		},
		raw: func(e *env) Op {
			return mix(weighted{mixGet, e.rawGet}, weighted{mixList, e.rawList}, weighted{mixFilter, e.rawFilter},
				weighted{mixPatch, e.rawPatch}, weighted{mixCreate, e.rawCreate})
		}},
}

func workloadNames() []string {
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.Name
	}
	return names
}
