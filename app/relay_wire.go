package app

import (
	"github.com/google/wire"

	"github.com/marketplace/usersvc/ports"
)

// RelayProviderSet provides the relay and makes it the notifier the
// mutations wake after each commit. The composition root supplies
// RelayConfig and runs Relay.Run.
var RelayProviderSet = wire.NewSet(NewRelay, wire.Bind(new(ports.OutboxNotifier), new(*Relay)))
