package containers

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
)

// Redis image settings.
const (
	RedisImageEnv     = "USERS_TEST_REDIS_IMAGE"
	DefaultRedisImage = "redis:7"
	LocalRedisImage   = "usersvc-test/redis:7.0"
	// RedisURLEnv points the tests at an existing Redis instead (the fast
	// loop); the tests keep their keys apart, so a shared server is fine.
	RedisURLEnv       = "USERSVC_TEST_REDIS_URL"
	redisStartTimeout = time.Minute
)

// Redis is a running Redis server on 127.0.0.1.
type Redis struct {
	Image string
	Port  int

	container *testcontainers.DockerContainer
}

// RedisImage returns the image chosen by the environment.
func RedisImage() string { return envOr(RedisImageEnv, DefaultRedisImage) }

// redisArgs is the command line of a server on 127.0.0.1:port that keeps
// nothing on disk. The upstream image's entrypoint and the local one both
// hand arguments starting with - to redis-server.
func redisArgs(port int) []string {
	return []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
	}
}

// StartRedis starts a Redis container (USERS_TEST_REDIS_IMAGE, default
// redis:7; usersvc-test/redis:7.0, Debian's redis-server, on machines
// without a registry) and waits until it answers PING. Terminate removes it.
func StartRedis(ctx context.Context) (*Redis, error) {
	if err := prepare(ctx); err != nil {
		return nil, err
	}
	image, err := resolveImage(ctx, RedisImage(), RedisImageEnv, LocalRedisImage)
	if err != nil {
		return nil, err
	}
	return withRetries(ctx, startAttempts, func() (*Redis, error) { return tryStartRedis(ctx, image) })
}

func tryStartRedis(ctx context.Context, image string) (*Redis, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	r := &Redis{Image: image, Port: ports[0]}
	ready := readiness{
		what:    fmt.Sprintf("Redis %s on %s", image, r.addr()),
		timeout: redisStartTimeout,
		check:   r.ping,
	}
	c, err := runContainer(ctx, image, "redis", ready, testcontainers.WithCmd(redisArgs(r.Port)...))
	if err != nil {
		return nil, err
	}
	r.container = c
	return r, nil
}

func (r *Redis) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port)) }

// URL is the server's redis:// URL (database 0), as RATE_LIMIT_REDIS_URL
// takes it.
func (r *Redis) URL() string { return "redis://" + r.addr() + "/0" }

func (r *Redis) ping(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	return c.Ping(ctx).Err()
}

// Terminate removes the container.
func (r *Redis) Terminate(ctx context.Context) error {
	if r == nil {
		return nil
	}
	return testcontainers.TerminateContainer(r.container, testcontainers.StopContext(ctx))
}

var lazyRedis = &lazy[*Redis]{
	what: "Redis", start: StartRedis, terminate: (*Redis).Terminate, addr: (*Redis).addr,
}

// SharedRedis returns this test package's Redis, starting it on first use;
// RunTests or Main removes it when the package ends.
func SharedRedis(t testing.TB) *Redis {
	t.Helper()
	return lazyRedis.get(t)
}

// RedisURL is the redis:// URL of a Redis server for t's package:
// USERSVC_TEST_REDIS_URL when set, otherwise the package's container,
// started on first use.
func RedisURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(RedisURLEnv); u != "" {
		return u
	}
	return SharedRedis(t).URL()
}
