package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

var _ ports.RateLimiter = (*Redis)(nil)

// gcra is the generic cell rate algorithm in one atomic step, so replicas
// sharing a key never both take its last event. KEYS[1] holds the key's
// theoretical arrival time in milliseconds of Redis's own clock (so the
// replicas' clocks do not matter); ARGV are the interval between events
// and the burst. It answers {1, 0} when allowed, {0, ms to wait} when not.
// Milliseconds keep every number exact in Lua's doubles and in tostring.
var gcra = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then
  tat = now
end
local allow_at = tat + interval - burst * interval
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
return {1, 0}
`)

// KeyPrefix starts every key the Redis limiter writes.
const KeyPrefix = "usersvc:ratelimit:"

// Redis limits per key across every replica using the same Redis.
type Redis struct {
	client redis.Scripter
	limit  Limit
	prefix string
}

// NewRedis returns a limiter holding l under KeyPrefix+name+":"+key.
func NewRedis(client redis.Scripter, name string, l Limit) (*Redis, error) {
	if l.Off() {
		return nil, fmt.Errorf("ratelimit: a limiter needs a limit (off means no limiter)")
	}
	return &Redis{client: client, limit: l, prefix: KeyPrefix + name + ":"}, nil
}

// Allow runs the GCRA step for key; a Redis that does not answer is the
// rate limiter being unavailable (domain.ErrUnavailable).
func (r *Redis) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	res, err := gcra.Run(ctx, r.client, []string{r.prefix + key},
		r.limit.interval().Milliseconds(), r.limit.Burst).Int64Slice()
	if err != nil {
		return false, 0, domain.Unavailable(domain.DependencyRateLimiter, fmt.Errorf("redis: %w", err))
	}
	if len(res) != 2 {
		return false, 0, domain.Unavailable(domain.DependencyRateLimiter, fmt.Errorf("redis: unexpected answer %v", res))
	}
	if res[0] == 1 {
		return true, 0, nil
	}
	return false, time.Duration(res[1]) * time.Millisecond, nil
}
