package httpapi

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// ParseTrustedProxies parses a comma-separated list of CIDRs (for example
// "10.0.0.0/8, fd00::/8"). A bare address counts as /32 or /128; host bits
// are masked off and IPv4-mapped IPv6 entries are turned into IPv4, because
// client addresses are compared unmapped. An empty or blank string is an
// empty list; an empty entry between commas is an error.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		p, err := parseTrustedEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: %w (want a CIDR such as 10.0.0.0/8 or fd00::/8, or a single IP address)", i+1, entry, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseTrustedEntry(entry string) (netip.Prefix, error) {
	if entry == "" {
		return netip.Prefix{}, fmt.Errorf("empty entry")
	}
	if strings.Contains(entry, "%") {
		return netip.Prefix{}, fmt.Errorf("IPv6 zones are not allowed")
	}
	if !strings.Contains(entry, "/") {
		a, err := netip.ParseAddr(entry)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP address")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(entry)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not a CIDR")
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("IPv4-mapped prefix shorter than /96")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// trusted reports whether addr is inside one of the prefixes.
func trusted(addr netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ClientAddress returns the address a request comes from: the TCP peer,
// unless the peer is a trusted proxy; then the right-most X-Forwarded-For
// entry that is not itself a trusted proxy. forwardedFor holds the header's
// values in the order they were received; each may list several
// comma-separated entries.
//
// Walking from the right, every step moves to an address that a trusted hop
// vouched for, so a client can never choose the result by sending its own
// header: whatever it writes sits left of the first untrusted address.
// A malformed entry (not an IP, optionally with a port, brackets or zone)
// stops the walk and the last trusted hop reached is returned: the answer
// is then a proxy's address, which no client controls, rather than a guess
// past garbage. When every entry is trusted the left-most one is returned.
// Results are unmapped (4in6 becomes IPv4) and carry no zone; an invalid
// peer yields the zero Addr.
func ClientAddress(peer netip.Addr, forwardedFor []string, trustedProxies []netip.Prefix) netip.Addr {
	addr := canonical(peer)
	if !addr.IsValid() || !trusted(addr, trustedProxies) {
		return addr
	}
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		entries := strings.Split(forwardedFor[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			hop, ok := parseForwardedAddr(entries[j])
			if !ok {
				return addr
			}
			addr = hop
			if !trusted(addr, trustedProxies) {
				return addr
			}
		}
	}
	return addr
}

// parseForwardedAddr reads one X-Forwarded-For entry: "1.2.3.4",
// "1.2.3.4:567", "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:567",
// with an optional IPv6 zone, surrounded by optional blanks.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return canonical(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return canonical(ap.Addr()), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return canonical(a), true
		}
	}
	return netip.Addr{}, false
}

func canonical(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// peerAddress parses http.Request.RemoteAddr ("ip:port", "[ip%zone]:port").
func peerAddress(remoteAddr string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return canonical(ap.Addr())
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return canonical(a)
}

// origin is the scheme and host a client used to reach the service, for
// absolute URLs.
type origin struct {
	Scheme string
	Host   string
}

// ParsePublicURL reads the address clients reach the service at
// (PUBLIC_URL): http or https, a host and optionally a port, nothing else
// (no path, query, fragment or user info). An empty string means none.
func ParsePublicURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("must be an absolute http or https URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("scheme must be http or https")
	case u.Host == "" || !validHost(u.Host):
		return nil, errors.New("must name a host")
	case u.User != nil, u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.Opaque != "":
		return nil, errors.New("must be scheme://host[:port] only, without path, query or user info")
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// requestOrigin takes the scheme from the connection and the host from the
// Host header, and lets X-Forwarded-Proto / X-Forwarded-Host override them
// only when the peer is a trusted proxy. Of a comma-separated forwarded
// value, the right-most one is used: it was written by the hop nearest to
// us, which we trust; left-most values may come from the client. Values that
// are not a plain scheme or host are ignored.
//
// With a public URL configured, neither the Host header nor the forwarded
// headers matter: links always name that address.
func requestOrigin(r *http.Request, peerTrusted bool, public *url.URL) origin {
	if public != nil {
		return origin{Scheme: public.Scheme, Host: public.Host}
	}
	o := origin{Scheme: "http", Host: r.Host}
	if r.TLS != nil {
		o.Scheme = "https"
	}
	if !peerTrusted {
		return o
	}
	if p := strings.ToLower(lastListValue(r.Header.Values("X-Forwarded-Proto"))); p == "http" || p == "https" {
		o.Scheme = p
	}
	if h := lastListValue(r.Header.Values("X-Forwarded-Host")); validHost(h) {
		o.Host = h
	}
	return o
}

func lastListValue(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// validHost accepts "name", "name:port", "1.2.3.4:port" and "[v6]:port":
// nothing that could change the URL's path, user info or scheme.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range []byte(h) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		if _, err := netip.ParseAddr(h[1:end]); err != nil {
			return false
		}
		rest := h[end+1:]
		return rest == "" || validPort(strings.TrimPrefix(rest, ":")) && strings.HasPrefix(rest, ":")
	}
	name, port, found := strings.Cut(h, ":")
	if name == "" || strings.ContainsAny(name, "[]") {
		return false
	}
	return !found || validPort(port)
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range []byte(p) {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}
