// Package apidocs serves the OpenAPI 3.1 description of the HTTP API
// (openapi.json, the reference clients rely on), interactive
// documentation (Swagger UI) at /docs, and the event contract: the JSON
// Schema of the event body (schemas/users-events.json) and the AsyncAPI
// document of the Kafka topic and RabbitMQ exchange (schemas/asyncapi.json),
// under /schemas/. Everything is embedded in the binary: the documentation
// works on machines without Internet access.
//
// Mounting: Handler is a plain http.Handler answering exactly Paths() (and
// a JSON 404 for anything else), so it fits any router:
//
//	mux.Handle("/", api)                  // the Gin API
//	for _, p := range apidocs.Paths() {
//		mux.Handle(p, apidocs.Handler())
//	}
//
// or, inside a Gin engine, Register(engine), which adds the same routes
// (so they also get the engine's middleware: request id, access log). The
// handler sets its own Content-Security-Policy, overriding a stricter API
// policy that would stop the page from loading its script and styles.
//
// The document is checked against the real HTTP adapter by this package's
// tests (every response validated with kin-openapi), so the two cannot
// drift apart silently.
package apidocs

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Where the document and the documentation are served.
const (
	DocumentPath = "/api/v1/openapi.json"
	DocsPath     = "/docs"
	// EventSchemaPath serves schemas/users-events.json, the JSON Schema
	// (2020-12) of every event body; AsyncAPIPath the AsyncAPI 3.0
	// document, which references it by a relative URL.
	EventSchemaPath = "/schemas/users-events.json"
	AsyncAPIPath    = "/schemas/asyncapi.json"
)

//go:embed openapi.json
var document []byte

//go:embed schemas/users-events.json
var eventSchema []byte

//go:embed schemas/asyncapi.json
var asyncAPI []byte

// Only what the page loads, and the licences of what is vendored.
//
//go:embed assets/index.html assets/docs.js assets/docs.css
//go:embed assets/swagger-ui/swagger-ui-bundle.js assets/swagger-ui/swagger-ui.css assets/swagger-ui/favicon-32x32.png
//go:embed assets/swagger-ui/LICENSE assets/swagger-ui/NOTICE assets/swagger-ui/swagger-ui-bundle.js.LICENSE.txt
var assetFiles embed.FS

// Document returns a copy of the OpenAPI document (JSON).
func Document() []byte { return bytes.Clone(document) }

// EventSchema returns a copy of the event body's JSON Schema.
func EventSchema() []byte { return bytes.Clone(eventSchema) }

// AsyncAPI returns a copy of the AsyncAPI document (JSON).
func AsyncAPI() []byte { return bytes.Clone(asyncAPI) }

// Content-Security-Policy of each kind of answer. The page may load only
// its own scripts, styles and images and fetch only this origin (the
// document, and "try it out" requests); Swagger UI sets inline styles.
const (
	documentCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	docsCSP     = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
		"font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

// contentTypes maps the embedded files' extensions; a file without an
// extension (LICENSE, NOTICE) is text.
var contentTypes = map[string]string{
	".json": "application/json",
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".png":  "image/png",
	".txt":  "text/plain; charset=utf-8",
	"":      "text/plain; charset=utf-8",
}

// asset is one answer, prepared once.
type asset struct {
	body         []byte
	etag         string
	contentType  string
	csp          string
	cacheControl string
	// gzipped is computed on first use; nil for bodies not worth it.
	gzipped func() []byte
}

// minGzipSize: smaller bodies are sent as they are.
const minGzipSize = 1024

func newAsset(body []byte, contentType, csp, cacheControl string) *asset {
	sum := sha256.Sum256(body)
	a := &asset{
		body:         body,
		etag:         `"` + hex.EncodeToString(sum[:8]) + `"`,
		contentType:  contentType,
		csp:          csp,
		cacheControl: cacheControl,
	}
	if len(body) >= minGzipSize && !strings.HasPrefix(contentType, "image/") {
		a.gzipped = sync.OnceValue(func() []byte { return gzipBytes(body) })
	}
	return a
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression) // a valid level cannot fail
	_, _ = zw.Write(b)                                          // writes to a bytes.Buffer cannot fail
	_ = zw.Close()
	return buf.Bytes()
}

// assets maps each served path to its answer; built once per process.
var assets = sync.OnceValue(func() map[string]*asset {
	m := map[string]*asset{
		DocumentPath: newAsset(document, contentTypes[".json"], documentCSP, "no-cache"),
		// Their registered media types, so that tools know what they get.
		EventSchemaPath: newAsset(eventSchema, "application/schema+json", documentCSP, "no-cache"),
		AsyncAPIPath:    newAsset(asyncAPI, "application/asyncapi+json", documentCSP, "no-cache"),
	}
	// Embedded files cannot fail to read: an error here is a build defect.
	err := fs.WalkDir(assetFiles, "assets", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assetFiles.ReadFile(name)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("%s: no content type for its extension", name)
		}
		rel := strings.TrimPrefix(name, "assets/")
		// The page and its script change with the binary; the vendored
		// files only with a version bump, so they may be cached for a day.
		cache := "no-cache"
		if strings.HasPrefix(rel, "swagger-ui/") {
			cache = "public, max-age=86400"
		}
		a := newAsset(body, ct, docsCSP, cache)
		if rel == "index.html" {
			// No redirect between the two spellings; the page links its
			// files by absolute path, so both work.
			m[DocsPath] = a
			m[DocsPath+"/"] = a
			return nil
		}
		m[DocsPath+"/"+rel] = a
		return nil
	})
	if err != nil {
		panic("apidocs: embedded assets: " + err.Error())
	}
	return m
})

// Paths lists every path Handler answers, sorted.
func Paths() []string {
	m := assets()
	out := make([]string, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Handler serves the document and the documentation: GET and HEAD, with
// ETag revalidation and gzip when the client accepts it. Other paths answer
// 404 and other methods 405, as JSON like the rest of the API.
func Handler() http.Handler { return handler{assets: assets()} }

// Register adds Handler's routes to a Gin router.
func Register(r gin.IRoutes) {
	h := gin.WrapH(Handler())
	for _, p := range Paths() {
		r.GET(p, h)
		r.HEAD(p, h)
	}
}

type handler struct {
	assets map[string]*asset
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.URL.Path]
	if !ok {
		writeDetail(w, http.StatusNotFound, "Not found.")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeDetail(w, http.StatusMethodNotAllowed, fmt.Sprintf("Method %q not allowed.", r.Method))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("Content-Security-Policy", a.csp)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", a.cacheControl)
	body, etag := a.body, a.etag
	if a.gzipped != nil {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			body = a.gzipped()
			etag = strings.TrimSuffix(etag, `"`) + `-gz"`
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("ETag", etag)
	// ServeContent answers HEAD, Range and If-None-Match (304).
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reads Accept-Encoding: gzip (or *) with a non-zero quality.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(item), ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "*" {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
				continue
			}
			return true
		}
	}
	return false
}

func writeDetail(w http.ResponseWriter, status int, detail string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]string{"detail": detail}) // a string map always encodes
	_, _ = w.Write(body)
}
