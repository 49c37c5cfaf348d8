package httpapi

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestRoutingErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("routes@example.ch"))
	tests := []struct {
		name   string
		method string
		path   string
		status int
		allow  []string
		want   string
	}{
		{name: "unknown route", method: "GET", path: "/api/v1/nothing", status: 404, want: `{"detail":"Not found."}`},
		{name: "below a user", method: "GET", path: idPath(u) + "/friends", status: 404, want: `{"detail":"Not found."}`},
		{name: "double trailing slash is not a route", method: "GET", path: "/api/v1/users//", status: 404, want: `{"detail":"Not found."}`},
		{name: "DELETE on the collection", method: "DELETE", path: "/api/v1/users", status: 405, allow: []string{"GET", "HEAD", "POST"},
			want: `{"detail":"Method \"DELETE\" not allowed."}`},
		{name: "PUT on the collection with slash", method: "PUT", path: "/api/v1/users/", status: 405, allow: []string{"GET", "HEAD", "POST"},
			want: `{"detail":"Method \"PUT\" not allowed."}`},
		{name: "POST on a user", method: "POST", path: idPath(u), status: 405, allow: []string{"DELETE", "GET", "HEAD", "PATCH", "PUT"},
			want: `{"detail":"Method \"POST\" not allowed."}`},
		{name: "POST on the health probe", method: "POST", path: "/healthz", status: 405, allow: []string{"GET", "HEAD"},
			want: `{"detail":"Method \"POST\" not allowed."}`},
		{name: "trailing slash on the collection answers without redirect", method: "GET", path: "/api/v1/users/", status: 200},
		{name: "trailing slash on a user answers without redirect", method: "GET", path: idPath(u) + "/", status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(req{method: tt.method, path: tt.path})
			if tt.want != "" {
				assertJSON(t, res, tt.status, tt.want)
			} else if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if tt.allow != nil {
				allow := strings.Split(res.header.Get("Allow"), ", ")
				slices.Sort(allow)
				if !slices.Equal(allow, tt.allow) {
					t.Errorf("Allow = %q, want %v", res.header.Get("Allow"), tt.allow)
				}
			}
		})
	}
}

// hiddenLength hides a reader's size so the request is sent chunked,
// without a Content-Length the server could refuse up front.
type hiddenLength struct{ io.Reader }

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("big@example.ch"))
	big := `{"first_name":"` + strings.Repeat("a", 1<<20) + `"}`
	tests := []struct {
		name string
		req  req
	}{
		{"declared length over 1 MiB", jsonReq(http.MethodPost, "/api/v1/users", big)},
		{"chunked body over 1 MiB", req{method: http.MethodPost, path: "/api/v1/users", ctype: "application/json", reader: hiddenLength{strings.NewReader(big)}}},
		{"form body over 1 MiB", req{method: http.MethodPost, path: "/api/v1/users", ctype: "application/x-www-form-urlencoded", reader: hiddenLength{strings.NewReader("first_name=" + strings.Repeat("a", 1<<20))}}},
		{"PATCH over 1 MiB", req{method: http.MethodPatch, path: idPath(u), ctype: "application/json", reader: hiddenLength{strings.NewReader(big)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertJSON(t, e.do(tt.req), 413, `{"detail":"Request body too large."}`)
		})
	}
	t.Run("just under the limit is read", func(t *testing.T) {
		body := `{"address":"` + strings.Repeat("a", 1<<20-20) + `"}`
		res := e.do(jsonReq(http.MethodPatch, idPath(u), body))
		assertJSON(t, res, 400, `{"address":["Ensure this field has no more than 300 characters."]}`)
	})
	t.Run("configured limit", func(t *testing.T) {
		small := newEnv(t, envOptions{maxBody: 64})
		res := small.do(jsonReq(http.MethodPost, "/api/v1/users", userBody("a-rather-long-address@example.ch")))
		assertJSON(t, res, 413, `{"detail":"Request body too large."}`)
	})
}

func TestInternalErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("broken@example.ch"))
	t.Run("panic is recovered as 500 JSON", func(t *testing.T) {
		e.geo.mode.Store(int32(geoPanicking))
		defer e.geo.mode.Store(int32(geoNormal))
		res := e.do(jsonReq(http.MethodPost, "/api/v1/users", userBody("panic@example.ch")))
		assertJSON(t, res, 500, `{"detail":"Internal server error."}`)
		if res.header.Get("Location") != "" || res.header.Get("ETag") != "" {
			t.Errorf("500 carries success headers: %v", res.header)
		}
		if !strings.Contains(e.logs.String(), "geolocator exploded") {
			t.Errorf("the panic was not logged")
		}
	})
	t.Run("unexpected error is 500 without internals", func(t *testing.T) {
		// A corrupted stored time makes reading the row fail: an error no
		// mapping knows.
		if _, err := e.store.DB().ExecContext(context.Background(), "UPDATE users SET created_at = 'corrupted' WHERE id = ?", u["id"]); err != nil {
			t.Fatal(err)
		}
		res := e.do(req{method: http.MethodGet, path: idPath(u)})
		assertJSON(t, res, 500, `{"detail":"Internal server error."}`)
		if !strings.Contains(e.logs.String(), `name \"created_at\": unsupported Scan`) {
			t.Errorf("the cause was not logged for operators: %s", e.logs.String())
		}
	})
	t.Run("server keeps serving", func(t *testing.T) {
		if res := e.do(req{method: http.MethodGet, path: "/api/v1/users"}); res.status != http.StatusOK && res.status != http.StatusInternalServerError {
			t.Fatalf("status %d after the failures", res.status)
		}
		if res := e.do(req{method: http.MethodGet, path: "/healthz"}); res.status != http.StatusOK {
			t.Fatalf("status %d after the failures", res.status)
		}
	})
}

func TestProbes(t *testing.T) {
	e := newEnv(t, envOptions{})
	assertJSON(t, e.do(req{method: "GET", path: "/healthz"}), 200, `{"status":"ok"}`)
	assertJSON(t, e.do(req{method: "GET", path: "/readyz"}), 200, `{"status":"ready"}`)

	e.readiness.SetDraining()
	assertJSON(t, e.do(req{method: "GET", path: "/readyz"}), 503, `{"detail":"Service is shutting down."}`)
	assertJSON(t, e.do(req{method: "GET", path: "/healthz"}), 200, `{"status":"ok"}`)
	if res := e.do(req{method: "GET", path: "/api/v1/users"}); res.status != http.StatusOK {
		t.Errorf("draining refused a request with %d; in-flight and late requests must still be served", res.status)
	}

	down := newEnv(t, envOptions{})
	if err := down.store.Close(); err != nil {
		t.Fatal(err)
	}
	assertJSON(t, down.do(req{method: "GET", path: "/readyz"}), 503, `{"detail":"Service not ready."}`)
	if !strings.Contains(down.logs.String(), `"msg":"not ready"`) {
		t.Errorf("the failed ping was not logged")
	}
}

func TestIndexLinksToTheAPIAndItsDocs(t *testing.T) {
	e := newEnv(t, envOptions{})
	res := e.do(req{method: http.MethodGet, path: "/"})
	got := res.object(t)
	if res.status != http.StatusOK || got["users"] != e.v4.URL+"/api/v1/users" || got["docs"] != e.v4.URL+"/docs" {
		t.Fatalf("GET / = %d %v", res.status, got)
	}
}

// Config's extension points: middleware sees every request (unknown routes
// included) and extra routes are served beside the API.
func TestConfigMiddlewareAndRoutes(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	e := newEnv(t, envOptions{
		middleware: []gin.HandlerFunc{func(c *gin.Context) {
			c.Next()
			mu.Lock()
			seen = append(seen, c.Request.Method+" "+c.FullPath()+" "+strconv.Itoa(c.Writer.Status()))
			mu.Unlock()
		}},
		routes: []func(gin.IRoutes){func(r gin.IRoutes) {
			r.GET("/extra", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"extra": true}) })
		}},
	})
	if res := e.do(req{method: http.MethodGet, path: "/extra"}); res.status != http.StatusOK || res.object(t)["extra"] != true {
		t.Fatalf("GET /extra = %d %s", res.status, res.body)
	}
	if res := e.do(req{method: http.MethodGet, path: "/nowhere"}); res.status != http.StatusNotFound {
		t.Fatalf("GET /nowhere = %d", res.status)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, "; ") != "GET /extra 200; GET  404" {
		t.Fatalf("middleware saw %q", seen)
	}
}
