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
		{name: "unknown scheme", raw: "postgres://u@h/db", wantErr: "DATABASE_URL"},
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
