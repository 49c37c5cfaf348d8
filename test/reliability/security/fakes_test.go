// Package security_test checks the service's security properties end to
// end over real HTTP: no password or hash in any answer, log line or event;
// forwarding headers believed only from trusted proxies; error bodies that
// never show internals, whatever fails underneath.
package security_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/marketplace/usersvc/adapters/staticgeo"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/test/reliability/stack"
)

// recordingGeo is the static geolocator that remembers which addresses it
// was asked about, and fails like a provider outage for one network.
type recordingGeo struct {
	next    ports.Geolocator
	failing netip.Prefix

	mu   sync.Mutex
	seen []netip.Addr
}

func newRecordingGeo(t *testing.T, table string, failing string) *recordingGeo {
	t.Helper()
	g, err := staticgeo.Parse(table)
	if err != nil {
		t.Fatal(err)
	}
	r := &recordingGeo{next: g}
	if failing != "" {
		r.failing = netip.MustParsePrefix(failing)
	}
	return r
}

func (g *recordingGeo) Locate(ctx context.Context, ip netip.Addr) (domain.Location, error) {
	g.mu.Lock()
	g.seen = append(g.seen, ip)
	g.mu.Unlock()
	if g.failing.IsValid() && g.failing.Contains(ip) {
		return domain.Location{}, errors.New(`GET https://ipapi.co/` + ip.String() + `/json/?key=k3y: 502 <html><body>Bad Gateway at /srv/geo/handler.go:12</body></html>`)
	}
	return g.next.Locate(ctx, ip)
}

func (g *recordingGeo) Seen() []netip.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.seen)
}

// fault is how the faulty store fails: an error to return, or a panic.
type fault struct {
	err   error
	panic string
}

// faultyStore sits between the use cases and the real store and, while a
// fault is set, fails every call the way a broken database or driver would.
type faultyStore struct {
	next  stack.Persistence
	fault atomic.Pointer[fault]
}

func (f *faultyStore) wrap(p stack.Persistence) stack.Persistence {
	f.next = p
	return stack.Persistence{Reader: f, UnitOfWork: f}
}

func (f *faultyStore) fail() error {
	ft := f.fault.Load()
	if ft == nil {
		return nil
	}
	if ft.panic != "" {
		panic(ft.panic)
	}
	return ft.err
}

func (f *faultyStore) GetUser(ctx context.Context, id int64) (domain.User, error) {
	if err := f.fail(); err != nil {
		return domain.User{}, err
	}
	return f.next.Reader.GetUser(ctx, id)
}

func (f *faultyStore) ListUsers(ctx context.Context, q domain.ListQuery) (domain.UserPage, error) {
	if err := f.fail(); err != nil {
		return domain.UserPage{}, err
	}
	return f.next.Reader.ListUsers(ctx, q)
}

func (f *faultyStore) Do(ctx context.Context, fn func(ctx context.Context, tx ports.Tx) error) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.next.UnitOfWork.Do(ctx, fn)
}

var (
	_ ports.UserReader = (*faultyStore)(nil)
	_ ports.UnitOfWork = (*faultyStore)(nil)
)

// driverError looks like an error type from a database driver: its text
// names the type, the statement and where it happened.
type driverError struct{ stmt string }

func (e *driverError) Error() string {
	return "*mysql.MySQLError: Error 1146 (42S02): Table 'usersvc.users' doesn't exist in " + e.stmt +
		" (gormstore.(*txStore).InsertUser at /work/main/adapters/gormstore/users.go:88)"
}
