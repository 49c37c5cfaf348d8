package jwtauth

import "github.com/google/wire"

// ProviderSet provides the authenticator; the injector supplies Config and
// an Observer (metrics.ProviderSet binds *metrics.Metrics).
var ProviderSet = wire.NewSet(Provide)
