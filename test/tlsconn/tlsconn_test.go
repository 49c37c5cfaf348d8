// Package tlsconn proves the TLS settings against servers with TLS turned on
// (test containers), with a private CA made by the test: DATABASE_TLS_CA/
// CERT/KEY for MySQL, the libpq URL parameters for PostgreSQL, and
// AMQP_TLS_CA/CERT/KEY for RabbitMQ. Each server only admits the test's
// account over TLS with a client certificate, so a connection that silently
// went without TLS, or without verifying the server, fails the test.
package tlsconn

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/testpki"
)

const (
	account  = containers.PostgresTLSUser // also the MySQL account
	password = "tls-account-Secret-42"
	database = "tlsdb"
)

func openStore(t *testing.T, rawURL string, files gormstore.TLSFiles) (*gormstore.Store, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := gormstore.Open(ctx, gormstore.Config{URL: rawURL, TLS: files, PingTimeout: 10 * time.Second})
	if err != nil {
		if strings.Contains(err.Error(), password) {
			t.Errorf("the connection error shows the password: %v", err)
		}
		return nil, err
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, nil
}

func TestMySQLWithAPrivateCA(t *testing.T) {
	pki := testpki.New(t, "usersvc test CA", account)
	rogue := testpki.New(t, "another CA", account)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := containers.StartMySQLTLS(ctx, containers.TLSServer{CA: pki.CA, Cert: pki.ServerCert, Key: pki.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Terminate(context.Background()) })
	for _, stmt := range []string{
		"CREATE DATABASE " + database,
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s' REQUIRE X509", account, password),
		fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%%'", database, account),
	} {
		if _, err := m.Root().ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	rawURL := (&url.URL{Scheme: "mysql", User: url.UserPassword(account, password), Host: fmt.Sprintf("127.0.0.1:%d", m.Port), Path: "/" + database}).String()
	good := gormstore.TLSFiles{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}

	t.Run("verified TLS with a client certificate", func(t *testing.T) {
		s, err := openStore(t, rawURL, good)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("migrate over TLS: %v", err)
		}
		// The very configuration the store uses reports a TLS session.
		target, err := gormstore.Parse(rawURL, good)
		if err != nil {
			t.Fatal(err)
		}
		connector, err := mysql.NewConnector(target.MySQL)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(connector)
		defer db.Close()
		var name, cipher string
		if err := db.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
			t.Fatal(err)
		}
		if cipher == "" {
			t.Error("Ssl_cipher is empty: the session is not encrypted")
		}
	})
	refused := []struct {
		name  string
		files gormstore.TLSFiles
	}{
		{"no TLS settings", gormstore.TLSFiles{}},
		{"server certificate from another CA", gormstore.TLSFiles{CA: rogue.CA, Cert: pki.ClientCert, Key: pki.ClientKey}},
		{"no client certificate", gormstore.TLSFiles{CA: pki.CA}},
		{"client certificate of another CA", gormstore.TLSFiles{CA: pki.CA, Cert: rogue.ClientCert, Key: rogue.ClientKey}},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			_, err := openStore(t, rawURL, tc.files)
			if err == nil {
				t.Fatal("the store connected")
			}
			t.Logf("refused as expected: %v", err)
		})
	}
	t.Run("refused: tls=skip-verify in the URL", func(t *testing.T) {
		if _, err := gormstore.Parse(rawURL+"?tls=skip-verify", gormstore.TLSFiles{}); err == nil || !strings.Contains(err.Error(), "DATABASE_TLS_CA") {
			t.Fatalf("Parse = %v, want a refusal pointing at DATABASE_TLS_CA", err)
		}
	})
}

func TestPostgreSQLWithAPrivateCA(t *testing.T) {
	pki := testpki.New(t, "usersvc test CA", account)
	rogue := testpki.New(t, "another CA", account)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := containers.StartPostgresTLS(ctx, containers.TLSServer{CA: pki.CA, Cert: pki.ServerCert, Key: pki.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Terminate(context.Background()) })
	for _, stmt := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", account, password),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", database, account),
	} {
		if _, err := p.Root().ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	pgURL := func(q url.Values) string {
		return (&url.URL{Scheme: "postgres", User: url.UserPassword(account, password), Host: fmt.Sprintf("127.0.0.1:%d", p.Port), Path: "/" + database, RawQuery: q.Encode()}).String()
	}
	params := func(mode, ca, cert, key string) url.Values {
		q := url.Values{"sslmode": {mode}}
		for k, v := range map[string]string{"sslrootcert": ca, "sslcert": cert, "sslkey": key} {
			if v != "" {
				q.Set(k, v)
			}
		}
		return q
	}

	t.Run("verify-full with a client certificate", func(t *testing.T) {
		rawURL := pgURL(params("verify-full", pki.CA, pki.ClientCert, pki.ClientKey))
		s, err := openStore(t, rawURL, gormstore.TLSFiles{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("migrate over TLS: %v", err)
		}
		target, err := gormstore.ParseURL(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.ConnectConfig(ctx, target.Postgres)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var ssl bool
		if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
			t.Fatal(err)
		}
		if !ssl {
			t.Error("pg_stat_ssl says the session is not encrypted")
		}
	})
	refused := []struct {
		name string
		q    url.Values
	}{
		{"no TLS", params("disable", "", "", "")},
		{"server certificate from another CA", params("verify-full", rogue.CA, pki.ClientCert, pki.ClientKey)},
		{"no client certificate", params("verify-full", pki.CA, "", "")},
		{"client certificate of another CA", params("verify-full", pki.CA, rogue.ClientCert, rogue.ClientKey)},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			_, err := openStore(t, pgURL(tc.q), gormstore.TLSFiles{})
			if err == nil {
				t.Fatal("the store connected")
			}
			t.Logf("refused as expected: %v", err)
		})
	}
	t.Run("refused: DATABASE_TLS_* with a postgres URL", func(t *testing.T) {
		_, err := gormstore.Parse(pgURL(params("verify-full", pki.CA, "", "")), gormstore.TLSFiles{CA: pki.CA})
		if err == nil || !strings.Contains(err.Error(), "sslrootcert") {
			t.Fatalf("Parse = %v, want a refusal pointing at sslrootcert", err)
		}
	})
}
