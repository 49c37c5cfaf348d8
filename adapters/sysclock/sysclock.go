// Package sysclock is the wall clock behind ports.Clock.
package sysclock

import (
	"time"

	"github.com/google/wire"

	"github.com/marketplace/usersvc/ports"
)

// Clock reads time.Now.
type Clock struct{}

var _ ports.Clock = Clock{}

// Now returns the current time in UTC.
func (Clock) Now() time.Time { return time.Now().UTC() }

// ProviderSet provides the wall clock as the port.
var ProviderSet = wire.NewSet(wire.Value(Clock{}), wire.Bind(new(ports.Clock), new(Clock)))
