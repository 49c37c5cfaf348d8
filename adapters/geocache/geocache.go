// Package geocache decorates a ports.Geolocator with a bounded, expiring
// in-memory cache per client address block (an IPv4 address, an IPv6 /64:
// domain.ClientBlock), so repeated requests from one client cost one
// provider call, and concurrent lookups of one block share it.
package geocache

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/wire"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Defaults for Options.
const (
	DefaultSize = 10000
	DefaultTTL  = 24 * time.Hour
)

// ProviderSet gives the composition root in-memory Counters as the
// geolocation Observer; the observability adapter may bind its own instead.
var ProviderSet = wire.NewSet(NewCounters, wire.Bind(new(Observer), new(*Counters)))

var _ ports.Geolocator = (*Cache)(nil)

// Options configures a Cache. Zero values take the defaults.
type Options struct {
	Size     int           // maximum number of addresses kept (LRU); DefaultSize when 0
	TTL      time.Duration // how long an answer is trusted; DefaultTTL when 0
	Provider string        // the inner provider's name, for metrics
	Observer Observer      // NopObserver when nil
	Clock    ports.Clock   // time.Now when nil; tests inject a fake
}

type cached struct {
	loc     domain.Location
	expires time.Time
}

// Cache is a ports.Geolocator that remembers its inner geolocator's
// answers per address block, "location unknown" and countries that are
// refused included: a refused /64 costs one provider call per TTL, not one
// per address it uses. Failures are never cached: the next request
// retries the provider.
type Cache struct {
	inner    ports.Geolocator
	entries  *lru.Cache[netip.Prefix, cached]
	ttl      time.Duration
	provider string
	obs      Observer
	now      func() time.Time
	flight   singleflight.Group
}

// New wraps inner. A negative size or TTL is an error.
func New(inner ports.Geolocator, opts Options) (*Cache, error) {
	if inner == nil {
		return nil, errors.New("geocache: nil inner geolocator")
	}
	if opts.Size < 0 {
		return nil, fmt.Errorf("geocache: size %d is negative", opts.Size)
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("geocache: TTL %s is negative", opts.TTL)
	}
	if opts.Size == 0 {
		opts.Size = DefaultSize
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	entries, err := lru.New[netip.Prefix, cached](opts.Size)
	if err != nil {
		return nil, fmt.Errorf("geocache: %w", err)
	}
	c := &Cache{inner: inner, entries: entries, ttl: opts.TTL, provider: opts.Provider, obs: opts.Observer, now: time.Now}
	if c.obs == nil {
		c.obs = NopObserver{}
	}
	if opts.Clock != nil {
		c.now = opts.Clock.Now
	}
	return c, nil
}

// Locate answers from the cache when it holds a fresh answer for ip, else
// asks the inner geolocator once for all concurrent callers of that address.
//
// The shared provider call runs on a context detached from the callers'
// cancellation (values kept): one impatient caller must not fail the others
// that wait on the same call. Each caller still stops waiting when its own
// ctx ends; the call then finishes in the background, bounded by the
// provider's own timeout, and its answer is cached for the next request.
func (c *Cache) Locate(ctx context.Context, ip netip.Addr) (domain.Location, error) {
	// An IPv4-mapped address and a zoned address locate like their plain
	// forms; the addresses of one IPv6 /64 are one client in one place.
	ip = ip.Unmap().WithZone("")
	block := domain.ClientBlock(ip)
	if e, ok := c.entries.Get(block); ok {
		// An expired entry stays until the refresh overwrites it or the
		// LRU evicts it; it is never served.
		if c.now().Before(e.expires) {
			c.obs.CacheHit()
			return e.loc, nil
		}
	}
	c.obs.CacheMiss()

	ch := c.flight.DoChan(block.String(), func() (any, error) {
		return c.fetch(context.WithoutCancel(ctx), ip, block)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return domain.UnknownLocation, r.Err
		}
		return r.Val.(domain.Location), nil
	case <-ctx.Done():
		return domain.UnknownLocation, fmt.Errorf("locate an address: %w", ctx.Err())
	}
}

// fetch asks the inner geolocator about ip, records the lookup and caches
// a success for ip's block.
func (c *Cache) fetch(ctx context.Context, ip netip.Addr, block netip.Prefix) (domain.Location, error) {
	start := time.Now() // latency is real time, whatever clock drives the TTL
	loc, err := c.inner.Locate(ctx, ip)
	elapsed := time.Since(start)
	switch {
	case err != nil:
		c.obs.ObserveLookup(c.provider, OutcomeError, elapsed)
		return domain.UnknownLocation, err
	case loc.Known():
		c.obs.ObserveLookup(c.provider, OutcomeLocated, elapsed)
	default:
		c.obs.ObserveLookup(c.provider, OutcomeUnknown, elapsed)
	}
	c.entries.Add(block, cached{loc: loc, expires: c.now().Add(c.ttl)})
	return loc, nil
}

// Len is the number of address blocks held, fresh or expired.
func (c *Cache) Len() int { return c.entries.Len() }
