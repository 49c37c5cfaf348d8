// Package mmdbgeo places client addresses with a local MaxMind DB format
// country database (GEO_PROVIDER=mmdb, GEOIP_DB_PATH): MaxMind GeoLite2 or
// GeoIP2 Country, DB-IP Lite Country, or an ip-location-db country file. It
// makes no network call and has no rate limit.
//
// Two record shapes are read:
//   - MaxMind / DB-IP: {"country": {"iso_code": "CH", "names": {"en": ...}}, ...}
//   - flat files (ip-location-db, ipinfo lite): {"country_code": "CH"}, and
//     {"country": "CH"} when "country" is itself a two-letter code.
//
// Sets split by address family (ip-location-db's *-ipv4.mmdb and
// *-ipv6.mmdb) are opened together; see Open.
//
// Only the country where the address is used, never "registered_country"
// (where its owner registered it): the policy is about location.
package mmdbgeo

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/wire"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// ProviderSet binds an opened *Reader to the port. The service selects its
// geolocator through adapters/geoprovider instead.
var ProviderSet = wire.NewSet(wire.Bind(new(ports.Geolocator), new(*Reader)))

var _ ports.Geolocator = (*Reader)(nil)

// Reader is a ports.Geolocator over one or more opened databases. Lookups
// are safe for concurrent use; Close must wait until no lookup is running.
type Reader struct {
	dbs []database
}

type database struct {
	path string
	db   *maxminddb.Reader
	ipv6 bool // the file has an IPv6 tree (and IPv4 inside it)
}

// Open opens and memory-maps the databases at paths. Several files are for
// sets split by address family, such as ip-location-db's
// *-country-ipv4.mmdb and *-country-ipv6.mmdb: an address takes the first
// country any of them gives.
func Open(paths ...string) (*Reader, error) {
	r := &Reader{}
	for _, path := range paths {
		if strings.TrimSpace(path) == "" {
			continue
		}
		db, err := maxminddb.Open(path)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("open geolocation database %s: %w", path, err)
		}
		if v := db.Metadata.IPVersion; v != 4 && v != 6 {
			db.Close()
			r.Close()
			return nil, fmt.Errorf("open geolocation database %s: unsupported ip_version %d", path, v)
		}
		r.dbs = append(r.dbs, database{path: path, db: db, ipv6: db.Metadata.IPVersion == 6})
	}
	if len(r.dbs) == 0 {
		return nil, errors.New("mmdb geolocation: no database path")
	}
	return r, nil
}

// DatabaseType names the types the files declare, e.g. "GeoLite2-Country",
// joined by ", ".
func (r *Reader) DatabaseType() string {
	types := make([]string, len(r.dbs))
	for i, d := range r.dbs {
		types[i] = d.db.Metadata.DatabaseType
	}
	return strings.Join(types, ", ")
}

// Close unmaps the databases.
func (r *Reader) Close() error {
	var errs []error
	for _, d := range r.dbs {
		if err := d.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", d.path, err))
		}
	}
	return errors.Join(errs...)
}

// record holds the fields of both shapes. Country is a map in MaxMind's
// shape and a string in some flat ones, hence any.
type record struct {
	Country     any    `maxminddb:"country"`
	CountryCode string `maxminddb:"country_code"`
	CountryName string `maxminddb:"country_name"`
}

// Locate returns the country of ip, domain.UnknownLocation when no
// database has a country for it, and an error only when a database cannot
// be read.
func (r *Reader) Locate(_ context.Context, ip netip.Addr) (domain.Location, error) {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return domain.UnknownLocation, nil
	}
	for _, d := range r.dbs {
		loc, err := d.locate(ip)
		if err != nil {
			return domain.UnknownLocation, domain.Unavailable(domain.DependencyGeolocation,
				fmt.Errorf("mmdb: locate an address in %s: %w", d.path, err))
		}
		if loc.Known() {
			return loc, nil
		}
	}
	return domain.UnknownLocation, nil
}

func (d database) locate(ip netip.Addr) (domain.Location, error) {
	if ip.Is6() && !d.ipv6 {
		return domain.UnknownLocation, nil // an IPv4 file knows no IPv6 address
	}
	res := d.db.Lookup(ip)
	if !res.Found() {
		return domain.UnknownLocation, res.Err()
	}
	var rec record
	if err := res.Decode(&rec); err != nil {
		return domain.UnknownLocation, fmt.Errorf("decode record: %w", err)
	}
	return rec.location(), nil
}

// location interprets a record; a missing or unusable code is unknown.
func (rec record) location() domain.Location {
	code, name := rec.CountryCode, rec.CountryName
	switch c := rec.Country.(type) {
	case map[string]any:
		if s, ok := c["iso_code"].(string); ok && code == "" {
			code = s
		}
		if names, ok := c["names"].(map[string]any); ok && name == "" {
			name, _ = names["en"].(string)
		}
	case string:
		if code == "" && len(strings.TrimSpace(c)) == 2 {
			code = c
		} else if name == "" {
			name = c // ipinfo lite: "country" is the name next to "country_code"
		}
	}
	code = strings.ToUpper(strings.TrimSpace(code))
	// ZZ is the user-assigned code several databases use for "unknown".
	if !isAlpha2(code) || code == "ZZ" {
		return domain.UnknownLocation
	}
	loc := domain.LocationIn(code)
	// Names come from the domain's ISO table; a code outside it (XK for
	// Kosovo) takes the database's English name when there is one.
	if _, known := domain.CountryName(code); !known && strings.TrimSpace(name) != "" {
		loc.CountryName = strings.TrimSpace(name)
	}
	return loc
}

func isAlpha2(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}
