package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

var emailSeq atomic.Int64

func uniqueEmail() string { return fmt.Sprintf("user%d@example.ch", emailSeq.Add(1)) }

// TestCreateCountryPolicy drives the client-address rule end to end: the
// TCP peer is 127.0.0.1 or ::1, TrustedProxies includes loopback or not,
// and the static geolocator places the resulting address.
func TestCreateCountryPolicy(t *testing.T) {
	const loopback = "127.0.0.0/8,::1"
	const franceLoopback = "127.0.0.0/8=FR,::1/128=FR,198.51.100.0/24=CH,2001:db8:c4::/48=CH"
	tests := []struct {
		name    string
		trusted string
		geo     string
		v6      bool
		xff     string
		status  int
		detail  string
	}{
		{name: "Swiss peer, no proxy", status: 201},
		{name: "Swiss IPv6 peer, no proxy", v6: true, status: 201},
		{name: "French peer refused", geo: franceLoopback, status: 403,
			detail: "Only users located in Switzerland can be created (remote address in France)"},
		{name: "French IPv6 peer refused", geo: franceLoopback, v6: true, status: 403,
			detail: "Only users located in Switzerland can be created (remote address in France)"},
		{name: "spoofed Swiss X-Forwarded-For from untrusted peer ignored", geo: franceLoopback, xff: "198.51.100.7", status: 403,
			detail: "Only users located in Switzerland can be created (remote address in France)"},
		{name: "spoofed Swiss X-Forwarded-For from untrusted IPv6 peer ignored", geo: franceLoopback, v6: true, xff: "2001:db8:c4::7", status: 403,
			detail: "Only users located in Switzerland can be created (remote address in France)"},
		{name: "trusted proxy: Swiss client honoured", trusted: loopback, geo: franceLoopback, xff: "198.51.100.7", status: 201},
		{name: "trusted IPv6 proxy: Swiss IPv6 client honoured", trusted: loopback, geo: franceLoopback, v6: true, xff: "2001:db8:c4::7", status: 201},
		{name: "trusted proxy: French client refused", trusted: loopback, xff: "203.0.113.7", status: 403,
			detail: "Only users located in Switzerland can be created (remote address in France)"},
		{name: "trusted IPv6 proxy: French IPv6 client refused", trusted: loopback, v6: true, xff: "[2001:db8:f2::7]:5555", status: 403,
			detail: "Only users located in Switzerland can be created (remote address in France)"},
		{name: "trusted proxy: client's own spoof left of its real address ignored", trusted: loopback, xff: "198.51.100.7, 203.0.113.7", status: 403,
			detail: "Only users located in Switzerland can be created (remote address in France)"},
		{name: "trusted proxy: unknown location refused", trusted: loopback, xff: "192.0.2.1", status: 403,
			detail: "Only users located in Switzerland can be created (remote address location unknown)"},
		{name: "IPv4 proxy trusted, IPv6 peer is not", trusted: "127.0.0.0/8", geo: franceLoopback, v6: true, xff: "198.51.100.7", status: 403,
			detail: "Only users located in Switzerland can be created (remote address in France)"},
		{name: "4in6 trusted proxy entry covers the IPv4 peer", trusted: "::ffff:127.0.0.0/104", geo: franceLoopback, xff: "198.51.100.7", status: 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{trusted: tt.trusted, geo: tt.geo})
			r := jsonReq(http.MethodPost, "/api/v1/users", userBody(uniqueEmail()))
			r.v6 = tt.v6
			if tt.xff != "" {
				r.headers = map[string]string{"X-Forwarded-For": tt.xff}
			}
			res := e.do(r)
			if tt.status == http.StatusCreated {
				if res.status != http.StatusCreated {
					t.Fatalf("status %d: %s", res.status, res.body)
				}
				return
			}
			assertJSON(t, res, tt.status, fmt.Sprintf(`{"detail":%q}`, tt.detail))
			assertCount(t, e, 0)
		})
	}
}

// TestCreateCheckOrder shows the contract's order: field validation before
// the country policy, the policy before the email uniqueness check.
func TestCreateCheckOrder(t *testing.T) {
	e := newEnv(t, envOptions{trusted: "127.0.0.0/8"})
	e.create(userBody("first@example.ch"))
	french := map[string]string{"X-Forwarded-For": "203.0.113.7"}
	r := jsonReq(http.MethodPost, "/api/v1/users", jsonOf(valid(map[string]any{"email": "bad"})))
	r.headers = french
	assertJSON(t, e.do(r), 400, `{"email":["Enter a valid email address."]}`)
	r = jsonReq(http.MethodPost, "/api/v1/users", userBody("first@example.ch"))
	r.headers = french
	res := e.do(r)
	if res.status != http.StatusForbidden {
		t.Fatalf("taken email from France: status %d, want 403: %s", res.status, res.body)
	}
}

func TestCreateGeolocationUnavailable(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.geo.mode.Store(int32(geoFailing))
	res := e.do(jsonReq(http.MethodPost, "/api/v1/users", userBody(uniqueEmail())))
	assertJSON(t, res, 503, `{"detail":"Geolocation service unavailable, try again later."}`)
	if ra := res.header.Get("Retry-After"); ra == "" || strings.Trim(ra, "0123456789") != "" {
		t.Errorf("Retry-After = %q, want delay-seconds", ra)
	}
	if strings.Contains(string(res.body), "429") {
		t.Errorf("answer leaks the provider's error: %s", res.body)
	}
	e.geo.mode.Store(int32(geoNormal))
	assertCount(t, e, 0)
	if !strings.Contains(e.logs.String(), "provider answered 429") {
		t.Errorf("the provider failure was not logged for operators")
	}
}
