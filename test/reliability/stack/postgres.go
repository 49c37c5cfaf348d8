package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/test/containers"
)

// FreshPostgres creates an empty database on the PostgreSQL test server
// (USERSVC_TEST_POSTGRES_URL, or the package's container started on first
// use: its TestMain calls containers.RunTests or containers.Main) and
// returns its DATABASE_URL; the database is dropped when t ends. An
// unreachable server fails t: these runs never skip.
func FreshPostgres(t testing.TB) string {
	t.Helper()
	server := containers.PostgresServerURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	root, err := gormstore.Open(ctx, gormstore.Config{URL: server})
	if err != nil {
		t.Fatalf("PostgreSQL test server unreachable (%s names it when set): %v", containers.PostgresURLEnv, err)
	}
	t.Cleanup(func() { _ = root.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "usersvc_rel_" + hex.EncodeToString(b[:])
	if _, err := root.DB().ExecContext(ctx, "CREATE DATABASE "+name+" ENCODING 'UTF8' TEMPLATE template0"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// FORCE: a session a cut-off replica left open must not keep it.
		if _, err := root.DB().Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
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
