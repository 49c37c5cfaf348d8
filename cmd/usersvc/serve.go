package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/marketplace/usersvc/adapters/cli"
	"github.com/marketplace/usersvc/adapters/httpapi"
	"github.com/marketplace/usersvc/app"
)

// service is everything `usersvc serve` runs: the HTTP server and the
// outbox relay, with the readiness gate that shutdown turns off first.
type service struct {
	cfg       cli.Config
	logger    *slog.Logger
	handler   http.Handler
	admin     httpapi.AdminHandler
	readiness *httpapi.Readiness
	relay     *app.Relay
	migrate   func(context.Context) error
}

func newService(cfg cli.Config, logger *slog.Logger, handler http.Handler, admin httpapi.AdminHandler, readiness *httpapi.Readiness, relay *app.Relay, store migrator) *service {
	return &service{cfg: cfg, logger: logger, handler: handler, admin: admin, readiness: readiness, relay: relay, migrate: store.Migrate}
}

type migrator interface {
	Migrate(ctx context.Context) error
}

// relayFlushTimeout bounds the last publish at shutdown.
const relayFlushTimeout = 5 * time.Second

// run serves until ctx ends (SIGTERM/SIGINT), then shuts down in order:
// readiness off (and SHUTDOWN_DRAIN_DELAY of serving on), stop accepting and finish in-flight requests, stop the
// relay after its batch. The caller's cleanup then flushes the producer and
// closes the database.
func (s *service) run(ctx context.Context) error {
	if s.cfg.Migrate {
		if err := s.migrate(ctx); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", s.cfg.HTTPAddr, err)
	}
	srv := httpapi.NewServer(s.handler, s.logger)
	adminSrv, adminDone, err := s.serveAdmin()
	if err != nil {
		ln.Close()
		return err
	}

	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	relayDone := make(chan error, 1)
	go func() { relayDone <- s.relay.Run(relayCtx) }()

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	s.logger.Info("listening", slog.String("addr", ln.Addr().String()))

	var serveErr error
	select {
	case <-ctx.Done():
		s.logger.Info("shutting down", slog.Duration("timeout", s.cfg.ShutdownTimeout))
	case serveErr = <-serveDone:
	}
	s.readiness.SetDraining()
	if s.cfg.DrainDelay > 0 && serveErr == nil {
		// Keep serving while load balancers notice /readyz and stop routing here.
		s.logger.Info("draining", slog.Duration("delay", s.cfg.DrainDelay))
		time.Sleep(s.cfg.DrainDelay)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		s.logger.Error("in-flight requests did not finish in time", slog.String("error", err.Error()))
	}
	if adminSrv != nil {
		// Probes and scrapes are short; profiles in flight are cut.
		_ = adminSrv.Close()
		if err := <-adminDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("admin server stopped", slog.String("error", err.Error()))
		}
	}
	stopRelay()
	if err := <-relayDone; err != nil && !errors.Is(err, context.Canceled) {
		s.logger.Error("relay stopped", slog.String("error", err.Error()))
	}
	// The last requests may have committed after the relay's final batch.
	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), relayFlushTimeout)
	defer cancelFlush()
	if err := s.relay.Flush(flushCtx); err != nil {
		s.logger.Warn("events left in the outbox for the next start", slog.String("error", err.Error()))
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	s.logger.Info("stopped")
	return nil
}

// serveAdmin starts the admin listener on ADMIN_ADDR (none when empty).
func (s *service) serveAdmin() (*http.Server, <-chan error, error) {
	if s.cfg.AdminAddr == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.AdminAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on ADMIN_ADDR %s: %w", s.cfg.AdminAddr, err)
	}
	srv := httpapi.NewServer(s.admin, s.logger)
	srv.WriteTimeout = 0 // CPU profiles and traces stream for their ?seconds=
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	s.logger.Info("admin listening", slog.String("addr", ln.Addr().String()))
	return srv, done, nil
}
