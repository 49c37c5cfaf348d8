package gormstore

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/marketplace/usersvc/domain"
)

// userRow is a row of the users table. The *CI fields are lower-cased
// copies computed here, so case-insensitive matching never depends on a
// database collation.
type userRow struct {
	ID           int64  `gorm:"column:id;primaryKey;autoIncrement"`
	Email        string `gorm:"column:email"`
	EmailCI      string `gorm:"column:email_ci"`
	FirstName    string `gorm:"column:first_name"`
	FirstNameCI  string `gorm:"column:first_name_ci"`
	LastName     string `gorm:"column:last_name"`
	LastNameCI   string `gorm:"column:last_name_ci"`
	Address      string `gorm:"column:address"`
	PasswordHash string `gorm:"column:password_hash"`
	// Country is NULL for users created before it was recorded.
	Country   sql.NullString `gorm:"column:country"`
	Version   int64          `gorm:"column:version"`
	CreatedAt time.Time      `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt time.Time      `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (userRow) TableName() string { return "users" }

// userColumns are the columns a domain.User is read from, in the order of
// userRow.columns.
var userColumns = []string{"id", "email", "first_name", "last_name", "address", "password_hash", "country", "version", "created_at", "updated_at"}

// columns are the destinations of userColumns in r, for Scan.
func (r *userRow) columns() []any {
	return []any{&r.ID, &r.Email, &r.FirstName, &r.LastName, &r.Address, &r.PasswordHash, &r.Country, &r.Version, &r.CreatedAt, &r.UpdatedAt}
}

// scanUsers reads a page of userColumns rows, followed by the match count
// when counted, and closes rows. Pages are scanned by hand rather than by
// GORM's reflection: with the JSON of the answer, GORM's scan was the
// largest cost of a page of 100 after the database's own (the walk's
// profile, test/load/README.md).
func scanUsers(rows *sql.Rows, capacity int, counted bool) (users []domain.User, matches int64, err error) {
	defer rows.Close()
	var r userRow
	dest := r.columns()
	if counted {
		dest = append(dest, &matches)
	}
	users = make([]domain.User, 0, capacity)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, 0, err
		}
		users = append(users, r.toDomain())
	}
	return users, matches, rows.Err()
}

func fold(s string) string { return strings.ToLower(s) }

func toRow(u domain.User) userRow {
	return userRow{
		ID:           u.ID,
		Email:        u.Email,
		EmailCI:      fold(u.Email),
		FirstName:    u.FirstName,
		FirstNameCI:  fold(u.FirstName),
		LastName:     u.LastName,
		LastNameCI:   fold(u.LastName),
		Address:      u.Address,
		PasswordHash: u.PasswordHash,
		Country:      sql.NullString{String: u.Country, Valid: u.Country != ""},
		Version:      u.Version,
		CreatedAt:    dbTime(u.CreatedAt),
		UpdatedAt:    dbTime(u.UpdatedAt),
	}
}

func (r userRow) toDomain() domain.User {
	return domain.User{
		ID:           r.ID,
		Email:        r.Email,
		FirstName:    r.FirstName,
		LastName:     r.LastName,
		Address:      r.Address,
		PasswordHash: r.PasswordHash,
		Country:      r.Country.String,
		Version:      r.Version,
		CreatedAt:    r.CreatedAt.UTC(),
		UpdatedAt:    r.UpdatedAt.UTC(),
	}
}

// GetUser reads one user (domain.ErrNotFound when absent). It is the
// service's hottest query, so it skips GORM: a prepared statement costs the
// database no parsing and this process half the allocations (see README.md).
func (s *Store) GetUser(ctx context.Context, id int64) (domain.User, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	u, err := s.getUserPrepared(ctx, id)
	if err != nil {
		return domain.User{}, dbErr(ctx, fmt.Sprintf("get user %d", id), err)
	}
	return u, nil
}

// getUserSQL selects userColumns by primary key.
var getUserSQL = selectUsers + " WHERE id = ?"

func (s *Store) getUserPrepared(ctx context.Context, id int64) (u domain.User, err error) {
	ctx, end := s.startStatement(ctx, "select users", s.getUserQuery)
	defer func() { end(1, err) }()
	var r userRow
	if err = s.prepared.scanRow(ctx, s.getUserQuery, []any{id}, r.columns()...); err != nil {
		return domain.User{}, err
	}
	return r.toDomain(), nil
}

func getUser(db *gorm.DB, id int64) (domain.User, error) {
	var r userRow
	if err := db.Select(userColumns).Where("id = ?", id).Take(&r).Error; err != nil {
		return domain.User{}, err
	}
	return r.toDomain(), nil
}

// ListUsers reads one page of matching users and their total count (in
// keyset mode, the page after a position and whether more follow). The
// page is one indexed query (no N+1); the count is skipped when the page
// itself shows the total, and the unfiltered count comes from user_counts
// instead of scanning the table.
func (s *Store) ListUsers(ctx context.Context, q domain.ListQuery) (domain.UserPage, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if q.PageSize <= 0 {
		q.PageSize = domain.DefaultPageSize
	}
	if q.Page < 1 {
		q.Page = 1
	}
	if q.Keyset != nil {
		return s.listKeyset(ctx, q)
	}
	if !hasFilter(q) {
		return s.listAll(ctx, q)
	}
	db := s.db.WithContext(ctx)
	// An indexed search counts its matches in the page's own statement:
	// its join reads every match to order them anyway, and a separate
	// count would find them all again.
	countInPage := q.Search != "" && indexedTerm(fold(q.Search))
	columns := userColumns
	if countInPage {
		columns = append(slices.Clip(userColumns), "COUNT(*) OVER () AS matches")
	}
	rows, err := s.filterUsers(db, q).
		Select(columns).
		Order(orderBy(q.KeyOrder(), false)).
		Limit(q.PageSize).
		Offset(q.Offset()).
		Rows()
	var (
		page    domain.UserPage
		matches int64
	)
	if err == nil {
		page.Users, matches, err = scanUsers(rows, q.PageSize, countInPage)
	}
	if err != nil {
		return domain.UserPage{}, dbErr(ctx, "list users", err)
	}
	switch {
	case pageEnds(q, len(page.Users)):
		page.Total = int64(q.Offset() + len(page.Users))
	case countInPage && len(page.Users) > 0:
		page.Total = matches
	default:
		page.Total, err = s.countUsers(db, q)
	}
	if err != nil {
		return domain.UserPage{}, dbErr(ctx, "count users", err)
	}
	return page, nil
}

// pageEnds reports whether a numbered page of n rows tells the total
// itself: a partial page, or an empty first one, ends the result.
func pageEnds(q domain.ListQuery, n int) bool {
	return n > 0 && n < q.PageSize || n == 0 && q.Offset() == 0
}

// listAll reads a numbered page of every user (pages.go) and, unless the
// page tells it, the count.
func (s *Store) listAll(ctx context.Context, q domain.ListQuery) (page domain.UserPage, err error) {
	page.Users, err = s.scanPage(ctx, q.KeyOrder(), nil, false, q.PageSize, q.Offset())
	if err != nil {
		return domain.UserPage{}, dbErr(ctx, "list users", err)
	}
	if pageEnds(q, len(page.Users)) {
		page.Total = int64(q.Offset() + len(page.Users))
		return page, nil
	}
	if page.Total, err = s.countAll(ctx); err != nil {
		return domain.UserPage{}, dbErr(ctx, "count users", err)
	}
	return page, nil
}

func hasFilter(q domain.ListQuery) bool {
	return q.FirstName != "" || q.LastName != "" || q.Email != "" || q.Search != "" ||
		q.SinceID != nil || q.MaxID != nil || q.CreatedAfter != nil || q.CreatedBefore != nil ||
		len(q.Countries) > 0
}

// likeEscape is the LIKE escape character. Not a backslash: its meaning
// inside string literals differs between MySQL and SQLite.
const likeEscape = "!"

var likeEscaper = strings.NewReplacer(likeEscape, likeEscape+likeEscape, "%", likeEscape+"%", "_", likeEscape+"_")

const likeClause = "LIKE ? ESCAPE '" + likeEscape + "'"

// searchArgs returns the folded search term and the LIKE pattern for
// "email contains term", with the term's wildcards escaped.
func searchArgs(search string) (term, pattern string) {
	term = fold(search)
	return term, "%" + likeEscaper.Replace(term) + "%"
}

// countUsers counts the matches of a filtered query. A search of three
// characters or more counts through its index (searchFilter). A shorter one
// is counted as |email matches| + |last-name matches whose email does not
// match|: each part has an index (a covering scan of the email index, a
// lookup on the last-name index), where the OR of both scans the whole
// table (3.6s instead of 1.1s at 1,000,000 rows, see README.md).
func (s *Store) countUsers(db *gorm.DB, q domain.ListQuery) (int64, error) {
	var n int64
	if q.Search == "" || indexedTerm(fold(q.Search)) {
		err := s.filterUsers(db, q).Count(&n).Error
		return n, err
	}
	term, pattern := searchArgs(q.Search)
	rest := q
	rest.Search = ""
	var byEmail, byNameOnly int64
	if err := s.filterUsers(db, rest).Where("email_ci "+likeClause, pattern).Count(&byEmail).Error; err != nil {
		return 0, err
	}
	err := s.filterUsers(db, rest).Where("last_name_ci = ? AND email_ci NOT "+likeClause, term, pattern).Count(&byNameOnly).Error
	return byEmail + byNameOnly, err
}

func (s *Store) filterUsers(db *gorm.DB, q domain.ListQuery) *gorm.DB {
	db = db.Model(&userRow{})
	if q.FirstName != "" {
		db = db.Where("first_name_ci = ?", fold(q.FirstName))
	}
	if q.LastName != "" {
		db = db.Where("last_name_ci = ?", fold(q.LastName))
	}
	if q.Email != "" {
		db = db.Where("email_ci = ?", fold(q.Email))
	}
	if q.Search != "" {
		db = s.searchFilter(db, q.Search)
	}
	if len(q.Countries) > 0 {
		db = db.Where("country IN ?", q.Countries)
	}
	if q.SinceID != nil {
		db = db.Where("id > ?", *q.SinceID)
	}
	if q.MaxID != nil {
		db = db.Where("id < ?", *q.MaxID)
	}
	// Stored times have microsecond precision: rounding the bounds to it
	// (down for "after", up for "before") keeps the comparisons exact.
	if q.CreatedAfter != nil {
		db = db.Where("created_at > ?", dbTime(*q.CreatedAfter))
	}
	if q.CreatedBefore != nil {
		before := dbTime(*q.CreatedBefore)
		if before.Before(q.CreatedBefore.UTC()) {
			before = before.Add(time.Microsecond)
		}
		db = db.Where("created_at < ?", before)
	}
	return db
}

// sortColumns maps the API's ordering names to indexed columns; names sort
// case-insensitively, like the filters compare.
var sortColumns = map[string]string{
	domain.SortID:        "id",
	domain.SortFirstName: "first_name_ci",
	domain.SortLastName:  "last_name_ci",
	domain.SortEmail:     "email_ci",
	domain.SortCreatedAt: "created_at",
}

// orderBy builds the ORDER BY of a KeyOrder, every direction flipped when
// reverse (a backward keyset page reads the order from its end).
func orderBy(order []domain.OrderField, reverse bool) clause.OrderBy {
	var ob clause.OrderBy
	for _, f := range order {
		ob.Columns = append(ob.Columns, clause.OrderByColumn{Column: clause.Column{Name: sortColumns[f.Field]}, Desc: f.Desc != reverse})
	}
	return ob
}

// keyValue is the stored value a position's field compares with.
func keyValue(k domain.SortKey, field string) any {
	switch field {
	case domain.SortFirstName:
		return fold(k.FirstName)
	case domain.SortLastName:
		return fold(k.LastName)
	case domain.SortEmail:
		return fold(k.Email)
	case domain.SortCreatedAt:
		return dbTime(k.CreatedAt)
	}
	return k.ID
}

// keysetWhere is "the row comes after k in order" (before, when reverse),
// spelled out lexicographically: (a > ?) OR (a = ? AND b > ?) ... Mixed
// directions (-first_name then id) rule out row-value comparisons. The
// leading "a >= ?" is implied by the OR, and lets every planner start a
// range scan of the (a, id) index at the position rather than filter
// rows from the start of it.
func keysetWhere(order []domain.OrderField, k domain.SortKey, reverse bool) (string, []any) {
	var (
		ors  []string
		args []any
	)
	op := func(f domain.OrderField, strict bool) string {
		o := ">"
		if f.Desc != reverse {
			o = "<"
		}
		if !strict {
			o += "="
		}
		return o
	}
	for i, f := range order {
		var ands []string
		for _, g := range order[:i] {
			ands = append(ands, sortColumns[g.Field]+" = ?")
			args = append(args, keyValue(k, g.Field))
		}
		ands = append(ands, sortColumns[f.Field]+" "+op(f, true)+" ?")
		args = append(args, keyValue(k, f.Field))
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	lead := order[0]
	where := sortColumns[lead.Field] + " " + op(lead, len(order) == 1) + " ?"
	args = append([]any{keyValue(k, lead.Field)}, args...)
	if len(order) > 1 {
		where += " AND (" + strings.Join(ors, " OR ") + ")"
	} else {
		args = args[:1]
	}
	return where, args
}

// listKeyset reads the page next to a position: PageSize rows plus one,
// which tells whether more follow, through the index of the order (a
// backward page reads the order reversed, then turns the rows around).
func (s *Store) listKeyset(ctx context.Context, q domain.ListQuery) (domain.UserPage, error) {
	order := q.KeyOrder()
	back := q.Keyset.Backward
	var (
		users []domain.User
		err   error
	)
	if hasFilter(q) {
		db := s.filterUsers(s.db.WithContext(ctx), q)
		if q.Keyset.From != nil {
			where, args := keysetWhere(order, *q.Keyset.From, back)
			db = db.Where(where, args...)
		}
		var rows *sql.Rows
		rows, err = db.Select(userColumns).Order(orderBy(order, back)).Limit(q.PageSize + 1).Rows()
		if err == nil {
			users, _, err = scanUsers(rows, q.PageSize+1, false)
		}
	} else {
		users, err = s.scanPage(ctx, order, q.Keyset.From, back, q.PageSize+1, 0)
	}
	if err != nil {
		return domain.UserPage{}, dbErr(ctx, "list users after a position", err)
	}
	page := domain.UserPage{More: len(users) > q.PageSize, Users: users[:min(len(users), q.PageSize)]}
	if back {
		slices.Reverse(page.Users)
	}
	return page, nil
}

// userCountSlots is the number of rows of user_counts (see the migration).
const userCountSlots = 16

// addUserCount adds delta to a slot of user_counts. Writers never wait for
// each other here while a slot is free: on the server databases each takes
// the first slot from a random one on that no other transaction holds
// (SKIP LOCKED). That matters beyond contention: a replica cut off in the
// middle of a transaction keeps its slot locked until the server ends its
// session (the lock lease), longer than another replica's statement may
// wait. Only with every slot held does a writer wait, on the random one.
func addUserCount(db *gorm.DB, dialect string, delta int) error {
	slot := rand.IntN(userCountSlots) //nolint:gosec // G404: spreads writers over slots, not a secret
	if locksRows(dialect) {
		free, err := lockFreeCountSlot(db, slot)
		if err != nil {
			return err
		}
		if free >= 0 {
			slot = free
		}
	}
	return db.Exec("UPDATE user_counts SET n = n + ? WHERE slot = ?", delta, slot).Error
}

// lockFreeCountSlot locks the first slot from start on, wrapping around,
// that no other transaction holds, and returns it; -1 when all are held.
// Each statement walks the primary key in order and stops at the first
// row it can lock, so it locks no other slot (a sort would make InnoDB
// lock every row it reads).
func lockFreeCountSlot(db *gorm.DB, start int) (int, error) {
	for _, where := range []string{"slot >= ?", "slot < ?"} {
		var slots []int
		err := db.Raw("SELECT slot FROM user_counts WHERE "+where+" ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED", start).Scan(&slots).Error
		if err != nil {
			return 0, err
		}
		if len(slots) > 0 {
			return slots[0], nil
		}
	}
	return -1, nil
}

// txStore is the ports.Tx of one transaction.
type txStore struct {
	tx      *gorm.DB
	dialect string
	now     func() time.Time
	store   *Store
	// emailCI is the folded e-mail of each user LockUser read, as this
	// transaction last wrote it: UpdateUser's trigram rows (MySQL) follow
	// a change of it without reading the row again.
	emailCI map[int64]string
}

// locksRows reports whether the dialect locks rows with SELECT ... FOR
// UPDATE (MySQL, PostgreSQL). On SQLite the write transaction (BEGIN
// IMMEDIATE) already excludes other writers, so a plain read is enough.
func locksRows(dialect string) bool { return dialect != DialectSQLite }

// LockUser reads a user and locks its row until the transaction ends.
func (t *txStore) LockUser(ctx context.Context, id int64) (domain.User, error) {
	db := t.tx.WithContext(ctx)
	if locksRows(t.dialect) {
		db = db.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	u, err := getUser(db, id)
	if err != nil {
		return domain.User{}, dbErr(ctx, fmt.Sprintf("lock user %d", id), err)
	}
	t.rememberEmail(id, u.Email)
	return u, nil
}

func (t *txStore) rememberEmail(id int64, email string) {
	if t.emailCI == nil {
		t.emailCI = map[int64]string{}
	}
	t.emailCI[id] = fold(email)
}

// storedEmailCI is the folded e-mail user id has in the database (MySQL,
// whose trigram rows follow it; "" elsewhere): the one LockUser read, or
// read now for a caller that did not lock first.
func (t *txStore) storedEmailCI(db *gorm.DB, id int64) (string, error) {
	if t.dialect != DialectMySQL {
		return "", nil
	}
	if e, ok := t.emailCI[id]; ok {
		return e, nil
	}
	var emailCI string
	err := db.Model(&userRow{}).Select("email_ci").Where("id = ?", id).Scan(&emailCI).Error
	return emailCI, err
}

// InsertUser stores a new user, sets its ID and normalises its timestamps
// to what was stored (UTC, microseconds).
func (t *txStore) InsertUser(ctx context.Context, u *domain.User) error {
	r := toRow(*u)
	r.ID = 0
	db := t.tx.WithContext(ctx)
	if err := db.Create(&r).Error; err != nil {
		return userWriteErr(ctx, "insert user", err)
	}
	if err := writeTrigrams(db, t.dialect, r.ID, "", r.EmailCI); err != nil {
		return dbErr(ctx, "index inserted user", err)
	}
	if err := addUserCount(db, t.dialect, 1); err != nil {
		return dbErr(ctx, "count inserted user", err)
	}
	u.ID, u.CreatedAt, u.UpdatedAt = r.ID, r.CreatedAt, r.UpdatedAt
	return nil
}

// UpdateUser writes every field of a user but the country, set once at
// insertion.
func (t *txStore) UpdateUser(ctx context.Context, u domain.User) error {
	r := toRow(u)
	op := fmt.Sprintf("update user %d", u.ID)
	db := t.tx.WithContext(ctx)
	oldEmailCI, err := t.storedEmailCI(db, u.ID)
	if err != nil {
		return dbErr(ctx, op, err)
	}
	res := db.Model(&userRow{}).Where("id = ?", u.ID).Updates(map[string]any{
		"email":         r.Email,
		"email_ci":      r.EmailCI,
		"first_name":    r.FirstName,
		"first_name_ci": r.FirstNameCI,
		"last_name":     r.LastName,
		"last_name_ci":  r.LastNameCI,
		"address":       r.Address,
		"password_hash": r.PasswordHash,
		"version":       r.Version,
		"updated_at":    r.UpdatedAt,
	})
	if res.Error != nil {
		return userWriteErr(ctx, op, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("%s: %w", op, domain.ErrNotFound)
	}
	if err := writeTrigrams(db, t.dialect, u.ID, oldEmailCI, r.EmailCI); err != nil {
		return dbErr(ctx, "index "+op, err)
	}
	t.rememberEmail(u.ID, u.Email)
	return nil
}

// DeleteUser removes a user.
func (t *txStore) DeleteUser(ctx context.Context, id int64) error {
	op := fmt.Sprintf("delete user %d", id)
	db := t.tx.WithContext(ctx)
	res := db.Where("id = ?", id).Delete(&userRow{})
	if res.Error != nil {
		return dbErr(ctx, op, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("%s: %w", op, domain.ErrNotFound)
	}
	if err := addUserCount(db, t.dialect, -1); err != nil {
		return dbErr(ctx, "count deleted user", err)
	}
	if err := deleteTrigrams(db, t.dialect, id); err != nil {
		return dbErr(ctx, "unindex deleted user", err)
	}
	return nil
}

// userWriteErr maps a duplicate key on users (only email_ci is unique
// besides the generated id) to domain.ErrEmailTaken. The driver's message,
// which quotes the email, is dropped.
func userWriteErr(ctx context.Context, op string, err error) error {
	if isDuplicateKey(err) {
		return fmt.Errorf("%s: %w", op, domain.ErrEmailTaken)
	}
	return dbErr(ctx, op, err)
}

// RecountUsers resets user_counts to the exact number of rows, for rows
// written behind the store's back (bulk loads, manual SQL), and returns it.
// It is safe under concurrent writes: the slots are locked first (SQLite:
// the write transaction is the lock), so a transaction that already counted
// itself commits before the COUNT, and one that has not yet is not seen by
// the COUNT and adds itself afterwards.
func (s *Store) RecountUsers(ctx context.Context) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var n int64
	err := s.transact(ctx, func(tx *gorm.DB) error {
		locked := tx.WithContext(ctx).Table("user_counts")
		if locksRows(s.dialect) {
			locked = locked.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
		}
		var slots []int64
		if err := locked.Pluck("slot", &slots).Error; err != nil {
			return err
		}
		if err := tx.WithContext(ctx).Model(&userRow{}).Count(&n).Error; err != nil {
			return err
		}
		return tx.WithContext(ctx).Exec("UPDATE user_counts SET n = CASE WHEN slot = 0 THEN ? ELSE 0 END", n).Error
	})
	if err != nil {
		return 0, dbErr(ctx, "recount users", err)
	}
	return n, nil
}
