package apidocs

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/domain"
)

// parsedDocument parses and validates the embedded document once with
// kin-openapi, which implements OpenAPI 3.1 (JSON Schema 2020-12, examples
// validated against their schemas).
var parsedDocument = sync.OnceValues(func() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(Document())
	if err != nil {
		return nil, fmt.Errorf("load openapi.json: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.json does not validate: %w", err)
	}
	return doc, nil
})

func loadDocument(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := parsedDocument()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestDocumentIsValidOpenAPI31(t *testing.T) {
	doc := loadDocument(t)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	if doc.Info == nil || doc.Info.Title == "" || doc.Info.Version == "" {
		t.Error("info needs a title and a version")
	}
}

// The HTTP contract of the core issue, operation by operation, with every
// status it may answer.
var contract = []struct {
	method, path string
	statuses     []int
}{
	{http.MethodGet, "/api/v1/users", []int{200, 400, 401, 403, 404, 500, 503}},
	{http.MethodPost, "/api/v1/users", []int{201, 400, 401, 403, 413, 415, 500, 503}},
	{http.MethodGet, "/api/v1/users/{id}", []int{200, 304, 401, 403, 404, 500, 503}},
	{http.MethodPut, "/api/v1/users/{id}", []int{200, 400, 401, 403, 404, 412, 413, 415, 500, 503}},
	{http.MethodPatch, "/api/v1/users/{id}", []int{200, 400, 401, 403, 404, 412, 413, 415, 500, 503}},
	{http.MethodDelete, "/api/v1/users/{id}", []int{204, 401, 403, 404, 412, 500, 503}},
	{http.MethodPost, "/api/v1/credentials/verify", []int{200, 400, 401, 403, 413, 415, 429, 500, 503}},
	{http.MethodGet, "/healthz", []int{200}},
	{http.MethodGet, "/readyz", []int{200, 503}},
	{http.MethodGet, "/api/v1/openapi.json", []int{200}},
	{http.MethodGet, "/docs", []int{200}},
	{http.MethodGet, "/schemas/users-events.json", []int{200}},
	{http.MethodGet, "/schemas/asyncapi.json", []int{200}},
}

func TestDocumentCoversTheContract(t *testing.T) {
	doc := loadDocument(t)
	for _, c := range contract {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			item := doc.Paths.Find(c.path)
			if item == nil {
				t.Fatal("path missing")
			}
			op := item.GetOperation(c.method)
			if op == nil {
				t.Fatal("operation missing")
			}
			var got []int
			for code := range op.Responses.Map() {
				n, err := strconv.Atoi(code)
				if err != nil {
					t.Errorf("response %q is not a status code", code)
				}
				got = append(got, n)
			}
			slices.Sort(got)
			if !slices.Equal(got, c.statuses) {
				t.Errorf("statuses %v, want %v", got, c.statuses)
			}
		})
	}
	t.Run("no undocumented operations", func(t *testing.T) {
		n := 0
		for _, item := range doc.Paths.Map() {
			n += len(item.Operations())
		}
		if n != len(contract) {
			t.Errorf("%d operations in the document, %d in the contract", n, len(contract))
		}
	})
}

// TestDocumentDeclaresAuthentication: the bearer scheme as OAuth2 client
// credentials with the scopes, each API operation's scope (the domain's
// table), and none on the never-authenticated paths.
func TestDocumentDeclaresAuthentication(t *testing.T) {
	doc := loadDocument(t)
	scheme := doc.Components.SecuritySchemes["oauth2"]
	if scheme == nil || scheme.Value.Flows == nil || scheme.Value.Flows.ClientCredentials == nil {
		t.Fatal("no oauth2 client-credentials scheme")
	}
	for _, s := range domain.AllScopes() {
		if _, ok := scheme.Value.Flows.ClientCredentials.Scopes[string(s)]; !ok {
			t.Errorf("scheme lacks scope %s", s)
		}
	}
	if b := doc.Components.SecuritySchemes["bearer"]; b == nil || b.Value.Scheme != "bearer" {
		t.Error("no http bearer scheme to paste a token into")
	}
	ops := map[string]domain.Operation{
		"GET /api/v1/users": domain.OpListUsers, "POST /api/v1/users": domain.OpCreateUser,
		"GET /api/v1/users/{id}": domain.OpGetUser, "PUT /api/v1/users/{id}": domain.OpReplaceUser,
		"PATCH /api/v1/users/{id}": domain.OpPatchUser, "DELETE /api/v1/users/{id}": domain.OpDeleteUser,
		"POST /api/v1/credentials/verify": domain.OpVerifyCredentials,
	}
	for _, c := range contract {
		op := doc.Paths.Find(c.path).GetOperation(c.method)
		domainOp, isAPI := ops[c.method+" "+c.path]
		if !isAPI {
			if op.Security != nil && len(*op.Security) > 0 {
				t.Errorf("%s %s declares security; it is never authenticated", c.method, c.path)
			}
			continue
		}
		want, _ := domain.RequiredScope(domainOp)
		if op.Security == nil || len(*op.Security) == 0 {
			t.Errorf("%s %s: no security", c.method, c.path)
			continue
		}
		got := (*op.Security)[0]["oauth2"]
		if len(got) != 1 || got[0] != string(want) {
			t.Errorf("%s %s: scopes %v, want [%s]", c.method, c.path, got, want)
		}
	}
}

func TestDocumentDetails(t *testing.T) {
	doc := loadDocument(t)
	schema := func(name string) *openapi3.Schema {
		t.Helper()
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Fatalf("schema %s missing", name)
		}
		return ref.Value
	}
	users := doc.Paths.Find("/api/v1/users")
	user := doc.Paths.Find("/api/v1/users/{id}")

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"list takes every query parameter", func(t *testing.T) {
			var got []string
			for _, p := range users.Get.Parameters {
				if p.Value.In == openapi3.ParameterInQuery {
					got = append(got, p.Value.Name)
				}
			}
			want := []string{"page", "cursor", "page_size", "first_name", "last_name", "email", "search", "since_id", "max_id", "created_after", "created_before", "country", "ordering"}
			if !slices.Equal(got, want) {
				t.Errorf("query parameters %v, want %v", got, want)
			}
		}},
		{"create accepts JSON and form bodies", func(t *testing.T) {
			content := users.Post.RequestBody.Value.Content
			for _, mt := range []string{"application/json", "application/x-www-form-urlencoded"} {
				if content[mt] == nil {
					t.Errorf("no %s body", mt)
				}
			}
		}},
		{"User has exactly the public fields and no password", func(t *testing.T) {
			s := schema("User")
			var got []string
			for name := range s.Properties {
				got = append(got, name)
			}
			slices.Sort(got)
			want := []string{"address", "country", "created_at", "email", "first_name", "id", "last_name", "updated_at", "url"}
			if !slices.Equal(got, want) {
				t.Errorf("properties %v, want %v", got, want)
			}
			if s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has {
				t.Error("User must forbid additional properties, so a leaked password fails validation")
			}
		}},
		{"passwords are write-only in every request schema", func(t *testing.T) {
			for _, name := range []string{"UserCreate", "UserReplace", "UserPatch"} {
				p := schema(name).Properties["password"]
				if p == nil || !p.Value.WriteOnly {
					t.Errorf("%s.password is not writeOnly", name)
				}
			}
		}},
		{"UserPage is the paginated envelope", func(t *testing.T) {
			s := schema("UserPage")
			for _, f := range []string{"count", "next", "previous", "results"} {
				if !slices.Contains(s.Required, f) {
					t.Errorf("%s not required", f)
				}
			}
		}},
		{"writes honour If-Match", func(t *testing.T) {
			for _, op := range []*openapi3.Operation{user.Put, user.Patch, user.Delete} {
				found := false
				for _, p := range op.Parameters {
					found = found || p.Value.In == openapi3.ParameterInHeader && p.Value.Name == "If-Match"
				}
				if !found {
					t.Errorf("%s has no If-Match", op.OperationID)
				}
			}
		}},
		{"201 carries Location and ETag, 200s of a user carry ETag", func(t *testing.T) {
			requireHeaders(t, users.Post.Responses.Status(201).Value, "Location", "ETag")
			for _, op := range []*openapi3.Operation{user.Get, user.Put, user.Patch} {
				requireHeaders(t, op.Responses.Status(200).Value, "ETag")
			}
		}},
		{"503 carries Retry-After, 405 carries Allow", func(t *testing.T) {
			requireHeaders(t, doc.Components.Responses["Unavailable"].Value, "Retry-After")
			requireHeaders(t, doc.Components.Responses["MethodNotAllowed"].Value, "Allow")
		}},
		{"examples quote the issue's messages", func(t *testing.T) {
			text := string(Document())
			for _, msg := range []string{
				"Only users located in Switzerland can be created (remote address in France)",
				"Geolocation service unavailable, try again later.",
				"Invalid page.", "Not found.", "Precondition failed.", "Internal server error.",
				"A valid integer is required.", "This field is required.", "user with this email already exists.",
				"JSON parse error - ",
			} {
				if !strings.Contains(text, msg) {
					t.Errorf("no example says %q", msg)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

func requireHeaders(t *testing.T, r *openapi3.Response, names ...string) {
	t.Helper()
	for _, n := range names {
		h := r.Headers[n]
		if h == nil || !h.Value.Required {
			t.Errorf("%q: header %s is not declared as required", *r.Description, n)
		}
	}
}

func TestDocumentReturnsACopy(t *testing.T) {
	a := Document()
	a[0] = 'X'
	if Document()[0] == 'X' {
		t.Error("Document exposes the embedded bytes")
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()

	tests := []struct {
		name        string
		method      string
		path        string
		header      http.Header
		status      int
		contentType string
		contains    string
	}{
		{"document", http.MethodGet, DocumentPath, nil, 200, "application/json", `"openapi": "3.1.0"`},
		{"docs page", http.MethodGet, "/docs", nil, 200, "text/html; charset=utf-8", `<div id="swagger-ui">`},
		{"docs page with a slash", http.MethodGet, "/docs/", nil, 200, "text/html; charset=utf-8", `<div id="swagger-ui">`},
		{"start-up script", http.MethodGet, "/docs/docs.js", nil, 200, "text/javascript; charset=utf-8", `"/api/v1/openapi.json"`},
		{"Swagger UI bundle", http.MethodGet, "/docs/swagger-ui/swagger-ui-bundle.js", nil, 200, "text/javascript; charset=utf-8", "SwaggerUIBundle"},
		{"Swagger UI styles", http.MethodGet, "/docs/swagger-ui/swagger-ui.css", nil, 200, "text/css; charset=utf-8", ".swagger-ui"},
		{"icon", http.MethodGet, "/docs/swagger-ui/favicon-32x32.png", nil, 200, "image/png", "PNG"},
		{"licence of the vendored files", http.MethodGet, "/docs/swagger-ui/LICENSE", nil, 200, "text/plain; charset=utf-8", "Apache License"},
		{"event schema", http.MethodGet, EventSchemaPath, nil, 200, "application/schema+json", `"$schema": "https://json-schema.org/draft/2020-12/schema"`},
		{"AsyncAPI document", http.MethodGet, AsyncAPIPath, nil, 200, "application/asyncapi+json", `"asyncapi": "3.0.0"`},
		{"docs page links the event contract", http.MethodGet, "/docs", nil, 200, "text/html; charset=utf-8", `href="/schemas/asyncapi.json"`},
		{"HEAD", http.MethodHead, "/docs", nil, 200, "text/html; charset=utf-8", ""},
		{"unknown file", http.MethodGet, "/docs/nope.js", nil, 404, "application/json; charset=utf-8", `{"detail":"Not found."}`},
		{"unknown path", http.MethodGet, "/elsewhere", nil, 404, "application/json; charset=utf-8", `{"detail":"Not found."}`},
		{"POST", http.MethodPost, "/docs", nil, 405, "application/json; charset=utf-8", `{"detail":"Method \"POST\" not allowed."}`},
		{"revalidation", http.MethodGet, DocumentPath, http.Header{"If-None-Match": {etagOf(t, srv.URL+DocumentPath)}}, 304, "", ""},
		{"gzip refused with q=0", http.MethodGet, DocumentPath, http.Header{"Accept-Encoding": {"gzip;q=0"}}, 200, "application/json", `"openapi"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := do(t, tt.method, srv.URL+tt.path, tt.header)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			if tt.contentType != "" && res.Header.Get("Content-Type") != tt.contentType {
				t.Errorf("Content-Type %q, want %q", res.Header.Get("Content-Type"), tt.contentType)
			}
			if !strings.Contains(string(body), tt.contains) {
				t.Errorf("body does not contain %q: %.200s", tt.contains, body)
			}
			if tt.method == http.MethodHead && len(body) != 0 {
				t.Error("HEAD answered a body")
			}
			if tt.status == 405 && res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow %q", res.Header.Get("Allow"))
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
			if res.Header.Get("Content-Encoding") != "" {
				t.Errorf("Content-Encoding %q without Accept-Encoding", res.Header.Get("Content-Encoding"))
			}
		})
	}

	t.Run("document is served as embedded", func(t *testing.T) {
		_, body := do(t, http.MethodGet, srv.URL+DocumentPath, nil)
		if !bytes.Equal(body, Document()) {
			t.Error("served document differs from Document()")
		}
	})
	t.Run("gzip when accepted", func(t *testing.T) {
		// The stylesheet rather than the 1.7 MB bundle: flate is slow under -race.
		res, body := do(t, http.MethodGet, srv.URL+"/docs/swagger-ui/swagger-ui.css", http.Header{"Accept-Encoding": {"br, gzip"}})
		if res.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
			t.Fatalf("Content-Encoding %q Vary %q", res.Header.Get("Content-Encoding"), res.Header.Get("Vary"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := assetFiles.ReadFile("assets/swagger-ui/swagger-ui.css")
		if !bytes.Equal(plain, want) {
			t.Error("gzipped body differs from the file")
		}
		if len(body) >= len(want)/2 {
			t.Errorf("gzip saved little: %d of %d bytes", len(body), len(want))
		}
	})
	t.Run("the page's CSP allows its own files only", func(t *testing.T) {
		res, _ := do(t, http.MethodGet, srv.URL+"/docs", nil)
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "http") {
			t.Errorf("CSP %q allows eval or another origin", csp)
		}
	})
}

// Every file the page and its script reference is served here: nothing
// comes from a CDN, and no link is broken.
func TestDocsPageLoadsOnlyEmbeddedFiles(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	refs := regexp.MustCompile(`(?:href|src|url)\s*[=:]\s*"([^"]+)"`)
	for _, file := range []string{"/docs", "/docs/docs.js"} {
		_, body := do(t, http.MethodGet, srv.URL+file, nil)
		matches := refs.FindAllStringSubmatch(string(body), -1)
		if len(matches) == 0 {
			t.Fatalf("%s references nothing", file)
		}
		for _, m := range matches {
			ref := m[1]
			t.Run(file+" -> "+ref, func(t *testing.T) {
				if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
					t.Fatalf("not a local absolute path: %q", ref)
				}
				if ref == DocumentPath {
					return // served by the same handler, checked above
				}
				res, _ := do(t, http.MethodGet, srv.URL+ref, nil)
				if res.StatusCode != http.StatusOK {
					t.Errorf("status %d", res.StatusCode)
				}
			})
		}
	}
}

func TestRegisterOnGin(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	Register(r)
	for _, p := range []string{DocumentPath, "/docs", "/docs/", "/docs/docs.js", EventSchemaPath, AsyncAPIPath} {
		t.Run(p, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
			if rec.Code != http.StatusOK {
				t.Errorf("status %d", rec.Code)
			}
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"deflate, gzip;q=0.5", true},
		{"GZIP", true},
		{"*", true},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"br", false},
		{"x-gzip-ish", false},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			if got := acceptsGzip([]string{tt.header}); got != tt.want {
				t.Errorf("got %v", got)
			}
		})
	}
}

func TestPathsAreAllServed(t *testing.T) {
	h := Handler()
	paths := Paths()
	if len(paths) < 5 || !slices.IsSorted(paths) {
		t.Fatalf("Paths() = %v", paths)
	}
	for _, p := range paths {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s: status %d", p, rec.Code)
		}
	}
}

func do(t *testing.T, method, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	// The transport would add Accept-Encoding: gzip and decode silently;
	// tests ask for it explicitly.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func etagOf(t *testing.T, url string) string {
	t.Helper()
	res, _ := do(t, http.MethodGet, url, nil)
	tag := res.Header.Get("ETag")
	if tag == "" {
		t.Fatal("no ETag")
	}
	return tag
}
