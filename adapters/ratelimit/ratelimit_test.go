package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/test/containers"
)

func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Limit
		bad  bool
	}{
		{in: "off", want: Limit{}},
		{in: "10/m", want: Limit{Events: 10, Per: time.Minute, Burst: 10}},
		{in: "100/h,burst=20", want: Limit{Events: 100, Per: time.Hour, Burst: 20}},
		{in: " 5 / 30s , burst=1 ", want: Limit{Events: 5, Per: 30 * time.Second, Burst: 1}},
		{in: "1/s", want: Limit{Events: 1, Per: time.Second, Burst: 1}},
		{in: "", bad: true},
		{in: "10", bad: true},
		{in: "0/m", bad: true},
		{in: "-1/m", bad: true},
		{in: "10/week", bad: true},
		{in: "10/500ms", bad: true},
		{in: "10/m,burst=0", bad: true},
		{in: "10/m,bust=3", bad: true},
		{in: "2000/s", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLimit(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseLimit(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseLimit(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

// fakeClock is a settable clock for the in-memory limiter.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// checkLimit drives a limiter of 3/m with a burst of 2 on key "a": two at
// once, then refused for the 20 s one event takes to come back; another
// key has its own allowance. wait lets the allowance come back.
func checkLimit(t *testing.T, l ports.RateLimiter, key func(string) string, wait func(time.Duration)) {
	t.Helper()
	ctx := context.Background()
	allow := func(k string) (bool, time.Duration) {
		t.Helper()
		ok, retry, err := l.Allow(ctx, key(k))
		if err != nil {
			t.Fatalf("Allow(%s): %v", k, err)
		}
		return ok, retry
	}
	for i := range 2 {
		if ok, _ := allow("a"); !ok {
			t.Fatalf("event %d of the burst refused", i+1)
		}
	}
	ok, retry := allow("a")
	if ok {
		t.Fatal("third event at once allowed, want refused")
	}
	if retry <= 15*time.Second || retry > 20*time.Second {
		t.Errorf("retry after %s, want about 20s", retry)
	}
	if ok, _ := allow("b"); !ok {
		t.Error("another key refused")
	}
	if ok, _ := allow("a"); ok {
		t.Error("a refused event must take nothing, yet the next one was allowed at once")
	}
	wait(retry)
	if ok, _ := allow("a"); !ok {
		t.Error("refused after waiting the Retry-After")
	}
	if ok, _ := allow("a"); ok {
		t.Error("allowed twice after one interval")
	}
}

var threePerMinute = Limit{Events: 3, Per: time.Minute, Burst: 2}

func TestMemory(t *testing.T) {
	clock := &fakeClock{}
	clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	m, err := NewMemory(threePerMinute, 0, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	checkLimit(t, m, func(k string) string { return k }, clock.advance)
}

// redisClient connects to the package's Redis: USERSVC_TEST_REDIS_URL, else
// a container of this test process (test/containers). The suite fails (it
// does not skip) when neither answers.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	url := containers.RedisURL(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at %s does not answer: %v", url, err)
	}
	return c
}

// uniqueKeys keeps parallel runs on one Redis apart.
func uniqueKeys(t *testing.T) func(string) string {
	prefix := t.Name() + ":" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	return func(k string) string { return prefix + k }
}

func TestRedis(t *testing.T) {
	// Redis's clock cannot be moved: a limit of 3 per 600 ms has the shape
	// of 3/m (burst 2, an event back every 200 ms), scaled down.
	l, err := NewRedis(redisClient(t), "test", Limit{Events: 3, Per: 600 * time.Millisecond, Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := uniqueKeys(t)
	for range 2 {
		if ok, _, err := l.Allow(ctx, key("a")); !ok || err != nil {
			t.Fatalf("burst refused: %v", err)
		}
	}
	ok, retry, err := l.Allow(ctx, key("a"))
	if ok || err != nil || retry <= 0 || retry > 200*time.Millisecond {
		t.Fatalf("third at once: ok=%v retry=%s err=%v; want refused with a retry of at most 200ms", ok, retry, err)
	}
	if ok, _, _ := l.Allow(ctx, key("b")); !ok {
		t.Error("another key refused")
	}
	time.Sleep(retry + 20*time.Millisecond)
	if ok, _, err := l.Allow(ctx, key("a")); !ok || err != nil {
		t.Errorf("refused after the Retry-After: %v", err)
	}
}

// Two replicas (two clients, two limiters) share one Redis: together they
// allow the burst once, not once each, even when racing.
func TestRedisSharedAcrossReplicas(t *testing.T) {
	key := uniqueKeys(t)("shared")
	limit := Limit{Events: 10, Per: time.Hour, Burst: 10}
	var replicas []*Redis
	for range 2 {
		r, err := NewRedis(redisClient(t), "test", limit)
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, r)
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			ok, _, err := replicas[i%2].Allow(context.Background(), key)
			if err != nil {
				t.Error(err)
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 10 {
		t.Errorf("%d of 40 racing events allowed across two replicas, want the burst of 10", got)
	}
}

// A Redis that does not answer makes the limiter unavailable (503), never
// a silent pass.
func TestRedisDown(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	l, err := NewRedis(c, "test", threePerMinute)
	if err != nil {
		t.Fatal(err)
	}
	ok, _, err := l.Allow(context.Background(), "k")
	if ok || !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Allow with Redis down = %v, %v; want refused and unavailable", ok, err)
	}
}

func TestProvide(t *testing.T) {
	ctx := context.Background()
	ls, cleanup, err := Provide(ctx, Config{Create: threePerMinute})
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	if _, ok := ls.Create.(*Memory); !ok || ls.Password != nil {
		t.Errorf("without Redis: %T, %T; want in memory and none for the limit that is off", ls.Create, ls.Password)
	}
	ls, cleanup, err = Provide(ctx, Config{Create: threePerMinute, Password: threePerMinute, RedisURL: containers.RedisURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if _, ok := ls.Password.(*Redis); !ok {
		t.Errorf("with Redis: %T, want the Redis limiter", ls.Password)
	}
	if _, _, err := Provide(ctx, Config{Create: threePerMinute, RedisURL: "redis://127.0.0.1:1"}); err == nil {
		t.Error("Provide with an unreachable Redis started")
	}
}
