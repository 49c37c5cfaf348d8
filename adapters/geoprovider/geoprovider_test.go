package geoprovider

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/geocache"
	"github.com/marketplace/usersvc/adapters/mmdbgeo/mmdbtest"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

func TestValidate(t *testing.T) {
	db := mmdbtest.WriteCountryDB(t, map[string]string{"2.16.92.0/24": "CH"})
	dir := t.TempDir()
	valid := []struct {
		name string
		cfg  Config
	}{
		{"zero value is ipapi with defaults", Config{}},
		{"defaults", DefaultConfig()},
		{"ipapi with key and local base", Config{Provider: "ipapi", IPAPIBaseURL: "http://127.0.0.1:9999", IPAPIKey: "k"}},
		{"provider name is case-insensitive", Config{Provider: " IPAPI "}},
		{"mmdb", Config{Provider: "mmdb", DBPath: db}},
		{"mmdb split files", Config{Provider: "mmdb", DBPath: db + " , " + db}},
		{"static", Config{Provider: "static", Static: "127.0.0.0/8=CH,::1/128=CH"}},
		{"other providers' settings are ignored", Config{Provider: "static", Static: "::1/128=CH", IPAPIBaseURL: "nope", DBPath: "/absent"}},
		{"largest values", Config{Timeout: MaxTimeout, CacheSize: MaxCacheSize, CacheTTL: 365 * 24 * time.Hour}},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}

	invalid := []struct {
		name string
		cfg  Config
		want []string // every fragment must appear
	}{
		{"unknown provider", Config{Provider: "maxmind"}, []string{"GEO_PROVIDER", `"maxmind"`, "ipapi, mmdb or static"}},
		{"ipapi base URL without scheme", Config{IPAPIBaseURL: "ipapi.co"}, []string{"IPAPI_BASE_URL"}},
		{"ipapi base URL with a query", Config{IPAPIBaseURL: "https://ipapi.co/?key=secret"}, []string{"IPAPI_BASE_URL", "query"}},
		{"ipapi key with spaces", Config{IPAPIKey: "a b"}, []string{"IPAPI_KEY"}},
		{"mmdb without path", Config{Provider: "mmdb"}, []string{"GEOIP_DB_PATH", "required when GEO_PROVIDER=mmdb"}},
		{"mmdb missing file", Config{Provider: "mmdb", DBPath: dir + "/absent.mmdb"}, []string{"GEOIP_DB_PATH", "absent.mmdb"}},
		{"mmdb missing second file", Config{Provider: "mmdb", DBPath: db + "," + dir + "/v6.mmdb"}, []string{"GEOIP_DB_PATH", "v6.mmdb"}},
		{"mmdb only commas", Config{Provider: "mmdb", DBPath: " , "}, []string{"GEOIP_DB_PATH", "required"}},
		{"mmdb path is a directory", Config{Provider: "mmdb", DBPath: dir}, []string{"GEOIP_DB_PATH", "not a regular file"}},
		{"static without list", Config{Provider: "static"}, []string{"GEO_STATIC", "required when GEO_PROVIDER=static"}},
		{"static unknown country", Config{Provider: "static", Static: "127.0.0.0/8=XX"}, []string{"GEO_STATIC", `"XX"`}},
		{"static bad CIDR", Config{Provider: "static", Static: "127.0.0.0/40=CH"}, []string{"GEO_STATIC", "127.0.0.0/40"}},
		{"negative timeout", Config{Timeout: -time.Second}, []string{"GEO_TIMEOUT"}},
		{"timeout too long", Config{Timeout: 2 * time.Minute}, []string{"GEO_TIMEOUT", "at most 1m0s"}},
		{"negative cache size", Config{CacheSize: -1}, []string{"GEO_CACHE_SIZE"}},
		{"cache too large", Config{CacheSize: MaxCacheSize + 1}, []string{"GEO_CACHE_SIZE"}},
		{"negative cache TTL", Config{CacheTTL: -time.Hour}, []string{"GEO_CACHE_TTL"}},
		{"every problem at once", Config{Provider: "mmdb", Timeout: -1, CacheSize: -1, CacheTTL: -1},
			[]string{"GEOIP_DB_PATH", "GEO_TIMEOUT", "GEO_CACHE_SIZE", "GEO_CACHE_TTL"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted an invalid configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q leaks a query value", err)
			}
		})
	}
}

func locate(t *testing.T, g ports.Geolocator, ip string) (domain.Location, error) {
	t.Helper()
	return g.Locate(context.Background(), netip.MustParseAddr(ip))
}

func TestProvideStatic(t *testing.T) {
	obs := geocache.NewCounters()
	g, cleanup, err := Provide(Config{Provider: "static", Static: "127.0.0.0/8=CH,::1/128=CH"}, obs)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	for _, tc := range []struct {
		ip   string
		want domain.Location
	}{
		{"127.0.0.1", domain.LocationIn("CH")},
		{"127.0.0.1", domain.LocationIn("CH")},
		{"::1", domain.LocationIn("CH")},
		{"192.0.2.1", domain.UnknownLocation},
	} {
		got, err := locate(t, g, tc.ip)
		if err != nil || got != tc.want {
			t.Fatalf("Locate(%s) = %+v, %v; want %+v", tc.ip, got, err, tc.want)
		}
	}
	if obs.Hits() != 1 || obs.Misses() != 3 {
		t.Fatalf("hits=%d misses=%d, want 1 and 3: the static provider is cached", obs.Hits(), obs.Misses())
	}
	if n := obs.Lookups()[geocache.LookupKey{Provider: "static", Outcome: geocache.OutcomeLocated}].Count; n != 2 {
		t.Fatalf("static/located lookups = %d, want 2", n)
	}
}

func TestProvideMMDB(t *testing.T) {
	db := mmdbtest.WriteCountryDB(t, map[string]string{"2.16.92.0/24": "CH", "2a02:1210::/32": "CH", "2.16.8.0/24": "ES"})
	g, cleanup, err := Provide(Config{Provider: "mmdb", DBPath: db}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]domain.Location{
		"2.16.92.1":     domain.LocationIn("CH"),
		"2a02:1210::42": domain.LocationIn("CH"),
		"2.16.8.1":      domain.LocationIn("ES"),
		"8.8.8.8":       domain.UnknownLocation,
	} {
		got, err := locate(t, g, ip)
		if err != nil || got != want {
			t.Fatalf("Locate(%s) = %+v, %v; want %+v", ip, got, err, want)
		}
	}
	cleanup()
	// After cleanup the file is closed: an uncached address is a failure.
	if _, err := locate(t, g, "2.16.92.200"); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Locate after cleanup: %v, want unavailable", err)
	}
}

func TestProvideIPAPI(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Query().Get("key") != "k3y" {
			t.Errorf("key parameter %q, want k3y", r.URL.Query().Get("key"))
		}
		switch r.URL.Path {
		case "/2.16.92.0/json/":
			_, _ = w.Write([]byte(`{"ip":"2.16.92.0","country_code":"CH","country_name":"Switzerland"}`))
		case "/2.16.8.0/json/":
			time.Sleep(300 * time.Millisecond) // beyond GEO_TIMEOUT
			_, _ = w.Write([]byte(`{"ip":"2.16.8.0","country_code":"ES","country_name":"Spain"}`))
		default:
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	obs := geocache.NewCounters()
	g, cleanup, err := Provide(Config{IPAPIBaseURL: srv.URL, IPAPIKey: "k3y", Timeout: 100 * time.Millisecond}, obs)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()

	for range 3 {
		got, err := locate(t, g, "2.16.92.0")
		if err != nil || got != domain.LocationIn("CH") {
			t.Fatalf("Locate = %+v, %v; want Switzerland", got, err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("ipapi saw %d requests for three lookups of one address, want 1", n)
	}
	if _, err := locate(t, g, "2.16.8.0"); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("slow answer: %v, want an unavailable timeout (GEO_TIMEOUT applied)", err)
	}
	if _, err := locate(t, g, "9.9.9.9"); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("429: %v, want unavailable", err)
	}
	if _, err := locate(t, g, "9.9.9.9"); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("429 again: %v, want unavailable", err)
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("ipapi saw %d requests, want 4 (failures are retried, not cached)", n)
	}
	if n := obs.Lookups()[geocache.LookupKey{Provider: "ipapi", Outcome: geocache.OutcomeError}].Count; n != 3 {
		t.Fatalf("ipapi/error lookups = %d, want 3", n)
	}
}

func TestProvideRejectsInvalidConfig(t *testing.T) {
	g, cleanup, err := Provide(Config{Provider: "static", Static: "nonsense"}, nil)
	if err == nil || g != nil || cleanup != nil {
		t.Fatalf("Provide = %v, cleanup set %v, %v; want only an error", g, cleanup != nil, err)
	}
	if !strings.Contains(err.Error(), "GEO_STATIC") {
		t.Fatalf("error %q does not name GEO_STATIC", err)
	}
}
