package app

import (
	"sort"

	"github.com/google/wire"
)

// Users gathers the use cases an inbound adapter (HTTP, CLI) drives.
type Users struct {
	Create  *CreateUser
	Get     *GetUser
	List    *ListUsers
	Replace *ReplaceUser
	Patch   *PatchUser
	Delete  *DeleteUser
}

// ProviderSet provides every use case and the Users facade.
var ProviderSet = wire.NewSet(
	NewMutations,
	NewCreateUser,
	NewGetUser,
	NewListUsers,
	NewReplaceUser,
	NewPatchUser,
	NewDeleteUser,
	wire.Struct(new(Users), "*"),
)

func sortedFields(fields []string) []string {
	sort.Strings(fields)
	return fields
}
