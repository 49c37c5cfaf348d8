package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

// requestInfo is what the adapter learns about a request before routing:
// who sent it, how it reached us, and its id for the logs.
type requestInfo struct {
	ID     string
	Client netip.Addr
	Origin origin
	// Subject and ClientID name the authenticated caller, for the access
	// log (empty when nobody authenticated).
	Subject  string
	ClientID string
	// Trusted: the TCP peer is a trusted proxy, whose forwarded headers count.
	Trusted bool
}

type requestInfoKey struct{}

// RequestID returns the id of the HTTP request ctx belongs to, so that any
// log line written with that context can be tied to the access line.
func RequestID(ctx context.Context) (string, bool) {
	info, ok := ctx.Value(requestInfoKey{}).(*requestInfo)
	if !ok {
		return "", false
	}
	return info.ID, true
}

func infoFrom(c *gin.Context) *requestInfo {
	if info, ok := c.Request.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		return info
	}
	return &requestInfo{} // only reachable if identify did not run
}

// Header names the adapter reads or writes.
const (
	headerRequestID = "X-Request-ID"
	maxRequestIDLen = 128
)

// identify resolves the client address, the origin for absolute URLs and
// the request id, and stores them in the request's context. Forwarded
// headers and X-Request-ID count only when the TCP peer is trusted.
func identify(trustedProxies []netip.Prefix, public *url.URL) gin.HandlerFunc {
	return func(c *gin.Context) {
		r := c.Request
		peer := peerAddress(r.RemoteAddr)
		peerTrusted := peer.IsValid() && trusted(peer, trustedProxies)
		info := &requestInfo{
			Client: ClientAddress(peer, r.Header.Values("X-Forwarded-For"), trustedProxies),
			Origin: requestOrigin(r, peerTrusted, public),
			// Trusted: whether traceparent and baggage are believed too.
			Trusted: peerTrusted,
		}
		if peerTrusted {
			info.ID = r.Header.Get(headerRequestID)
		}
		if !validRequestID(info.ID) {
			info.ID = uuid.NewString()
		}
		c.Header(headerRequestID, info.ID)
		c.Request = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
		c.Next()
	}
}

// validRequestID bounds the length and the alphabet of a propagated id so
// that it cannot forge log fields or headers.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '+' || c == '=') {
			return false
		}
	}
	return true
}

// accessLog writes one line per request once it is answered. It logs no
// path, query or body: those may carry personal data; the client address
// is kept as clientIP says (LOG_CLIENT_IP). Probe routes log at
// debug level so orchestrator polling does not drown the log.
func accessLog(logger *slog.Logger, clientIP ClientIPLog) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		info := infoFrom(c)
		route := routeTemplate(c)
		status := c.Writer.Status()
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case route == pathHealth || route == pathReady:
			level = slog.LevelDebug
		}
		attrs := []slog.Attr{
			slog.String("method", c.Request.Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.Int("bytes", max(c.Writer.Size(), 0)),
		}
		if client, ok := clientIP.show(info.Client); ok {
			attrs = append(attrs, slog.String("client", client))
		}
		if info.Subject != "" {
			attrs = append(attrs, slog.String("sub", info.Subject))
		}
		if info.ClientID != "" {
			attrs = append(attrs, slog.String("client_id", info.ClientID))
		}
		logger.LogAttrs(c.Request.Context(), level, "http request", attrs...)
	}
}

// routeTemplate is the matched route without its optional trailing slash,
// so both spellings of a route aggregate; unmatched requests share one name.
func routeTemplate(c *gin.Context) string {
	route := c.FullPath()
	if route == "" {
		return "unmatched"
	}
	if len(route) > 1 {
		route = strings.TrimSuffix(route, "/")
	}
	return route
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// recovery turns a panic into a logged error and a 500 JSON answer, so a bug
// never leaks a stack trace to the client nor drops the connection.
func recovery(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if err, ok := rec.(error); ok && errors.Is(err, http.ErrAbortHandler) { // net/http's own signal to drop the connection
				panic(rec)
			}
			logger.ErrorContext(c.Request.Context(), "panic while handling request",
				slog.Any("panic", rec),
				slog.String("stack", string(debug.Stack())),
			)
			if !c.Writer.Written() {
				c.Writer.Header().Del("ETag")
				c.Writer.Header().Del("Location")
				abortWith(c, detailError(http.StatusInternalServerError, msgInternal))
			}
			c.Abort()
		}()
		c.Next()
	}
}

// secureHeaders marks every answer as JSON that must not be sniffed,
// framed or allowed to load anything.
func secureHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		c.Next()
	}
}

// apiHeaders marks the API's answers as personal and per caller: with
// no-store, neither a browser nor a shared cache keeps a user's data (an
// error answer costs nothing to refetch either); Vary: Authorization tells
// any cache that ignores no-store that two callers' answers differ.
func apiHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Cache-Control", "no-store")
		h.Add("Vary", "Authorization")
		c.Next()
	}
}

// errRequestDeadline is the cause of a request context that ran out of
// REQUEST_TIMEOUT, which tells our deadline from any other cancellation.
var errRequestDeadline = errors.New("request deadline (REQUEST_TIMEOUT) exceeded")

// deadline bounds every request: its context ends after timeout, and that
// context reaches every database statement, outbound call and hashing wait,
// so their work stops then and the answer is a 503 (errorMapper). The
// request body gets the same deadline as it is read (readBody).
func deadline(timeout time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeoutCause(c.Request.Context(), timeout, errRequestDeadline)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// pastDeadline reports whether the request's own deadline has passed.
func pastDeadline(c *gin.Context) bool {
	return errors.Is(context.Cause(c.Request.Context()), errRequestDeadline)
}

// limitBody caps every request body: a declared length over the cap is
// refused at once, and a body that turns out longer fails its read with
// *http.MaxBytesError, which the decoders report as 413.
func limitBody(maxBytes int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > maxBytes {
			abortWith(c, errBodyTooLarge)
			return
		}
		if c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBytes)
		}
		c.Next()
	}
}

// isBodyTooLarge reports whether err comes from the body limit.
func isBodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
