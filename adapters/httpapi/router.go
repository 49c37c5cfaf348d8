// Package httpapi is the inbound HTTP adapter: the users REST API with Gin,
// health and readiness probes, and the request hygiene around them (client
// address, request ids, access log, body limit, security headers).
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// DefaultMaxBodyBytes caps request bodies when Config.MaxBodyBytes is unset.
const DefaultMaxBodyBytes int64 = 1 << 20

// DefaultRequestTimeout bounds a request when Config.RequestTimeout is unset;
// MaxRequestTimeout keeps room under the server's WriteTimeout to answer.
const (
	DefaultRequestTimeout = 10 * time.Second
	MaxRequestTimeout     = WriteTimeout - 5*time.Second
)

// Routes.
const (
	pathUsers  = "/api/v1/users"
	pathUser   = pathUsers + "/:id"
	pathVerify = "/api/v1/credentials/verify"
	pathHealth = "/healthz"
	pathReady  = "/readyz"
	pathRoot   = "/"
	pathDocs   = "/docs" // served by the apidocs adapter through Config.Routes
)

// index points a visitor of / at the API and its documentation.
func index(c *gin.Context) {
	o := infoFrom(c).Origin
	c.JSON(http.StatusOK, gin.H{"users": o.url(pathUsers, nil), "docs": o.url(pathDocs, nil)})
}

// Config tunes the adapter.
type Config struct {
	// TrustedProxies are the peers whose X-Forwarded-For, X-Forwarded-Proto,
	// X-Forwarded-Host and X-Request-ID are believed (see ParseTrustedProxies).
	// Empty: none, so no client can choose its address.
	TrustedProxies []netip.Prefix
	// PublicURL, when set, is the scheme and host every link in an answer
	// (url, Location, paging) names, whatever Host or X-Forwarded-Host the
	// request carried (see ParsePublicURL). Nil: taken from the request.
	PublicURL *url.URL
	// CursorKey signs list cursors (see CursorKeyFunc). Nil: a random key of
	// this process, which only suits a single instance that never restarts.
	CursorKey CursorKeyFunc
	// MaxPageOffset is the deepest row page-number mode reaches: a request
	// whose page × page_size exceeds it is refused in favour of cursor
	// mode (PAGINATION_MAX_OFFSET). 0: no limit.
	MaxPageOffset int
	// MaxBodyBytes caps a request body (DefaultMaxBodyBytes when <= 0).
	MaxBodyBytes int64
	// RequestTimeout is how long a request may take, its body's arrival
	// included (DefaultRequestTimeout when <= 0); past it the answer is
	// 503, or 408 while the body is still arriving. It must stay below
	// WriteTimeout, or the answer could not be written.
	RequestTimeout time.Duration
	// Logger receives access lines and errors (slog.Default() when nil).
	Logger *slog.Logger
	// LogClientIP is how much of the client address access lines keep
	// (LOG_CLIENT_IP; ClientIPTruncated when empty).
	LogClientIP ClientIPLog
	// Debug runs Gin in debug mode; release mode otherwise.
	Debug bool
	// CreateLimit and PasswordLimit bound, per client address block
	// (domain.ClientBlock), creations and writes carrying a password; nil
	// limits nothing.
	CreateLimit, PasswordLimit ports.RateLimiter
	// Middleware runs first for every request, around everything else, so
	// it sees recovered panics as 500 and unknown routes as 404 (metrics).
	Middleware []gin.HandlerFunc
	// Routes add routes beside the API (documentation), never
	// authenticated.
	Routes []func(gin.IRoutes)
	// Auth authenticates every API request; nil switches authentication
	// off (AUTH_MODE=none: every caller is domain.AnonymousPrincipal).
	Auth Authenticator
	// AuthObserver counts refused requests by reason (nil: not counted).
	AuthObserver AuthObserver
	// AdminRoutes add routes to the admin listener only (metrics).
	AdminRoutes []func(gin.IRoutes)
	// Tracing, when set, opens a server span per request.
	Tracing *Tracing
}

// readiness is ready plus, when authentication is on, the key set.
func (cfg Config) readiness(ready ReadinessFunc) ReadinessFunc {
	if ready == nil {
		ready = func(context.Context) error { return nil }
	}
	if cfg.Auth == nil {
		return ready
	}
	return func(ctx context.Context) error {
		if err := ready(ctx); err != nil {
			return err
		}
		return cfg.Auth.Ready(ctx)
	}
}

// NewHandler returns the HTTP API. ready answers /readyz (nil: always
// ready); pass (*Readiness).Check to let shutdown turn it off.
func NewHandler(users *app.Users, ready ReadinessFunc, cfg Config) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	cfg.RequestTimeout = min(cfg.RequestTimeout, MaxRequestTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	logger := slog.New(LogHandler(cfg.Logger.Handler()))
	ready = cfg.readiness(ready)

	if cfg.Debug {
		gin.SetMode(gin.DebugMode)
	} else {
		gin.SetMode(gin.ReleaseMode)
	}
	r := gin.New()
	// Gin must never believe forwarded headers itself: the client address is
	// ours to compute (ClientAddress). With nil it cannot fail.
	_ = r.SetTrustedProxies(nil)
	r.ForwardedByClientIP = false
	// Each route is registered with and without its trailing slash; neither
	// spelling redirects to the other.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true

	r.Use(cfg.Middleware...)
	r.Use(identify(cfg.TrustedProxies, cfg.PublicURL))
	if cfg.Tracing != nil {
		r.Use(traceRequest(cfg.Tracing))
	}
	r.Use(
		accessLog(logger, cfg.LogClientIP),
		recovery(logger),
		secureHeaders(),
		deadline(cfg.RequestTimeout),
		limitBody(cfg.MaxBodyBytes),
	)
	r.NoRoute(func(c *gin.Context) { abortWith(c, errNotFound) })
	r.NoMethod(func(c *gin.Context) { abortWith(c, methodNotAllowed(c.Request.Method)) })

	errs := errorMapper{logger: logger}
	uh := &usersHandler{users: usersOrPanic(users), errors: errs, cursors: newCursorCodec(cfg.CursorKey), maxOffset: cfg.MaxPageOffset,
		createLimit: cfg.CreateLimit, passwordLimit: cfg.PasswordLimit}
	probes := &probeHandler{check: ready, logger: logger}

	auth := guard{auth: cfg.Auth, errors: errs, observer: cfg.AuthObserver}
	// api holds the routes whose answers carry user data and depend on
	// the caller: no cache may keep them (apiHeaders).
	api := r.Group("", apiHeaders())
	route := func(g gin.IRoutes, method, path string, h ...gin.HandlerFunc) {
		g.Handle(method, path, h...)
		g.Handle(method, path+"/", h...)
	}
	// Every GET also answers HEAD (RFC 9110 9.3.2): the same status and
	// headers; net/http drops the body.
	get := func(g gin.IRoutes, path string, withSlash bool, h ...gin.HandlerFunc) {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			if withSlash {
				route(g, m, path, h...)
			} else {
				g.Handle(m, path, h...)
			}
		}
	}
	// Each API route names its operation: the guard runs first and asks
	// the domain's one table which scope that operation needs.
	get(api, pathUsers, true, auth.require(domain.OpListUsers), uh.list)
	route(api, http.MethodPost, pathUsers, auth.require(domain.OpCreateUser), uh.create)
	get(api, pathUser, true, auth.require(domain.OpGetUser), uh.get)
	route(api, http.MethodPut, pathUser, auth.require(domain.OpReplaceUser), uh.replace)
	route(api, http.MethodPatch, pathUser, auth.require(domain.OpPatchUser), uh.patch)
	route(api, http.MethodDelete, pathUser, auth.require(domain.OpDeleteUser), uh.delete)
	if users.Verify != nil {
		route(api, http.MethodPost, pathVerify, auth.require(domain.OpVerifyCredentials), uh.verify)
	}
	// Never authenticated: probes, the index and (through cfg.Routes) the
	// documentation.
	get(r, pathHealth, false, probes.health)
	get(r, pathReady, false, probes.ready)
	get(r, pathRoot, false, index)
	for _, add := range cfg.Routes {
		add(r)
	}
	return r
}

// usersOrPanic rejects a nil dependency at wiring time, not on the first request.
func usersOrPanic(u *app.Users) *app.Users {
	if u == nil || u.Create == nil || u.Get == nil || u.List == nil || u.Replace == nil || u.Patch == nil || u.Delete == nil {
		panic("httpapi.NewHandler: every use case of app.Users is required")
	}
	return u
}
