package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// Server limits: slow or hostile clients cannot hold connections or
// goroutines, nor send unbounded headers.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// NewServer returns the net/http server `usersvc serve` runs handler in,
// with the limits above and net/http's own complaints (TLS handshakes,
// malformed requests) logged as warnings. Tests and benchmarks use it too,
// so that requests meet the same limits as in production.
func NewServer(handler http.Handler, logger *slog.Logger) *http.Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
