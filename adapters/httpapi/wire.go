package httpapi

import "github.com/google/wire"

// ProviderSet provides the public and admin HTTP handlers and the readiness gate. The
// injector supplies *app.Users, Config and a Pinger (the database).
var ProviderSet = wire.NewSet(NewReadiness, ReadinessCheck, NewHandler, NewAdminHandler)
