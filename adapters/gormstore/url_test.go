package gormstore

import (
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		name    string
		raw     string
		dialect string
		check   func(t *testing.T, got Target)
		wantErr string // substring; "" means success
	}{
		{name: "sqlite relative file", raw: "sqlite://users.db", dialect: DialectSQLite, check: func(t *testing.T, got Target) {
			if got.Path != "users.db" || got.Memory {
				t.Errorf("Path %q Memory %v", got.Path, got.Memory)
			}
		}},
		{name: "sqlite relative dir", raw: "sqlite://data/users.db", dialect: DialectSQLite, check: func(t *testing.T, got Target) {
			if got.Path != "data/users.db" {
				t.Errorf("Path %q", got.Path)
			}
		}},
		{name: "sqlite absolute file", raw: "sqlite:///var/lib/usersvc/users.db", dialect: DialectSQLite, check: func(t *testing.T, got Target) {
			if got.Path != "/var/lib/usersvc/users.db" {
				t.Errorf("Path %q", got.Path)
			}
		}},
		{name: "sqlite memory", raw: "sqlite://:memory:", dialect: DialectSQLite, check: func(t *testing.T, got Target) {
			if !got.Memory || got.Path != "" {
				t.Errorf("Memory %v Path %q", got.Memory, got.Path)
			}
		}},
		{name: "sqlite without a file", raw: "sqlite://", wantErr: "file name"},
		{name: "sqlite with parameters", raw: "sqlite://users.db?mode=ro", wantErr: "no query parameters"},
		{name: "mysql full", raw: "mysql://app:s3cr%40t@db.internal:3307/users?readTimeout=2s&sql_mode=ANSI", dialect: DialectMySQL, check: func(t *testing.T, got Target) {
			c := got.MySQL
			if c.User != "app" || c.Passwd != "s3cr@t" || c.Addr != "db.internal:3307" || c.DBName != "users" || c.Net != "tcp" {
				t.Errorf("user %q pass %q addr %q db %q net %q", c.User, c.Passwd, c.Addr, c.DBName, c.Net)
			}
			if !c.ParseTime || c.Loc != time.UTC || !c.ClientFoundRows {
				t.Errorf("parseTime %v loc %v clientFoundRows %v", c.ParseTime, c.Loc, c.ClientFoundRows)
			}
			if c.ReadTimeout != 2*time.Second || c.WriteTimeout != defaultWriteTimeout || c.Timeout != defaultDialTimeout {
				t.Errorf("timeouts read %v write %v dial %v", c.ReadTimeout, c.WriteTimeout, c.Timeout)
			}
			if c.Params["sql_mode"] != "ANSI" || c.Params["time_zone"] != "'+00:00'" {
				t.Errorf("params %v", c.Params)
			}
			if !strings.Contains(c.FormatDSN(), "charset=utf8mb4") {
				t.Errorf("DSN %q lacks charset=utf8mb4", c.FormatDSN())
			}
			if strings.Contains(got.Redacted, "s3cr") || !strings.Contains(got.Redacted, "db.internal:3307/users") {
				t.Errorf("Redacted %q", got.Redacted)
			}
		}},
		{name: "mysql default port, no password", raw: "mysql://root@localhost/users", dialect: DialectMySQL, check: func(t *testing.T, got Target) {
			if got.MySQL.Addr != "localhost:3306" || got.MySQL.Passwd != "" {
				t.Errorf("addr %q pass %q", got.MySQL.Addr, got.MySQL.Passwd)
			}
		}},
		{name: "mysql parseTime cannot be turned off", raw: "mysql://root@localhost/users?parseTime=false&loc=Local", dialect: DialectMySQL, check: func(t *testing.T, got Target) {
			if !got.MySQL.ParseTime || got.MySQL.Loc != time.UTC {
				t.Errorf("parseTime %v loc %v", got.MySQL.ParseTime, got.MySQL.Loc)
			}
		}},
		{name: "mysql ipv6 host", raw: "mysql://root@[::1]:3306/users", dialect: DialectMySQL, check: func(t *testing.T, got Target) {
			if got.MySQL.Addr != "[::1]:3306" {
				t.Errorf("addr %q", got.MySQL.Addr)
			}
		}},
		{name: "mysql without database", raw: "mysql://root@localhost:3306/", wantErr: "database name"},
		{name: "mysql without host", raw: "mysql:///users", wantErr: "needs a host"},
		{name: "mysql bad parameter", raw: "mysql://root@localhost/users?readTimeout=soon", wantErr: "parameters"},
		{name: "postgres full", raw: "postgres://app:s3cr%40t@db.internal:5433/users?sslmode=disable&search_path=app", dialect: DialectPostgres, check: func(t *testing.T, got Target) {
			c := got.Postgres
			if c.User != "app" || c.Password != "s3cr@t" || c.Host != "db.internal" || c.Port != 5433 || c.Database != "users" {
				t.Errorf("user %q pass %q host %q port %d db %q", c.User, c.Password, c.Host, c.Port, c.Database)
			}
			if c.TLSConfig != nil {
				t.Errorf("sslmode=disable kept a TLS configuration")
			}
			want := map[string]string{"timezone": "UTC", "application_name": "usersvc", "search_path": "app"}
			for k, v := range want {
				if c.RuntimeParams[k] != v {
					t.Errorf("runtime param %s = %q, want %q", k, c.RuntimeParams[k], v)
				}
			}
			if c.ConnectTimeout != defaultDialTimeout {
				t.Errorf("connect timeout %v, want %v", c.ConnectTimeout, defaultDialTimeout)
			}
			if strings.Contains(got.Redacted, "s3cr") || !strings.Contains(got.Redacted, "db.internal:5433/users") {
				t.Errorf("Redacted %q", got.Redacted)
			}
		}},
		{name: "postgresql scheme, default port, own settings", raw: "postgresql://postgres@127.0.0.1/test?connect_timeout=2&application_name=other&timezone=Europe/Zurich", dialect: DialectPostgres, check: func(t *testing.T, got Target) {
			c := got.Postgres
			if c.Port != 5432 || c.Database != "test" || c.ConnectTimeout != 2*time.Second {
				t.Errorf("port %d db %q connect timeout %v", c.Port, c.Database, c.ConnectTimeout)
			}
			if c.RuntimeParams["application_name"] != "other" || c.RuntimeParams["timezone"] != "UTC" {
				t.Errorf("runtime params %v: want the URL's application_name and the zone forced to UTC", c.RuntimeParams)
			}
		}},
		{name: "postgres scheme in capitals", raw: "POSTGRES://u@h:5432/db", dialect: DialectPostgres, check: func(t *testing.T, got Target) {
			if got.Postgres.Host != "h" || got.Postgres.Database != "db" {
				t.Errorf("host %q db %q", got.Postgres.Host, got.Postgres.Database)
			}
		}},
		{name: "postgres without database", raw: "postgres://u@h:5432/", wantErr: "database name"},
		{name: "postgres without host", raw: "postgres:///users", wantErr: "needs a host"},
		{name: "postgres bad parameter hides the password", raw: "postgres://u:hunter2@h:5432/db?connect_timeout=soon", wantErr: "parameters"},
		{name: "postgres bad sslmode", raw: "postgres://u:hunter2@h/db?sslmode=sometimes", wantErr: "parameters"},
		{name: "unknown scheme", raw: "oracle://u@h/db", wantErr: "DATABASE_URL"},
		{name: "not a URL", raw: "users.db", wantErr: "DATABASE_URL"},
		{name: "bad URL hides the password", raw: "mysql://u:hunter2@h:port/db", wantErr: "DATABASE_URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseURL(c.raw)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if got.Dialect != c.dialect {
				t.Fatalf("Dialect = %q, want %q", got.Dialect, c.dialect)
			}
			c.check(t, got)
		})
	}
}
