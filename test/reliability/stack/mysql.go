package stack

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/test/containers"
)

// MySQLServerEnv points the MySQL runs at an existing server instead of the
// test package's container (the same variable as the gormstore suite); the
// account needs CREATE and DROP DATABASE.
const MySQLServerEnv = containers.MySQLURLEnv

// FreshMySQL creates an empty database on the MySQL-compatible test server
// (the package's container, started on first use: its TestMain calls
// containers.RunTests) and returns its DATABASE_URL; the database is
// dropped when t ends. An unreachable server fails t: these runs never skip.
func FreshMySQL(t testing.TB) string {
	t.Helper()
	server := containers.MySQLServerURL(t)
	target, err := gormstore.ParseURL(server)
	if err != nil || target.MySQL == nil {
		t.Fatalf("%s=%q is not a mysql:// URL: %v", MySQLServerEnv, server, err)
	}
	cfg := target.MySQL
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root := sql.OpenDB(connector)
	t.Cleanup(func() { _ = root.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := root.PingContext(ctx); err != nil {
		t.Fatalf("MySQL/MariaDB test server %s unreachable (%s names it when set): %v", target.Redacted, MySQLServerEnv, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "usersvc_rel_" + hex.EncodeToString(b[:])
	if _, err := root.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := root.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u := url.URL{Scheme: "mysql", User: url.User(cfg.User), Host: cfg.Addr, Path: "/" + name}
	if cfg.Passwd != "" {
		u.User = url.UserPassword(cfg.User, cfg.Passwd)
	}
	return u.String()
}
