package integration

import (
	"context"
	"testing"

	"github.com/marketplace/usersvc/ports/porttest"
	"github.com/marketplace/usersvc/test/containers"
)

// The store passes the persistence ports' suite on each database
// container, every subtest on a database of its own; the tests beside it
// keep to what only a container shows (migrations by concurrent replicas,
// collations).
func TestStoreContract(t *testing.T) {
	for name, newDatabase := range map[string]func(testing.TB) containers.Database{
		"mysql":    containers.NewDatabase,
		"postgres": containers.NewPostgresDatabase,
	} {
		t.Run(name, func(t *testing.T) {
			porttest.RunUserStoreContract(t, func(t *testing.T) porttest.UserStore {
				s := openStore(t, newDatabase(t).URL)
				if err := s.Migrate(context.Background()); err != nil {
					t.Fatalf("migrate: %v", err)
				}
				return s
			})
		})
	}
}
