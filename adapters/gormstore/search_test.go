package gormstore

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
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
		// The longest e-mail bounds the positions the backfill reads: its
		// last trigram must be there too.
		long := toRow(newUser("C", "Long", strings.Repeat("l", 170)+".tail@"+strings.Repeat("d", 60)+".example.com", 0))
		rows := []userRow{before, long}
		if err := s.db.Create(&rows).Error; err != nil {
			t.Fatal(err)
		}
		before, long = rows[0], rows[1]
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if got := searchIDs(t, s, "TIMER@"); !slices.Equal(got, []int64{before.ID}) {
			t.Errorf("search for a row older than the index: %v, want [%d]", got, before.ID)
		}
		if got := searchIDs(t, s, "d.example.com"); !slices.Equal(got, []int64{long.ID}) {
			t.Errorf("search for the end of the longest e-mail: %v, want [%d]", got, long.ID)
		}
		if got := searchIDs(t, s, "l.tail"); !slices.Equal(got, []int64{long.ID}) {
			t.Errorf("search for the middle of the longest e-mail: %v, want [%d]", got, long.ID)
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
		if got := searchIDs(t, s, "example"); len(got) != 3 {
			t.Errorf("search for all three: %v", got)
		}
	})
}

// The posting-list lengths a MySQL search chooses by are remembered for
// postingTTL: within it a list that grew is still chosen, after it the
// length is counted again. Either way the search's answer is exact.
func TestSearchRemembersPostingLengths(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t, freshMySQLDatabase(t))
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	s.postings = newPostingLengths(func() time.Time { return now })
	ids := insert(t, s, newUser("A", "Quill", "zyx.quill@example.com", 0), newUser("B", "Vane", "zyx.vane@example.com", 0))
	grams := trigrams("zyx.q") // zyx, yx., x.q: x.q is in one e-mail, the others in two
	db := s.db.WithContext(ctx)
	rarest := func() []string {
		t.Helper()
		got, err := s.postings.rarest(db, grams)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := rarest(); !slices.Equal(got, []string{grams[2], grams[0]}) {
		t.Fatalf("rarest = %v; want x.q then zyx (%v)", got, grams)
	}
	// x.q becomes common behind the store's back.
	var rows []string
	for i := range commonTrigram {
		rows = append(rows, fmt.Sprintf("(X'782e71', %d)", 1_000_000+i))
	}
	if err := db.Exec("INSERT INTO user_email_trigrams (trigram, user_id) VALUES " + strings.Join(rows, ", ")).Error; err != nil {
		t.Fatal(err)
	}
	if got := rarest(); !slices.Equal(got, []string{grams[2], grams[0]}) {
		t.Errorf("within the TTL rarest = %v; want the remembered choice", got)
	}
	if got := searchIDs(t, s, "zyx.q"); !slices.Equal(got, ids[:1]) {
		t.Errorf("search zyx.q = %v; want %v", got, ids[:1])
	}
	now = now.Add(postingTTL)
	if got := rarest(); !slices.Equal(got, []string{grams[0], grams[1]}) {
		t.Errorf("after the TTL rarest = %v; want zyx and yx. (x.q now common)", got)
	}
	if got := searchIDs(t, s, "zyx.q"); !slices.Equal(got, ids[:1]) {
		t.Errorf("search zyx.q after the TTL = %v; want %v", got, ids[:1])
	}
}

// The remembered lengths stay within postingEntries.
func TestPostingLengthsAreBounded(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := newPostingLengths(func() time.Time { return now })
	grams := make([]string, postingEntries+10)
	counted := map[int]int{}
	for i := range grams {
		grams[i] = fmt.Sprintf("g%d", i)
		counted[i] = i % commonTrigram
	}
	for start := 0; start < len(grams); start += 1000 {
		part := map[int]int{}
		for i := start; i < min(start+1000, len(grams)); i++ {
			part[i] = counted[i]
		}
		p.remember(grams, part, now)
		if len(p.m) > postingEntries {
			t.Fatalf("%d lengths remembered; want at most %d", len(p.m), postingEntries)
		}
	}
	if len(p.m) == 0 {
		t.Error("nothing remembered")
	}
}

// A user's trigram rows follow its e-mail exactly, written only when it
// changes; and a transaction changing a user's e-mail does not make
// another one inserting a new user wait (no gap locks next to the rows it
// deletes, where the new user's rows go: see txOptions).
func TestTrigramRowsFollowTheEmail(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t, freshMySQLDatabase(t))
	id := insert(t, s, newUser("A", "Quill", "first.quill@example.com", 0))[0]
	stored := func() []string {
		t.Helper()
		var grams [][]byte
		if err := s.db.Raw("SELECT trigram FROM user_email_trigrams WHERE user_id = ? ORDER BY trigram", id).Scan(&grams).Error; err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(grams))
		for i, g := range grams {
			out[i] = fmt.Sprintf("X'%x'", g)
		}
		return out
	}
	want := func(email string) []string {
		g := trigrams(email)
		slices.Sort(g)
		return g
	}
	update := func(email string, during func()) {
		t.Helper()
		err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
			u, err := tx.LockUser(ctx, id)
			if err != nil {
				return err
			}
			u.Email, u.Version = email, u.Version+1
			if err := tx.UpdateUser(ctx, u); err != nil {
				return err
			}
			during()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := stored(); !slices.Equal(got, want("first.quill@example.com")) {
		t.Fatalf("after insert: %v", got)
	}
	update("first.quill@example.com", func() {})
	update("second.quill@example.org", func() {
		// Another writer inserts a new user meanwhile, within a bound.
		other, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		u := newUser("B", "Other", "other@example.com", 0)
		if err := s.Do(other, func(ctx context.Context, tx ports.Tx) error { return tx.InsertUser(ctx, &u) }); err != nil {
			t.Errorf("insert while another transaction changes an e-mail: %v", err)
		}
	})
	if got := stored(); !slices.Equal(got, want("second.quill@example.org")) {
		t.Fatalf("after the e-mail changed: %v; want %v", got, want("second.quill@example.org"))
	}
	if got := searchIDs(t, s, "first.q"); len(got) != 0 {
		t.Errorf("search for the old e-mail finds %v", got)
	}
	if got := searchIDs(t, s, "second.q"); !slices.Equal(got, []int64{id}) {
		t.Errorf("search for the new e-mail = %v; want [%d]", got, id)
	}
	// A caller that did not lock the row first: the store reads its e-mail.
	u, err := s.GetUser(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	u.Email, u.Version = "third.quill@example.net", u.Version+1
	if err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.UpdateUser(ctx, u) }); err != nil {
		t.Fatal(err)
	}
	if got := stored(); !slices.Equal(got, want("third.quill@example.net")) {
		t.Fatalf("after an update without a lock: %v; want %v", got, want("third.quill@example.net"))
	}
	if err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.DeleteUser(ctx, id) }); err != nil {
		t.Fatal(err)
	}
	if got := stored(); len(got) != 0 {
		t.Errorf("after delete: %v left", got)
	}
}

// PostgreSQL's user_search_ids gives each matching id once, a user whose
// last name is the term and whose e-mail contains it too included: its two
// reads are made disjoint rather than de-duplicated (migration 00008).
func TestSearchIDsFunctionGivesEachUserOnce(t *testing.T) {
	s := openMigrated(t, freshPostgresDatabase(t))
	ids := insert(t, s,
		newUser("Bob", "Smith", "bob.smith@example.com", 0), // both ways
		newUser("Ann", "Smith", "ann@example.com", time.Second),
		newUser("Dave", "Jones", "dave@smithery.io", 2*time.Second),
		newUser("Eve", "Smithson", "eve@example.com", 3*time.Second))
	rows, err := s.sqlDB.QueryContext(context.Background(), "SELECT user_search_ids($1, $2)", "smith", "%smith%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := ids[:3]; !slices.Equal(got, want) {
		t.Errorf("user_search_ids(smith) = %v, want %v, each once", got, want)
	}
}
