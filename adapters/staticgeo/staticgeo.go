// Package staticgeo is a geolocator backed by a fixed table of networks, for
// development and tests (GEO_PROVIDER=static). It never touches the network.
package staticgeo

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/wire"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// ProviderSet binds the static geolocator to the port. The composition root
// supplies the parsed *Geolocator (see Parse).
var ProviderSet = wire.NewSet(wire.Bind(new(ports.Geolocator), new(*Geolocator)))

var _ ports.Geolocator = (*Geolocator)(nil)

type entry struct {
	prefix netip.Prefix
	loc    domain.Location
}

// Geolocator places addresses by the longest matching configured prefix.
// It is immutable after construction and safe for concurrent use.
type Geolocator struct {
	entries []entry // sorted longest prefix first, so the first match wins
}

// Parse reads a list such as "127.0.0.0/8=CH,::1/128=CH": comma-separated
// CIDR=CC pairs, where CC is an ISO 3166-1 alpha-2 code known to the
// domain's table. A bare address stands for a single-host prefix. Blank
// items are ignored; an empty list, a malformed item, an unknown country or
// one prefix given two different countries is an error.
func Parse(spec string) (*Geolocator, error) {
	entries := make(map[netip.Prefix]string)
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		cidr, code, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("static geolocation entry %q: want CIDR=CC", item)
		}
		prefix, err := parsePrefix(strings.TrimSpace(cidr))
		if err != nil {
			return nil, fmt.Errorf("static geolocation entry %q: %w", item, err)
		}
		code = strings.ToUpper(strings.TrimSpace(code))
		if prev, dup := entries[prefix]; dup && prev != code {
			return nil, fmt.Errorf("static geolocation entry %q: network %s is already mapped to %s", item, prefix, prev)
		}
		entries[prefix] = code
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("static geolocation list is empty: want CIDR=CC[,CIDR=CC...]")
	}
	return New(entries)
}

// New builds a geolocator from prefixes mapped to ISO 3166-1 alpha-2 codes.
// Prefixes are normalised (masked, IPv4-mapped IPv6 turned into IPv4); an
// invalid prefix or a code missing from the domain's table is an error.
func New(entries map[netip.Prefix]string) (*Geolocator, error) {
	g := &Geolocator{entries: make([]entry, 0, len(entries))}
	seen := make(map[netip.Prefix]string, len(entries))
	for p, code := range entries {
		if !p.IsValid() {
			return nil, fmt.Errorf("invalid network prefix %v", p)
		}
		p = normalise(p)
		code = strings.ToUpper(strings.TrimSpace(code))
		if _, ok := domain.CountryName(code); !ok {
			return nil, fmt.Errorf("network %s: unknown ISO 3166-1 alpha-2 country code %q", p, code)
		}
		// Two spellings of one network (e.g. 10.0.0.1/8 and 10.0.0.0/8)
		// collapse here; they must agree.
		if prev, dup := seen[p]; dup {
			if prev != code {
				return nil, fmt.Errorf("network %s is mapped to both %s and %s", p, prev, code)
			}
			continue
		}
		seen[p] = code
		g.entries = append(g.entries, entry{prefix: p, loc: domain.LocationIn(code)})
	}
	sort.Slice(g.entries, func(i, j int) bool {
		a, b := g.entries[i].prefix, g.entries[j].prefix
		if a.Bits() != b.Bits() {
			return a.Bits() > b.Bits()
		}
		return a.Addr().Less(b.Addr()) // deterministic order only
	})
	return g, nil
}

// Locate returns the location of the longest configured prefix containing
// ip, or domain.UnknownLocation. It never fails.
func (g *Geolocator) Locate(_ context.Context, ip netip.Addr) (domain.Location, error) {
	ip = ip.Unmap().WithZone("")
	for _, e := range g.entries {
		if e.prefix.Contains(ip) {
			return e.loc, nil
		}
	}
	return domain.UnknownLocation, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	return netip.ParsePrefix(s)
}

// normalise masks the prefix and rewrites ::ffff:a.b.c.d/n (n >= 96) as the
// IPv4 prefix it denotes, since lookups unmap addresses first.
func normalise(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked()
}
