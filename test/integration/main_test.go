package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/containers"
)

func TestMain(m *testing.M) { containers.Main(m) }

// testLogger shows adapter logs only with -v.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// openStore opens a store on url, closed when t ends.
func openStore(t *testing.T, url string) *gormstore.Store {
	t.Helper()
	s, err := gormstore.Open(context.Background(), gormstore.Config{URL: url})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// migratedStore is a migrated store on a fresh database of t's own.
func migratedStore(t *testing.T) *gormstore.Store {
	t.Helper()
	s := openStore(t, containers.NewDatabase(t).URL)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

func newUser(email string, n int) domain.User {
	return domain.User{
		Email:        email,
		FirstName:    "Ada",
		LastName:     fmt.Sprint("Lovelace ", n),
		Address:      "Bahnhofstrasse 1, Zürich",
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA",
		Version:      1,
		CreatedAt:    t0,
		UpdatedAt:    t0,
	}
}

// eventMessage is the outbox message of one mutation of u.
func eventMessage(t *testing.T, id string, action domain.Action, u domain.User, at time.Time) domain.Message {
	t.Helper()
	var changed []string
	if action == domain.ActionUpdate {
		changed = []string{domain.FieldLastName}
	}
	m, err := domain.NewEvent(id, action, u, changed, at).Message()
	if err != nil {
		t.Fatal(err)
	}
	return m
}
