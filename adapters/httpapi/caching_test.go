package httpapi

import (
	"net/http"
	"slices"
	"testing"
)

// Every answer of the API carries user data (or says whether a user
// exists) and depends on the caller: no cache may store it, and a cache
// that does anyway must key it by Authorization. Probes and the index carry
// neither.
func TestCachingHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("cache@example.ch"))
	path := idPath(u)
	tests := []struct {
		name   string
		r      req
		status int
		api    bool
	}{
		{"create", jsonReq(http.MethodPost, "/api/v1/users", userBody("cache2@example.ch")), 201, true},
		{"create refused", jsonReq(http.MethodPost, "/api/v1/users", `{}`), 400, true},
		{"get", req{method: http.MethodGet, path: path}, 200, true},
		{"head", req{method: http.MethodHead, path: path}, 200, true},
		{"get, not modified", req{method: http.MethodGet, path: path, headers: map[string]string{"If-None-Match": `"1"`}}, 304, true},
		{"get absent", req{method: http.MethodGet, path: "/api/v1/users/999"}, 404, true},
		{"list", req{method: http.MethodGet, path: "/api/v1/users"}, 200, true},
		{"list, trailing slash", req{method: http.MethodGet, path: "/api/v1/users/"}, 200, true},
		{"patch", jsonReq(http.MethodPatch, path, `{"address":"Weg 1"}`), 200, true},
		{"replace", jsonReq(http.MethodPut, path, `{"first_name":"A","last_name":"B","email":"cache@example.ch","password":"s3cret-pass"}`), 200, true},
		{"probe", req{method: http.MethodGet, path: "/healthz"}, 200, false},
		{"index", req{method: http.MethodGet, path: "/"}, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(tt.r)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			cc, vary := res.header.Get("Cache-Control"), res.header.Values("Vary")
			if !tt.api {
				if cc == "no-store" || slices.Contains(vary, "Authorization") {
					t.Errorf("non-API answer marked as personal: Cache-Control %q, Vary %q", cc, vary)
				}
				return
			}
			if cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if !slices.Contains(vary, "Authorization") {
				t.Errorf("Vary = %q, want Authorization", vary)
			}
		})
	}
}
