package gormstore

import (
	"context"
	"strings"
	"testing"
)

// MigrationStatus lists every embedded migration pending on an empty
// database, and every one applied after Migrate, on every dialect.
func TestMigrationStatus(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		_, latest, err := s.MigrationVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before, err := s.MigrationStatus(ctx)
		if err != nil {
			t.Fatalf("status before: %v", err)
		}
		if len(before) == 0 || before[len(before)-1].Version != latest {
			t.Fatalf("status lists %d migrations ending at %v, want the embedded ones up to %d", len(before), before, latest)
		}
		for i, m := range before {
			if m.Applied || !m.AppliedAt.IsZero() || !strings.HasSuffix(m.File, ".sql") || (i > 0 && m.Version <= before[i-1].Version) {
				t.Errorf("before Migrate: %+v, want pending, in order, with its file", m)
			}
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		after, err := s.MigrationStatus(ctx)
		if err != nil {
			t.Fatalf("status after: %v", err)
		}
		if len(after) != len(before) {
			t.Fatalf("%d migrations after, %d before", len(after), len(before))
		}
		for _, m := range after {
			if !m.Applied || m.AppliedAt.IsZero() {
				t.Errorf("after Migrate: %+v, want applied with a time", m)
			}
		}
	})
}
