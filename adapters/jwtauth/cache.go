package jwtauth

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/marketplace/usersvc/domain"
)

// maxCacheAge caps how long a verified token is trusted without a new
// signature check, so a key withdrawn at the issuer stops working soon
// even for long-lived tokens.
const maxCacheAge = 5 * time.Minute

// tokenCache remembers verified tokens, keyed by their SHA-256 (the token
// itself is never kept), until their exp: a caller repeating the same token
// pays for one signature check.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]cachedPrincipal
}

type cachedPrincipal struct {
	p     domain.Principal
	until time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[sha256.Size]byte]cachedPrincipal)}
}

func (c *tokenCache) get(token string, now time.Time) (domain.Principal, bool) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return domain.Principal{}, false
	}
	if !now.Before(e.until) {
		delete(c.entries, key)
		return domain.Principal{}, false
	}
	return e.p, true
}

func (c *tokenCache) put(token string, p domain.Principal, exp, now time.Time) {
	until := now.Add(maxCacheAge)
	if exp.Before(until) {
		until = exp
	}
	if !now.Before(until) {
		return // accepted within the leeway only: check it again next time
	}
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		// Still full: drop arbitrary entries (map order), which costs a
		// caller one more signature check, never a wrong answer.
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cachedPrincipal{p: p, until: until}
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
