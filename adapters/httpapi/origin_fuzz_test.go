package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzRequestOrigin checks the origin of absolute URLs on any Host,
// X-Forwarded-Host and X-Forwarded-Proto: from an untrusted peer the
// forwarded headers change nothing; from a trusted one they may set the
// scheme to http or https and the host to a plain host[:port]; and a URL
// built on a plain host parses back with that scheme, that host and the
// user's path, with no user info, query or fragment.
func FuzzRequestOrigin(f *testing.F) {
	for _, s := range [][3]string{
		{"api.example.ch", "", ""}, {"api.example.ch", "evil.example", "https"}, {"h:8080", "a.example, b.example:8443", "http, https"},
		{"h", "evil.example/path?x#y", "javascript"}, {"h", "user@evil.example", "HTTPS"}, {"h", "[::1]:443", "https"},
		{"h", "[::1", "ftp"}, {"h", "a:99999", ""}, {"h", "a:", ""}, {"h", "xn--mnchen-3ya.de", "https "},
	} {
		f.Add(s[0], s[1], s[2], true)
		f.Add(s[0], s[1], s[2], false)
	}
	f.Fuzz(func(t *testing.T, host, forwardedHost, forwardedProto string, peerTrusted bool) {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/users", nil)
		r.Host = host
		r.Header.Set("X-Forwarded-Host", forwardedHost)
		r.Header.Set("X-Forwarded-Proto", forwardedProto)
		o := requestOrigin(r, peerTrusted, nil)
		if o.Scheme != "http" && o.Scheme != "https" {
			t.Fatalf("scheme %q", o.Scheme)
		}
		if !peerTrusted && (o.Scheme != "http" || o.Host != host) {
			t.Fatalf("untrusted peer: origin %+v from Host %q, X-Forwarded-Host %q, X-Forwarded-Proto %q", o, host, forwardedHost, forwardedProto)
		}
		if o.Host != host && !validHost(o.Host) {
			t.Fatalf("forwarded host %q accepted", o.Host)
		}
		if !validHost(o.Host) {
			return // a Host header net/http let through, echoed as sent
		}
		raw := newUserEncoder(o).url(42)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("URL %q does not parse: %v", raw, err)
		}
		if u.Scheme != o.Scheme || u.Host != o.Host || u.Path != "/api/v1/users/42" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("URL %q from origin %+v parses as %#v", raw, o, u)
		}
	})
}

// FuzzParseTrustedProxies checks TRUSTED_PROXIES parsing on any text: an
// accepted list holds valid, masked, unmapped, zone-free prefixes, each of
// which trusts its own address, and it parses to itself again from its
// canonical form.
func FuzzParseTrustedProxies(f *testing.F) {
	for _, s := range []string{
		"", " ", "10.0.0.0/8", "10.0.0.1/8, fd00::/8", "192.0.2.7", "::ffff:10.0.0.0/104", "::ffff:10.0.0.0/95", "fe80::1%eth0/64",
		"10.0.0.0/33", ",", "10.0.0.0/8,,", "nonsense", "0.0.0.0/0", "::/0", "1.2.3.4/32, 1.2.3.4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		prefixes, err := ParseTrustedProxies(s)
		if err != nil {
			if !strings.Contains(err.Error(), "entry") {
				t.Fatalf("error %q does not say which entry is wrong", err)
			}
			return
		}
		var canon []string
		for _, p := range prefixes {
			a := p.Addr()
			if !p.IsValid() || p != p.Masked() || a.Is4In6() || a.Zone() != "" {
				t.Fatalf("%q: prefix %v", s, p)
			}
			if !trusted(a, prefixes) {
				t.Fatalf("%q: %v does not trust its own address", s, p)
			}
			canon = append(canon, p.String())
		}
		again, err := ParseTrustedProxies(strings.Join(canon, ","))
		if err != nil || !slices.Equal(again, prefixes) {
			t.Fatalf("%q: canonical form %v parses to %v, %v", s, canon, again, err)
		}
	})
}

// FuzzPeerAddress checks the parsing of http.Request.RemoteAddr: the
// result is invalid or canonical (unmapped, zone-free), and a well-formed
// "ip:port" yields its canonical address.
func FuzzPeerAddress(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:80", "[fe80::1%eth0]:80", "[::ffff:10.0.0.1]:1", "10.0.0.1", "garbage", "", ":80", "[::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, remote string) {
		got := peerAddress(remote)
		if got.IsValid() && (got.Is4In6() || got.Zone() != "") {
			t.Fatalf("%q: %v is not canonical", remote, got)
		}
		if ap, err := netip.ParseAddrPort(remote); err == nil && got != ap.Addr().Unmap().WithZone("") {
			t.Fatalf("%q: %v, want %v", remote, got, ap.Addr())
		}
	})
}
