package ipapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/redact"
	"github.com/marketplace/usersvc/domain"
)

const testKey = "s3cr3t-Key_42"

// Bodies exactly as ipapi.co sends them (see shared/reference/ipapi.md).
const (
	bodyCH = `{"ip":"2.16.92.0","version":"IPv4","city":"Zurich","region":"Zurich","country":"CH",` +
		`"country_name":"Switzerland","country_code":"CH","country_code_iso3":"CHE","continent_code":"EU",` +
		`"in_eu":false,"timezone":"Europe/Zurich","asn":"AS20940","org":"Akamai International B.V."}`
	bodyES = `{"ip":"2.16.8.0","version":"IPv4","city":"Madrid","region":"Madrid","country":"ES",` +
		`"country_name":"Spain","country_code":"ES","country_code_iso3":"ESP","continent_code":"EU",` +
		`"in_eu":true,"timezone":"Europe/Madrid","asn":"AS20940","org":"Akamai International B.V."}`
	bodyCHv6     = `{"ip":"2a02:1210::1","version":"IPv6","country_name":"Switzerland","country_code":"CH"}`
	bodyReserved = `{"ip":"9.9.9.9","error":true,"reason":"Reserved IP Address","reserved":true,"version":"IPv4"}`
	bodyInvalid  = `{"ip":"9.9.9.9","error":true,"reason":"Invalid IP Address"}`
	bodyRate     = `{"error":true,"reason":"RateLimited","message":"Visit https://ipapi.co/ratelimited/ for details"}`
)

// request is what the fake ipapi.co saw.
type request struct {
	path, rawQuery, key, userAgent string
}

// canned is one answer of the fake ipapi.co.
type canned struct {
	status      int
	contentType string
	body        string
	delay       time.Duration // before the headers
}

// fakeIPAPI serves one canned answer and records the requests.
type fakeIPAPI struct {
	canned

	mu   sync.Mutex
	seen []request
}

func (f *fakeIPAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, request{r.URL.Path, r.URL.RawQuery, r.URL.Query().Get("key"), r.UserAgent()})
	f.mu.Unlock()
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	ct := f.contentType
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(f.status)
	_, _ = w.Write([]byte(f.body))
}

func (f *fakeIPAPI) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.seen...)
}

func serve(t *testing.T, f *fakeIPAPI) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// assertFailure checks that err is a geolocation provider failure that
// does not leak the API key.
func assertFailure(t *testing.T, err error, mention string) {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want a provider failure")
	}
	var ue *domain.UnavailableError
	if !errors.As(err, &ue) || ue.Dependency != domain.DependencyGeolocation || !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("error %q (%T) is not a geolocation UnavailableError", err, err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Fatalf("error %q leaks the API key", err)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Fatalf("error %q does not mention %q", err, mention)
	}
}

func TestLocateAnswers(t *testing.T) {
	cases := []struct {
		name     string
		ip       string
		wantPath string
		fake     canned
		want     domain.Location // when wantErr is ""
		wantErr  string          // a fragment of the failure's message
	}{
		{"located in Switzerland", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 200, body: bodyCH}, domain.Location{CountryCode: "CH", CountryName: "Switzerland"}, ""},
		{"located in Spain", "2.16.8.0", "/2.16.8.0/json/",
			canned{status: 200, body: bodyES}, domain.Location{CountryCode: "ES", CountryName: "Spain"}, ""},
		{"IPv6 address in the path", "2a02:1210::1", "/2a02:1210::1/json/",
			canned{status: 200, body: bodyCHv6}, domain.LocationIn("CH"), ""},
		{"IPv4-mapped address sent as IPv4", "::ffff:2.16.92.0", "/2.16.92.0/json/",
			canned{status: 200, body: bodyCH}, domain.LocationIn("CH"), ""},
		{"table name preferred over provider name", "8.8.8.8", "/8.8.8.8/json/",
			canned{status: 200, body: `{"country_code":"us","country_name":"United States of America"}`},
			domain.Location{CountryCode: "US", CountryName: "United States"}, ""},
		{"user-assigned code keeps provider name", "8.8.8.8", "/8.8.8.8/json/",
			canned{status: 200, body: `{"country_code":"XK","country_name":"Kosovo"}`},
			domain.Location{CountryCode: "XK", CountryName: "Kosovo"}, ""},
		{"reserved address answered with 200", "9.9.9.9", "/9.9.9.9/json/",
			canned{status: 200, body: bodyReserved}, domain.UnknownLocation, ""},
		{"reserved flag with another wording", "9.9.9.9", "/9.9.9.9/json/",
			canned{status: 200, body: `{"error":true,"reason":"Bogon","reserved":true}`}, domain.UnknownLocation, ""},
		{"invalid IP answered with 200", "9.9.9.9", "/9.9.9.9/json/",
			canned{status: 200, body: bodyInvalid}, domain.UnknownLocation, ""},
		{"invalid IP answered with 400", "9.9.9.9", "/9.9.9.9/json/",
			canned{status: 400, body: bodyInvalid}, domain.UnknownLocation, ""},

		{"429 with body", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 429, body: bodyRate}, domain.Location{}, "rate limited"},
		{"429 without body", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 429}, domain.Location{}, "rate limited"},
		{"RateLimited reason with 200", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 200, body: bodyRate}, domain.Location{}, "RateLimited"},
		{"403 bad key", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 403, contentType: "text/plain", body: "Invalid API key"}, domain.Location{}, "IPAPI_KEY"},
		{"500 HTML", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 500, contentType: "text/html", body: "<html><body>Internal Server Error</body></html>"},
			domain.Location{}, "HTTP 500"},
		{"502 empty", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 502}, domain.Location{}, "HTTP 502"},
		{"malformed JSON", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 200, body: `{"country_code":"CH",`}, domain.Location{}, "malformed"},
		{"HTML with 200", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 200, contentType: "text/html", body: "<html>maintenance</html>"}, domain.Location{}, "malformed"},
		{"200 without country_code", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 200, body: `{"ip":"2.16.92.0","version":"IPv4","city":"Zurich"}`}, domain.Location{}, "neither"},
		{"200 with null country_code", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 200, body: `{"ip":"2.16.92.0","country_code":null}`}, domain.Location{}, "neither"},
		{"country code not alpha-2", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 200, body: `{"country_code":"CHE"}`}, domain.Location{}, "alpha-2"},
		{"error with an unknown reason", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 200, body: `{"error":true,"reason":"Quota exceeded"}`}, domain.Location{}, "Quota exceeded"},
		{"404 without error body", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 404, contentType: "text/plain", body: "Not Found"}, domain.Location{}, "malformed"},
		{"oversized answer", "2.16.92.0", "/2.16.92.0/json/",
			canned{status: 200, body: `{"country_code":"CH","x":"` + strings.Repeat("a", maxBody) + `"}`},
			domain.Location{}, "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeIPAPI{canned: tc.fake}
			c := newClient(t, Config{BaseURL: serve(t, f), APIKey: testKey})
			got, err := c.Locate(context.Background(), netip.MustParseAddr(tc.ip))
			if tc.wantErr != "" {
				assertFailure(t, err, tc.wantErr)
				if got != domain.UnknownLocation {
					t.Fatalf("failure returned location %+v", got)
				}
			} else {
				if err != nil {
					t.Fatalf("Locate(%s): %v", tc.ip, err)
				}
				if got != tc.want {
					t.Fatalf("Locate(%s) = %+v, want %+v", tc.ip, got, tc.want)
				}
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.path != tc.wantPath {
				t.Errorf("path %q, want %q", r.path, tc.wantPath)
			}
			if r.key != testKey || r.rawQuery != "key="+testKey {
				t.Errorf("query %q, want key=%s only", r.rawQuery, testKey)
			}
			if r.userAgent != UserAgent {
				t.Errorf("User-Agent %q, want %q", r.userAgent, UserAgent)
			}
		})
	}
}

func TestNoKeyNoQuery(t *testing.T) {
	f := &fakeIPAPI{canned: canned{status: 200, body: bodyCH}}
	c := newClient(t, Config{BaseURL: serve(t, f) + "/"}) // a trailing slash must not double
	if _, err := c.Locate(context.Background(), netip.MustParseAddr("2.16.92.0")); err != nil {
		t.Fatal(err)
	}
	r := f.requests()[0]
	if r.rawQuery != "" || r.path != "/2.16.92.0/json/" {
		t.Fatalf("request %+v, want /2.16.92.0/json/ without a query", r)
	}
}

func TestBasePathIsKept(t *testing.T) {
	f := &fakeIPAPI{canned: canned{status: 200, body: bodyCH}}
	c := newClient(t, Config{BaseURL: serve(t, f) + "/geo"})
	if _, err := c.Locate(context.Background(), netip.MustParseAddr("2.16.92.0")); err != nil {
		t.Fatal(err)
	}
	if p := f.requests()[0].path; p != "/geo/2.16.92.0/json/" {
		t.Fatalf("path %q, want /geo/2.16.92.0/json/", p)
	}
}

func TestTimeout(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"no headers in time", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}},
		{"body stalls after the headers", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`{"country_code":`))
			w.(http.Flusher).Flush()
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			c := newClient(t, Config{BaseURL: srv.URL, APIKey: testKey, Timeout: 100 * time.Millisecond})
			start := time.Now()
			_, err := c.Locate(context.Background(), netip.MustParseAddr("2.16.92.0"))
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Fatalf("Locate took %s with a 100ms timeout", elapsed)
			}
			assertFailure(t, err, "within 100ms")
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %q does not wrap context.DeadlineExceeded", err)
			}
		})
	}
}

func TestNetworkErrorDoesNotLeakKey(t *testing.T) {
	// A port that was just listening and is now closed: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newClient(t, Config{BaseURL: "http://" + addr, APIKey: testKey})
	_, err = c.Locate(context.Background(), netip.MustParseAddr("2.16.92.0"))
	assertFailure(t, err, "key="+redact.Mask)
	// Errors get logged: the client's address (personal data) stays out.
	if err != nil && strings.Contains(err.Error(), "2.16.92.0") {
		t.Errorf("error %q names the client address", err)
	}
}

func TestCallerCancellation(t *testing.T) {
	f := &fakeIPAPI{canned: canned{status: 200, body: bodyCH, delay: 5 * time.Second}}
	c := newClient(t, Config{BaseURL: serve(t, f)})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := c.Locate(ctx, netip.MustParseAddr("2.16.92.0"))
	assertFailure(t, err, "canceled")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %q does not wrap context.Canceled", err)
	}
}

func TestUnplaceableAddressesMakeNoRequest(t *testing.T) {
	f := &fakeIPAPI{canned: canned{status: 200, body: bodyCH}}
	c := newClient(t, Config{BaseURL: serve(t, f)})
	for _, ip := range []string{
		"127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "fd00::1",
		"169.254.1.1", "fe80::1", "fe80::1%eth0", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
		"100.64.0.1", "192.0.2.1", "198.51.100.1", "203.0.113.1", "255.255.255.255", "2001:db8::1",
	} {
		t.Run(ip, func(t *testing.T) {
			got, err := c.Locate(context.Background(), netip.MustParseAddr(ip))
			if err != nil || got != domain.UnknownLocation {
				t.Fatalf("Locate(%s) = %+v, %v; want unknown, nil", ip, got, err)
			}
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("server saw %d requests for unplaceable addresses, want 0", n)
	}
	t.Run("zero address", func(t *testing.T) {
		got, err := c.Locate(context.Background(), netip.Addr{})
		if err != nil || got != domain.UnknownLocation {
			t.Fatalf("Locate(invalid) = %+v, %v; want unknown, nil", got, err)
		}
	})
}

func TestPlaceable(t *testing.T) {
	cases := map[string]bool{
		"2.16.92.0": true, "8.8.8.8": true, "2a02:1210::1": true, "2001:4860:4860::8888": true,
		"::ffff:2.16.92.0": true, "100.63.255.255": true, "100.128.0.0": true,
		"127.0.0.1": false, "10.0.0.1": false, "100.64.0.1": false, "240.0.0.1": false,
		"fc00::1": false, "ff00::1": false, "3fff::1": false, "::1.2.3.4": false, "100::1": false,
	}
	for ip, want := range cases {
		if got := Placeable(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Placeable(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestNewConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		c := newClient(t, Config{})
		if c.base.String() != DefaultBaseURL || c.timeout != DefaultTimeout || c.http == nil {
			t.Fatalf("defaults: base %q timeout %s", c.base.String(), c.timeout)
		}
	})
	bad := []struct {
		name string
		cfg  Config
		want string
	}{
		{"not a URL", Config{BaseURL: "://x"}, "base URL"},
		{"no scheme", Config{BaseURL: "ipapi.co"}, "http(s)"},
		{"ftp scheme", Config{BaseURL: "ftp://ipapi.co"}, "http(s)"},
		{"plain http to a remote host", Config{BaseURL: "http://ipapi.co"}, "https://"},
		{"plain http to a remote address", Config{BaseURL: "http://203.0.113.7:8080"}, "https://"},
		{"plain http to a name resembling loopback", Config{BaseURL: "http://localhost.attacker.example"}, "https://"},
		{"query in base", Config{BaseURL: "https://ipapi.co/?key=" + testKey}, "query"},
		{"credentials in base", Config{BaseURL: "https://user:" + testKey + "@ipapi.co"}, "credentials"},
		{"negative timeout", Config{Timeout: -time.Second}, "negative"},
		{"key with spaces", Config{APIKey: "a b"}, "white space"},
	}
	for _, base := range []string{"https://ipapi.co", "http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:8080", "https://geo.internal.example/v1"} {
		t.Run("accepted "+base, func(t *testing.T) {
			if _, err := New(Config{BaseURL: base}); err != nil {
				t.Fatalf("New(%s) = %v", base, err)
			}
		})
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want one mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Fatalf("error %q leaks the key", err)
			}
		})
	}
}
