package gormstore

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

func TestOpenUnreachableDatabaseFailsFast(t *testing.T) {
	// A server that accepts connections and never answers, like a hung DB.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cases := []struct {
		name string
		cfg  Config
	}{
		{"connection refused", Config{URL: "mysql://root@127.0.0.1:1/usersvc"}},
		{"server never answers", Config{URL: "mysql://root@" + silent.Addr().String() + "/usersvc", PingTimeout: 500 * time.Millisecond}},
		{"server never answers, dial timeout from URL", Config{URL: "mysql://root@" + silent.Addr().String() + "/usersvc?readTimeout=300ms&timeout=300ms"}},
		{"postgres connection refused", Config{URL: "postgres://postgres@127.0.0.1:1/usersvc?sslmode=disable"}},
		{"postgres server never answers", Config{URL: "postgres://postgres@" + silent.Addr().String() + "/usersvc?sslmode=disable", PingTimeout: 500 * time.Millisecond}},
		{"postgres server never answers, connect timeout from URL", Config{URL: "postgres://postgres@" + silent.Addr().String() + "/usersvc?sslmode=disable&connect_timeout=1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			s, err := Open(context.Background(), c.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, domain.ErrUnavailable) {
				t.Fatalf("Open error %v does not match domain.ErrUnavailable", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("Open took %v, want a fast failure", d)
			}
		})
	}
}

// proxy forwards TCP to the database until cut, which then also refuses
// new connections: the database "goes away" under an open store.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// serverAddr is the host:port a server URL connects to.
func serverAddr(t *testing.T, url string) string {
	t.Helper()
	target, err := ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	if target.Postgres != nil {
		return net.JoinHostPort(target.Postgres.Host, strconv.Itoa(int(target.Postgres.Port)))
	}
	return target.MySQL.Addr
}

func TestDatabaseGoneIsUnavailable(t *testing.T) {
	forEachServer(t, testDatabaseGoneIsUnavailable)
}

func testDatabaseGoneIsUnavailable(t *testing.T, url string) {
	addr := serverAddr(t, url)
	p := newProxy(t, addr)
	proxied := strings.Replace(url, addr, p.ln.Addr().String(), 1)
	s := openMigrated(t, proxied)
	id := insert(t, s, newUser("A", "B", "a@example.com", 0))[0]
	p.cut()

	cases := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"ping", s.Ping},
		{"get", func(ctx context.Context) error { _, err := s.GetUser(ctx, id); return err }},
		{"list", func(ctx context.Context) error {
			_, err := s.ListUsers(ctx, domain.ListQuery{Page: 1, PageSize: 10})
			return err
		}},
		{"transaction", func(ctx context.Context) error {
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { _, err := tx.LockUser(ctx, id); return err })
		}},
		{"pending", func(ctx context.Context) error { _, err := s.PendingMessages(ctx, 0, 10); return err }},
		{"backlog", func(ctx context.Context) error { _, _, err := s.Backlog(ctx); return err }},
		{"relay lock", func(ctx context.Context) error { _, _, _, err := s.TryLock(ctx); return err }},
		{"migrate", s.Migrate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err := c.op(ctx)
			if !errors.Is(err, domain.ErrUnavailable) {
				t.Fatalf("err = %v, want one matching domain.ErrUnavailable", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v, want a fast failure", d)
			}
		})
	}
}

func TestQueryDeadlineIsUnavailable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
		defer cancel()
		<-ctx.Done()
		if _, err := s.GetUser(ctx, 1); !errors.Is(err, domain.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("GetUser past deadline: %v, want ErrUnavailable wrapping DeadlineExceeded", err)
		}
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.GetUser(cctx, 1); errors.Is(err, domain.ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("GetUser with a cancelled context: %v, want context.Canceled and not ErrUnavailable", err)
		}
	})
}

// During shutdown the pool closes under requests still in flight: they must
// be told to retry (503), not that the server broke (500).
func TestClosedStoreIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{URL: "sqlite://" + t.TempDir() + "/closed.db"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// A read before closing prepares GetUser's statement, which must not
	// turn the closed pool into another kind of error.
	if _, err := s.GetUser(ctx, 1); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("GetUser of a missing user = %v; want ErrNotFound", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func() error{
		"get":  func() error { _, err := s.GetUser(ctx, 1); return err },
		"list": func() error { _, err := s.ListUsers(ctx, domain.ListQuery{Page: 1, PageSize: 10}); return err },
		"write": func() error {
			return s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { _, err := tx.LockUser(ctx, 1); return err })
		},
	} {
		if err := op(); !errors.Is(err, domain.ErrUnavailable) {
			t.Errorf("%s on a closed store = %v; want ErrUnavailable", name, err)
		}
	}
}
