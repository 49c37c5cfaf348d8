package integration

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/test/containers"
)

// Migrations run up from an empty database, are idempotent, and several
// replicas migrating one database at once all succeed, on the MySQL and the
// PostgreSQL container (named lock and advisory lock).
func TestMigrationsUpFromEmpty(t *testing.T) {
	servers := []struct {
		name string
		url  func(t *testing.T) string
		// schema is the SQL expression naming the store's schema.
		schema string
	}{
		{"mysql", func(t *testing.T) string { return containers.NewDatabase(t).URL }, "DATABASE()"},
		{"postgres", func(t *testing.T) string { return containers.NewPostgresDatabase(t).URL }, "current_schema()"},
	}
	for _, sv := range servers {
		t.Run(sv.name, func(t *testing.T) {
			testMigrationsUpFromEmpty(t, sv.url(t), sv.schema)
		})
	}
}

func testMigrationsUpFromEmpty(t *testing.T, url, schema string) {
	ctx := context.Background()
	const replicas = 4
	stores := make([]*gormstore.Store, replicas)
	for i := range stores {
		stores[i] = openStore(t, url)
	}

	current, latest, err := stores[0].MigrationVersion(ctx)
	if err != nil {
		t.Fatalf("MigrationVersion on an empty database: %v", err)
	}
	if current != 0 || latest < 2 {
		t.Fatalf("empty database at version %d of %d, want 0 of at least 2", current, latest)
	}

	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: Migrate: %v", i, err)
		}
	}
	if err := stores[0].Migrate(ctx); err != nil {
		t.Errorf("Migrate again: %v", err)
	}
	if current, latest, err = stores[0].MigrationVersion(ctx); err != nil || current != latest {
		t.Errorf("after Migrate at version %d of %d (%v), want the latest", current, latest, err)
	}

	var tables []string
	rows, err := stores[0].DB().QueryContext(ctx,
		"SELECT table_name FROM information_schema.tables WHERE table_schema = "+schema+" AND table_name IN ('users', 'user_counts', 'outbox')")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	slices.Sort(tables) // in Go: collations order '_' differently
	if err := rows.Err(); err != nil || strings.Join(tables, ",") != "outbox,user_counts,users" {
		t.Errorf("tables %v (%v), want outbox, user_counts and users", tables, err)
	}
}

// A stored user reads back with every field, times in UTC to the
// microsecond, on the MySQL dialect.
func TestUserRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := migratedStore(t)
	u := newUser("zoë@example.com", 1)
	if err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.InsertUser(ctx, &u) }); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if u.ID == 0 {
		t.Fatal("InsertUser did not set the id")
	}
	got, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if got != u {
		t.Errorf("read back\n%+v\nwant\n%+v", got, u)
	}
	if _, err := s.GetUser(ctx, u.ID+1000); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("GetUser of a missing id: %v, want ErrNotFound", err)
	}
}

// Emails are unique whatever their case, including non-ASCII letters,
// on insert and on update.
func TestEmailUniquenessIgnoresCase(t *testing.T) {
	ctx := context.Background()
	s := migratedStore(t)
	insert := func(email string, n int) (domain.User, error) {
		u := newUser(email, n)
		err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.InsertUser(ctx, &u) })
		return u, err
	}
	if _, err := insert("zoë@example.com", 0); err != nil {
		t.Fatalf("first insert: %v", err)
	}
	other, err := insert("other@example.com", 0)
	if err != nil {
		t.Fatalf("second insert: %v", err)
	}

	cases := []struct {
		name      string
		email     string
		wantTaken bool
	}{
		{"same spelling", "zoë@example.com", true},
		{"upper case", "ZOË@EXAMPLE.COM", true},
		{"mixed case", "Zoë@Example.com", true},
		{"another address", "zoe@example.com", false},
	}
	for i, c := range cases {
		t.Run("insert "+c.name, func(t *testing.T) {
			_, err := insert(c.email, i+1)
			if got := errors.Is(err, domain.ErrEmailTaken); got != c.wantTaken || (!c.wantTaken && err != nil) {
				t.Errorf("insert %q: %v, want taken=%v", c.email, err, c.wantTaken)
			}
		})
	}
	t.Run("update to another user's email in upper case", func(t *testing.T) {
		err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
			u, err := tx.LockUser(ctx, other.ID)
			if err != nil {
				return err
			}
			u.Email = "ZOË@example.com"
			u.Version++
			return tx.UpdateUser(ctx, u)
		})
		if !errors.Is(err, domain.ErrEmailTaken) {
			t.Errorf("update: %v, want ErrEmailTaken", err)
		}
	})
}
