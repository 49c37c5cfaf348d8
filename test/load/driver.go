package main

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one request of a workload. Each worker owns its rng, so picking
// ids and names costs no lock.
type Op func(ctx context.Context, rng *rand.Rand) error

// Phase is what one side (service or raw) of a workload measured.
type Phase struct {
	Requests uint64        `json:"requests"`
	Errors   uint64        `json:"errors"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	// ErrorSamples are the first distinct error messages (never a body:
	// messages are built by the client code, not echoed from responses).
	ErrorSamples []string `json:"error_samples,omitempty"`
	CPU          CPUShare `json:"cpu"`
	// Pool is what the side's connection pool did (database/sql stats).
	Pool PoolStats `json:"pool"`
	// RPS and Latency are filled by finish.
	RPS     float64 `json:"requests_per_s"`
	Latency Latency `json:"latency"`
	latency *Histogram
}

// finish computes the summary fields.
func (p *Phase) finish() {
	p.RPS = p.Rate()
	if p.latency != nil {
		p.Latency = p.latency.Summary()
	}
}

// Rate is requests per second.
func (p *Phase) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Requests) / p.Elapsed.Seconds()
}

// perCore is requests per CPU-second of this process and the database.
func (p *Phase) perCore() float64 {
	if c := p.CPU.Self + p.CPU.DB; c > 0 {
		return p.RPS / c
	}
	return 0
}

// add folds another round of the same side into p.
func (p *Phase) add(o *Phase) {
	if p.latency == nil {
		p.latency = &Histogram{}
	}
	p.Requests += o.Requests
	p.Errors += o.Errors
	p.Elapsed += o.Elapsed
	p.latency.Merge(o.latency)
	p.CPU = p.CPU.add(o.CPU)
	p.Pool = p.Pool.add(o.Pool)
	for _, s := range o.ErrorSamples {
		p.ErrorSamples = addSample(p.ErrorSamples, s)
	}
}

// PoolStats is the change of a database/sql pool's counters over a phase:
// waits for a free connection, and connections closed because the idle
// pool was full (each one reopened later costs a connect and a login).
type PoolStats struct {
	MaxOpen       int           `json:"max_open"`
	PeakInUse     int           `json:"in_use_at_end"`
	Opened        int64         `json:"opened"`
	WaitCount     int64         `json:"wait_count"`
	WaitDuration  time.Duration `json:"wait_ns"`
	MaxIdleClosed int64         `json:"max_idle_closed"`
}

// poolDelta measures the pool over fn.
func poolDelta(db *sql.DB, fn func() *Phase) *Phase {
	s0 := db.Stats()
	p := fn()
	s1 := db.Stats()
	p.Pool = PoolStats{
		MaxOpen:       s1.MaxOpenConnections,
		PeakInUse:     s1.InUse,
		Opened:        (s1.MaxIdleClosed + s1.MaxIdleTimeClosed + s1.MaxLifetimeClosed + int64(s1.OpenConnections)) - (s0.MaxIdleClosed + s0.MaxIdleTimeClosed + s0.MaxLifetimeClosed + int64(s0.OpenConnections)),
		WaitCount:     s1.WaitCount - s0.WaitCount,
		WaitDuration:  s1.WaitDuration - s0.WaitDuration,
		MaxIdleClosed: s1.MaxIdleClosed - s0.MaxIdleClosed,
	}
	return p
}

func (s PoolStats) add(o PoolStats) PoolStats {
	return PoolStats{
		MaxOpen: max(s.MaxOpen, o.MaxOpen), PeakInUse: max(s.PeakInUse, o.PeakInUse), Opened: s.Opened + o.Opened,
		WaitCount: s.WaitCount + o.WaitCount, WaitDuration: s.WaitDuration + o.WaitDuration, MaxIdleClosed: s.MaxIdleClosed + o.MaxIdleClosed,
	}
}

const maxErrorSamples = 5

func addSample(samples []string, s string) []string {
	if len(samples) >= maxErrorSamples {
		return samples
	}
	for _, have := range samples {
		if have == s {
			return samples
		}
	}
	return append(samples, s)
}

// errorLog collects the count and a few samples of a phase's errors.
type errorLog struct {
	n       atomic.Uint64
	mu      sync.Mutex
	samples []string
}

func (e *errorLog) add(err error) {
	e.n.Add(1)
	e.mu.Lock()
	e.samples = addSample(e.samples, err.Error())
	e.mu.Unlock()
}

// closedLoop runs op from concurrency workers back to back: each sends its
// next request when the previous one is answered. Throughput and latency
// count the requests that complete inside the measured window, which
// starts after warmup and lasts measure; requests still in flight at its
// end are waited for but not counted, so a slow operation's tail does not
// stretch the window. Errors count whenever they happen, warm-up included.
// ctx ending stops it early.
func closedLoop(ctx context.Context, concurrency int, warmup, measure time.Duration, seed uint64, op Op) *Phase {
	hist := &Histogram{}
	var errs errorLog
	var requests atomic.Uint64
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(measure)
	// CPU counters are read at the window's edges.
	cpuEdges := make(chan [2]cpuSample, 1)
	go func() {
		var edges [2]cpuSample
		for i, at := range []time.Time{measureFrom, end} {
			t := time.NewTimer(time.Until(at))
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			edges[i] = readCPU()
		}
		cpuEdges <- edges
	}()
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(end) {
					return
				}
				err := op(ctx, rng)
				done := time.Now()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					errs.add(err)
					continue
				}
				if done.Before(measureFrom) || !done.Before(end) {
					continue
				}
				requests.Add(1)
				hist.Record(done.Sub(t))
			}
		})
	}
	wg.Wait()
	edges := <-cpuEdges
	elapsed := min(edges[1].wall.Sub(measureFrom), measure)
	return &Phase{
		Requests:     requests.Load(),
		Errors:       errs.n.Load(),
		Elapsed:      max(elapsed, 0),
		ErrorSamples: errs.samples,
		CPU:          edges[1].since(edges[0]),
		latency:      hist,
	}
}

// OpenLoopResult is an open-loop run: requests are started on a fixed
// schedule whether or not earlier ones were answered.
type OpenLoopResult struct {
	Phase
	// Target is the requested rate; Missed counts ticks dropped because
	// every worker was busy (the service could not keep up).
	Target float64 `json:"target_per_s"`
	Missed uint64  `json:"missed"`
}

// openLoop starts op at rate per second for d, handing each start to one of
// workers goroutines; a start finding them all busy is counted as missed
// rather than queued, so a slow service cannot hide behind the generator.
func openLoop(ctx context.Context, rate float64, d time.Duration, workers int, seed uint64, op Op) *OpenLoopResult {
	hist := &Histogram{}
	var errs errorLog
	var requests atomic.Uint64
	starts := make(chan time.Time, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for scheduled := range starts {
				if err := op(ctx, rng); err != nil {
					if ctx.Err() == nil {
						errs.add(err)
					}
					continue
				}
				requests.Add(1)
				hist.Record(time.Since(scheduled))
			}
		})
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	cpu0 := readCPU()
	var missed uint64
	for i := 0; ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= d {
			break
		}
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case starts <- at:
		default:
			missed++
		}
	}
	close(starts)
	wg.Wait()
	return &OpenLoopResult{
		Phase: Phase{
			Requests:     requests.Load(),
			Errors:       errs.n.Load(),
			Elapsed:      time.Since(start),
			ErrorSamples: errs.samples,
			CPU:          readCPU().since(cpu0),
			latency:      hist,
		},
		Target: rate,
		Missed: missed,
	}
}
