package staticgeo

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports/porttest"
)

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, spec, want string
	}{
		{"empty", "", "empty"},
		{"only separators", " , ,", "empty"},
		{"missing country", "127.0.0.0/8", "want CIDR=CC"},
		{"bad prefix", "127.0.0.0/33=CH", "127.0.0.0/33"},
		{"not an address", "localhost=CH", "localhost"},
		{"unknown country", "127.0.0.0/8=XX", `unknown ISO 3166-1 alpha-2 country code "XX"`},
		{"empty country", "127.0.0.0/8=", `country code ""`},
		{"conflicting duplicate", "10.0.0.0/8=CH,10.0.0.0/8=FR", "already mapped to CH"},
		{"conflicting spellings", "10.0.0.0/8=CH,10.1.2.3/8=FR", "mapped to both"},
		{"zone in prefix", "fe80::1%eth0/64=CH", "fe80::1%eth0/64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Parse(tc.spec)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tc.spec, g)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) error %q does not mention %q", tc.spec, err, tc.want)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	cases := []struct {
		name, spec string
		entries    int
	}{
		{"default dev list", "127.0.0.0/8=CH,::1/128=CH", 2},
		{"spaces and lower case", " 127.0.0.0/8 = ch , ::1/128=Ch ", 2},
		{"trailing comma", "127.0.0.0/8=CH,", 1},
		{"same mapping twice", "10.0.0.0/8=CH,10.0.0.0/8=CH", 1},
		{"bare address", "192.0.2.1=FR", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Parse(tc.spec)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.spec, err)
			}
			if len(g.entries) != tc.entries {
				t.Fatalf("Parse(%q) kept %d entries, want %d", tc.spec, len(g.entries), tc.entries)
			}
		})
	}
}

// table is a list with nested prefixes, IPv6, an IPv4-mapped prefix and a
// single host.
const table = "127.0.0.0/8=CH,::1/128=CH,10.0.0.0/8=FR,10.1.0.0/16=ES,10.1.2.0/24=DE," +
	"2001:db8::/32=IT,2001:db8:1::/48=AT,::ffff:192.0.2.0/120=LI,198.51.100.7=US"

// TestGeolocatorContract runs the port's suite; the located cases also pin
// the longest-prefix rule.
func TestGeolocatorContract(t *testing.T) {
	g, err := Parse(table)
	if err != nil {
		t.Fatal(err)
	}
	at := func(ip, country string) porttest.Located {
		return porttest.Located{Addr: netip.MustParseAddr(ip), Country: country}
	}
	porttest.RunGeolocatorContract(t, g, porttest.GeoCases{
		Located: []porttest.Located{
			at("127.0.0.1", "CH"),     // IPv4 loopback
			at("::1", "CH"),           // IPv6 loopback
			at("10.200.0.1", "FR"),    // shortest prefix
			at("10.1.200.1", "ES"),    // middle prefix
			at("10.1.2.3", "DE"),      // longest prefix wins
			at("2001:db8:2::1", "IT"), // IPv6 outer prefix
			at("2001:db8:1::1", "AT"), // IPv6 longest prefix wins
			at("192.0.2.9", "LI"),     // a mapped prefix matches IPv4
			at("198.51.100.7", "US"),  // single host
		},
		Unknown: []netip.Addr{
			netip.MustParseAddr("198.51.100.8"), // the single host's neighbour
			netip.MustParseAddr("203.0.113.1"),
			netip.MustParseAddr("2001:db9::1"),
			netip.MustParseAddr("0.0.0.1"), // not the IPv6 loopback
		},
	})
}

func TestLocateIgnoresTheZone(t *testing.T) {
	g, err := Parse(table)
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.Locate(context.Background(), netip.MustParseAddr("2001:db8:1::1%eth0"))
	if err != nil || got != domain.LocationIn("AT") {
		t.Fatalf("Locate = %+v, %v; want Austria", got, err)
	}
}

func TestNew(t *testing.T) {
	t.Run("invalid prefix", func(t *testing.T) {
		if _, err := New(map[netip.Prefix]string{{}: "CH"}); err == nil {
			t.Fatal("New accepted the zero prefix")
		}
	})
	t.Run("unknown code", func(t *testing.T) {
		if _, err := New(map[netip.Prefix]string{netip.MustParsePrefix("10.0.0.0/8"): "ZZ"}); err == nil {
			t.Fatal("New accepted ZZ")
		}
	})
	t.Run("empty table places nothing", func(t *testing.T) {
		g, err := New(nil)
		if err != nil {
			t.Fatal(err)
		}
		loc, err := g.Locate(context.Background(), netip.MustParseAddr("127.0.0.1"))
		if err != nil || loc != domain.UnknownLocation {
			t.Fatalf("Locate = %+v, %v; want unknown, nil", loc, err)
		}
	})
}
