package ratelimit

import (
	"context"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/marketplace/usersvc/ports"
)

// DefaultKeys is how many keys a Memory limiter tracks. A key evicted (the
// least recently seen) starts again with a full allowance.
const DefaultKeys = 100_000

var _ ports.RateLimiter = (*Memory)(nil)

// Memory limits per key in this process only: each replica allows the
// limit on its own.
type Memory struct {
	limit Limit
	keys  *lru.Cache[string, *rate.Limiter]
	now   func() time.Time
}

// NewMemory returns a limiter holding l for up to keys keys (DefaultKeys
// when 0). now is the clock (time.Now when nil; tests pass a fake one).
func NewMemory(l Limit, keys int, now func() time.Time) (*Memory, error) {
	if l.Off() {
		return nil, fmt.Errorf("ratelimit: a limiter needs a limit (off means no limiter)")
	}
	if keys <= 0 {
		keys = DefaultKeys
	}
	cache, err := lru.New[string, *rate.Limiter](keys)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Memory{limit: l, keys: cache, now: now}, nil
}

// Allow takes one event from key's bucket; refused, it says when one is
// back.
func (m *Memory) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	lim, ok := m.keys.Get(key)
	if !ok {
		fresh := rate.NewLimiter(rate.Every(m.limit.interval()), m.limit.Burst)
		// Another request of the same key may have added its own meanwhile.
		if prev, found, _ := m.keys.PeekOrAdd(key, fresh); found {
			lim = prev
		} else {
			lim = fresh
		}
	}
	now := m.now()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, m.limit.Per, nil
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // a refused event takes nothing
		return false, d, nil
	}
	return true, 0, nil
}
