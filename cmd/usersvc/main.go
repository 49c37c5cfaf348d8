// Command usersvc serves the users API. See `usersvc --help`.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/marketplace/usersvc/adapters/cli"
	"github.com/marketplace/usersvc/adapters/eventbus"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/tracing"
)

func main() { os.Exit(run()) }

// run is main without os.Exit, so that its deferred calls run.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return cli.Run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr, cli.Commands{
		Serve:         serve,
		Migrate:       migrate,
		MigrateStatus: migrateStatus,
		Tail:          tail,
	})
}

func serve(ctx context.Context, cfg cli.Config) error {
	logger := newLogger(cfg, os.Stderr)
	logStartup(logger, cfg)
	svc, cleanup, err := initService(ctx, cfg, logger, io.Writer(os.Stdout))
	if err != nil {
		return err
	}
	defer cleanup()
	return svc.run(ctx)
}

func migrate(ctx context.Context, cfg cli.Config) error {
	store, cleanup, err := initStore(ctx, cfg, newLogger(cfg, os.Stderr))
	if err != nil {
		return err
	}
	defer cleanup()
	return store.Migrate(ctx)
}

func migrateStatus(ctx context.Context, cfg cli.Config, out io.Writer) error {
	store, cleanup, err := initStore(ctx, cfg, newLogger(cfg, os.Stderr))
	if err != nil {
		return err
	}
	defer cleanup()
	status, err := store.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	return printMigrationStatus(out, status)
}

// printMigrationStatus writes one line per migration and a summary.
func printMigrationStatus(out io.Writer, status []gormstore.MigrationState) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
	pending := 0
	for _, m := range status {
		state, at := "applied", m.AppliedAt.Format(time.RFC3339)
		if !m.Applied {
			state, at = "pending", "-"
			pending++
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Version, state, at, m.File)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "%d applied, %d pending\n", len(status)-pending, pending)
	return err
}

func newLogger(cfg cli.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		// Lines logged inside a traced request carry its trace_id and span_id.
		return slog.New(tracing.LogHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(tracing.LogHandler(slog.NewJSONHandler(w, opts)))
}

// logStartup says which profile runs, so nobody mistakes the development
// geolocation (loopback in Switzerland) for production.
func logStartup(logger *slog.Logger, cfg cli.Config) {
	attrs := []any{
		slog.String("http_addr", cfg.HTTPAddr),
		slog.String("database", cli.RedactURL(cfg.DatabaseURL)),
		slog.String("geo_provider", cfg.GeoProvider),
		slog.String("allowed_countries", cfg.GeoAllowedCodes),
	}
	if cfg.GeoProvider == "static" {
		attrs = append(attrs, slog.String("geo_static", cfg.GeoStatic))
	}
	if cfg.PublicURL != nil {
		attrs = append(attrs, slog.String("public_url", cfg.PublicURL.String()))
	}
	switch bus, _ := cli.BusConfig(cfg).Selected(); bus {
	case eventbus.BusKafka:
		attrs = append(attrs, slog.String("events", "kafka"), slog.String("kafka_topic", cfg.KafkaTopic))
	case eventbus.BusRabbitMQ:
		attrs = append(attrs, slog.String("events", "rabbitmq"), slog.String("event_exchange", cfg.EventExchange))
	case eventbus.BusLog:
		attrs = append(attrs, slog.String("events", "stdout (EVENT_BUS=log, development only)"))
	}
	attrs = append(attrs, slog.String("auth_mode", cfg.AuthMode), slog.String("admin_addr", cfg.AdminAddr))
	if cfg.AuthMode == cli.AuthJWT {
		attrs = append(attrs, slog.String("auth_issuer", cfg.AuthIssuer), slog.String("auth_jwks_url", cli.RedactURL(cfg.AuthJWKSURL)))
	}
	if cfg.Tracing.Enabled() {
		attrs = append(attrs, slog.String("tracing", cfg.Tracing.Endpoint))
	} else {
		attrs = append(attrs, slog.String("tracing", "off"))
	}
	logger.Info("starting usersvc", attrs...)
	if cfg.AuthMode == cli.AuthNone {
		logger.Warn("AUTH_MODE=none: API requests are not authenticated; anyone who reaches the port can read and change every user (development only)")
	}
	if cfg.GeoProvider == "static" {
		logger.Warn("development geolocation profile: addresses are located from GEO_STATIC, not from a real provider")
	}
}
