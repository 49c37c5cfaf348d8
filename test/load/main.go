// Command load is usersvc's load benchmark (issue 7). It seeds a users
// table, starts the service in this process with its production wiring
// (use cases, GORM store, argon2id OWASP, static geolocation placing
// 127.0.0.0/8 in Switzerland, outbox relay and Kafka publisher to an
// in-process kfake broker) behind a net/http server on 127.0.0.1, and
// drives each workload for a fixed time at a fixed concurrency with a
// closed-loop HTTP client. In the same process, at the same concurrency and
// interleaved with it, it runs the raw baseline: the same SQL through
// database/sql with prepared statements, and argon2id alone for creates.
// It then measures peak RSS with 256 keep-alive connections, the relay's
// drain rate and the event lag at a steady mutation rate, prints a table
// and the targets, and writes everything as JSON.
//
//	go run ./test/load                        # 100,000 users, fresh usersvc_load on the local MariaDB
//	go run ./test/load -users 1000000 -out r1m.json -compare r10k.json
//
// See test/load/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/marketplace/usersvc/adapters/gormstore"
)

type options struct {
	Users         int           `json:"users"`
	DB            string        `json:"-"`
	Admin         string        `json:"-"`
	DBName        string        `json:"dbname"`
	Keep          bool          `json:"keep"`
	Duration      time.Duration `json:"duration_ns"`
	Warmup        time.Duration `json:"warmup_ns"`
	Rounds        int           `json:"rounds"`
	Concurrency   int           `json:"concurrency"`
	TimingConc    int           `json:"timing_concurrency"`
	Workloads     []string      `json:"workloads"`
	MaxPage       int           `json:"max_page"`
	RSSConns      int           `json:"rss_conns"`
	RSSGoMemLimit string        `json:"rss_gomemlimit,omitempty"`
	RSSBinary     string        `json:"-"`
	BufferPool    string        `json:"innodb_buffer_pool,omitempty"`
	RelayEvents   int           `json:"relay_events"`
	LagRate       float64       `json:"lag_rate"`
	LagDuration   time.Duration `json:"lag_duration_ns"`
	Partitions    int           `json:"partitions"`
	SeedBatch     int           `json:"seed_batch"`
	SeedWorkers   int           `json:"seed_workers"`
	Timeout       time.Duration `json:"timeout_ns"`
	Out           string        `json:"-"`
	Compare       string        `json:"-"`
	PprofDir      string        `json:"-"`
	Quiet         bool          `json:"-"`
	CheapHash     bool          `json:"cheap_hash,omitempty"`
	Store         string        `json:"store"`
	Walk          bool          `json:"walk"`
	SearchScan    bool          `json:"search_scan"`
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Users, "users", 100_000, "users to seed (1000000 supported)")
	fs.StringVar(&o.DB, "db", "", "DATABASE_URL of an existing database (mysql://... or sqlite:///path); empty: create -dbname on -mysql-admin")
	fs.StringVar(&o.Admin, "mysql-admin", "mysql://root@127.0.0.1:3306/mysql", "MySQL server URL used to create and drop -dbname (-store mysql)")
	pgAdmin := fs.String("postgres-admin", defaultPostgresAdmin, "PostgreSQL server URL used to create and drop -dbname (-store postgres)")
	fs.StringVar(&o.Store, "store", "mysql", "server -dbname is created on when -db is empty: mysql (MySQL/MariaDB) or postgres")
	fs.BoolVar(&o.Walk, "walk", false, "walk every user by cursor (100 a page) through the service and as a raw keyset walk, before the workloads")
	fs.BoolVar(&o.SearchScan, "search-scan", false, "after search, measure the LIKE scan search was before the trigram indexes (raw, at most 4 at a time)")
	fs.StringVar(&o.DBName, "dbname", "usersvc_load", "database created (after dropping a leftover) when -db is empty")
	fs.BoolVar(&o.Keep, "keep", false, "keep -dbname after the run, and reuse it when it already holds the seeded users")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time per workload and side (split over -rounds)")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "per workload: service calibration and warm-up, then raw warm-up (segments also settle for two typical latencies)")
	fs.IntVar(&o.Rounds, "rounds", 4, "service and raw alternate up to this many times per workload, so background load hits both alike (fewer when a segment would last under 10 typical latencies)")
	fs.IntVar(&o.Concurrency, "concurrency", 32, "closed-loop workers (and keep-alive connections)")
	fs.IntVar(&o.TimingConc, "timing-concurrency", 2, "closed-loop workers of the timing comparisons (verify-fail, stale-if-match): few, so that a median is the service's time, not a queue's")
	workloadList := fs.String("workloads", strings.Join(workloadNames(), ","), "comma-separated workloads to run")
	fs.IntVar(&o.MaxPage, "max-page", 100, "list pages are drawn uniformly from 1..max-page")
	fs.IntVar(&o.RSSConns, "rss-conns", 256, "keep-alive connections of the peak-RSS check (0: skip it)")
	fs.StringVar(&o.RSSGoMemLimit, "rss-gomemlimit", deployGoMemLimit, "GOMEMLIMIT of the service process of the RSS check (default: what deploy/ sets; empty: none)")
	fs.StringVar(&o.RSSBinary, "rss-binary", "", "usersvc binary the RSS check runs (default: built from ./cmd/usersvc)")
	fs.StringVar(&o.BufferPool, "innodb-buffer-pool", "", "MySQL/MariaDB: set innodb_buffer_pool_size to this (e.g. 1GiB) for the run, then restore it (default: leave the server alone)")
	fs.IntVar(&o.RelayEvents, "relay-events", 50_000, "outbox rows the relay drain test publishes (0: skip it)")
	fs.Float64Var(&o.LagRate, "lag-rate", 500, "mutations per second of the event-lag test (0: skip it)")
	fs.DurationVar(&o.LagDuration, "lag-duration", 0, "length of the event-lag test (default: -duration)")
	fs.IntVar(&o.Partitions, "partitions", 3, "partitions of the events topic")
	fs.IntVar(&o.SeedBatch, "seed-batch", 1000, "rows per INSERT when seeding")
	fs.IntVar(&o.SeedWorkers, "seed-workers", 2, "connections seeding in parallel (MySQL)")
	fs.DurationVar(&o.Timeout, "timeout", 45*time.Minute, "hard limit of the whole run")
	fs.StringVar(&o.Out, "out", "", "write the results as JSON to this file")
	fs.StringVar(&o.Compare, "compare", "", "results JSON of another run (e.g. -users 10000) to compare p99 with")
	fs.StringVar(&o.PprofDir, "pprof", "", "write CPU profiles of each workload's service segments (and of the service's walk) and allocation profiles to this directory")
	fs.BoolVar(&o.Quiet, "q", false, "print only the final report")
	fs.BoolVar(&o.CheapHash, "cheap-hash", false, "argon2id with 64 KiB and 1 pass instead of OWASP's parameters (smoke tests only: create results mean nothing then)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	for w := range strings.SplitSeq(*workloadList, ",") {
		if w = strings.TrimSpace(w); w == "" {
			continue
		}
		if !slices.Contains(workloadNames(), w) {
			return o, fmt.Errorf("-workloads: unknown %q (have %s)", w, strings.Join(workloadNames(), ", "))
		}
		o.Workloads = append(o.Workloads, w)
	}
	if o.LagDuration == 0 {
		o.LagDuration = o.Duration
	}
	switch o.Store {
	case "mysql":
	case "postgres":
		o.Admin = *pgAdmin
	default:
		return o, fmt.Errorf("-store %q: want mysql or postgres", o.Store)
	}
	switch {
	case o.Users < 1 || o.Users > 10_000_000:
		return o, errors.New("-users: 1 to 10,000,000")
	case o.Concurrency < 1 || o.Concurrency > 4096, o.RSSConns < 0 || o.RSSConns > 4096, o.TimingConc < 1:
		return o, errors.New("-concurrency and -rss-conns: up to 4096; -timing-concurrency at least 1")
	case o.Duration <= 0 || o.Duration > time.Hour, o.Warmup < 0, o.LagDuration <= 0 || o.LagDuration > time.Hour:
		return o, errors.New("-duration and -lag-duration: more than 0, at most 1h; -warmup not negative")
	case o.Rounds < 1 || o.Rounds > 100, o.MaxPage < 1, o.Partitions < 1, o.SeedBatch < 1, o.SeedWorkers < 1:
		return o, errors.New("-rounds (1-100), -max-page, -partitions, -seed-batch and -seed-workers must be positive")
	case o.RelayEvents < 0 || o.RelayEvents > 10_000_000, o.LagRate < 0 || o.LagRate > 100_000:
		return o, errors.New("-relay-events (0-10,000,000) and -lag-rate (0-100,000) out of range")
	case o.Timeout <= 0:
		return o, errors.New("-timeout must be positive")
	}
	if o.BufferPool != "" {
		if _, err := parseBytes(o.BufferPool); err != nil {
			return o, fmt.Errorf("-innodb-buffer-pool: %w", err)
		}
	}
	o.MaxPage = min(o.MaxPage, max(1, (o.Users+9)/10))
	o.TimingConc = min(o.TimingConc, o.Concurrency)
	return o, nil
}

func main() { os.Exit(mainCode()) }

// mainCode is main without os.Exit, so that its deferred calls run.
func mainCode() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "load:", err)
		return 2
	}
	res, err := run(ctx, o, os.Stdout)
	if res != nil {
		printReport(os.Stdout, res)
		if o.Out != "" {
			if werr := writeJSON(o.Out, res); werr != nil {
				err = errors.Join(err, werr)
			} else {
				fmt.Fprintf(os.Stdout, "\nresults written to %s\n", o.Out)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 1
	}
	return 0
}

// progress prints what the run is doing, unless quiet.
type progress struct {
	w     io.Writer
	start time.Time
}

func (p progress) printf(format string, args ...any) {
	if p.w != nil {
		fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
	}
}

// run performs the whole benchmark. It returns what was measured so far
// even when a step fails, so a partial report is still printed.
func run(ctx context.Context, o options, out io.Writer) (res *Results, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	p := progress{w: out, start: time.Now()}
	if o.Quiet {
		p.w = nil
	}
	res = &Results{Date: time.Now().UTC().Format(time.RFC3339), Machine: describeMachine(), Options: o}

	db, err := prepareDatabase(ctx, o.DB, o.Admin, o.DBName, o.Keep)
	if err != nil {
		return nil, err
	}
	if db.drop != nil {
		defer func() {
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer dcancel()
			err = errors.Join(err, db.drop(dctx))
		}()
	}
	res.Machine.Database = db.target.Redacted
	if db.target.Dialect == gormstore.DialectMySQL && isLoopback(db.target.MySQL.Addr) {
		if _, port, err := net.SplitHostPort(db.target.MySQL.Addr); err == nil {
			n, _ := strconv.Atoi(port)
			dbPID = listenerPID(n)
		}
	}
	if v, verr := serverVersion(ctx, db.url); verr == nil {
		res.Machine.Database += " (" + v + ")"
	}
	p.printf("database %s", res.Machine.Database)

	brk, err := startBroker(int32(o.Partitions))
	if err != nil {
		return nil, err
	}
	defer brk.Close()
	svc, err := startService(ctx, serviceEnv(db.url, brk.Addr()), o.CheapHash)
	if err != nil {
		return nil, fmt.Errorf("start service: %w", err)
	}
	defer svc.Close()
	p.printf("service on %s, events to kfake at %s (%d partitions)", svc.URL, brk.Addr(), o.Partitions)

	// The raw pool may open one connection per worker: the baseline is the
	// database at its best, so its pool is never what limits it.
	pool, err := openRawPool(db.url, max(o.Concurrency, o.SeedWorkers))
	if err != nil {
		return res, err
	}
	defer pool.Close()
	pop, seeded, err := seed(ctx, pool, db.target.Dialect, o.Users, o.SeedBatch, o.SeedWorkers)
	if err != nil {
		return res, err
	}
	res.Population, res.Seed = pop, seeded
	if seeded.Reused {
		p.printf("reusing %d seeded users (ids from %d)", pop.Users, pop.MinID)
	} else {
		p.printf("seeded %d users in %v (%.0f rows/s)", pop.Users, seeded.Duration.Round(time.Millisecond), seeded.RowsPerS)
	}
	if db.target.Dialect == gormstore.DialectMySQL {
		if o.BufferPool != "" {
			size, _ := parseBytes(o.BufferPool) // checked by parseFlags
			restore, err := resizeBufferPool(ctx, pool, size)
			if err != nil {
				return res, err
			}
			defer func() {
				rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer rcancel()
				err = errors.Join(err, restore(rctx))
			}()
		}
		if err := preloadUsers(ctx, pool); err != nil {
			return res, err
		}
		bp, err := bufferPoolInfo(ctx, pool)
		if err != nil {
			return res, fmt.Errorf("read the buffer pool size: %w", err)
		}
		res.BufferPool = &bp
		p.printf("InnoDB buffer pool %s MiB, users table %s MiB", mib(bp.Bytes), mib(bp.TableBytes))
	}
	if db.target.Dialect == gormstore.DialectPostgres {
		sb, err := sharedBuffersInfo(ctx, pool)
		if err != nil {
			return res, fmt.Errorf("read shared_buffers: %w", err)
		}
		res.BufferPool = &sb
		p.printf("shared_buffers %s MiB (huge pages: %s), users table %s MiB", mib(sb.Bytes), sb.HugePages, mib(sb.TableBytes))
	}
	raw, err := newRawDB(ctx, pool, db.target.Dialect)
	if err != nil {
		return res, err
	}
	defer raw.Close()

	cl, err := newClient(svc.URL, o.Concurrency)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	e := &env{
		pop: pop, client: cl, raw: raw, hasher: newHasher(o.CheapHash), maxPage: o.MaxPage,
		nonce: strconv.FormatInt(time.Now().UnixNano(), 36), seq: &atomic.Uint64{}, servicePool: svc.store.DB(),
	}
	auth, stopAuth, err := newAuthEnv(ctx, o, svc, e, pool)
	if err != nil {
		return res, err
	}
	defer stopAuth()
	e.auth = auth

	if err := walkAndCollect(ctx, o, e, p, res); err != nil {
		return res, err
	}
	for _, name := range o.Workloads {
		w := workloads[slices.IndexFunc(workloads, func(w workload) bool { return w.Name == name })]
		wr, err := runWorkload(ctx, o, w, e, p)
		if wr != nil {
			res.Workloads = append(res.Workloads, *wr)
		}
		if err != nil {
			return res, err
		}
		if name == "search" && o.SearchScan {
			res.Scale.SearchScan = measureSearchScan(ctx, o, e, p)
		}
		// Events of this workload must not be drained on the next one's time.
		if err := svc.waitForRelay(ctx, time.Minute); err != nil {
			return res, err
		}
	}

	if o.RSSConns > 0 {
		r, err := rssCheck(ctx, o, db.url, brk.Addr(), e, p)
		res.RSS = r
		if err != nil {
			return res, err
		}
		if err := svc.waitForRelay(ctx, time.Minute); err != nil {
			return res, err
		}
	}
	if o.RelayEvents > 0 {
		p.printf("relay: committing %d outbox rows, then draining them", o.RelayEvents)
		r, err := relayThroughput(ctx, svc, pool, db.target.Dialect, pop, o.RelayEvents, e.nonce, 5*time.Minute)
		res.Relay = r
		if err != nil {
			return res, err
		}
		p.printf("relay: %d events in %v: %.0f events/s", r.Events, r.Drain.Round(time.Millisecond), r.EventsPerS)
	}
	if o.LagRate > 0 {
		p.printf("event lag: %.0f patches/s for %v", o.LagRate, o.LagDuration)
		r, err := eventLag(ctx, svc, e, o.LagRate, o.LagDuration, o.Concurrency, 30*time.Second)
		res.Lag = r
		if err != nil {
			return res, err
		}
		p.printf("event lag: p50 %v ms, p99 %v ms over %d events", r.Lag.P50, r.Lag.P99, r.Events)
	}
	res.PeakRSSBytes, _ = statusBytes("self", "VmHWM")
	res.Machine.LoadAfter = loadAvg()
	if o.Compare != "" {
		other, err := readJSON(o.Compare)
		if err != nil {
			return res, fmt.Errorf("-compare: %w", err)
		}
		res.Compare = compareRuns(res, other)
	}
	res.Targets = evaluate(res)
	return res, ctx.Err()
}

// Segment sizing: a closed loop starts every segment with all workers
// sending at once, so a segment needs a settling time of a couple of
// request latencies and must last many of them, or the start and end
// transients dominate what it counts.
const (
	minSettle           = 200 * time.Millisecond
	maxSettle           = 10 * time.Second
	latenciesPerSegment = 10
)

// runWorkload alternates the raw and the service side for up to o.Rounds
// rounds of equal length, so a change in background load during the
// workload falls on both sides alike. A calibration of o.Warmup on the
// service side (which also warms it) gives the typical latency: rounds are
// merged until each segment lasts latenciesPerSegment of them, and each
// segment starts with an unmeasured settling time of two.
func runWorkload(ctx context.Context, o options, w workload, e *env, p progress) (*WorkloadResult, error) {
	if w.Timing {
		return runPaired(ctx, o, w, e, p)
	}
	wr := &WorkloadResult{Name: w.Name, Doc: w.Doc, MinRatio: w.MinRatio, Sides: w.Sides, Concurrency: o.Concurrency, Service: &Phase{}, Raw: &Phase{}}
	cal := closedLoop(ctx, o.Concurrency, 0, o.Warmup, 1<<32, w.service(e))
	typical := cal.latency.Quantile(0.5)
	if cal.Requests == 0 {
		typical = max(o.Warmup, cal.latency.Max()) // nothing finished: at least that slow
	}
	rounds := o.Rounds
	for rounds > 1 && o.Duration/time.Duration(rounds) < latenciesPerSegment*typical {
		rounds--
	}
	settle := min(max(minSettle, 2*typical), maxSettle)
	segment := o.Duration / time.Duration(rounds)
	wr.Rounds, wr.Typical = rounds, Millis(typical)
	for round := range rounds {
		rawWarmup := settle
		if round == 0 {
			rawWarmup = max(o.Warmup, settle)
		}
		wr.Raw.add(poolDelta(e.raw.db, func() *Phase {
			return closedLoop(ctx, o.Concurrency, rawWarmup, segment, uint64(round), w.raw(e))
		}))
		stopProfile, err := startCPUProfile(o.PprofDir, fmt.Sprintf("cpu-%s-%d.pprof", w.Name, round))
		if err != nil {
			return nil, err
		}
		wr.Service.add(poolDelta(e.servicePool, func() *Phase {
			return closedLoop(ctx, o.Concurrency, settle, segment, uint64(round), w.service(e))
		}))
		stopProfile()
		if ctx.Err() != nil {
			return wr.finish(), ctx.Err()
		}
	}
	// Errors of the calibration count: every request must succeed.
	wr.Service.Errors += cal.Errors
	for _, s := range cal.ErrorSamples {
		wr.Service.ErrorSamples = addSample(wr.Service.ErrorSamples, s)
	}
	if err := writeProfile(o.PprofDir, "allocs", "allocs-"+w.Name+".pprof"); err != nil {
		return nil, err
	}
	wr.finish()
	p.printf("%-7s service %8.0f req/s p99 %7v ms err %d | raw %8.0f req/s p99 %7v ms err %d | ratio %.2f | %d rounds | service pool: %d new conns, %d waits",
		w.Name, wr.Service.RPS, wr.Service.Latency.P99, wr.Service.Errors, wr.Raw.RPS, wr.Raw.Latency.P99, wr.Raw.Errors, wr.Ratio,
		wr.Rounds, wr.Service.Pool.Opened, wr.Service.Pool.WaitCount)
	return wr, nil
}

// RSSResult is the peak resident memory of the service with conns
// keep-alive connections driving the mixed workload. The service runs for
// this check as a separate process (this program started again in service
// mode, with the same wiring and database), so that its RSS holds neither
// the load generator nor the broker; the whole run's in-process peak is
// reported apart (Results.PeakRSSBytes).
type RSSResult struct {
	Conns int `json:"conns"`
	// PeakConns is the most connections the service process held at the
	// end of a phase (from /proc/net/tcp).
	PeakConns  int64  `json:"peak_server_conns"`
	StartBytes int64  `json:"start_rss_bytes"`
	PeakBytes  int64  `json:"peak_rss_bytes"`
	GoMemLimit string `json:"gomemlimit,omitempty"`
	Phase      *Phase `json:"mixed"`
	// ReadsPeakBytes is the peak after a first phase of reads only (get),
	// before any password is hashed: what the connections themselves cost.
	ReadsPeakBytes int64  `json:"reads_peak_rss_bytes"`
	Reads          *Phase `json:"reads"`
}

func rssCheck(ctx context.Context, o options, dbURL, brokers string, e *env, p progress) (*RSSResult, error) {
	dir, err := os.MkdirTemp("", "usersvc-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin, err := serviceBinary(ctx, o.RSSBinary, dir)
	if err != nil {
		return nil, err
	}
	child, err := startServiceProcess(ctx, bin, dbURL, brokers, o.RSSGoMemLimit)
	if err != nil {
		return nil, err
	}
	defer func() { _ = child.stop() }() // the numbers are taken; how it exits does not change them
	r := &RSSResult{Conns: o.RSSConns, GoMemLimit: o.RSSGoMemLimit}
	r.StartBytes, _ = statusBytes(child.pid(), "VmRSS")
	cl, err := newClient(child.url, o.RSSConns)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	e2 := *e
	e2.client = cl
	r.Reads = closedLoop(ctx, o.RSSConns, o.Warmup, o.Duration/2, 98, e2.serviceGet)
	r.Reads.finish()
	r.PeakConns = int64(child.conns())
	if r.ReadsPeakBytes, err = statusBytes(child.pid(), "VmHWM"); err != nil {
		return r, fmt.Errorf("rss: %w", err)
	}
	w := workloads[slices.IndexFunc(workloads, func(w workload) bool { return w.Name == "mixed" })]
	r.Phase = closedLoop(ctx, o.RSSConns, o.Warmup, o.Duration, 99, w.service(&e2))
	r.Phase.finish()
	if r.PeakBytes, err = statusBytes(child.pid(), "VmHWM"); err != nil {
		return r, fmt.Errorf("rss: %w", err)
	}
	r.PeakConns = max(r.PeakConns, int64(child.conns()))
	cl.Close()
	if err = child.stop(); err != nil {
		return r, fmt.Errorf("rss: service process: %w", err)
	}
	p.printf("rss: %d connections (service held %d), service process peak RSS %s MiB (%s MiB after start, %s MiB after reads only), %d errors",
		o.RSSConns, r.PeakConns, mib(r.PeakBytes), mib(r.StartBytes), mib(r.ReadsPeakBytes), r.Phase.Errors+r.Reads.Errors)
	return r, nil
}

func startCPUProfile(dir, name string) (stop func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func writeProfile(dir, profile, name string) error {
	if dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(profile).WriteTo(f, 0)
}
