//go:build wireinject

package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/google/wire"

	"github.com/marketplace/usersvc/adapters/argon2id"
	"github.com/marketplace/usersvc/adapters/cli"
	"github.com/marketplace/usersvc/adapters/eventbus"
	"github.com/marketplace/usersvc/adapters/geoprovider"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/httpapi"
	"github.com/marketplace/usersvc/adapters/jwtauth"
	"github.com/marketplace/usersvc/adapters/metrics"
	"github.com/marketplace/usersvc/adapters/ratelimit"
	"github.com/marketplace/usersvc/adapters/sysclock"
	"github.com/marketplace/usersvc/adapters/tracing"
	"github.com/marketplace/usersvc/app"
)

// initService assembles `usersvc serve`.
func initService(ctx context.Context, cfg cli.Config, logger *slog.Logger, stdout io.Writer) (*service, func(), error) {
	wire.Build(
		cli.ProviderSet,
		gormstore.ProviderSet,
		wire.Bind(new(httpapi.Pinger), new(*gormstore.Store)),
		wire.Bind(new(migrator), new(*gormstore.Store)),
		wire.Bind(new(app.CredentialsStore), new(*gormstore.Store)),
		wire.Bind(new(app.Hasher), new(*argon2id.Hasher)),
		argon2id.ProviderSet,
		sysclock.ProviderSet,
		metrics.ProviderSet,
		tracing.ProviderSet,
		wire.Bind(new(metrics.StoreDB), new(*gormstore.Store)),
		wire.Bind(new(metrics.RelayStatsSource), new(*app.Relay)),
		geoprovider.ProviderSet,
		eventbus.ProviderSet,
		app.ProviderSet,
		app.RelayProviderSet,
		ratelimit.ProviderSet,
		httpapi.ProviderSet,
		jwtauth.ProviderSet,
		newService,
	)
	return nil, nil, nil
}

// initStore assembles `usersvc migrate`.
func initStore(ctx context.Context, cfg cli.Config, logger *slog.Logger) (*gormstore.Store, func(), error) {
	wire.Build(cli.ProviderSet, gormstore.ProviderSet, tracing.ProviderSet)
	return nil, nil, nil
}
