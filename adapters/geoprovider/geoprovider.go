// Package geoprovider is the one place that turns configuration into the
// service's geolocator: it selects the provider (ipapi.co, a local MaxMind
// DB file, or a static table) and wraps it in the per-address cache.
package geoprovider

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/wire"
	"go.opentelemetry.io/otel/trace"

	"github.com/marketplace/usersvc/adapters/geocache"
	"github.com/marketplace/usersvc/adapters/ipapi"
	"github.com/marketplace/usersvc/adapters/mmdbgeo"
	"github.com/marketplace/usersvc/adapters/staticgeo"
	"github.com/marketplace/usersvc/ports"
)

// ProviderSet provides ports.Geolocator from a Config and a
// geocache.Observer (geocache.ProviderSet supplies in-memory counters).
var ProviderSet = wire.NewSet(Provide)

// Provider names accepted in GEO_PROVIDER.
const (
	ProviderIPAPI  = "ipapi"
	ProviderMMDB   = "mmdb"
	ProviderStatic = "static"
)

// Limits of the settings.
const (
	MaxTimeout   = time.Minute
	MaxCacheSize = 10_000_000
)

// Config is the geolocation part of the service's configuration; each
// field documents its environment variable. Zero values take the defaults
// of DefaultConfig.
type Config struct {
	Provider     string        // GEO_PROVIDER: ipapi (default), mmdb or static
	IPAPIBaseURL string        // IPAPI_BASE_URL, default https://ipapi.co
	IPAPIKey     string        // IPAPI_KEY, optional; never logged
	Timeout      time.Duration // GEO_TIMEOUT, per provider call, default 2s
	DBPath       string        // GEOIP_DB_PATH, required for mmdb; comma-separated for split files
	Static       string        // GEO_STATIC, required for static: "CIDR=CC,..."
	CacheSize    int           // GEO_CACHE_SIZE, entries, default 10000
	CacheTTL     time.Duration // GEO_CACHE_TTL, default 24h
	// Tracing, when set, makes each ipapi.co request a client span.
	Tracing trace.TracerProvider
}

// DefaultConfig returns the defaults, for --help and for filling in unset
// variables.
func DefaultConfig() Config {
	return Config{
		Provider:     ProviderIPAPI,
		IPAPIBaseURL: ipapi.DefaultBaseURL,
		Timeout:      ipapi.DefaultTimeout,
		CacheSize:    geocache.DefaultSize,
		CacheTTL:     geocache.DefaultTTL,
	}
}

// withDefaults fills zero values from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Provider = strings.ToLower(strings.TrimSpace(c.Provider))
	if c.Provider == "" {
		c.Provider = d.Provider
	}
	if c.IPAPIBaseURL == "" {
		c.IPAPIBaseURL = d.IPAPIBaseURL
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.CacheSize == 0 {
		c.CacheSize = d.CacheSize
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = d.CacheTTL
	}
	return c
}

// Validate reports every invalid setting at once, each message naming its
// environment variable. Settings of providers other than the selected one
// are not checked. It reads the file system (GEOIP_DB_PATH) but makes no
// network call.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf(env+": "+format, args...))
	}
	switch c.Provider {
	case ProviderIPAPI:
		if _, err := ipapi.New(ipapi.Config{BaseURL: c.IPAPIBaseURL}); err != nil {
			bad("IPAPI_BASE_URL", "%v", err)
		}
		if _, err := ipapi.New(ipapi.Config{APIKey: c.IPAPIKey}); err != nil {
			bad("IPAPI_KEY", "%v", err)
		}
	case ProviderMMDB:
		paths := c.dbPaths()
		if len(paths) == 0 {
			bad("GEOIP_DB_PATH", "required when GEO_PROVIDER=mmdb (path to a country .mmdb file)")
		}
		for _, p := range paths {
			if fi, err := os.Stat(p); err != nil {
				bad("GEOIP_DB_PATH", "%v", err)
			} else if !fi.Mode().IsRegular() {
				bad("GEOIP_DB_PATH", "%s is not a regular file", p)
			}
		}
	case ProviderStatic:
		if strings.TrimSpace(c.Static) == "" {
			bad("GEO_STATIC", `required when GEO_PROVIDER=static (e.g. "127.0.0.0/8=CH,::1/128=CH")`)
		} else if _, err := staticgeo.Parse(c.Static); err != nil {
			bad("GEO_STATIC", "%v", err)
		}
	default:
		bad("GEO_PROVIDER", "unknown provider %q (want %s, %s or %s)", c.Provider, ProviderIPAPI, ProviderMMDB, ProviderStatic)
	}
	if c.Timeout < 0 || c.Timeout > MaxTimeout {
		bad("GEO_TIMEOUT", "%s is out of range (want more than 0 and at most %s)", c.Timeout, MaxTimeout)
	}
	if c.CacheSize < 0 || c.CacheSize > MaxCacheSize {
		bad("GEO_CACHE_SIZE", "%d is out of range (want 1 to %d entries)", c.CacheSize, MaxCacheSize)
	}
	if c.CacheTTL < 0 {
		bad("GEO_CACHE_TTL", "%s is negative", c.CacheTTL)
	}
	return errors.Join(errs...)
}

// dbPaths splits GEOIP_DB_PATH: one file, or several (e.g. an IPv4 and an
// IPv6 file) separated by commas.
func (c Config) dbPaths() []string {
	var paths []string
	for _, p := range strings.Split(c.DBPath, ",") {
		if p = strings.TrimSpace(p); p != "" {
			paths = append(paths, p)
		}
	}
	return paths
}

// Provide validates cfg, builds the selected provider and wraps it in the
// cache, which also reports lookups and cache hits to obs (nil: none).
// Every provider is cached, the static one included: it costs nothing and
// keeps the metrics uniform. cleanup releases the provider (it closes the
// mmdb file) and must run after the last lookup.
func Provide(cfg Config, obs geocache.Observer) (ports.Geolocator, func(), error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("geolocation configuration: %w", err)
	}
	cfg = cfg.withDefaults()
	var (
		inner   ports.Geolocator
		cleanup = func() {}
	)
	switch cfg.Provider {
	case ProviderIPAPI:
		ic := ipapi.Config{BaseURL: cfg.IPAPIBaseURL, APIKey: cfg.IPAPIKey, Timeout: cfg.Timeout}
		if cfg.Tracing != nil {
			ic.Client = ipapi.TracedClient(cfg.Tracing)
		}
		c, err := ipapi.New(ic)
		if err != nil {
			return nil, nil, err
		}
		inner = c
	case ProviderMMDB:
		r, err := mmdbgeo.Open(cfg.dbPaths()...)
		if err != nil {
			return nil, nil, fmt.Errorf("GEOIP_DB_PATH: %w", err)
		}
		inner, cleanup = r, func() { _ = r.Close() }
	case ProviderStatic:
		g, err := staticgeo.Parse(cfg.Static)
		if err != nil {
			return nil, nil, fmt.Errorf("GEO_STATIC: %w", err)
		}
		inner = g
	}
	cache, err := geocache.New(inner, geocache.Options{
		Size:     cfg.CacheSize,
		TTL:      cfg.CacheTTL,
		Provider: cfg.Provider,
		Observer: obs,
	})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return cache, cleanup, nil
}
