package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func mustPrefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := ParseTrustedProxies(s)
	if err != nil {
		t.Fatalf("ParseTrustedProxies(%q): %v", s, err)
	}
	return p
}

func TestClientAddress(t *testing.T) {
	proxies := "10.0.0.0/8, 192.168.1.1, fd00::/8"
	tests := []struct {
		name    string
		peer    string
		xff     []string
		trusted string // overrides proxies when set
		want    string
	}{
		{name: "no header, untrusted peer", peer: "203.0.113.9", want: "203.0.113.9"},
		{name: "spoofed header from untrusted peer is ignored", peer: "203.0.113.9", xff: []string{"198.51.100.1"}, want: "203.0.113.9"},
		{name: "spoof from untrusted IPv6 peer ignored", peer: "2001:db8::9", xff: []string{"198.51.100.1"}, want: "2001:db8::9"},
		{name: "no trusted proxies configured", peer: "10.0.0.1", xff: []string{"198.51.100.1"}, trusted: "-", want: "10.0.0.1"},
		{name: "trusted peer without header is the client", peer: "10.0.0.1", want: "10.0.0.1"},
		{name: "trusted peer, one hop", peer: "10.0.0.1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "client-supplied entries left of the real one are ignored", peer: "10.0.0.1", xff: []string{"1.1.1.1, 9.9.9.9, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "chain of trusted proxies is skipped", peer: "10.0.0.1", xff: []string{"198.51.100.1, 192.168.1.1, 10.2.3.4"}, want: "198.51.100.1"},
		{name: "several header lines read as one list", peer: "10.0.0.1", xff: []string{"1.1.1.1, 198.51.100.1", "10.9.9.9"}, want: "198.51.100.1"},
		{name: "all entries trusted gives the left-most", peer: "10.0.0.1", xff: []string{"10.1.1.1, 10.2.2.2"}, want: "10.1.1.1"},
		{name: "IPv6 client through IPv6 proxy", peer: "fd00::1", xff: []string{"2001:db8::7"}, want: "2001:db8::7"},
		{name: "IPv6 client through IPv4 proxy", peer: "10.0.0.1", xff: []string{"2001:db8::7"}, want: "2001:db8::7"},
		{name: "bracketed IPv6 with port", peer: "10.0.0.1", xff: []string{"[2001:db8::7]:4711"}, want: "2001:db8::7"},
		{name: "bracketed IPv6 without port", peer: "10.0.0.1", xff: []string{"[2001:db8::7]"}, want: "2001:db8::7"},
		{name: "IPv4 with port", peer: "10.0.0.1", xff: []string{"198.51.100.1:8080"}, want: "198.51.100.1"},
		{name: "zone stripped", peer: "10.0.0.1", xff: []string{"fe80::1%eth0"}, want: "fe80::1"},
		{name: "4in6 entry unmapped and checked as IPv4", peer: "10.0.0.1", xff: []string{"198.51.100.1, ::ffff:10.0.0.2"}, want: "198.51.100.1"},
		{name: "4in6 peer unmapped and trusted", peer: "::ffff:10.0.0.1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "4in6 client unmapped", peer: "10.0.0.1", xff: []string{"::ffff:198.51.100.1"}, want: "198.51.100.1"},
		{name: "blanks around entries", peer: "10.0.0.1", xff: []string{"  198.51.100.1  ,   10.0.0.3 "}, want: "198.51.100.1"},
		{name: "malformed right-most entry stops at the peer", peer: "10.0.0.1", xff: []string{"198.51.100.1, unknown"}, want: "10.0.0.1"},
		{name: "malformed entry behind a trusted hop stops at that hop", peer: "10.0.0.1", xff: []string{"198.51.100.1, garbage, 10.0.0.5"}, want: "10.0.0.5"},
		{name: "malformed entry left of the client does not matter", peer: "10.0.0.1", xff: []string{"garbage, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "empty entry is malformed", peer: "10.0.0.1", xff: []string{"198.51.100.1,"}, want: "10.0.0.1"},
		{name: "empty header value is malformed", peer: "10.0.0.1", xff: []string{""}, want: "10.0.0.1"},
		{name: "port out of range is malformed", peer: "10.0.0.1", xff: []string{"198.51.100.1:99999"}, want: "10.0.0.1"},
		{name: "hostname is malformed", peer: "10.0.0.1", xff: []string{"example.com"}, want: "10.0.0.1"},
		{name: "bracketed IPv4 is malformed", peer: "10.0.0.1", xff: []string{"[198.51.100.1]"}, want: "10.0.0.1"},
		{name: "RFC 7239 syntax is malformed", peer: "10.0.0.1", xff: []string{"for=198.51.100.1"}, want: "10.0.0.1"},
		{name: "invalid peer gives the zero address", peer: "", xff: []string{"198.51.100.1"}, want: "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefixes := mustPrefixes(t, proxies)
			if tt.trusted == "-" {
				prefixes = nil
			}
			var peer netip.Addr
			if tt.peer != "" {
				peer = netip.MustParseAddr(tt.peer)
			}
			got := ClientAddress(peer, tt.xff, prefixes)
			if got.String() != tt.want {
				t.Fatalf("ClientAddress(%s, %q) = %s, want %s", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		in      string
		want    string // prefixes joined by " ", when no error
		wantErr string
	}{
		{in: "", want: ""},
		{in: "   ", want: ""},
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: " 10.0.0.0/8 , fd00::/8 ", want: "10.0.0.0/8 fd00::/8"},
		{in: "192.168.1.1", want: "192.168.1.1/32"},
		{in: "::1", want: "::1/128"},
		{in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1/32"},
		{in: "10.0.0.0/8,,fd00::/8", wantErr: `entry 2 "": empty entry`},
		{in: "10.0.0.0/33", wantErr: `entry 1 "10.0.0.0/33": not a CIDR`},
		{in: "proxy.local", wantErr: `entry 1 "proxy.local": not an IP address`},
		{in: "fe80::1%eth0", wantErr: "zones are not allowed"},
		{in: "::ffff:0:0/90", wantErr: "shorter than /96"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTrustedProxies(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "want a CIDR") {
					t.Fatalf("error %q does not say what is expected", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			var parts []string
			for _, p := range got {
				parts = append(parts, p.String())
			}
			if s := strings.Join(parts, " "); s != tt.want {
				t.Fatalf("got %q, want %q", s, tt.want)
			}
		})
	}
}

func TestPeerAddress(t *testing.T) {
	tests := map[string]string{
		"127.0.0.1:1234":         "127.0.0.1",
		"[::1]:1234":             "::1",
		"[fe80::1%lo]:1234":      "fe80::1",
		"[::ffff:10.0.0.1]:1234": "10.0.0.1",
		"10.0.0.1":               "10.0.0.1",
		"@":                      "invalid IP",
		"":                       "invalid IP",
		"not-an-address:80":      "invalid IP",
	}
	for in, want := range tests {
		if got := peerAddress(in).String(); got != want {
			t.Errorf("peerAddress(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestRequestOrigin(t *testing.T) {
	tests := []struct {
		name    string
		trusted bool
		headers map[string]string
		want    origin
	}{
		{name: "untrusted peer ignores forwarded headers", headers: map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}, want: origin{"http", "svc.local:8080"}},
		{name: "trusted peer sets scheme and host", trusted: true, headers: map[string]string{"X-Forwarded-Proto": "HTTPS", "X-Forwarded-Host": "api.example.com"}, want: origin{"https", "api.example.com"}},
		{name: "right-most forwarded value wins", trusted: true, headers: map[string]string{"X-Forwarded-Proto": "http, https", "X-Forwarded-Host": "evil.example, api.example.com:8443"}, want: origin{"https", "api.example.com:8443"}},
		{name: "IPv6 literal host", trusted: true, headers: map[string]string{"X-Forwarded-Host": "[2001:db8::1]:443"}, want: origin{"http", "[2001:db8::1]:443"}},
		{name: "unknown scheme ignored", trusted: true, headers: map[string]string{"X-Forwarded-Proto": "javascript"}, want: origin{"http", "svc.local:8080"}},
		{name: "host with path ignored", trusted: true, headers: map[string]string{"X-Forwarded-Host": "evil.example/x"}, want: origin{"http", "svc.local:8080"}},
		{name: "host with user info ignored", trusted: true, headers: map[string]string{"X-Forwarded-Host": "a@evil.example"}, want: origin{"http", "svc.local:8080"}},
		{name: "host with bad port ignored", trusted: true, headers: map[string]string{"X-Forwarded-Host": "api.example.com:99999"}, want: origin{"http", "svc.local:8080"}},
		{name: "bad IPv6 literal ignored", trusted: true, headers: map[string]string{"X-Forwarded-Host": "[nope]:80"}, want: origin{"http", "svc.local:8080"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://svc.local:8080/api/v1/users", nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			if got := requestOrigin(r, tt.trusted, nil); got != tt.want {
				t.Fatalf("requestOrigin = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseIfMatch(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		holds  map[int64]bool
	}{
		{name: "absent holds for any version", values: nil, holds: map[int64]bool{1: true, 7: true}},
		{name: "star holds for any version", values: []string{"*"}, holds: map[int64]bool{1: true, 7: true}},
		{name: "one strong tag", values: []string{`"3"`}, holds: map[int64]bool{3: true, 2: false, 4: false}},
		{name: "list of tags", values: []string{`"2", "5"`}, holds: map[int64]bool{2: true, 5: true, 3: false}},
		{name: "several header lines", values: []string{`"2"`, `"5"`}, holds: map[int64]bool{2: true, 5: true, 3: false}},
		{name: "weak tag never matches", values: []string{`W/"3"`}, holds: map[int64]bool{3: false}},
		{name: "unquoted tag never matches", values: []string{`3`}, holds: map[int64]bool{3: false}},
		{name: "signed tag is not ours", values: []string{`"+3"`}, holds: map[int64]bool{3: false}},
		{name: "foreign tag never matches", values: []string{`"abc"`}, holds: map[int64]bool{1: false}},
		{name: "empty header never matches", values: []string{""}, holds: map[int64]bool{1: false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pre := parseIfMatch(tt.values)
			for version, want := range tt.holds {
				if got := pre.Check(version) == nil; got != want {
					t.Errorf("version %d: holds = %v, want %v", version, got, want)
				}
			}
		})
	}
}

func TestParsePublicURL(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want "" for an error, "-" for none
	}{
		{"", "-"},
		{"  ", "-"},
		{"https://users.example.com", "https://users.example.com"},
		{"https://users.example.com/", "https://users.example.com"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{"users.example.com", ""},
		{"ftp://users.example.com", ""},
		{"javascript:alert(1)", ""},
		{"https://", ""},
		{"https://users.example.com/api", ""},
		{"https://users.example.com?x=1", ""},
		{"https://users.example.com#top", ""},
		{"https://admin:secret@users.example.com", ""},
		{"https://users.example.com:99999", ""},
	} {
		t.Run(tt.in, func(t *testing.T) {
			u, err := ParsePublicURL(tt.in)
			switch tt.want {
			case "":
				if err == nil {
					t.Fatalf("ParsePublicURL(%q) = %v, want an error", tt.in, u)
				}
			case "-":
				if err != nil || u != nil {
					t.Fatalf("ParsePublicURL(%q) = %v, %v; want none", tt.in, u, err)
				}
			default:
				if err != nil || u == nil || u.String() != tt.want {
					t.Fatalf("ParsePublicURL(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
				}
			}
		})
	}
}

// With a public URL, what a request says about its host cannot reach an
// answer's links, even through a trusted proxy.
func TestPublicURLNamesEveryLink(t *testing.T) {
	e := newEnv(t, envOptions{public: "https://users.example.com", trusted: "127.0.0.1/32"})
	headers := map[string]string{"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
	created := e.do(req{method: http.MethodPost, path: "/api/v1/users", body: userBody("public@example.ch"), ctype: "application/json", headers: headers})
	if created.status != 201 {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	u := created.object(t)
	want := "https://users.example.com" + idPath(u)
	if u["url"] != want || created.header.Get("Location") != want {
		t.Errorf("url %v, Location %q; want %s", u["url"], created.header.Get("Location"), want)
	}
	e.create(userBody("public2@example.ch"))
	page := e.do(req{method: http.MethodGet, path: "/api/v1/users?page_size=1", headers: headers}).object(t)
	if next, _ := page["next"].(string); !strings.HasPrefix(next, "https://users.example.com/api/v1/users?") {
		t.Errorf("next = %v", page["next"])
	}
	if strings.Contains(fmt.Sprint(page), "evil.example") {
		t.Errorf("the page names the request's host: %v", page)
	}
}
