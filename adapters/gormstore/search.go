package gormstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// minIndexedTerm is the shortest search term (in characters) a trigram
// index serves; shorter ones scan (see README.md, "Search").
const minIndexedTerm = 3

// indexedTerm reports whether the folded term is long enough for the
// trigram indexes.
func indexedTerm(term string) bool { return utf8.RuneCountInString(term) >= minIndexedTerm }

// searchFilter narrows db to the users a search finds.
func (s *Store) searchFilter(db *gorm.DB, search string) *gorm.DB {
	term, pattern := searchArgs(search)
	if s.dialect == DialectPostgres && indexedTerm(term) {
		// Both index reads are exact on PostgreSQL (the GIN index's
		// candidates are rechecked against the LIKE), so their ids are the
		// answer, read once (user_search_ids, migration 00007, keeps their
		// plan). As an array they keep one plan at every table size,
		// generic or custom: the array is computed once (an InitPlan) and
		// the page is a primary-key scan of its ids, in id order. Joined
		// instead, a generic plan (pgx prepares statements, and PostgreSQL
		// may reuse a plan made without the term) can walk the whole
		// primary key to meet them; kept in WHERE next to the join, the GIN
		// index is read twice (see test/load/README.md).
		return db.Where("users.id = ANY (ARRAY(SELECT user_search_ids(?, ?)))", term, pattern)
	}
	return searchWhere(s.searchHits(db, term), term, pattern)
}

// searchWhere is the exact meaning of search: last name equals the folded
// term, or email contains it. Every query keeps it on MySQL and SQLite,
// where the indexes below only narrow the rows it is checked on.
func searchWhere(db *gorm.DB, term, pattern string) *gorm.DB {
	return db.Where("(last_name_ci = ? OR email_ci "+likeClause+")", term, pattern)
}

// searchHits joins the ids that may match a search of three characters or
// more on MySQL and SQLite, found through the dialect's trigram index
// together with the last-name index: a UNION, which both planners run as
// two index reads (an OR of the two makes them scan the table). The join
// costs what the matches cost, whatever the size of the table.
func (s *Store) searchHits(db *gorm.DB, term string) *gorm.DB {
	if !indexedTerm(term) {
		return db
	}
	const names = "SELECT id AS hit_id FROM users WHERE last_name_ci = ? UNION "
	const join = "JOIN (%s) search_hits ON search_hits.hit_id = users.id"
	switch s.dialect {
	case DialectMySQL:
		grams, err := s.postings.rarest(db, trigrams(term))
		if err != nil {
			_ = db.AddError(err)
			return db
		}
		if len(grams) == 0 {
			return db // every trigram is common: matches are dense, a scan meets them soon
		}
		return db.Joins(fmt.Sprintf(join, names+
			"SELECT user_id FROM user_email_trigrams WHERE trigram IN ("+strings.Join(grams, ", ")+
			") GROUP BY user_id HAVING COUNT(*) = ?"), term, len(grams))
	default:
		return db.Joins(fmt.Sprintf(join, names+"SELECT rowid FROM users_email_trgm WHERE email_ci GLOB ?"),
			term, "*"+globEscaper.Replace(term)+"*")
	}
}

// Posting lists longer than commonTrigram are not worth reading; at most
// rareTrigrams of the rarest are intersected. Their lengths are remembered
// for postingTTL, at most postingEntries of them.
const (
	commonTrigram  = 1000
	rareTrigrams   = 2
	postingTTL     = time.Minute
	postingEntries = 1 << 16
)

// postingLengths remembers the length of each trigram's posting list (up
// to commonTrigram) for a while (MySQL). A length only chooses which lists
// a search intersects, never what it finds (searchWhere decides that), so
// a stale one costs at most a slower query; remembering them spares most
// searches the statement that counts them, 1.1 of 2.6 ms of database time
// on MariaDB (see test/load/README.md).
type postingLengths struct {
	mu  sync.Mutex
	m   map[string]postingLength
	now func() time.Time
}

type postingLength struct {
	n  int
	at time.Time
}

func newPostingLengths(now func() time.Time) *postingLengths {
	return &postingLengths{m: map[string]postingLength{}, now: now}
}

// rarest picks the term's rarest trigrams. Common ones ("com", "exa" in
// every email) have posting lists as long as the table: intersecting all
// of them would read more than a scan. The lengths not remembered are
// counted, each up to commonTrigram entries, in one statement; lists at
// that bound are dropped. Nil: every trigram is common.
func (p *postingLengths) rarest(db *gorm.DB, grams []string) ([]string, error) {
	lengths := make([]int, len(grams))
	var missing []int
	p.mu.Lock()
	now := p.now()
	for i, g := range grams {
		if l, ok := p.m[g]; ok && now.Sub(l.at) < postingTTL {
			lengths[i] = l.n
		} else {
			missing = append(missing, i)
		}
	}
	p.mu.Unlock()
	if len(missing) > 0 {
		counted, err := countPostings(db, grams, missing)
		if err != nil {
			return nil, err
		}
		p.remember(grams, counted, now)
		for i, n := range counted {
			lengths[i] = n
		}
	}
	order := make([]int, len(grams))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(lengths[a], lengths[b]) })
	var out []string
	for _, i := range order[:min(rareTrigrams, len(order))] {
		if lengths[i] < commonTrigram {
			out = append(out, grams[i])
		}
	}
	return out, nil
}

// remember stores counted lengths. A full map first loses its expired
// entries, then, if still full, everything: the bound matters, not which
// lengths survive.
func (p *postingLengths) remember(grams []string, counted map[int]int, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.m)+len(counted) > postingEntries {
		for g, l := range p.m {
			if at.Sub(l.at) >= postingTTL {
				delete(p.m, g)
			}
		}
		if len(p.m)+len(counted) > postingEntries {
			clear(p.m)
		}
	}
	for i, n := range counted {
		p.m[grams[i]] = postingLength{n: n, at: at}
	}
}

// countPostings counts the posting lists of grams[i] for each i of which,
// each up to commonTrigram entries, in one statement.
func countPostings(db *gorm.DB, grams []string, which []int) (map[int]int, error) {
	parts := make([]string, len(which))
	for k, i := range which {
		parts[k] = fmt.Sprintf("SELECT %d AS i, COUNT(*) AS n FROM (SELECT 1 FROM user_email_trigrams WHERE trigram = %s LIMIT %d) t%d",
			i, grams[i], commonTrigram, i)
	}
	var counts []struct{ I, N int }
	err := db.Session(&gorm.Session{NewDB: true}).Raw(strings.Join(parts, " UNION ALL ")).Scan(&counts).Error
	if err != nil {
		return nil, fmt.Errorf("count trigrams: %w", err)
	}
	out := make(map[int]int, len(counts))
	for _, c := range counts {
		out[c.I] = c.N
	}
	return out, nil
}

// globEscaper makes a term literal in a GLOB pattern (SQLite's FTS5 trigram
// index serves GLOB case-sensitively; LIKE only case-insensitively).
var globEscaper = strings.NewReplacer("*", "[*]", "?", "[?]", "[", "[[]")

// trigrams are the distinct 3-byte substrings of s, as the MySQL trigram
// table stores them (bytes, not characters: see the migration), spelled as
// hexadecimal literals (X'616263'). A trigram may cut a character in two,
// which a string parameter could not carry; hexadecimal digits are safe
// to write into the statement.
func trigrams(s string) []string {
	seen := map[string]bool{}
	var out []string
	for i := 0; i+3 <= len(s); i++ {
		g := s[i : i+3]
		if !seen[g] {
			seen[g] = true
			out = append(out, "X'"+hex.EncodeToString([]byte(g))+"'")
		}
	}
	return out
}

// writeTrigrams brings a user's rows in the MySQL trigram table from the
// trigrams of oldEmailCI ("" for a new user) to those of newEmailCI, in
// the transaction that writes the user: only the difference is written,
// nothing when the e-mail did not change. Other dialects keep their index
// themselves (GIN index, FTS5 triggers).
func writeTrigrams(db *gorm.DB, dialect string, id int64, oldEmailCI, newEmailCI string) error {
	if dialect != DialectMySQL || oldEmailCI == newEmailCI {
		return nil
	}
	oldGrams, newGrams := trigrams(oldEmailCI), trigrams(newEmailCI)
	if gone := without(oldGrams, newGrams); len(gone) > 0 {
		err := db.Exec("DELETE FROM user_email_trigrams WHERE user_id = ? AND trigram IN ("+strings.Join(gone, ", ")+")", id).Error
		if err != nil {
			return err
		}
	}
	added := without(newGrams, oldGrams)
	if len(added) == 0 {
		return nil
	}
	values := make([]string, len(added))
	for i, g := range added {
		values[i] = "(" + g + ", @id)"
	}
	return db.Exec("INSERT INTO user_email_trigrams (trigram, user_id) VALUES "+strings.Join(values, ", "), sql.Named("id", id)).Error
}

// without returns the elements of a that are not in b.
func without(a, b []string) []string {
	var out []string
	for _, g := range a {
		if !slices.Contains(b, g) {
			out = append(out, g)
		}
	}
	return out
}

func deleteTrigrams(db *gorm.DB, dialect string, id int64) error {
	if dialect != DialectMySQL {
		return nil
	}
	return db.Exec("DELETE FROM user_email_trigrams WHERE user_id = ?", id).Error
}

// RebuildSearchIndex rebuilds the search index from the users table, for
// rows written behind the store's back (bulk loads, manual SQL), like
// RecountUsers for the count. PostgreSQL's index needs nothing. Writes
// during the rebuild wait for it (MySQL: the table lock of the
// transaction's DELETE and INSERT ... SELECT; SQLite: the write lock).
func (s *Store) RebuildSearchIndex(ctx context.Context) error {
	var err error
	switch s.dialect {
	case DialectMySQL:
		err = s.transact(ctx, func(tx *gorm.DB) error {
			db := tx.WithContext(ctx)
			if err := db.Exec("DELETE FROM user_email_trigrams").Error; err != nil {
				return err
			}
			return db.Exec(rebuildTrigramsSQL).Error
		})
	case DialectSQLite:
		err = s.transact(ctx, func(tx *gorm.DB) error {
			return tx.WithContext(ctx).Exec("INSERT INTO users_email_trgm (users_email_trgm) VALUES ('rebuild')").Error
		})
	}
	if err != nil {
		return dbErr(ctx, "rebuild search index", err)
	}
	return nil
}

// rebuildTrigramsSQL is the MySQL migration's statement that fills the
// trigram table from users.
var rebuildTrigramsSQL = func() string {
	b, err := migrationFiles.ReadFile("migrations/mysql/00005_search_index.sql")
	if err != nil {
		panic(err) // embedded at build time
	}
	s := string(b)
	start := strings.Index(s, "INSERT IGNORE INTO user_email_trigrams")
	end := strings.Index(s[start:], ";")
	return s[start : start+end]
}()

// SharedKey returns the random key of this name kept in the database
// (service_keys), making it on first use: every process on the database
// gets the same key, which is what replicas behind one URL need.
func (s *Store) SharedKey(ctx context.Context, name string) ([]byte, error) {
	read := func() ([]byte, error) {
		var v []byte
		err := s.db.WithContext(ctx).Raw("SELECT value FROM service_keys WHERE name = ?", name).Row().Scan(&v)
		return v, err
	}
	v, err := read()
	if errors.Is(err, sql.ErrNoRows) {
		key, kerr := randomKey()
		if kerr != nil {
			return nil, kerr
		}
		insert := "INSERT INTO service_keys (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING"
		switch s.dialect {
		case DialectMySQL:
			insert = "INSERT IGNORE INTO service_keys (name, value) VALUES (?, ?)"
		case DialectSQLite:
			insert = "INSERT OR IGNORE INTO service_keys (name, value) VALUES (?, ?)"
		}
		if err = s.db.WithContext(ctx).Exec(insert, name, key).Error; err == nil {
			v, err = read() // the key of whichever process inserted first
		}
	}
	if err != nil {
		return nil, dbErr(ctx, "read shared key "+name, err)
	}
	return v, nil
}

func randomKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("random key: %w", err)
	}
	return key, nil
}
