package geocache

import (
	"sync"
	"sync/atomic"
	"time"
)

// Lookup outcomes reported to an Observer.
const (
	OutcomeLocated = "located" // the provider placed the address in a country
	OutcomeUnknown = "unknown" // the provider answered but could not place it
	OutcomeError   = "error"   // the provider failed
)

// Observer receives the geolocation metrics of issue 3: provider lookups by
// provider and outcome with their latency, and cache hits and misses. It is
// called on the request path, so implementations must be cheap and safe for
// concurrent use. The observability adapter exports it; Counters keeps it in
// memory meanwhile.
type Observer interface {
	// ObserveLookup records one call to a provider ("ipapi", "mmdb",
	// "static"), its outcome (Outcome*) and how long it took.
	ObserveLookup(provider, outcome string, d time.Duration)
	CacheHit()
	CacheMiss()
}

// NopObserver discards every observation.
type NopObserver struct{}

func (NopObserver) ObserveLookup(string, string, time.Duration) {}
func (NopObserver) CacheHit()                                   {}
func (NopObserver) CacheMiss()                                  {}

// LookupKey identifies one series of provider lookups.
type LookupKey struct {
	Provider, Outcome string
}

// LookupStats sums the lookups of one series.
type LookupStats struct {
	Count int64
	Total time.Duration // sum of latencies
	Max   time.Duration
}

// Counters is an in-memory Observer: tests read it, and a /metrics
// endpoint can serve a snapshot of it.
type Counters struct {
	hits, misses atomic.Int64

	mu      sync.Mutex
	lookups map[LookupKey]LookupStats
}

// NewCounters returns empty counters.
func NewCounters() *Counters {
	return &Counters{lookups: make(map[LookupKey]LookupStats)}
}

func (c *Counters) ObserveLookup(provider, outcome string, d time.Duration) {
	k := LookupKey{Provider: provider, Outcome: outcome}
	c.mu.Lock()
	s := c.lookups[k]
	s.Count++
	s.Total += d
	s.Max = max(s.Max, d)
	c.lookups[k] = s
	c.mu.Unlock()
}

func (c *Counters) CacheHit()  { c.hits.Add(1) }
func (c *Counters) CacheMiss() { c.misses.Add(1) }

// Hits is the number of lookups answered from the cache.
func (c *Counters) Hits() int64 { return c.hits.Load() }

// Misses is the number of lookups the cache could not answer.
func (c *Counters) Misses() int64 { return c.misses.Load() }

// Lookups returns a copy of the provider lookup series.
func (c *Counters) Lookups() map[LookupKey]LookupStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[LookupKey]LookupStats, len(c.lookups))
	for k, v := range c.lookups {
		out[k] = v
	}
	return out
}

var (
	_ Observer = NopObserver{}
	_ Observer = (*Counters)(nil)
)
