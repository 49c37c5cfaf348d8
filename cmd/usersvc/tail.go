package main

import (
	"context"
	"io"

	"github.com/marketplace/usersvc/adapters/cli"
	"github.com/marketplace/usersvc/adapters/eventbus"
)

// tail implements `usersvc events tail`.
func tail(ctx context.Context, cfg cli.Config, fromBeginning bool, out io.Writer) error {
	return eventbus.Tail(ctx, cli.BusConfig(cfg), fromBeginning, out)
}
