package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Label values that stand for many raw values, keeping series bounded.
const (
	routeUnmatched = "unmatched"
	methodOther    = "OTHER"
)

// GinMiddleware counts and times every request by method, route template
// and status, and tracks the requests in flight. Mount it first (before
// recovery) so that its duration covers the whole chain and a recovered
// panic is counted with the 500 it became; Gin also runs it for the 404
// and 405 handlers.
func (m *Metrics) GinMiddleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		m.httpInFlight.Inc()
		// Deferred so that a panic nobody recovers cannot leak the gauge.
		defer m.httpInFlight.Dec()
		c.Next()
		labels := []string{
			methodLabel(c.Request.Method),
			routeLabel(c.FullPath()),
			strconv.Itoa(c.Writer.Status()),
		}
		m.httpRequests.WithLabelValues(labels...).Inc()
		m.httpDuration.WithLabelValues(labels...).Observe(time.Since(start).Seconds())
	}
}

// routeLabel is the matched route template without its optional trailing
// slash (the HTTP adapter registers both spellings), or "unmatched": a raw
// path would give every probed URL a series of its own.
func routeLabel(fullPath string) string {
	if fullPath == "" {
		return routeUnmatched
	}
	if len(fullPath) > 1 {
		fullPath = strings.TrimSuffix(fullPath, "/")
	}
	return fullPath
}

// methodLabel keeps the standard methods and folds any other token (which
// net/http accepts from clients) into one value.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	default:
		return methodOther
	}
}
