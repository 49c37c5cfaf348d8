package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/marketplace/usersvc/adapters/ratelimit"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/test/containers"
)

// from sends r as if from addr, through the trusted proxy ::1.
func from(addr string, r req) req {
	r.v6 = true
	r.headers = map[string]string{"X-Forwarded-For": addr}
	return r
}

// checkThrottled asserts a 429 with its Retry-After and detail.
func checkThrottled(t *testing.T, res response) {
	t.Helper()
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429: %s", res.status, res.body)
	}
	secs, err := strconv.Atoi(res.header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Errorf("Retry-After = %q, want whole seconds", res.header.Get("Retry-After"))
	}
	assertJSON(t, res, 429, fmt.Sprintf(`{"detail":"Request was throttled. Expected available in %d seconds."}`, secs))
}

func memoryLimit(t *testing.T, spec string) ports.RateLimiter {
	t.Helper()
	l, err := ratelimit.ParseLimit(spec)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ratelimit.NewMemory(l, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// One replica: creations and password writes are limited per client
// address, an IPv6 client per /64 whatever address of it it uses.
func TestRateLimits(t *testing.T) {
	e := newEnv(t, envOptions{trusted: "::1", createLimit: memoryLimit(t, "3/h"), passwordLimit: memoryLimit(t, "2/h")})
	// Three creations from three addresses of one /64: the allowance.
	for i := range 3 {
		res := e.do(from(fmt.Sprintf("2001:db8:c4:1::%x", i+1), jsonReq(http.MethodPost, "/api/v1/users", userBody(fmt.Sprintf("rl%d@example.ch", i)))))
		if res.status != http.StatusCreated {
			t.Fatalf("creation %d: %d %s", i+1, res.status, res.body)
		}
	}
	t.Run("a fourth creation from the same /64", func(t *testing.T) {
		res := e.do(from("2001:db8:c4:1:ffff::9", jsonReq(http.MethodPost, "/api/v1/users", userBody("rl-over@example.ch"))))
		checkThrottled(t, res)
		if res := e.do(req{method: http.MethodGet, path: "/api/v1/users?email=rl-over@example.ch"}); res.object(t)["count"] != float64(0) {
			t.Error("the throttled creation was stored")
		}
	})
	t.Run("another /64 has its own allowance", func(t *testing.T) {
		res := e.do(from("2001:db8:c4:2::1", jsonReq(http.MethodPost, "/api/v1/users", userBody("rl-other@example.ch"))))
		if res.status != http.StatusCreated {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	u := e.create(userBody("rl-pass@example.ch"))
	t.Run("password writes", func(t *testing.T) {
		for i, m := range []string{http.MethodPatch, http.MethodPut} {
			res := e.do(from("2001:db8:c4:3::1", jsonReq(m, idPath(u),
				`{"first_name":"A","last_name":"B","email":"rl-pass@example.ch","password":"n3w-secret!"}`)))
			if res.status != http.StatusOK {
				t.Fatalf("password write %d: %d %s", i+1, res.status, res.body)
			}
		}
		checkThrottled(t, e.do(from("2001:db8:c4:3::2", jsonReq(http.MethodPatch, idPath(u), `{"password":"n3w-secret!"}`))))
		// A write without a password is not a password write.
		if res := e.do(from("2001:db8:c4:3::3", jsonReq(http.MethodPatch, idPath(u), `{"address":"Weg 9"}`))); res.status != http.StatusOK {
			t.Errorf("write without a password: %d %s", res.status, res.body)
		}
	})
}

// Two replicas (two handlers, each with its own Redis client) share the
// limit through Redis: the allowance is the same for the client whichever
// replica it reaches.
func TestRateLimitsSharedThroughRedis(t *testing.T) {
	// USERSVC_TEST_REDIS_URL, else a Redis container of this test process.
	url := containers.RedisURL(t)
	name := "httpapi-" + strconv.FormatInt(time.Now().UnixNano(), 36) // apart from other runs
	limit, err := ratelimit.ParseLimit("3/h")
	if err != nil {
		t.Fatal(err)
	}
	replica := func() *testEnv {
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opts)
		t.Cleanup(func() { _ = c.Close() })
		if err := c.Ping(context.Background()).Err(); err != nil {
			t.Fatalf("Redis at %s does not answer: %v", url, err)
		}
		l, err := ratelimit.NewRedis(c, name, limit)
		if err != nil {
			t.Fatal(err)
		}
		return newEnv(t, envOptions{trusted: "::1", createLimit: l})
	}
	a, b := replica(), replica()
	for i, e := range []*testEnv{a, b, a} {
		res := e.do(from(fmt.Sprintf("2001:db8:c4:7::%x", i+1), jsonReq(http.MethodPost, "/api/v1/users", userBody(fmt.Sprintf("shared%d@example.ch", i)))))
		if res.status != http.StatusCreated {
			t.Fatalf("creation %d: %d %s", i+1, res.status, res.body)
		}
	}
	checkThrottled(t, b.do(from("2001:db8:c4:7::99", jsonReq(http.MethodPost, "/api/v1/users", userBody("shared-over@example.ch")))))
	checkThrottled(t, a.do(from("2001:db8:c4:7::98", jsonReq(http.MethodPost, "/api/v1/users", userBody("shared-over@example.ch")))))
	if res := b.do(from("2001:db8:c4:8::1", jsonReq(http.MethodPost, "/api/v1/users", userBody("shared-other@example.ch")))); res.status != http.StatusCreated {
		t.Errorf("another /64 on replica b: %d %s", res.status, res.body)
	}
}
