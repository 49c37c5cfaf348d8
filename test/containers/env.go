package containers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// StartTimeout bounds Main's start-up of both containers (a first pull of
// upstream images on a laptop included).
const StartTimeout = 5 * time.Minute

// Env is the infrastructure of one test package.
type Env struct {
	MySQL *MySQL
	Kafka *Kafka
}

// Images returns the database and broker images chosen by the environment.
func Images() (mysqlImage, kafkaImage string) {
	return envOr(MySQLImageEnv, DefaultMySQLImage), envOr(KafkaImageEnv, DefaultKafkaImage)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Start starts the database and the broker in parallel and waits until both
// answer. On an error nothing is left running.
func Start(ctx context.Context) (*Env, error) {
	if err := prepare(ctx); err != nil {
		return nil, err
	}
	mysqlImage, kafkaImage := Images()
	env := &Env{}
	var mysqlErr, kafkaErr error
	var wg sync.WaitGroup
	wg.Go(func() { env.MySQL, mysqlErr = startMySQL(ctx, mysqlImage) })
	wg.Go(func() { env.Kafka, kafkaErr = startKafka(ctx, kafkaImage) })
	wg.Wait()
	if err := errors.Join(mysqlErr, kafkaErr); err != nil {
		_ = env.Terminate(context.WithoutCancel(ctx))
		return nil, err
	}
	return env, nil
}

// Terminate removes both containers.
func (e *Env) Terminate(ctx context.Context) error {
	return errors.Join(e.MySQL.terminate(ctx), e.Kafka.terminate(ctx))
}

// MySQLURL is the DATABASE_URL (mysql://...) of database db on the server.
func (e *Env) MySQLURL(db string) string { return e.MySQL.URL(db) }

// MySQLDSN is the go-sql-driver DSN of database db on the server.
func (e *Env) MySQLDSN(db string) string { return e.MySQL.DSN(db) }

// KafkaBrokers are the broker's bootstrap servers.
func (e *Env) KafkaBrokers() []string { return e.Kafka.Brokers() }

// NewDatabase creates an empty database for t, dropped when t ends.
func (e *Env) NewDatabase(t testing.TB) Database { return e.MySQL.NewDatabase(t) }

// NewTopic creates a topic of its own for t.
func (e *Env) NewTopic(t testing.TB, partitions int32) string { return e.Kafka.NewTopic(t, partitions) }

// shared is the Env that Main started for this test package.
var shared *Env

// Main is a TestMain: it starts the package's containers, runs the tests and
// removes the containers. When the containers cannot start (no Docker engine,
// a missing image) it prints why and fails the package without running any
// test, so a machine without Docker never passes these suites by skipping.
func Main(m *testing.M) {
	owned.Store(true)
	os.Exit(run(m))
}

// owned is set when the package's TestMain removes what it starts
// (RunTests or Main).
var owned atomic.Bool

func run(m *testing.M) int {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	env, err := Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: test containers did not start: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "containers: %s (%s) on %s and %s (%s) on %s ready in %v\n",
		env.MySQL.Image, env.MySQL.Flavor, env.MySQL.addr(),
		env.Kafka.Image, env.Kafka.Flavor, env.Kafka.addr(), time.Since(began).Round(time.Millisecond))
	shared = env

	code := m.Run()

	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := errors.Join(env.Terminate(ctx), stopLazy(ctx)); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: remove test containers: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Shared returns the Env started by Main; it fails t when TestMain does
// not call Main.
func Shared(t testing.TB) *Env {
	t.Helper()
	if shared == nil {
		t.Fatal("containers: no environment: the package's TestMain must call containers.Main(m)")
	}
	return shared
}

// NewDatabase creates an empty database for t on the shared server.
func NewDatabase(t testing.TB) Database { return Shared(t).NewDatabase(t) }

// NewTopic creates a topic of its own for t on the shared broker.
func NewTopic(t testing.TB, partitions int32) string { return Shared(t).NewTopic(t, partitions) }
