package containers

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

func TestPostgresSettings(t *testing.T) {
	env, args := postgresSettings(40001, "pw")
	want := map[string]string{"POSTGRES_PASSWORD": "pw", "POSTGRES_USER": "postgres", "PGPORT": "40001"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if i := slices.Index(args, "listen_addresses=127.0.0.1"); i < 1 || args[i-1] != "-c" {
		t.Errorf("args %q do not bind the server to 127.0.0.1", args)
	}
}

// The package's PostgreSQL starts on first use and hands out databases of
// their own, reachable at their URL.
func TestSharedPostgresDatabases(t *testing.T) {
	a, b := NewPostgresDatabase(t), NewPostgresDatabase(t)
	if a.Name == b.Name || a.URL == b.URL {
		t.Fatalf("two databases share a name: %q, %q", a.Name, b.Name)
	}
	if p := SharedPostgres(t); p.Port == 5432 {
		t.Fatalf("the container took 5432, the machine's own server's port")
	}
	for _, db := range []Database{a, b} {
		cfg, err := pgx.ParseConfig(db.URL)
		if err != nil {
			t.Fatal(err)
		}
		pool := stdlib.OpenDB(*cfg)
		var name string
		err = pool.QueryRowContext(context.Background(), "SELECT current_database()").Scan(&name)
		_ = pool.Close()
		if err != nil || name != db.Name {
			t.Fatalf("current_database() at %s = %q, %v; want %q", db.Name, name, err, db.Name)
		}
	}
}
