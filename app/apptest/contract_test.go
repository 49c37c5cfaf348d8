package apptest_test

import (
	"testing"

	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/ports/porttest"
)

// The fakes keep the ports' contracts, so core tests on them mean something.

func TestStoreContract(t *testing.T) {
	porttest.RunUserStoreContract(t, func(*testing.T) porttest.UserStore { return apptest.NewStore() })
}

func TestHasherContract(t *testing.T) {
	porttest.RunPasswordHasherContract(t, apptest.NewHasher(), porttest.HasherOptions{Unsalted: true})
}
