package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestCountryTable(t *testing.T) {
	// ISO 3166-1 has 249 officially assigned alpha-2 codes.
	if got := len(countryNames); got != 249 {
		t.Fatalf("table has %d codes, want 249", got)
	}
	names := make(map[string]string, len(countryNames))
	for code, name := range countryNames {
		if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
			t.Errorf("code %q is not two upper-case letters", code)
		}
		if strings.TrimSpace(name) != name || name == "" {
			t.Errorf("code %s has a blank or padded name %q", code, name)
		}
		if other, dup := names[name]; dup {
			t.Errorf("name %q is used by both %s and %s", name, other, code)
		}
		names[name] = code
	}
}

func TestCountryName(t *testing.T) {
	cases := []struct {
		code, want string
		ok         bool
	}{
		{"CH", "Switzerland", true},
		{"ch", "Switzerland", true},
		{"US", "United States", true},
		{"GB", "United Kingdom", true},
		{"FR", "France", true},
		{"LI", "Liechtenstein", true},
		{"AX", "Åland Islands", true},
		{"UK", "", false}, // reserved, not assigned
		{"XK", "", false}, // user-assigned (Kosovo), not in ISO 3166-1
		{"EU", "", false},
		{"", "", false},
		{"CHE", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			got, ok := CountryName(tc.code)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("CountryName(%q) = %q, %v; want %q, %v", tc.code, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestLocationIn(t *testing.T) {
	cases := []struct {
		name, code string
		want       Location
	}{
		{"known", "CH", Location{CountryCode: "CH", CountryName: "Switzerland"}},
		{"lower case and spaces", " es ", Location{CountryCode: "ES", CountryName: "Spain"}},
		{"outside the table keeps the code", "XK", Location{CountryCode: "XK", CountryName: "XK"}},
		{"empty is unknown", "", UnknownLocation},
		{"blank is unknown", "  ", UnknownLocation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := LocationIn(tc.code)
			if got != tc.want {
				t.Fatalf("LocationIn(%q) = %+v, want %+v", tc.code, got, tc.want)
			}
			if got.Known() != (tc.want != UnknownLocation) {
				t.Fatalf("Known() = %v for %+v", got.Known(), got)
			}
		})
	}
}

func TestNewCountryPolicyErrors(t *testing.T) {
	cases := []struct {
		name  string
		codes []string
		want  string
	}{
		{"unknown code", []string{"CH", "XX"}, `unknown ISO 3166-1 alpha-2 country code "XX"`},
		{"alpha-3 code", []string{"CHE"}, `"CHE"`},
		{"empty list", nil, "empty"},
		{"only blanks", []string{" ", ""}, "empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCountryPolicy(tc.codes)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewCountryPolicy(%q) error = %v, want one mentioning %q", tc.codes, err, tc.want)
			}
		})
	}
}

func TestCountryPolicyCheck(t *testing.T) {
	swiss, err := NewCountryPolicy([]string{"CH"})
	if err != nil {
		t.Fatal(err)
	}
	alpine, err := NewCountryPolicy([]string{"ch", " LI", "AT", "CH"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		policy  CountryPolicy
		loc     Location
		wantMsg string // "" means allowed
	}{
		{"Swiss address allowed", swiss, LocationIn("CH"), ""},
		{"French address refused", swiss, LocationIn("FR"),
			"Only users located in Switzerland can be created (remote address in France)"},
		{"unknown location refused", swiss, UnknownLocation,
			"Only users located in Switzerland can be created (remote address location unknown)"},
		{"several allowed, one matches", alpine, LocationIn("LI"), ""},
		{"several allowed joined in order, duplicates dropped", alpine, LocationIn("US"),
			"Only users located in Switzerland, Liechtenstein, Austria can be created (remote address in United States)"},
		{"code outside the table refused", swiss, LocationIn("XK"),
			"Only users located in Switzerland can be created (remote address in XK)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Check(tc.loc)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("Check(%+v) = %v, want nil", tc.loc, err)
				}
				return
			}
			var refused *CountryNotAllowedError
			if !errors.As(err, &refused) {
				t.Fatalf("Check(%+v) = %v, want a *CountryNotAllowedError", tc.loc, err)
			}
			if refused.Location != tc.loc {
				t.Fatalf("error carries %+v, want %+v", refused.Location, tc.loc)
			}
			if err.Error() != tc.wantMsg {
				t.Fatalf("message %q, want %q", err.Error(), tc.wantMsg)
			}
		})
	}
}
