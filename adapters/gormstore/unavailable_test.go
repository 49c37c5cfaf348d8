package gormstore

import (
	"context"
	"errors"
	"io"
	"net"
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

func TestDatabaseGoneIsUnavailable(t *testing.T) {
	url := freshMySQLDatabase(t)
	target, err := ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, target.MySQL.Addr)
	proxied := strings.Replace(url, target.MySQL.Addr, p.ln.Addr().String(), 1)
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
		{"pending", func(ctx context.Context) error { _, err := s.PendingMessages(ctx, 10); return err }},
		{"backlog", func(ctx context.Context) error { _, _, err := s.Backlog(ctx); return err }},
		{"relay lock", func(ctx context.Context) error { _, _, err := s.TryLock(ctx); return err }},
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
