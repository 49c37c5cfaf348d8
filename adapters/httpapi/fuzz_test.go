package httpapi

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/domain"
)

// FuzzClientAddress checks the walk's safety properties on any header: the
// result is the peer when the peer is untrusted, and otherwise either the
// peer or an address that literally appears in the header.
func FuzzClientAddress(f *testing.F) {
	for _, s := range []string{"", "198.51.100.1", "1.1.1.1, 10.0.0.2", "[2001:db8::1]:80, garbage", "fe80::1%eth0", ",,", "::ffff:10.0.0.1"} {
		f.Add("10.0.0.1", s)
		f.Add("203.0.113.5", s)
	}
	trustedProxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	f.Fuzz(func(t *testing.T, peerText, header string) {
		peer, err := netip.ParseAddr(peerText)
		if err != nil {
			return
		}
		got := ClientAddress(peer, []string{header}, trustedProxies)
		if got.Zone() != "" || got.Is4In6() {
			t.Fatalf("result %s is not canonical", got)
		}
		if !trusted(canonical(peer), trustedProxies) {
			if got != canonical(peer) {
				t.Fatalf("untrusted peer %s: got %s from header %q", peer, got, header)
			}
			return
		}
		if got == canonical(peer) {
			return
		}
		for _, entry := range strings.Split(header, ",") {
			if a, ok := parseForwardedAddr(entry); ok && a == got {
				return
			}
		}
		t.Fatalf("result %s is neither the peer nor in %q", got, header)
	})
}

// FuzzDecodeJSON checks that any body gives either an input or one of the
// adapter's 400 answers, never a panic or another error.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{``, `{}`, `[]`, `{"first_name":"a"}`, `{"email":null}`, `{"a":1} x`, "\xff", `{"password":["x"]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := decodeJSON(body)
		if err == nil {
			return
		}
		var herr *httpError
		var verr *domain.ValidationError
		if errors.As(err, &herr) && herr.status == 400 || errors.As(err, &verr) {
			return
		}
		t.Fatalf("unexpected error kind %T: %v", err, err)
	})
}
