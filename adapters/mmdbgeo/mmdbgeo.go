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

// Reader is a ports.Geolocator over an opened database. Lookups are safe
// for concurrent use; Close must wait until no lookup is running.
type Reader struct {
	db   *maxminddb.Reader
	ipv6 bool // the database has an IPv6 tree (and IPv4 inside it)
}

// Open opens and memory-maps the database at path.
func Open(path string) (*Reader, error) {
	if strings.TrimSpace(path) == "" {
		return nil, errors.New("mmdb geolocation: no database path")
	}
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open geolocation database %s: %w", path, err)
	}
	switch db.Metadata.IPVersion {
	case 4, 6:
	default:
		db.Close()
		return nil, fmt.Errorf("open geolocation database %s: unsupported ip_version %d", path, db.Metadata.IPVersion)
	}
	return &Reader{db: db, ipv6: db.Metadata.IPVersion == 6}, nil
}

// DatabaseType is the type the file declares, e.g. "GeoLite2-Country".
func (r *Reader) DatabaseType() string { return r.db.Metadata.DatabaseType }

// Close unmaps the database.
func (r *Reader) Close() error { return r.db.Close() }

// record holds the fields of both shapes. Country is a map in MaxMind's
// shape and a string in some flat ones, hence any.
type record struct {
	Country     any    `maxminddb:"country"`
	CountryCode string `maxminddb:"country_code"`
	CountryName string `maxminddb:"country_name"`
}

// Locate returns the country of ip, domain.UnknownLocation when the
// database has no country for it, and an error only when the database
// cannot be read.
func (r *Reader) Locate(_ context.Context, ip netip.Addr) (domain.Location, error) {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() || (ip.Is6() && !r.ipv6) {
		// An IPv4-only database knows nothing about IPv6 addresses.
		return domain.UnknownLocation, nil
	}
	res := r.db.Lookup(ip)
	if !res.Found() {
		if err := res.Err(); err != nil {
			return domain.UnknownLocation, domain.Unavailable(domain.DependencyGeolocation,
				fmt.Errorf("mmdb: locate %s: %w", ip, err))
		}
		return domain.UnknownLocation, nil
	}
	var rec record
	if err := res.Decode(&rec); err != nil {
		return domain.UnknownLocation, domain.Unavailable(domain.DependencyGeolocation,
			fmt.Errorf("mmdb: decode record of %s: %w", ip, err))
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
