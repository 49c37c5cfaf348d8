package domain

import (
	"fmt"
	"strings"
)

// Location is where a client address is. An empty CountryCode means the
// provider answered but could not place the address (reserved, private or
// unknown): that is a valid answer, distinct from a provider failure.
type Location struct {
	CountryCode string // ISO 3166-1 alpha-2, upper case
	CountryName string
}

// Known reports whether the address was placed in a country.
func (l Location) Known() bool { return l.CountryCode != "" }

// UnknownLocation is the answer for addresses no provider can place.
var UnknownLocation = Location{}

// LocationIn builds a Location from an alpha-2 code, naming it from the
// built-in ISO 3166-1 table (the code itself when the table lacks it).
func LocationIn(code string) Location {
	code = strings.ToUpper(strings.TrimSpace(code))
	if code == "" {
		return UnknownLocation
	}
	name, ok := CountryName(code)
	if !ok {
		name = code
	}
	return Location{CountryCode: code, CountryName: name}
}

// CountryName returns the English short name of an ISO 3166-1 alpha-2 code.
func CountryName(code string) (string, bool) {
	name, ok := countryNames[strings.ToUpper(code)]
	return name, ok
}

// CountryPolicy is the set of countries from which users may be created.
type CountryPolicy struct {
	allowed map[string]struct{}
	names   string // allowed countries' names joined by ", ", for messages
}

// NewCountryPolicy builds a policy from ISO 3166-1 alpha-2 codes; an
// unknown code or an empty list is an error.
func NewCountryPolicy(codes []string) (CountryPolicy, error) {
	p := CountryPolicy{allowed: make(map[string]struct{}, len(codes))}
	var names []string
	for _, c := range codes {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		name, ok := CountryName(c)
		if !ok {
			return CountryPolicy{}, fmt.Errorf("unknown ISO 3166-1 alpha-2 country code %q", c)
		}
		if _, dup := p.allowed[c]; dup {
			continue
		}
		p.allowed[c] = struct{}{}
		names = append(names, name)
	}
	if len(p.allowed) == 0 {
		return CountryPolicy{}, fmt.Errorf("the list of allowed countries is empty")
	}
	p.names = strings.Join(names, ", ")
	return p, nil
}

// Check returns nil when loc is an allowed country, else a
// *CountryNotAllowedError.
func (p CountryPolicy) Check(loc Location) error {
	if _, ok := p.allowed[loc.CountryCode]; ok && loc.Known() {
		return nil
	}
	return &CountryNotAllowedError{Location: loc, Allowed: p.names}
}

// CountryNotAllowedError refuses a creation from outside the allowed countries.
type CountryNotAllowedError struct {
	Location Location
	Allowed  string // names of the allowed countries, joined by ", "
}

func (e *CountryNotAllowedError) Error() string {
	where := "location unknown"
	if e.Location.Known() {
		where = "in " + e.Location.CountryName
	}
	return fmt.Sprintf("Only users located in %s can be created (remote address %s)", e.Allowed, where)
}
