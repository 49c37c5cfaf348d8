package gormstore

import (
	"testing"

	"github.com/marketplace/usersvc/ports/porttest"
)

// TestUserStoreContract proves every database against the persistence
// ports' shared suite; the tests beside it cover what is particular to this
// adapter (migrations, counters, retries, SQL dialects, outages).
func TestUserStoreContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			porttest.RunUserStoreContract(t, func(t *testing.T) porttest.UserStore { return b.open(t) })
		})
	}
}

// TestCredentialStoreContract proves every database against the credential
// checks' ports (login failures, hash upgrades).
func TestCredentialStoreContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			porttest.RunCredentialStoreContract(t, func(t *testing.T) porttest.CredentialStore { return b.open(t) })
		})
	}
}
