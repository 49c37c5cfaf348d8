package mmdbgeo_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/marketplace/usersvc/adapters/mmdbgeo"
	"github.com/marketplace/usersvc/adapters/mmdbgeo/mmdbtest"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports/porttest"
)

type lookup struct {
	ip   string
	want domain.Location
}

func open(t *testing.T, paths ...string) *mmdbgeo.Reader {
	t.Helper()
	r, err := mmdbgeo.Open(paths...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func check(t *testing.T, r *mmdbgeo.Reader, cases []lookup) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.ip, func(t *testing.T) {
			got, err := r.Locate(context.Background(), netip.MustParseAddr(tc.ip))
			if err != nil {
				t.Fatalf("Locate(%s): %v", tc.ip, err)
			}
			if got != tc.want {
				t.Fatalf("Locate(%s) = %+v, want %+v", tc.ip, got, tc.want)
			}
		})
	}
}

var (
	switzerland = domain.Location{CountryCode: "CH", CountryName: "Switzerland"}
	spain       = domain.Location{CountryCode: "ES", CountryName: "Spain"}
)

// TestGeolocatorContract runs the port's suite on a GeoLite2-shaped
// database, whose records also show how each shape is read: a record that
// cannot be decoded is a failure, and every way of not naming a country is
// unknown.
func TestGeolocatorContract(t *testing.T) {
	path := mmdbtest.Write(t, mmdbwriter.Options{DatabaseType: "GeoLite2-Country"}, map[string]mmdbtype.DataType{
		"2.16.92.0/24":     mmdbtest.CountryRecord("CH", "Switzerland"),
		"2.16.8.0/24":      mmdbtest.CountryRecord("ES", "Spain"),
		"2a02:1210::/32":   mmdbtest.CountryRecord("CH", "Switzerland"),
		"2001:4860::/32":   mmdbtest.CountryRecord("US", "United States of America"),
		"5.35.0.0/16":      mmdbtest.CountryRecord("XK", "Kosovo"),
		"2a00:1450::/32":   mmdbtest.CountryRecord("GB", "Britain"),
		"31.13.64.0/18":    mmdbtest.CountryRecord("ZZ", "Unknown"),
		"8.8.8.0/24":       mmdbtype.Map{"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("US")}},
		"2600:1f00::/24":   mmdbtype.Map{"continent": mmdbtype.Map{"code": mmdbtype.String("NA")}},
		"185.199.108.0/22": mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("fr")}},
		"6.6.6.0/24":       mmdbtype.Map{"country_code": mmdbtype.Map{"iso_code": mmdbtype.String("CH")}},
		"2a01:4f8::/32":    mmdbtype.Map{"country_name": mmdbtype.Uint32(42)},
	})
	r := open(t, path)
	if r.DatabaseType() != "GeoLite2-Country" {
		t.Fatalf("DatabaseType = %q", r.DatabaseType())
	}
	at := func(ip, country string) porttest.Located {
		return porttest.Located{Addr: netip.MustParseAddr(ip), Country: country}
	}
	addrs := func(ips ...string) []netip.Addr {
		out := make([]netip.Addr, len(ips))
		for i, ip := range ips {
			out[i] = netip.MustParseAddr(ip)
		}
		return out
	}
	porttest.RunGeolocatorContract(t, r, porttest.GeoCases{
		Located: []porttest.Located{
			at("2.16.92.0", "CH"), at("2.16.92.255", "CH"), at("2.16.8.1", "ES"),
			at("2a02:1210:1234::1", "CH"),
			at("2001:4860:4860::8888", "US"), // the ISO table's name, not the database's
			at("2a00:1450::1", "GB"),
			at("5.35.1.1", "XK"),        // outside the ISO table: the database's name
			at("185.199.108.153", "FR"), // lower case in the database
		},
		Unknown: addrs(
			"31.13.64.1",   // ZZ means unknown
			"8.8.8.8",      // a registered country is not a location
			"2600:1f00::1", // no country at all
			"2.16.93.0",    // not in the database
			"2a03::1",      // not in the database
			"127.0.0.1",    // reserved, excluded by the writer
			"::1",          // reserved
		),
		Failing: addrs("6.6.6.6", "2a01:4f8::1"), // records that cannot be decoded
	})
	// Names outside the ISO table come from the database.
	if loc, err := r.Locate(context.Background(), netip.MustParseAddr("5.35.1.1")); err != nil || loc.CountryName != "Kosovo" {
		t.Errorf("Locate(5.35.1.1) = %+v, %v; want Kosovo", loc, err)
	}
	check(t, r, []lookup{{"2a02:1210::1%eth0", switzerland}})
}

func TestFlatShapes(t *testing.T) {
	path := mmdbtest.Write(t, mmdbwriter.Options{DatabaseType: "ip-location-db-country"}, map[string]mmdbtype.DataType{
		// ip-location-db
		"2.16.92.0/24":   mmdbtype.Map{"country_code": mmdbtype.String("CH")},
		"2a02:1210::/32": mmdbtype.Map{"country_code": mmdbtype.String("CH")},
		"9.9.9.0/24":     mmdbtype.Map{"country_code": mmdbtype.String("ZZ")},
		"1.1.1.0/24":     mmdbtype.Map{"country_code": mmdbtype.String("")},
		// ipinfo lite: "country" is the name beside "country_code"
		"2.16.8.0/24": mmdbtype.Map{"country_code": mmdbtype.String("ES"), "country": mmdbtype.String("Spain")},
		"5.35.0.0/16": mmdbtype.Map{"country_code": mmdbtype.String("XK"), "country": mmdbtype.String("Kosovo")},
		// legacy flat: "country" is the code
		"2.17.0.0/16": mmdbtype.Map{"country": mmdbtype.String("de")},
		// code that is not alpha-2
		"2.18.0.0/16": mmdbtype.Map{"country_code": mmdbtype.String("CHE")},
	})
	check(t, open(t, path), []lookup{
		{"2.16.92.10", switzerland},
		{"2a02:1210::10", switzerland},
		{"2.16.8.10", spain},
		{"5.35.0.1", domain.Location{CountryCode: "XK", CountryName: "Kosovo"}},
		{"2.17.1.1", domain.LocationIn("DE")},
		{"9.9.9.9", domain.UnknownLocation},
		{"1.1.1.1", domain.UnknownLocation},
		{"2.18.0.1", domain.UnknownLocation},
	})
}

func TestIPv4OnlyDatabase(t *testing.T) {
	path := mmdbtest.Write(t, mmdbwriter.Options{IPVersion: 4, RecordSize: 24}, map[string]mmdbtype.DataType{
		"2.16.92.0/24": mmdbtype.Map{"country_code": mmdbtype.String("CH")},
	})
	check(t, open(t, path), []lookup{
		{"2.16.92.1", switzerland},
		{"::ffff:2.16.92.1", switzerland},
		{"2a02:1210::1", domain.UnknownLocation}, // an IPv4 database cannot place IPv6
	})
}

func TestWriteCountryDBPlacesLoopback(t *testing.T) {
	path := mmdbtest.WriteCountryDB(t, map[string]string{"127.0.0.0/8": "CH", "::1/128": "CH", "2.16.8.0/24": "ES"})
	check(t, open(t, path), []lookup{
		{"127.0.0.1", switzerland},
		{"::1", switzerland},
		{"2.16.8.0", spain},
	})
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte("this is not a MaxMind database"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, path, want string }{
		{"empty path", "", "no database path"},
		{"blank path", "  ", "no database path"},
		{"missing file", filepath.Join(dir, "absent.mmdb"), "absent.mmdb"},
		{"not a database", garbage, "garbage.mmdb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := mmdbgeo.Open(tc.path)
			if err == nil {
				r.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestClosedDatabaseIsAFailure(t *testing.T) {
	path := mmdbtest.WriteCountryDB(t, map[string]string{"2.16.92.0/24": "CH"})
	r, err := mmdbgeo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = r.Locate(context.Background(), netip.MustParseAddr("2.16.92.1"))
	var ue *domain.UnavailableError
	if !errors.As(err, &ue) || ue.Dependency != domain.DependencyGeolocation {
		t.Fatalf("Locate on a closed database = %v, want a geolocation UnavailableError", err)
	}
}

func TestSplitFiles(t *testing.T) {
	// ip-location-db publishes one file per address family.
	v4 := mmdbtest.Write(t, mmdbwriter.Options{IPVersion: 4, RecordSize: 24, DatabaseType: "v4"}, map[string]mmdbtype.DataType{
		"2.16.92.0/24": mmdbtype.Map{"country_code": mmdbtype.String("CH")},
		"2.16.8.0/24":  mmdbtype.Map{"country_code": mmdbtype.String("ES")},
	})
	v6 := mmdbtest.Write(t, mmdbwriter.Options{DatabaseType: "v6"}, map[string]mmdbtype.DataType{
		"2a02:1210::/32": mmdbtype.Map{"country_code": mmdbtype.String("CH")},
		"2.16.8.0/24":    mmdbtype.Map{"country_code": mmdbtype.String("FR")}, // disagrees with the first file
	})
	r := open(t, v4, "", v6)
	if r.DatabaseType() != "v4, v6" {
		t.Fatalf("DatabaseType = %q, want both files", r.DatabaseType())
	}
	check(t, r, []lookup{
		{"2.16.92.1", switzerland},
		{"2a02:1210::1", switzerland},
		{"2.16.8.1", spain}, // the first file with a country wins
		{"8.8.8.8", domain.UnknownLocation},
		{"2001:4860::1", domain.UnknownLocation},
	})
}

func TestOpenFailsWhenAnyFileFails(t *testing.T) {
	good := mmdbtest.WriteCountryDB(t, map[string]string{"2.16.92.0/24": "CH"})
	r, err := mmdbgeo.Open(good, filepath.Join(t.TempDir(), "absent.mmdb"))
	if err == nil {
		r.Close()
		t.Fatal("Open succeeded with a missing second file")
	}
	if !strings.Contains(err.Error(), "absent.mmdb") {
		t.Fatalf("error %q does not name the missing file", err)
	}
}
