package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/wire"
	"github.com/redis/go-redis/v9"

	"github.com/marketplace/usersvc/ports"
)

// ProviderSet provides the limiters the HTTP adapter applies.
var ProviderSet = wire.NewSet(Provide)

// Config selects the limits and where they are counted.
type Config struct {
	Create   Limit // creations per client address block
	Password Limit // writes carrying a password per client address block
	// RedisURL (redis:// or rediss://), when set, makes every replica
	// share the counts; empty counts in this process only.
	RedisURL string
}

// Limiters are the limiters by what they limit; nil when that limit is off.
type Limiters struct {
	Create, Password ports.RateLimiter
}

// pingTimeout bounds the start-up check that Redis answers.
const pingTimeout = 5 * time.Second

// ValidateRedisURL checks RATE_LIMIT_REDIS_URL's syntax without connecting.
func ValidateRedisURL(u string) error {
	if u == "" {
		return nil
	}
	if _, err := redis.ParseURL(u); err != nil {
		return errors.New("must be redis://[user:password@]host:port[/db] or rediss://[user:password@]host:port[/db]")
	}
	return nil
}

// Provide builds the limiters; with a Redis URL it checks that Redis
// answers, and the cleanup closes the client.
func Provide(ctx context.Context, cfg Config) (*Limiters, func(), error) {
	ls := &Limiters{}
	if cfg.RedisURL == "" {
		for _, l := range []struct {
			limit Limit
			dst   *ports.RateLimiter
		}{{cfg.Create, &ls.Create}, {cfg.Password, &ls.Password}} {
			if l.limit.Off() {
				continue
			}
			m, err := NewMemory(l.limit, 0, nil)
			if err != nil {
				return nil, nil, err
			}
			*l.dst = m
		}
		return ls, func() {}, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("RATE_LIMIT_REDIS_URL: %w", ValidateRedisURL(cfg.RedisURL))
	}
	client := redis.NewClient(opts)
	pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("rate limiter: Redis at RATE_LIMIT_REDIS_URL does not answer: %w", err)
	}
	for _, l := range []struct {
		name  string
		limit Limit
		dst   *ports.RateLimiter
	}{{"create", cfg.Create, &ls.Create}, {"password", cfg.Password, &ls.Password}} {
		if l.limit.Off() {
			continue
		}
		r, err := NewRedis(client, l.name, l.limit)
		if err != nil {
			_ = client.Close()
			return nil, nil, err
		}
		*l.dst = r
	}
	return ls, func() { _ = client.Close() }, nil
}
