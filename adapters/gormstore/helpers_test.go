package gormstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/pressly/goose/v3"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/test/containers"
)

// The server halves of the suite run against one MySQL and one PostgreSQL
// container of this test process (test/containers), started on first use;
// USERSVC_TEST_MYSQL_URL and USERSVC_TEST_POSTGRES_URL point them at
// existing servers instead (the user needs CREATE/DROP DATABASE). The suite
// fails (it does not skip) when a server is unreachable.
func TestMain(m *testing.M) { containers.RunTests(m) }

func mysqlServerURL(t testing.TB) string { return mysqlServer.url(t) }

// The test servers. A database per test keeps parallel tests and packages
// apart.
var (
	mysqlServer = &testServer{
		what: "MySQL/MariaDB", env: containers.MySQLURLEnv, server: containers.MySQLServerURL,
		create: "CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
		drop:   "DROP DATABASE IF EXISTS %s",
	}
	postgresServer = &testServer{
		what: "PostgreSQL", env: containers.PostgresURLEnv, server: containers.PostgresServerURL,
		create: "CREATE DATABASE %s ENCODING 'UTF8' TEMPLATE template0",
		// FORCE: a session a test left open must not keep its database.
		drop: "DROP DATABASE IF EXISTS %s WITH (FORCE)",
	}
)

// freshMySQLDatabase and freshPostgresDatabase create an empty database
// usersvc_t_<random> and return its URL; it is dropped when the test ends.
func freshMySQLDatabase(t *testing.T) string    { return mysqlServer.fresh(t) }
func freshPostgresDatabase(t *testing.T) string { return postgresServer.fresh(t) }

// testServer hands out fresh databases on one database server.
type testServer struct {
	what, env    string
	server       func(testing.TB) string
	create, drop string // statements taking the database name

	once sync.Once
	root *Store
	err  error
}

func (s *testServer) url(t testing.TB) string {
	t.Helper()
	return s.server(t)
}

func (s *testServer) fresh(t *testing.T) string {
	t.Helper()
	server := s.url(t)
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.root, s.err = Open(ctx, Config{URL: server})
	})
	if s.err != nil {
		t.Fatalf("%s test server %s unreachable (%s names it when set): %v", s.what, redact(server), s.env, s.err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "usersvc_t_" + hex.EncodeToString(b[:])
	if _, err := s.root.DB().Exec(fmt.Sprintf(s.create, name)); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := s.root.DB().Exec(fmt.Sprintf(s.drop, name)); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// backend opens a fresh, migrated store of one kind for one test.
type backend struct {
	name string
	open func(t *testing.T) *Store
}

var backends = []backend{
	{"sqlite-memory", func(t *testing.T) *Store { return openMigrated(t, "sqlite://:memory:") }},
	{"sqlite-file", func(t *testing.T) *Store {
		return openMigrated(t, "sqlite://"+filepath.Join(t.TempDir(), "users.db"))
	}},
	{"mysql", func(t *testing.T) *Store { return openMigrated(t, freshMySQLDatabase(t)) }},
	{"postgres", func(t *testing.T) *Store { return openMigrated(t, freshPostgresDatabase(t)) }},
}

// forEachBackend runs the same test body against every database, in
// parallel, each with its own empty database.
func forEachBackend(t *testing.T, body func(t *testing.T, s *Store)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			body(t, b.open(t))
		})
	}
}

// forEachBackendURL is forEachBackend for tests that open stores
// themselves: it hands out an unmigrated database URL.
func forEachBackendURL(t *testing.T, body func(t *testing.T, url string)) {
	t.Helper()
	urls := map[string]func(t *testing.T) string{
		"sqlite-memory": func(*testing.T) string { return "sqlite://:memory:" },
		"sqlite-file":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "users.db") },
		"mysql":         freshMySQLDatabase,
		"postgres":      freshPostgresDatabase,
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			body(t, urls[b.name](t))
		})
	}
}

// forEachServer runs body against each database server (behaviour SQLite
// cannot show: deadlocks, lost connections), in parallel, each with an
// unmigrated database of its own.
func forEachServer(t *testing.T, body func(t *testing.T, url string)) {
	t.Helper()
	servers := []struct {
		name  string
		fresh func(t *testing.T) string
	}{
		{"mysql", freshMySQLDatabase},
		{"postgres", freshPostgresDatabase},
	}
	for _, sv := range servers {
		t.Run(sv.name, func(t *testing.T) {
			t.Parallel()
			body(t, sv.fresh(t))
		})
	}
}

func openMigrated(t *testing.T, url string) *Store {
	t.Helper()
	s := openStore(t, url)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func openStore(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{URL: url})
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// mysqlURL is a DATABASE_URL for database name on the server of cfg.
func mysqlURL(cfg *mysql.Config, name string) string {
	u := url.URL{Scheme: "mysql", User: url.User(cfg.User), Host: cfg.Addr, Path: "/" + name}
	if cfg.Passwd != "" {
		u.User = url.UserPassword(cfg.User, cfg.Passwd)
	}
	return u.String()
}

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// newUser is a valid user created at t0 plus offset.
func newUser(first, last, email string, offset time.Duration) domain.User {
	at := t0.Add(offset)
	return domain.User{
		Email: email, FirstName: first, LastName: last, Address: "1 Main St",
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Version: 1,
		CreatedAt: at, UpdatedAt: at,
	}
}

// insert stores users in one transaction each and returns their ids.
func insert(t *testing.T, s *Store, users ...domain.User) []int64 {
	t.Helper()
	ids := make([]int64, len(users))
	for i := range users {
		u := users[i]
		err := s.Do(context.Background(), func(ctx context.Context, tx ports.Tx) error {
			return tx.InsertUser(ctx, &u)
		})
		if err != nil {
			t.Fatalf("insert %s: %v", u.Email, err)
		}
		ids[i] = u.ID
	}
	return ids
}

func message(id string, at time.Time) domain.Message {
	return domain.Message{EventID: id, Type: "users.user.created", Key: "1", OccurredAt: at, Payload: []byte(`{"id":"` + id + `"}`)}
}

func appendMessages(t *testing.T, s *Store, msgs ...domain.Message) {
	t.Helper()
	err := s.Do(context.Background(), func(ctx context.Context, tx ports.Tx) error {
		for _, m := range msgs {
			if err := tx.AppendMessage(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// migrateUpTo applies the embedded migrations up to version, as a database
// last migrated by an older release would be, and returns the provider to
// go on from there.
func migrateUpTo(t *testing.T, s *Store, version int64) *goose.Provider {
	t.Helper()
	p, err := s.migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), version); err != nil {
		t.Fatalf("migrate up to %d: %v", version, err)
	}
	return p
}
