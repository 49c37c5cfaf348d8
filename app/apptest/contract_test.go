package apptest_test

import (
	"net/netip"
	"testing"

	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports/porttest"
)

// The fakes keep the ports' contracts, so core tests on them mean something.

func TestStoreContract(t *testing.T) {
	porttest.RunUserStoreContract(t, func(*testing.T) porttest.UserStore { return apptest.NewStore() })
}

func TestHasherContract(t *testing.T) {
	porttest.RunPasswordHasherContract(t, apptest.NewHasher(), porttest.HasherOptions{Unsalted: true})
}

func TestGeolocatorContract(t *testing.T) {
	g := apptest.NewGeolocator(map[netip.Addr]domain.Location{
		netip.MustParseAddr("192.0.2.1"):   domain.LocationIn("CH"),
		netip.MustParseAddr("2001:db8::1"): domain.LocationIn("DE"),
	})
	porttest.RunGeolocatorContract(t, g, porttest.GeoCases{
		Located: []porttest.Located{
			{Addr: netip.MustParseAddr("192.0.2.1"), Country: "CH"},
			{Addr: netip.MustParseAddr("2001:db8::1"), Country: "DE"},
		},
		Unknown: []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::2")},
	})
}

func TestCredentialStoreContract(t *testing.T) {
	porttest.RunCredentialStoreContract(t, func(*testing.T) porttest.CredentialStore { return apptest.NewStore() })
}
