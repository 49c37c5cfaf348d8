package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// ReadinessFunc reports whether the service can take traffic (nil) or not.
type ReadinessFunc func(ctx context.Context) error

// Pinger is what readiness needs from the database.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ErrDraining is the readiness error once shutdown has begun.
var ErrDraining = errors.New("shutting down")

// Readiness is /readyz's state: ready while the database answers a ping,
// and not ready at all, without asking it, once shutdown has begun, so the
// load balancer stops routing here before the server stops accepting.
type Readiness struct {
	db       Pinger
	draining atomic.Bool
}

// NewReadiness returns a readiness gate over the database ping.
func NewReadiness(db Pinger) *Readiness { return &Readiness{db: db} }

// SetDraining makes every later Check fail with ErrDraining. It is safe to
// call from a signal handler's goroutine and more than once.
func (r *Readiness) SetDraining() { r.draining.Store(true) }

// Check is the ReadinessFunc to give NewHandler.
func (r *Readiness) Check(ctx context.Context) error {
	if r.draining.Load() {
		return ErrDraining
	}
	return r.db.Ping(ctx)
}

// ReadinessCheck provides r.Check as a ReadinessFunc (for Wire).
func ReadinessCheck(r *Readiness) ReadinessFunc { return r.Check }

// readyTimeout bounds a readiness check below common probe timeouts.
const readyTimeout = 2 * time.Second

type probeHandler struct {
	check  ReadinessFunc
	logger *slog.Logger
}

// health answers while the process serves at all.
func (p *probeHandler) health(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (p *probeHandler) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	if err := p.check(ctx); err != nil {
		msg := msgNotReady
		if errors.Is(err, ErrDraining) {
			msg = msgDraining
		} else {
			p.logger.WarnContext(c.Request.Context(), "not ready", slog.String("error", err.Error()))
		}
		abortWith(c, detailError(http.StatusServiceUnavailable, msg))
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
