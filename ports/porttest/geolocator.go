package porttest

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Located is an address the test set-up places in a country.
type Located struct {
	Addr    netip.Addr
	Country string // ISO 3166-1 alpha-2, upper case
}

// GeoCases are the addresses the test set-up guarantees answers for.
// Located must hold at least one IPv4 and one IPv6 address; Unknown at least
// one address; Failing may be empty for a geolocator that cannot fail (a
// fixed table).
type GeoCases struct {
	Located []Located
	// Unknown are addresses the provider answers for without placing them.
	Unknown []netip.Addr
	// Failing are addresses whose lookup fails (provider down, broken
	// answer, unreadable database).
	Failing []netip.Addr
}

// RunGeolocatorContract proves g against ports.Geolocator on cases:
//   - a located address gives its country code in upper case and the name
//     from domain's ISO table (any non-empty name for a code the table
//     lacks), with a nil error;
//   - an unknown address gives domain.UnknownLocation with a nil error: a
//     valid answer, not a failure;
//   - a failing lookup gives an error matching domain.ErrUnavailable and no
//     country (callers refuse rather than guess);
//   - an IPv4 address and its IPv4-mapped IPv6 form (::ffff:a.b.c.d) get
//     the same answer, and asking twice gives the same answer.
//
// Lookups run in parallel subtests, so g must be safe for concurrent use.
func RunGeolocatorContract(t *testing.T, g ports.Geolocator, cases GeoCases) {
	t.Helper()
	var has4, has6 bool
	for _, c := range cases.Located {
		has4 = has4 || c.Addr.Is4()
		has6 = has6 || c.Addr.Is6() && !c.Addr.Is4In6()
		if c.Country != strings.ToUpper(c.Country) || len(c.Country) != 2 {
			t.Fatalf("test set-up: country %q of %s must be an upper-case alpha-2 code", c.Country, c.Addr)
		}
	}
	if !has4 || !has6 || len(cases.Unknown) == 0 {
		t.Fatalf("test set-up: GeoCases need located IPv4 and IPv6 addresses (have %v, %v) and an unknown one (have %d)", has4, has6, len(cases.Unknown))
	}
	type lookup struct {
		kind  string
		addr  netip.Addr
		check func(t *testing.T, loc domain.Location, err error)
	}
	var lookups []lookup
	for _, c := range cases.Located {
		lookups = append(lookups, lookup{"located", c.Addr, func(t *testing.T, loc domain.Location, err error) {
			if err != nil {
				t.Fatalf("Locate = %+v, %v; want %s and no error", loc, err, c.Country)
			}
			checkCountry(t, loc, c.Country)
		}})
	}
	for _, a := range cases.Unknown {
		lookups = append(lookups, lookup{"unknown", a, func(t *testing.T, loc domain.Location, err error) {
			if err != nil || loc != domain.UnknownLocation {
				t.Fatalf("Locate = %+v, %v; want domain.UnknownLocation and no error", loc, err)
			}
		}})
	}
	for _, a := range cases.Failing {
		lookups = append(lookups, lookup{"failing", a, func(t *testing.T, loc domain.Location, err error) {
			if !errors.Is(err, domain.ErrUnavailable) {
				t.Fatalf("Locate = %+v, %v; want an error matching domain.ErrUnavailable", loc, err)
			}
			if loc.Known() {
				t.Fatalf("failed Locate still placed the address in %+v", loc)
			}
		}})
	}
	for _, l := range lookups {
		for _, addr := range withMapped(l.addr) {
			t.Run(l.kind+" "+addr.String(), func(t *testing.T) {
				t.Parallel()
				for range 2 { // the second answer is the same (a cache must not change it)
					loc, err := g.Locate(context.Background(), addr)
					l.check(t, loc, err)
				}
			})
		}
	}
}

// withMapped is addr, and its IPv4-mapped IPv6 form when it is IPv4.
func withMapped(addr netip.Addr) []netip.Addr {
	if addr.Is4() {
		return []netip.Addr{addr, netip.AddrFrom16(addr.As16())}
	}
	return []netip.Addr{addr}
}

func checkCountry(t *testing.T, loc domain.Location, code string) {
	t.Helper()
	if loc.CountryCode != code {
		t.Fatalf("country code %q, want %q", loc.CountryCode, code)
	}
	if name, ok := domain.CountryName(code); ok && loc.CountryName != name || !ok && strings.TrimSpace(loc.CountryName) == "" {
		t.Fatalf("country name %q for %s, want the ISO table's %q", loc.CountryName, code, name)
	}
}
