package gormstore

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/marketplace/usersvc/domain"
)

func searchIDs(t *testing.T, s *Store, term string) []int64 {
	t.Helper()
	p, err := s.ListUsers(context.Background(), domain.ListQuery{Search: term, Page: 1, PageSize: domain.MaxPageSize})
	if err != nil {
		t.Fatalf("search %q: %v", term, err)
	}
	var out []int64
	for _, u := range p.Users {
		out = append(out, u.ID)
	}
	return out
}

func TestSharedKeyIsOnePerDatabase(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, url string) {
		if url == "sqlite://:memory:" {
			url = "sqlite://" + filepath.Join(t.TempDir(), "keys.db") // two stores on one database
		}
		a := openMigrated(t, url)
		b := openStore(t, url)
		keys := make([][]byte, 8)
		var wg sync.WaitGroup
		for i := range keys { // first use by several processes at once
			wg.Go(func() {
				s := a
				if i%2 == 1 {
					s = b
				}
				k, err := s.SharedKey(context.Background(), "list-cursor")
				if err != nil {
					t.Errorf("SharedKey: %v", err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		for _, k := range keys {
			if len(k) != 32 || !bytes.Equal(k, keys[0]) {
				t.Fatalf("keys differ or are not 32 bytes: %x", keys)
			}
		}
		other, err := a.SharedKey(context.Background(), "another")
		if err != nil || bytes.Equal(other, keys[0]) {
			t.Errorf("another name gives the same key (%v)", err)
		}
	})
}

func TestSearchIndexBuiltForExistingRows(t *testing.T) {
	// Rows present before migration 00005 are found through the index it
	// builds; rows written behind the store's back after it are found once
	// RebuildSearchIndex ran.
	forEachBackendURL(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		migrateUpTo(t, s, 4)
		before := toRow(newUser("A", "Old", "old.timer@example.com", 0))
		if err := s.db.Create(&before).Error; err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if got := searchIDs(t, s, "TIMER@"); !slices.Equal(got, []int64{before.ID}) {
			t.Errorf("search for a row older than the index: %v, want [%d]", got, before.ID)
		}
		behind := toRow(newUser("B", "Raw", "raw.loaded@example.com", 0))
		if err := s.db.Create(&behind).Error; err != nil {
			t.Fatal(err)
		}
		if err := s.RebuildSearchIndex(ctx); err != nil {
			t.Fatal(err)
		}
		if got := searchIDs(t, s, "w.loa"); !slices.Equal(got, []int64{behind.ID}) {
			t.Errorf("search after RebuildSearchIndex: %v, want [%d]", got, behind.ID)
		}
		if got := searchIDs(t, s, "example"); len(got) != 2 {
			t.Errorf("search for both: %v", got)
		}
	})
}
