package ipapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/marketplace/usersvc/ports/porttest"
)

// TestGeolocatorContract runs the port's suite on a client of a fake
// ipapi.co that answers per address: placed, reserved or invalid (unknown),
// and broken in the ways a provider fails (failing). Unplaceable addresses
// are unknown without a request.
func TestGeolocatorContract(t *testing.T) {
	answers := map[string]canned{
		"2.16.92.0":            {status: 200, body: bodyCH},
		"2.16.8.0":             {status: 200, body: bodyES},
		"2a02:1210::1":         {status: 200, body: bodyCHv6},
		"8.8.8.8":              {status: 200, body: `{"country_code":"us","country_name":"United States of America"}`},
		"9.9.9.9":              {status: 200, body: bodyReserved},
		"2001:4860:4860::8888": {status: 200, body: `{"ip":"2001:4860:4860::8888","error":true,"reason":"Reserved IP Address","reserved":true}`},
		"1.1.1.1":              {status: 400, body: bodyInvalid},
		"8.8.4.4":              {status: 429, body: bodyRate},
		"4.4.4.4":              {status: 500, contentType: "text/html", body: "<html>oops</html>"},
		"2620:fe::fe":          {status: 200, body: `{"country_code":"CH",`},
		"5.5.5.5":              {status: 200, body: `{"country_code":"CHE"}`},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{ip}/json/", func(w http.ResponseWriter, r *http.Request) {
		a, ok := answers[r.PathValue("ip")]
		if !ok {
			t.Errorf("unexpected request for %s", r.URL.Path)
			http.NotFound(w, r)
			return
		}
		(&fakeIPAPI{canned: a}).ServeHTTP(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	addrs := func(ips ...string) []netip.Addr {
		out := make([]netip.Addr, len(ips))
		for i, ip := range ips {
			out[i] = netip.MustParseAddr(ip)
		}
		return out
	}
	at := func(ip, country string) porttest.Located {
		return porttest.Located{Addr: netip.MustParseAddr(ip), Country: country}
	}
	porttest.RunGeolocatorContract(t, newClient(t, Config{BaseURL: srv.URL, APIKey: testKey}), porttest.GeoCases{
		Located: []porttest.Located{at("2.16.92.0", "CH"), at("2.16.8.0", "ES"), at("2a02:1210::1", "CH"), at("8.8.8.8", "US")},
		Unknown: addrs("9.9.9.9", "2001:4860:4860::8888", "1.1.1.1", "127.0.0.1", "10.0.0.1", "::1", "fe80::1"),
		Failing: addrs("8.8.4.4", "4.4.4.4", "2620:fe::fe", "5.5.5.5"),
	})
}
