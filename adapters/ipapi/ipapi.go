// Package ipapi places client addresses with the ipapi.co JSON API
// (GEO_PROVIDER=ipapi).
//
// ipapi.co reports problems in the body of an HTTP 200 as often as with a
// 4xx status, so every answer is classified from its body first:
//   - a country code: the location, named from the domain's ISO table;
//   - "reserved" or "invalid" address errors: domain.UnknownLocation;
//   - rate limiting (HTTP 429 or reason "RateLimited"), a refused key,
//     5xx, an unreadable body, a 200 with neither a country nor an error,
//     network errors and timeouts: a provider failure, returned as
//     domain.Unavailable(domain.DependencyGeolocation, ...) so callers fail
//     closed rather than guess.
//
// Addresses that no provider can place (loopback, private, link-local,
// multicast, unspecified, documentation and other reserved ranges) are
// answered locally as domain.UnknownLocation without a request: it saves
// quota and keeps the service usable in development without internet.
//
// The API key travels as the "key" query parameter; it never appears in an
// error (URLs are redacted), and this package logs nothing.
package ipapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/google/wire"

	"github.com/marketplace/usersvc/adapters/redact"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Defaults and fixed request properties.
const (
	DefaultBaseURL = "https://ipapi.co"
	DefaultTimeout = 2 * time.Second
	// UserAgent names the service: ipapi.co rate limits anonymous library
	// agents sooner than identified ones.
	UserAgent = "usersvc/1.0 (+users service geolocation)"

	maxBody = 64 << 10 // answers are ~1 KiB; anything larger is not ipapi
)

// ProviderSet builds the client from a Config and binds it to the port.
// The service selects its geolocator through adapters/geoprovider instead.
var ProviderSet = wire.NewSet(New, wire.Bind(new(ports.Geolocator), new(*Client)))

var _ ports.Geolocator = (*Client)(nil)

// Config configures a Client. Zero values take the defaults.
type Config struct {
	BaseURL string        // DefaultBaseURL when empty; https (http for loopback hosts only), no query
	APIKey  string        // sent as ?key= when set
	Timeout time.Duration // per lookup, DefaultTimeout when 0
	Client  *http.Client  // a private client when nil; its own Timeout is left alone
}

// Client is a ports.Geolocator backed by ipapi.co. It is safe for
// concurrent use.
type Client struct {
	base    url.URL
	key     string
	timeout time.Duration
	http    *http.Client
}

// New checks cfg and returns a client. It makes no request.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("ipapi base URL %q: %w", cfg.BaseURL, err)
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("ipapi base URL %q: want http(s)://host[:port][/path]", cfg.BaseURL)
	}
	if base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("ipapi base URL %q: must not carry a query, fragment or credentials (set the API key separately)", redactString(cfg.BaseURL))
	}
	if base.Scheme != "https" && !loopbackHost(base.Hostname()) {
		// Over plain HTTP an on-path attacker reads the key and answers
		// "CH" for any address. Loopback stays open for local stand-ins.
		return nil, fmt.Errorf("ipapi base URL %q: must be https:// (http:// only for a loopback host)", redactString(cfg.BaseURL))
	}
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath = ""
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("ipapi timeout %s is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if strings.ContainsAny(cfg.APIKey, " \t\r\n") {
		return nil, errors.New("ipapi API key contains white space")
	}
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: *base, key: cfg.APIKey, timeout: cfg.Timeout, http: hc}, nil
}

// answer is the part of ipapi.co's JSON the adapter reads.
type answer struct {
	Error       bool   `json:"error"`
	Reason      string `json:"reason"`
	Reserved    bool   `json:"reserved"`
	Message     string `json:"message"`
	CountryCode string `json:"country_code"`
	CountryName string `json:"country_name"`
}

// loopbackHost reports whether host (no port) is localhost or a loopback
// address, the only hosts plain HTTP may reach.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// Locate asks ipapi.co where ip is. See the package comment for how answers
// map to results.
func (c *Client) Locate(ctx context.Context, ip netip.Addr) (domain.Location, error) {
	ip = ip.Unmap().WithZone("")
	if !Placeable(ip) {
		return domain.UnknownLocation, nil
	}
	loc, err := c.lookup(ctx, ip)
	if err != nil {
		return domain.UnknownLocation, domain.Unavailable(domain.DependencyGeolocation,
			fmt.Errorf("ipapi: locate an address: %w", err))
	}
	return loc, nil
}

func (c *Client) lookup(ctx context.Context, ip netip.Addr) (domain.Location, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	u := c.base
	u.Path += "/" + ip.String() + "/json/"
	if c.key != "" {
		u.RawQuery = url.Values{"key": {c.key}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return domain.UnknownLocation, fmt.Errorf("build request: %w", redactErr(err, c.key))
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return domain.UnknownLocation, fmt.Errorf("no answer within %s: %w", c.timeout, context.DeadlineExceeded)
		}
		// The client's address stays out of the message, which gets logged.
		shown := u
		shown.Path = c.base.Path + "/ADDRESS/json/"
		return domain.UnknownLocation, fmt.Errorf("GET %s: %w", redact.URL(shown.String()), redactErr(err, c.key))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return domain.UnknownLocation, fmt.Errorf("no complete answer within %s: %w", c.timeout, context.DeadlineExceeded)
		}
		return domain.UnknownLocation, fmt.Errorf("read answer (HTTP %d): %w", resp.StatusCode, redactErr(err, c.key))
	}
	return classify(resp.StatusCode, body)
}

// classify maps one HTTP answer to a location or a provider failure.
func classify(status int, body []byte) (domain.Location, error) {
	switch {
	case status == http.StatusTooManyRequests:
		return domain.UnknownLocation, fmt.Errorf("rate limited (HTTP 429)")
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return domain.UnknownLocation, fmt.Errorf("request refused (HTTP %d): check IPAPI_KEY", status)
	case status >= 500:
		return domain.UnknownLocation, fmt.Errorf("server error (HTTP %d)", status)
	case status != http.StatusOK && (status < 400 || status > 499):
		return domain.UnknownLocation, fmt.Errorf("unexpected HTTP %d", status)
	}
	if len(body) > maxBody {
		return domain.UnknownLocation, fmt.Errorf("answer larger than %d bytes (HTTP %d)", maxBody, status)
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return domain.UnknownLocation, fmt.Errorf("malformed answer (HTTP %d): %w", status, err)
	}
	if a.Error {
		if unplaceableReason(a) {
			return domain.UnknownLocation, nil
		}
		return domain.UnknownLocation, fmt.Errorf("error answer (HTTP %d): %s", status, quoteReason(a.Reason))
	}
	if status != http.StatusOK {
		return domain.UnknownLocation, fmt.Errorf("unexpected HTTP %d without an error reason", status)
	}
	code := strings.ToUpper(strings.TrimSpace(a.CountryCode))
	if code == "" {
		return domain.UnknownLocation, errors.New("malformed answer: neither a country_code nor an error")
	}
	if !isAlpha2(code) {
		return domain.UnknownLocation, fmt.Errorf("malformed answer: country_code %q is not ISO 3166-1 alpha-2", code)
	}
	loc := domain.LocationIn(code)
	// The domain table names every ISO code; a provider may still use a
	// user-assigned one (XK for Kosovo), whose name only it knows.
	if _, known := domain.CountryName(code); !known && strings.TrimSpace(a.CountryName) != "" {
		loc.CountryName = strings.TrimSpace(a.CountryName)
	}
	return loc, nil
}

// unplaceableReason reports whether an error answer means "this address has
// no location" rather than "the provider could not answer".
func unplaceableReason(a answer) bool {
	if a.Reserved {
		return true
	}
	r := strings.ToLower(a.Reason)
	if strings.Contains(r, "ratelimit") || strings.Contains(r, "rate limit") || strings.Contains(r, "quota") {
		return false
	}
	// Any other reason (a new quota wording, a key problem) fails closed.
	return strings.Contains(r, "reserved") || r == "invalid ip address"
}

func quoteReason(r string) string {
	if r == "" {
		return "no reason given"
	}
	if len(r) > 200 {
		r = r[:200]
	}
	return fmt.Sprintf("%q", r)
}

func isAlpha2(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// redactString renders a URL with the API key (and any credential)
// hidden, through the service's one redaction function.
func redactString(raw string) string { return redact.URL(raw) }

// redactErr strips the request URL that net/http puts in its errors, and,
// as a last resort, any copy of the key.
func redactErr(err error, key string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if key != "" && strings.Contains(err.Error(), key) {
		return errors.New(redact.Text(err.Error(), key))
	}
	return err
}
