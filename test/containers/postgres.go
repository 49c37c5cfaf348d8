package containers

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/testcontainers/testcontainers-go"
)

// PostgreSQL image settings.
const (
	PostgresImageEnv     = "USERS_TEST_POSTGRES_IMAGE"
	DefaultPostgresImage = "postgres:16"
	LocalPostgresImage   = "usersvc-test/postgres:15"
	postgresStartTimeout = 2 * time.Minute // upstream postgres runs initdb first
	postgresSuperuser    = "postgres"
)

// Postgres is a running PostgreSQL server on 127.0.0.1.
type Postgres struct {
	Image string
	Port  int

	password  string
	container *testcontainers.DockerContainer
	root      *sql.DB
}

// PostgresImage returns the image chosen by the environment.
func PostgresImage() string { return envOr(PostgresImageEnv, DefaultPostgresImage) }

// postgresSettings returns the environment and server options of a
// container listening on 127.0.0.1:port. Both images understand the
// official variables and PGPORT; both pass "-c" options to the server
// (the upstream entrypoint's temporary set-up server overrides
// listen_addresses itself, so it never listens on the host's network).
func postgresSettings(port int, password string) (map[string]string, []string) {
	env := map[string]string{
		"POSTGRES_PASSWORD": password,
		"POSTGRES_USER":     postgresSuperuser,
		"PGPORT":            strconv.Itoa(port),
	}
	args := []string{
		"-c", "listen_addresses=127.0.0.1",
		// Throwaway data: fast commits.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
	}
	return env, args
}

// StartPostgres starts a PostgreSQL container (USERS_TEST_POSTGRES_IMAGE,
// default postgres:16; usersvc-test/postgres:15 on machines without a
// registry) and waits until it answers SQL. Terminate removes it.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	if err := prepare(ctx); err != nil {
		return nil, err
	}
	image, err := resolveImage(ctx, PostgresImage(), PostgresImageEnv, LocalPostgresImage)
	if err != nil {
		return nil, err
	}
	return withRetries(ctx, startAttempts, func() (*Postgres, error) { return tryStartPostgres(ctx, image, nil) })
}

// tryStartPostgres starts one container; wrap, when set, turns the
// server's arguments into the container's command, and opts go to the
// container (e.g. files).
func tryStartPostgres(ctx context.Context, image string, wrap func(args []string) []string, opts ...testcontainers.ContainerCustomizer) (*Postgres, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	p := &Postgres{Image: image, Port: ports[0], password: randomHex(12)}
	cfg, err := pgx.ParseConfig(p.URL("postgres"))
	if err != nil {
		return nil, err
	}
	p.root = stdlib.OpenDB(*cfg)
	p.root.SetMaxIdleConns(2)
	env, args := postgresSettings(p.Port, p.password)
	ready := readiness{
		what:    fmt.Sprintf("database %s on 127.0.0.1:%d", image, p.Port),
		timeout: postgresStartTimeout,
		check:   func(ctx context.Context) error { return p.root.PingContext(ctx) },
	}
	if wrap != nil {
		args = wrap(args)
	}
	c, err := runContainer(ctx, image, "postgres", ready, append([]testcontainers.ContainerCustomizer{
		testcontainers.WithEnv(env),
		testcontainers.WithCmdArgs(args...),
	}, opts...)...)
	if err != nil {
		_ = p.root.Close()
		return nil, err
	}
	p.container = c
	return p, nil
}

func (p *Postgres) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)) }

// URL is the DATABASE_URL of database db for the superuser
// (postgres://postgres:...@127.0.0.1:port/db?sslmode=disable).
func (p *Postgres) URL(db string) string {
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword(postgresSuperuser, p.password), Host: p.addr(), Path: "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Root is a pool on the server as the superuser, for set-up and inspection.
func (p *Postgres) Root() *sql.DB { return p.root }

// Container is the running container, e.g. to stop it in a fault test.
func (p *Postgres) Container() *testcontainers.DockerContainer { return p.container }

// Terminate removes the container.
func (p *Postgres) Terminate(ctx context.Context) error {
	if p == nil {
		return nil
	}
	_ = p.root.Close()
	return testcontainers.TerminateContainer(p.container, testcontainers.StopContext(ctx))
}

// NewDatabase creates an empty database for t and drops it when t ends
// (after t's later cleanups, such as closing a store on it). Its DSN is
// its URL.
func (p *Postgres) NewDatabase(t testing.TB) Database {
	t.Helper()
	name := uniqueName("t_", t.Name(), 63, '_')
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.root.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE: a session a test left open must not keep its database.
		if _, err := p.root.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return Database{Name: name, URL: p.URL(name), DSN: p.URL(name)}
}

// NewPostgresDatabase creates an empty database for t on the package's
// PostgreSQL.
func NewPostgresDatabase(t testing.TB) Database { return SharedPostgres(t).NewDatabase(t) }
