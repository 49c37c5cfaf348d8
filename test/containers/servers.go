package containers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Variables that point a package's tests at an existing server instead of
// a container: the fast loop for someone who runs one. The account needs
// CREATE and DROP DATABASE (configure rights on RabbitMQ).
const (
	MySQLURLEnv    = "USERSVC_TEST_MYSQL_URL"
	PostgresURLEnv = "USERSVC_TEST_POSTGRES_URL"
	AMQPURLEnv     = "USERSVC_TEST_AMQP_URL"
	// KafkaBrokersEnv names an existing Kafka-protocol broker (host:port,
	// comma-separated) whose account may create topics.
	KafkaBrokersEnv = "USERSVC_TEST_KAFKA_BROKERS"
)

// MySQLServerURL is the DATABASE_URL (mysql://root:...@127.0.0.1:port/mysql)
// of a MySQL-compatible server for t's package: USERSVC_TEST_MYSQL_URL when
// set, otherwise the package's container, started on first use.
func MySQLServerURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(MySQLURLEnv); u != "" {
		return u
	}
	return SharedMySQL(t).URL("mysql")
}

// PostgresServerURL is the DATABASE_URL of a PostgreSQL server's postgres
// database for t's package: USERSVC_TEST_POSTGRES_URL when set, otherwise
// the package's container, started on first use.
func PostgresServerURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(PostgresURLEnv); u != "" {
		return u
	}
	return SharedPostgres(t).URL("postgres")
}

// AMQPURL is the AMQP URL of a vhost of t's own on the package's RabbitMQ
// container (started on first use), deleted with everything in it when t
// ends (see RabbitMQ.NewVhost). Every call of t gets the same vhost, and so
// does a subtest of a test that has one; a test that asks first gets its
// own. USERSVC_TEST_AMQP_URL, when set, is returned as it is: the tests
// share its vhost and keep apart by the fresh names of their exchanges and
// queues alone.
func AMQPURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(AMQPURLEnv); u != "" {
		return u
	}
	return testVhost(t, SharedRabbitMQ(t))
}

// KafkaTopic creates a topic of its own for t (partitions of them) on a
// Kafka-protocol broker for t's package and returns the bootstrap servers
// and the topic: USERSVC_TEST_KAFKA_BROKERS when set, otherwise the
// package's broker container (Main's, or one started on first use).
func KafkaTopic(t testing.TB, partitions int32) (brokers []string, topic string) {
	t.Helper()
	if b := os.Getenv(KafkaBrokersEnv); b != "" {
		k := &Kafka{}
		for _, addr := range strings.Split(b, ",") {
			k.seeds = append(k.seeds, strings.TrimSpace(addr))
		}
		return k.Brokers(), k.NewTopic(t, partitions)
	}
	k := SharedKafka(t)
	return k.Brokers(), k.NewTopic(t, partitions)
}

// lazy is a server of the test package started on first use and removed by
// RunTests (or Main) when the package's tests end.
type lazy[T any] struct {
	what      string
	start     func(context.Context) (T, error)
	terminate func(T, context.Context) error
	addr      func(T) string

	mu      sync.Mutex
	v       T
	started bool
	err     error
}

func (l *lazy[T]) get(t testing.TB) T {
	t.Helper()
	if !owned.Load() {
		t.Fatalf("containers: %s: the package's TestMain must call containers.RunTests(m) (or containers.Main(m)), which removes the containers it started", l.what)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started && l.err == nil {
		began := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
		defer cancel()
		l.v, l.err = l.start(ctx)
		if l.err == nil {
			l.started = true
			t.Logf("containers: %s on %s ready in %v", l.what, l.addr(l.v), time.Since(began).Round(time.Millisecond))
		}
	}
	if l.err != nil {
		t.Fatalf("%s container did not start: %v", l.what, l.err)
	}
	return l.v
}

func (l *lazy[T]) stop(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started {
		return nil
	}
	l.started = false
	if err := l.terminate(l.v, ctx); err != nil {
		return fmt.Errorf("remove %s container: %w", l.what, err)
	}
	return nil
}

var (
	lazyMySQL = &lazy[*MySQL]{
		what: "MySQL",
		start: func(ctx context.Context) (*MySQL, error) {
			if err := prepare(ctx); err != nil {
				return nil, err
			}
			mysqlImage, _ := Images()
			return startMySQL(ctx, mysqlImage)
		},
		terminate: (*MySQL).terminate,
		addr:      (*MySQL).addr,
	}
	lazyPostgres = &lazy[*Postgres]{
		what: "PostgreSQL", start: StartPostgres, terminate: (*Postgres).Terminate, addr: (*Postgres).addr,
	}
	lazyRabbitMQ = &lazy[*RabbitMQ]{
		what: "RabbitMQ", start: StartRabbitMQ, terminate: (*RabbitMQ).Terminate, addr: (*RabbitMQ).addr,
	}
	lazyKafka = &lazy[*Kafka]{
		what: "Kafka-protocol broker", start: StartKafka, terminate: (*Kafka).terminate, addr: (*Kafka).addr,
	}
)

// SharedMySQL returns the package's MySQL-compatible server: Main's when
// Main started one, otherwise one started on first use.
func SharedMySQL(t testing.TB) *MySQL {
	t.Helper()
	if shared != nil {
		return shared.MySQL
	}
	return lazyMySQL.get(t)
}

// SharedPostgres returns this test package's PostgreSQL, starting it on
// first use; RunTests or Main removes it when the package ends. It fails t
// when the server cannot start.
func SharedPostgres(t testing.TB) *Postgres {
	t.Helper()
	return lazyPostgres.get(t)
}

// SharedRabbitMQ returns this test package's RabbitMQ, starting it on first
// use; RunTests or Main removes it when the package ends.
func SharedRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	return lazyRabbitMQ.get(t)
}

// SharedKafka returns the package's Kafka-protocol broker: Main's when Main
// started one, otherwise one started on first use.
func SharedKafka(t testing.TB) *Kafka {
	t.Helper()
	if shared != nil {
		return shared.Kafka
	}
	return lazyKafka.get(t)
}

// stopLazy removes the servers started on first use.
func stopLazy(ctx context.Context) error {
	return errors.Join(lazyMySQL.stop(ctx), lazyPostgres.stop(ctx), lazyRabbitMQ.stop(ctx), lazyKafka.stop(ctx), lazyRedis.stop(ctx))
}

// RunTests is a TestMain for packages whose tests ask for servers as they
// need them (MySQLServerURL, PostgresServerURL, AMQPURL, RedisURL and the Shared*
// functions): it runs the tests, then removes the containers they started.
// A package that never asks starts nothing and needs no Docker.
func RunTests(m *testing.M) {
	owned.Store(true)
	code := m.Run()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := stopLazy(ctx)
	cancel() // before os.Exit, which skips deferred calls
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
