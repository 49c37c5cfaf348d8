package app

import (
	"sort"

	"github.com/google/wire"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Users gathers the use cases an inbound adapter (HTTP, CLI) drives.
type Users struct {
	Create  *CreateUser
	Get     *GetUser
	List    *ListUsers
	Replace *ReplaceUser
	Patch   *PatchUser
	Delete  *DeleteUser
	// Verify checks credentials; nil leaves the route out.
	Verify *VerifyCredentials
}

// NewUsers wires every use case over the ports, so that the composition
// root and tests assemble the application the same way.
func NewUsers(
	rules domain.Rules, policy domain.CountryPolicy,
	geo ports.Geolocator, hasher ports.PasswordHasher,
	users ports.UserReader, uow ports.UnitOfWork,
	clock ports.Clock, notifier ports.OutboxNotifier, traces ports.TraceContext,
) *Users {
	m := NewMutations(uow, clock, notifier, traces)
	return &Users{
		Create:  NewCreateUser(rules, geo, policy, hasher, m),
		Get:     NewGetUser(users),
		List:    NewListUsers(users),
		Replace: NewReplaceUser(rules, users, hasher, m),
		Patch:   NewPatchUser(rules, users, hasher, m),
		Delete:  NewDeleteUser(m),
	}
}

// ProvideUsers is NewUsers with the credentials check.
func ProvideUsers(
	rules domain.Rules, policy domain.CountryPolicy,
	geo ports.Geolocator, hasher ports.PasswordHasher,
	users ports.UserReader, uow ports.UnitOfWork,
	clock ports.Clock, notifier ports.OutboxNotifier, traces ports.TraceContext,
	verify *VerifyCredentials,
) *Users {
	u := NewUsers(rules, policy, geo, hasher, users, uow, clock, notifier, traces)
	u.Verify = verify
	return u
}

// ProviderSet provides the Users facade with every use case.
var ProviderSet = wire.NewSet(ProvideUsers, NewVerifyCredentials)

func sortedFields(fields []string) []string {
	sort.Strings(fields)
	return fields
}
