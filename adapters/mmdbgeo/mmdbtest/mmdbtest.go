// Package mmdbtest writes small MaxMind DB files for tests, so no real
// geolocation database has to be shipped or downloaded.
package mmdbtest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/marketplace/usersvc/domain"
)

// Write builds a database from CIDR networks and their records and returns
// its path inside tb.TempDir(). opts.DatabaseType defaults to
// "Test-Country". Any error fails the test.
func Write(tb testing.TB, opts mmdbwriter.Options, records map[string]mmdbtype.DataType) string {
	tb.Helper()
	if opts.DatabaseType == "" {
		opts.DatabaseType = "Test-Country"
	}
	tree, err := mmdbwriter.New(opts)
	if err != nil {
		tb.Fatalf("mmdbtest: new tree: %v", err)
	}
	for cidr, rec := range records {
		_, network, err := net.ParseCIDR(cidr)
		if err != nil {
			tb.Fatalf("mmdbtest: network %q: %v", cidr, err)
		}
		if err := tree.Insert(network, rec); err != nil {
			tb.Fatalf("mmdbtest: insert %s: %v", cidr, err)
		}
	}
	path := filepath.Join(tb.TempDir(), opts.DatabaseType+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatalf("mmdbtest: %v", err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		tb.Fatalf("mmdbtest: write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		tb.Fatalf("mmdbtest: close %s: %v", path, err)
	}
	return path
}

// CountryRecord is a record in the GeoLite2-Country / DB-IP shape:
// {"country": {"iso_code": code, "names": {"en": name}}}. The name is the
// domain table's when name is empty.
func CountryRecord(code, name string) mmdbtype.Map {
	if name == "" {
		name, _ = domain.CountryName(code)
	}
	return mmdbtype.Map{
		"continent": mmdbtype.Map{"code": mmdbtype.String("EU")},
		"country": mmdbtype.Map{
			"iso_code": mmdbtype.String(code),
			"names":    mmdbtype.Map{"en": mmdbtype.String(name)},
		},
	}
}

// WriteCountryDB writes a GeoLite2-Country-shaped IPv6 database mapping
// each CIDR network to an ISO 3166-1 alpha-2 code, e.g.
// {"2.16.92.0/24": "CH", "2a02:1210::/32": "CH"}. Reserved networks such as
// 127.0.0.0/8 are allowed, so tests may place loopback addresses.
func WriteCountryDB(tb testing.TB, networks map[string]string) string {
	tb.Helper()
	records := make(map[string]mmdbtype.DataType, len(networks))
	for cidr, code := range networks {
		records[cidr] = CountryRecord(code, "")
	}
	return Write(tb, mmdbwriter.Options{
		DatabaseType:            "GeoLite2-Country",
		IncludeReservedNetworks: true,
	}, records)
}
