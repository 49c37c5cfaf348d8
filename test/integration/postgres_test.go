package integration

import (
	"context"
	"testing"

	"github.com/marketplace/usersvc/ports/porttest"
	"github.com/marketplace/usersvc/test/containers"
)

// The store passes the persistence ports' suite on the PostgreSQL
// container, each subtest on a database of its own.
func TestPostgresStoreContract(t *testing.T) {
	porttest.RunUserStoreContract(t, func(t *testing.T) porttest.UserStore {
		s := openStore(t, containers.NewPostgresDatabase(t).URL)
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		return s
	})
}
