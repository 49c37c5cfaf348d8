package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/gin-gonic/gin"
)

// AdminHandler serves the admin listener (ADMIN_ADDR): probes, metrics and
// profiling, kept off the public listener so that only the cluster's
// monitoring reaches them.
type AdminHandler struct{ http.Handler }

// pathPprof is where net/http/pprof answers on the admin listener.
const pathPprof = "/debug/pprof/"

// NewAdminHandler returns the admin listener's handler: /healthz and
// /readyz (the same checks as the public ones), /debug/pprof/ and
// cfg.AdminRoutes (metrics).
func NewAdminHandler(ready ReadinessFunc, cfg Config) AdminHandler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	logger := slog.New(LogHandler(cfg.Logger.Handler()))
	r := gin.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.Use(recovery(logger))
	r.NoRoute(func(c *gin.Context) { abortWith(c, errNotFound) })

	probes := &probeHandler{check: cfg.readiness(ready), logger: logger}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r.Handle(m, pathHealth, probes.health)
		r.Handle(m, pathReady, probes.ready)
	}

	prof := http.NewServeMux()
	prof.HandleFunc(pathPprof, pprof.Index) // named profiles: heap, goroutine, ...
	prof.HandleFunc(pathPprof+"cmdline", pprof.Cmdline)
	prof.HandleFunc(pathPprof+"profile", pprof.Profile)
	prof.HandleFunc(pathPprof+"symbol", pprof.Symbol)
	prof.HandleFunc(pathPprof+"trace", pprof.Trace)
	r.Any(pathPprof+"*name", gin.WrapH(prof))

	for _, add := range cfg.AdminRoutes {
		add(r)
	}
	return AdminHandler{r}
}
