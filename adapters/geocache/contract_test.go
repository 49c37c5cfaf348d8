package geocache_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/marketplace/usersvc/adapters/geocache"
	"github.com/marketplace/usersvc/adapters/staticgeo"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/ports/porttest"
)

// failingFor fails, as a provider outage, for the addresses in down and
// asks inner for the others.
type failingFor struct {
	inner ports.Geolocator
	down  map[netip.Addr]bool
}

func (g failingFor) Locate(ctx context.Context, ip netip.Addr) (domain.Location, error) {
	if g.down[ip.Unmap()] {
		return domain.UnknownLocation, domain.Unavailable(domain.DependencyGeolocation, errors.New("provider outage"))
	}
	return g.inner.Locate(ctx, ip)
}

// TestGeolocatorContract runs the port's suite through the cache in front
// of the static table, whose answers it must pass on unchanged, unknown
// ones included, and in front of a provider failing for some addresses,
// whose failures it must neither hide nor keep (each lookup is asked
// twice).
func TestGeolocatorContract(t *testing.T) {
	static, err := staticgeo.Parse("127.0.0.0/8=CH,::1/128=CH,192.0.2.0/24=FR,2001:db8::/32=DE")
	if err != nil {
		t.Fatal(err)
	}
	// The failing IPv6 address is in a /64 of its own: the cache answers a
	// whole /64 from one lookup, so beside 2001:db8::9 it would be located
	// whenever that subtest ran first.
	down := []netip.Addr{netip.MustParseAddr("192.0.2.66"), netip.MustParseAddr("2001:db8:0:66::66")}
	inner := failingFor{inner: static, down: map[netip.Addr]bool{down[0]: true, down[1]: true}}
	cache, err := geocache.New(inner, geocache.Options{Size: 16})
	if err != nil {
		t.Fatal(err)
	}
	at := func(ip, country string) porttest.Located {
		return porttest.Located{Addr: netip.MustParseAddr(ip), Country: country}
	}
	porttest.RunGeolocatorContract(t, cache, porttest.GeoCases{
		Located: []porttest.Located{at("127.0.0.1", "CH"), at("::1", "CH"), at("192.0.2.9", "FR"), at("2001:db8::9", "DE")},
		Unknown: []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db9::1")},
		Failing: down,
	})
}
