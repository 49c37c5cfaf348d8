package main

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/domain"
)

// The workloads of issue 18: cursor pages (first and deep), search through
// the trigram indexes, and the walk of every user by cursor against a raw
// keyset walk.

// emailTag is the six lowercase letters in the e-mail of every user of
// last name k: (k·p + c) mod 26⁶ with p prime to 26 is a bijection, so two
// last names never share a tag, and the letters spread over all trigrams
// the way real names do (digit runs would make every trigram common at a
// million rows, and a search through any index a scan). A search for a tag
// matches the same 20 users at every table size.
func emailTag(k int) string {
	const letters, width = 26, 6
	x := (uint64(k)*1_000_003 + 12_345) % 308_915_776 // 26⁶
	var b [width]byte
	for i := range b {
		b[i] = byte('a' + x%letters)
		x /= letters
	}
	return string(b[:])
}

func (e *env) searchTerm(rng *rand.Rand) string { return emailTag(rng.IntN(e.pop.LastNames)) }

func (e *env) serviceSearch(ctx context.Context, rng *rand.Rand) error {
	return e.client.do(ctx, http.MethodGet, "/api/v1/users?search", "/api/v1/users?search="+e.searchTerm(rng), nil, http.StatusOK)
}

func (e *env) rawSearch(ctx context.Context, rng *rand.Rand) error {
	return e.raw.search(ctx, e.searchTerm(rng))
}

// rawSearchScan is the alternative to the trigram index: the LIKE scan the
// store ran before it.
func (e *env) rawSearchScan(ctx context.Context, rng *rand.Rand) error {
	return e.raw.searchScan(ctx, e.searchTerm(rng))
}

func (e *env) serviceFirst(ctx context.Context, _ *rand.Rand) error {
	return e.client.do(ctx, http.MethodGet, "/api/v1/users?cursor", "/api/v1/users?cursor=", nil, http.StatusOK)
}

func (e *env) rawFirst(ctx context.Context, _ *rand.Rand) error {
	return e.raw.keysetPage(ctx, nil, domain.DefaultPageSize+1)
}

func (e *env) serviceDeep(ctx context.Context, rng *rand.Rand) error {
	c := e.deep.pick(rng)
	return e.client.do(ctx, http.MethodGet, "/api/v1/users?cursor=C", c.path, nil, http.StatusOK)
}

func (e *env) rawDeep(ctx context.Context, rng *rand.Rand) error {
	c := e.deep.pick(rng)
	return e.raw.keysetPage(ctx, &c.after, domain.DefaultPageSize+1)
}

// deepCursors are next-page links at 90% of the table's depth, read from
// the service during a cursor walk (a cursor is signed: only the service
// can write one), each with the id of the row it continues after, which
// the raw side seeks to.
type deepCursors struct {
	depth, last int // links continue after rows depth..last (a full page follows)
	links       []deepCursor
}

type deepCursor struct {
	path  string // /api/v1/users?cursor=...&page_size=10
	after int64
}

func (d *deepCursors) pick(rng *rand.Rand) deepCursor { return d.links[rng.IntN(len(d.links))] }

// deepLinks is how many cursors the deep workload draws from.
const deepLinks = 64

// deepFraction is the depth of the deep workload: 900,000 of a million.
const deepFraction = 0.9

// keysetPage reads limit rows after id (from the start when nil), the
// store's cursor query for the id order.
func (r *rawDB) keysetPage(ctx context.Context, after *int64, limit int) error {
	var (
		users []rawUser
		err   error
	)
	if after == nil {
		users, err = pageOf(ctx, r.scale.first, limit)
	} else {
		users, err = pageOf(ctx, r.scale.after, *after, limit)
	}
	if err == nil && len(users) == 0 {
		err = errors.New("raw keyset page: no rows")
	}
	return err
}

// rawScale holds the raw baseline's statements for issue 18's workloads.
type rawScale struct {
	first, after *sql.Stmt
}

func (r *rawDB) prepareScale(ctx context.Context) error {
	var err error
	if r.scale.first, err = r.db.PrepareContext(ctx, rebind(r.dialect, userSelect+" ORDER BY id LIMIT ?")); err != nil {
		return fmt.Errorf("prepare first keyset page: %w", err)
	}
	if r.scale.after, err = r.db.PrepareContext(ctx, rebind(r.dialect, userSelect+" WHERE id > ? ORDER BY id LIMIT ?")); err != nil {
		return fmt.Errorf("prepare keyset page: %w", err)
	}
	return nil
}

func (r *rawDB) closeScale() {
	for _, s := range []*sql.Stmt{r.scale.first, r.scale.after} {
		if s != nil {
			s.Close()
		}
	}
}

// Search through the index, as the store sends it (gormstore/search.go):
// the ids of the candidates are the UNION of the last-name matches and the
// dialect's trigram index, joined to users and checked against the exact
// condition; the count is the same join.
const (
	searchExact  = " WHERE (last_name_ci = ? OR email_ci LIKE ? ESCAPE '!')"
	searchJoin   = " JOIN (SELECT id AS hit_id FROM users WHERE last_name_ci = ? UNION %s) search_hits ON search_hits.hit_id = users.id"
	searchCommon = 1000 // the store's commonTrigram: longer posting lists are not read
	searchRarest = 2    // the store's rareTrigrams
)

// search is GET /api/v1/users?search=X for a term of three characters or
// more: on MySQL, first the length of each trigram's posting list (up to
// searchCommon), then the page and the count through the two rarest.
func (r *rawDB) search(ctx context.Context, term string) error {
	term = strings.ToLower(term)
	pattern := "%" + likeEscaper.Replace(term) + "%"
	var (
		hits string
		args = []any{term}
	)
	switch r.dialect {
	case gormstore.DialectMySQL:
		grams, err := r.rareTrigrams(ctx, term)
		if err != nil {
			return err
		}
		if len(grams) == 0 {
			return fmt.Errorf("raw search %q: every trigram is common", term)
		}
		hits = "SELECT user_id FROM user_email_trigrams WHERE trigram IN (?" + strings.Repeat(", ?", len(grams)-1) + ") GROUP BY user_id HAVING COUNT(*) = ?"
		for _, g := range grams {
			args = append(args, g)
		}
		args = append(args, len(grams))
	case gormstore.DialectPostgres:
		hits = "SELECT id FROM users WHERE email_ci LIKE ? ESCAPE '!'"
		args = append(args, pattern)
	default:
		hits = "SELECT rowid FROM users_email_trgm WHERE email_ci GLOB ?"
		args = append(args, "*"+term+"*") // tags are letters: nothing to escape
	}
	join := fmt.Sprintf(searchJoin, hits)
	args = append(args, term, pattern)
	rows, err := r.db.QueryContext(ctx, rebind(r.dialect, userSelect+join+searchExact+" ORDER BY id LIMIT ?"), append(args, domain.DefaultPageSize)...)
	if err != nil {
		return err
	}
	n := 0
	for rows.Next() {
		var u rawUser
		if err := rows.Scan(u.dest()...); err != nil {
			rows.Close() //nolint:sqlclosecheck // closed before the next statement on the same connection, not at return
			return err
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("raw search %q: no match", term)
	}
	if needsCount(n, 0) {
		var total int64
		return r.db.QueryRowContext(ctx, rebind(r.dialect, "SELECT count(*) FROM users"+join+searchExact), args...).Scan(&total)
	}
	return nil
}

// rareTrigrams returns the term's rarest trigrams (at most searchRarest,
// each with fewer than searchCommon postings), counted in one statement.
func (r *rawDB) rareTrigrams(ctx context.Context, term string) ([][]byte, error) {
	grams := byteTrigrams(term)
	parts := make([]string, len(grams))
	args := make([]any, len(grams))
	for i, g := range grams {
		parts[i] = fmt.Sprintf("SELECT %d AS i, COUNT(*) AS n FROM (SELECT 1 FROM user_email_trigrams WHERE trigram = ? LIMIT %d) t%d", i, searchCommon, i)
		args[i] = g
	}
	rows, err := r.db.QueryContext(ctx, strings.Join(parts, " UNION ALL "), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type count struct{ i, n int }
	var counts []count
	for rows.Next() {
		var c count
		if err := rows.Scan(&c.i, &c.n); err != nil {
			return nil, err
		}
		counts = append(counts, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(counts, func(a, b count) int { return cmp.Compare(a.n, b.n) })
	var out [][]byte
	for _, c := range counts[:min(searchRarest, len(counts))] {
		if c.n < searchCommon {
			out = append(out, grams[c.i])
		}
	}
	return out, nil
}

// WalkResult is the walk of every user by cursor, through the service and
// as a raw keyset walk, one client each, in turns (measureWalk).
type WalkResult struct {
	PageSize int `json:"page_size"`
	// Passes is how many times both sides walked every user (walkMinTime).
	Passes     int           `json:"passes"`
	Rows       int64         `json:"rows"`
	Pages      int64         `json:"pages"`
	Duration   time.Duration `json:"duration_ns"`
	RowsPerS   float64       `json:"rows_per_s"`
	RawRows    int64         `json:"raw_rows"`
	RawPages   int64         `json:"raw_pages"`
	RawTime    time.Duration `json:"raw_duration_ns"`
	RawPerS    float64       `json:"raw_rows_per_s"`
	Ratio      float64       `json:"ratio"`
	Errors     int           `json:"errors"`
	ErrorTexts []string      `json:"error_samples,omitempty"`
}

// ScaleResults are issue 18's measurements besides the workloads.
type ScaleResults struct {
	Walk *WalkResult `json:"walk,omitempty"`
	// DeepDepth is the row the deep workload's cursors start after.
	DeepDepth int `json:"deep_depth,omitempty"`
	// SearchScan is the LIKE scan that search ran before the trigram
	// indexes (raw, through database/sql), measured for the choice of index.
	SearchScan *Phase `json:"search_scan,omitempty"`
}

// serviceWalk follows next links from the first cursor page of pageSize
// rows, a page per step, checking that ids strictly increase, and collects
// the deep workload's cursors: the next links of the pages that end at or
// after deepAt rows, re-sized to the default page size.
type serviceWalk struct {
	cl     *client
	path   string // the next page's; "" when the last page was read
	body   bytes.Buffer
	ids    []int64
	last   int64
	deepAt int
	deep   *deepCursors

	rows, pages int64
}

func newServiceWalk(cl *client, pageSize, deepAt int, deep *deepCursors) *serviceWalk {
	return &serviceWalk{cl: cl, path: "/api/v1/users?cursor=&page_size=" + strconv.Itoa(pageSize), deepAt: deepAt, deep: deep}
}

func (w *serviceWalk) done() bool { return w.path == "" }

// step reads the next page.
func (w *serviceWalk) step(ctx context.Context) error {
	w.body.Reset()
	if err := w.cl.doInto(ctx, http.MethodGet, "/api/v1/users?cursor (walk)", w.path, "", nil, http.StatusOK, &w.body); err != nil {
		return err
	}
	p, err := decodeWalkPage(w.body.Bytes(), w.ids)
	if err != nil {
		return fmt.Errorf("walk page %d: %w", w.pages+1, err)
	}
	w.ids = p.IDs
	w.pages++
	for _, id := range p.IDs {
		if id <= w.last {
			return fmt.Errorf("walk page %d: id %d after %d: not in order (seen twice or misplaced)", w.pages, id, w.last)
		}
		w.last = id
		w.rows++
	}
	if p.Next == nil {
		w.path = ""
		return nil
	}
	u, err := url.Parse(*p.Next)
	if err != nil {
		return fmt.Errorf("walk page %d: next link: %w", w.pages, err)
	}
	if d := w.deep; d != nil && w.rows >= int64(w.deepAt) && w.rows <= int64(d.last) && len(d.links) < deepLinks {
		q := u.Query()
		q.Set("page_size", strconv.Itoa(domain.DefaultPageSize))
		d.links = append(d.links, deepCursor{path: u.Path + "?" + q.Encode(), after: w.last})
	}
	w.path = u.RequestURI()
	return nil
}

// walkService walks to the end, or until stopAfter rows when positive
// (and deep has its cursors). It returns the rows and pages read.
func walkService(ctx context.Context, cl *client, pageSize, stopAfter, deepAt int, deep *deepCursors) (rows, pages int64, err error) {
	w := newServiceWalk(cl, pageSize, deepAt, deep)
	for !w.done() {
		if err := w.step(ctx); err != nil {
			return w.rows, w.pages, err
		}
		if stopAfter > 0 && w.rows >= int64(stopAfter) && (deep == nil || len(deep.links) >= deepLinks) {
			break
		}
	}
	return w.rows, w.pages, nil
}

// rawWalk is the raw keyset walk: pages of pageSize rows by id through
// database/sql, each after the last id of the one before, a page per step.
type rawWalk struct {
	r        *rawDB
	pageSize int
	last     int64
	finished bool

	rows, pages int64
}

func (w *rawWalk) done() bool { return w.finished }

func (w *rawWalk) step(ctx context.Context) error {
	users, err := pageOf(ctx, w.r.scale.after, w.last, w.pageSize)
	if err != nil {
		return err
	}
	w.pages++
	for _, u := range users {
		if u.ID <= w.last {
			return fmt.Errorf("raw walk: id %d after %d", u.ID, w.last)
		}
		w.last = u.ID
	}
	w.rows += int64(len(users))
	w.finished = len(users) < w.pageSize
	return nil
}

// walkPageSize is the walk's page: the largest the API serves.
const walkPageSize = domain.MaxPageSize

// walkTurn is how many pages one side of the walk reads before the other
// takes its turn.
const walkTurn = 10

// stepper is one side of the measured walk.
type stepper interface {
	step(ctx context.Context) error
	done() bool
}

// measureWalk walks every user through the service and raw, in turns of
// walkTurn pages each, as many times as walkMinTime asks, and checks both
// saw every seeded user each time. Each side's
// time is the sum of its turns: walking in turns, the two share whatever
// else the machine does while they run (walked one after the other, the
// ratio moved by a fifth between runs of the same code), and which side
// goes first alternates, so neither always finds the rows just read. The
// service's walk collects the deep workload's cursors into deep on its
// way. With -pprof, cpu-walk.pprof holds both sides; the raw one's samples
// carry the label walk=raw (go tool pprof -tagignore walk=raw).
func measureWalk(ctx context.Context, e *env, p progress, deep *deepCursors, pprofDir string) *WalkResult {
	w := &WalkResult{PageSize: walkPageSize}
	fail := func(err error) {
		w.Errors++
		w.ErrorTexts = addSample(w.ErrorTexts, err.Error())
	}
	cl, err := newClient(e.client.base(), 1)
	if err != nil {
		fail(err)
		return w
	}
	defer cl.Close()
	// A turn of each side first, not measured: the service prepares its
	// page statement and warms its connections on its first pages, which
	// weighed on a walk of 100 pages (10,000 users).
	for _, warm := range []stepper{newServiceWalk(cl, walkPageSize, 0, nil), &rawWalk{r: e.raw, pageSize: walkPageSize}} {
		for n := 0; n < walkTurn && !warm.done(); n++ {
			if err := warm.step(ctx); err != nil {
				fail(err)
				return w
			}
		}
	}
	stopProfile, err := startCPUProfile(pprofDir, "cpu-walk.pprof")
	if err != nil {
		fail(err)
		return w
	}
	rawCtx := pprof.WithLabels(ctx, pprof.Labels("walk", "raw"))
	for {
		passDeep := deep // the first pass collects the deep cursors
		if w.Passes > 0 {
			passDeep = nil
		}
		svc := newServiceWalk(cl, walkPageSize, deep.depth, passDeep)
		raw := &rawWalk{r: e.raw, pageSize: walkPageSize}
		failed := walkInTurns(ctx, rawCtx, raw, svc, &w.RawTime, &w.Duration, fail)
		w.Passes++
		w.Rows, w.Pages, w.RawRows, w.RawPages = w.Rows+svc.rows, w.Pages+svc.pages, w.RawRows+raw.rows, w.RawPages+raw.pages
		if svc.rows != raw.rows || svc.rows < int64(e.pop.Users) {
			fail(fmt.Errorf("walk %d read %d users, the raw walk %d, %d were seeded", w.Passes, svc.rows, raw.rows, e.pop.Users))
			failed = true
		}
		if failed || w.Duration >= walkMinTime {
			break
		}
	}
	stopProfile()
	if w.Duration > 0 && w.RawTime > 0 {
		w.RowsPerS, w.RawPerS = float64(w.Rows)/w.Duration.Seconds(), float64(w.RawRows)/w.RawTime.Seconds()
		w.Ratio = w.RowsPerS / w.RawPerS
	}
	p.printf("walk    service %d rows in %d pages (%d passes), %v: %.0f rows/s | raw keyset %d rows, %v: %.0f rows/s | ratio %.2f | %d errors",
		w.Rows, w.Pages, w.Passes, w.Duration.Round(time.Millisecond), w.RowsPerS, w.RawRows, w.RawTime.Round(time.Millisecond), w.RawPerS, w.Ratio, w.Errors)
	return w
}

// walkMinTime is how long the service's side of the walk runs at least: a
// table of 10,000 users is 100 pages, a tenth of a second, so it is walked
// again (both sides) until then.
const walkMinTime = time.Second

// walkInTurns walks raw and svc to their ends in turns of walkTurn pages,
// which one goes first alternating, adding each side's turns to its time.
// It reports whether a side failed (fail has the error).
func walkInTurns(ctx, rawCtx context.Context, raw, svc stepper, rawTime, svcTime *time.Duration, fail func(error)) (failed bool) {
	sides := []struct {
		walk   stepper
		ctx    context.Context
		took   *time.Duration
		failed bool
	}{{walk: raw, ctx: rawCtx, took: rawTime}, {walk: svc, ctx: ctx, took: svcTime}}
	for turn := 0; ; turn++ {
		moved := false
		for i := range sides {
			s := &sides[(i+turn)%len(sides)]
			if s.failed || s.walk.done() {
				continue
			}
			moved = true
			pprof.SetGoroutineLabels(s.ctx)
			start := time.Now()
			for n := 0; n < walkTurn && !s.walk.done(); n++ {
				if err := s.walk.step(s.ctx); err != nil {
					fail(err)
					s.failed, failed = true, true
					break
				}
			}
			*s.took += time.Since(start)
			pprof.SetGoroutineLabels(ctx)
		}
		if !moved {
			return failed
		}
	}
}

// walkAndCollect measures the walk when asked (-walk) and collects the
// deep workload's cursors: deepLinks next links from deepFraction of the
// table on, from the measured walk or else from a walk that stops there.
func walkAndCollect(ctx context.Context, o options, e *env, p progress, res *Results) error {
	d := &deepCursors{depth: int(float64(e.pop.Users) * deepFraction), last: e.pop.Users - domain.DefaultPageSize}
	if o.Walk {
		res.Scale.Walk = measureWalk(ctx, e, p, d, o.PprofDir)
	}
	if !slices.Contains(o.Workloads, "deep") {
		return nil
	}
	if len(d.links) == 0 {
		cl, err := newClient(e.client.base(), 1)
		if err != nil {
			return err
		}
		defer cl.Close()
		if _, _, err := walkService(ctx, cl, walkPageSize, d.depth, d.depth, d); err != nil {
			return fmt.Errorf("collect deep cursors: %w", err)
		}
	}
	if len(d.links) == 0 {
		return fmt.Errorf("collect deep cursors: no page of %d ends between rows %d and %d (too few users)", walkPageSize, d.depth, d.last)
	}
	e.deep, res.Scale.DeepDepth = d, d.depth
	return nil
}

// measureSearchScan runs the raw LIKE scan for the same terms as search,
// at most 4 at a time (each is a scan: more only queue).
func measureSearchScan(ctx context.Context, o options, e *env, p progress) *Phase {
	ph := closedLoop(ctx, o.searchScanConcurrency(), o.Warmup, o.Duration, 97, e.rawSearchScan)
	ph.finish()
	p.printf("search-scan (raw LIKE scan, the alternative) %8.0f req/s p99 %7v ms err %d", ph.RPS, ph.Latency.P99, ph.Errors)
	return ph
}

// seedTrigrams writes the MySQL trigram rows of users lo..hi-1 as the
// store writes a user's (gormstore.writeTrigrams: every distinct 3-byte
// substring of email_ci with the id), in one multi-row INSERT. Seeding
// bypasses the store, and the migration's backfill (INSERT ... SELECT over
// a 2,000-row numbers table) takes about 2 ms a user: half an hour at a
// million. The other dialects index inserted rows themselves (GIN index,
// FTS5 triggers).
func seedTrigrams(ctx context.Context, tx *sql.Tx, firstID int64, emails []string) error {
	var ids, check []int64
	// The ids the INSERT took must be the consecutive ones assumed.
	rows, err := tx.QueryContext(ctx, "SELECT id, email_ci FROM users WHERE id >= ? AND id < ? ORDER BY id", firstID, firstID+int64(len(emails)))
	if err != nil {
		return err
	}
	for rows.Next() {
		var (
			id    int64
			email string
		)
		if err := rows.Scan(&id, &email); err != nil {
			rows.Close() //nolint:sqlclosecheck // closed before the next statement on the same connection, not at return
			return err
		}
		if len(ids) < len(emails) && email == emails[len(ids)] {
			ids = append(ids, id)
		}
		check = append(check, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(ids) != len(emails) || len(check) != len(emails) {
		return fmt.Errorf("seed trigrams: the %d users inserted from id %d did not get consecutive ids (innodb_autoinc_lock_mode 2?)", len(emails), firstID)
	}
	// At most maxTrigramRows rows a statement: two placeholders each, under
	// MySQL's 65,535.
	const maxTrigramRows = 20_000
	var sb strings.Builder
	args := make([]any, 0, 2*maxTrigramRows)
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO user_email_trigrams (trigram, user_id) VALUES "+sb.String(), args...)
		sb.Reset()
		args = args[:0]
		if err != nil {
			return fmt.Errorf("seed trigrams of users %d-%d: %w", ids[0], ids[len(ids)-1], err)
		}
		return nil
	}
	for i, id := range ids {
		grams := byteTrigrams(emails[i])
		if len(args)/2+len(grams) > maxTrigramRows {
			if err := flush(); err != nil {
				return err
			}
		}
		for _, g := range grams {
			if len(args) > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?)")
			args = append(args, g, id)
		}
	}
	return flush()
}

// byteTrigrams are the distinct 3-byte substrings of s.
func byteTrigrams(s string) [][]byte {
	var grams [][]byte
	for i := 0; i+3 <= len(s); i++ {
		g := []byte(s[i : i+3])
		if !slices.ContainsFunc(grams, func(h []byte) bool { return bytes.Equal(g, h) }) {
			grams = append(grams, g)
		}
	}
	return grams
}

func (o options) searchScanConcurrency() int { return min(o.Concurrency, 4) }
