package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/domain"
)

// rawDB is the baseline: the statements the store issues for each request,
// prepared once and run through database/sql, with rows scanned into plain
// structs. It is what the database costs with no service around it.
//
// The statements mirror gormstore (users.go, outbox.go): the same columns,
// WHERE clauses, ORDER BY, LIMIT/OFFSET, the counter-table count for an
// unfiltered list, the two-part count of a search, and the same rule that
// a short page needs no count.
type rawDB struct {
	db      *sql.DB
	dialect string

	get, page, countAll                       *sql.Stmt
	filterPage, filterCount                   *sql.Stmt
	searchPage, searchCountEmail, searchCount *sql.Stmt
	lockUser, updateUser, appendOutbox        *sql.Stmt
	scale                                     rawScale
}

const userSelect = "SELECT id, email, first_name, last_name, address, password_hash, country, version, created_at, updated_at FROM users"

// likeEscape matches the store's LIKE escape character.
const likeEscape = "!"

var likeEscaper = strings.NewReplacer(likeEscape, likeEscape+likeEscape, "%", likeEscape+"%", "_", likeEscape+"_")

func newRawDB(ctx context.Context, db *sql.DB, dialect string) (*rawDB, error) {
	r := &rawDB{db: db, dialect: dialect}
	forUpdate := ""
	if dialect != gormstore.DialectSQLite {
		forUpdate = " FOR UPDATE" // SQLite's BEGIN IMMEDIATE already excludes writers
	}
	stmts := []struct {
		dst **sql.Stmt
		sql string
	}{
		{&r.get, userSelect + " WHERE id = ?"}, // Store.GetUser's prepared statement
		{&r.page, userSelect + " ORDER BY id LIMIT ? OFFSET ?"},
		{&r.countAll, "SELECT COALESCE(SUM(n), 0) FROM user_counts"},
		{&r.filterPage, userSelect + " WHERE last_name_ci = ? ORDER BY id LIMIT ? OFFSET ?"},
		{&r.filterCount, "SELECT count(*) FROM users WHERE last_name_ci = ?"},
		{&r.searchPage, userSelect + " WHERE (last_name_ci = ? OR email_ci LIKE ? ESCAPE '!') ORDER BY id LIMIT ? OFFSET ?"},
		{&r.searchCountEmail, "SELECT count(*) FROM users WHERE email_ci LIKE ? ESCAPE '!'"},
		{&r.searchCount, "SELECT count(*) FROM users WHERE last_name_ci = ? AND email_ci NOT LIKE ? ESCAPE '!'"},
		{&r.lockUser, userSelect + " WHERE id = ? LIMIT 1" + forUpdate},
		{&r.updateUser, "UPDATE users SET address = ?, email = ?, email_ci = ?, first_name = ?, first_name_ci = ?, last_name = ?, last_name_ci = ?, password_hash = ?, updated_at = ?, version = ? WHERE id = ?"},
		{&r.appendOutbox, "INSERT INTO outbox (event_id, event_type, msg_key, payload, occurred_at, created_at, published_at) VALUES (?, ?, ?, ?, ?, ?, NULL)"},
	}
	for _, s := range stmts {
		st, err := db.PrepareContext(ctx, rebind(dialect, s.sql)) //nolint:sqlclosecheck // kept in r, closed by r.Close
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("prepare %q: %w", s.sql, err)
		}
		*s.dst = st
	}
	if err := r.prepareScale(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *rawDB) Close() {
	r.closeScale()
	for _, s := range []*sql.Stmt{r.get, r.page, r.countAll, r.filterPage, r.filterCount, r.searchPage, r.searchCountEmail, r.searchCount, r.lockUser, r.updateUser, r.appendOutbox} {
		if s != nil {
			s.Close()
		}
	}
}

// rawUser is a scanned users row.
type rawUser struct {
	ID                                                int64
	Email, FirstName, LastName, Address, PasswordHash string
	Country                                           sql.NullString
	Version                                           int64
	CreatedAt, UpdatedAt                              time.Time
}

func (u *rawUser) dest() []any {
	return []any{&u.ID, &u.Email, &u.FirstName, &u.LastName, &u.Address, &u.PasswordHash, &u.Country, &u.Version, &u.CreatedAt, &u.UpdatedAt}
}

func (r *rawDB) getUser(ctx context.Context, id int64) (rawUser, error) {
	var u rawUser
	err := r.get.QueryRowContext(ctx, id).Scan(u.dest()...)
	return u, err
}

// pageOf reads one page of rows.
func pageOf(ctx context.Context, st *sql.Stmt, args ...any) ([]rawUser, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	users := make([]rawUser, 0, domain.DefaultPageSize)
	for rows.Next() {
		var u rawUser
		if err := rows.Scan(u.dest()...); err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, rows.Err()
}

// needsCount is the store's rule: a partial page, or an empty first page,
// already tells the total.
func needsCount(rows, offset int) bool {
	return !(rows > 0 && rows < domain.DefaultPageSize || rows == 0 && offset == 0)
}

func count(ctx context.Context, st *sql.Stmt, args ...any) (int64, error) {
	var n int64
	err := st.QueryRowContext(ctx, args...).Scan(&n)
	return n, err
}

// listPage is GET /api/v1/users?page=N: the page, then the counter table.
func (r *rawDB) listPage(ctx context.Context, page int) error {
	offset := (page - 1) * domain.DefaultPageSize
	users, err := pageOf(ctx, r.page, domain.DefaultPageSize, offset)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		return errors.New("raw list: empty page")
	}
	if needsCount(len(users), offset) {
		_, err = count(ctx, r.countAll)
	}
	return err
}

// filterByLastName is GET /api/v1/users?last_name=X.
func (r *rawDB) filterByLastName(ctx context.Context, last string) error {
	folded := strings.ToLower(last)
	users, err := pageOf(ctx, r.filterPage, folded, domain.DefaultPageSize, 0)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		return errors.New("raw filter: no match")
	}
	if needsCount(len(users), 0) {
		_, err = count(ctx, r.filterCount, folded)
	}
	return err
}

// searchScan is GET /api/v1/users?search=X as the store answered it before
// the trigram indexes (issue 18): the OR page, then the count as email
// matches plus last-name-only matches, each a scan of the email index. It
// is the alternative the trigram search is measured against.
func (r *rawDB) searchScan(ctx context.Context, term string) error {
	term = strings.ToLower(term)
	pattern := "%" + likeEscaper.Replace(term) + "%"
	users, err := pageOf(ctx, r.searchPage, term, pattern, domain.DefaultPageSize, 0)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		return errors.New("raw search scan: no match")
	}
	if needsCount(len(users), 0) {
		if _, err = count(ctx, r.searchCountEmail, pattern); err == nil {
			_, err = count(ctx, r.searchCount, term, pattern)
		}
	}
	return err
}

// rawEventPayload stands in for an update event's JSON (same size class);
// building the real one is service work, not database work.
var rawEventPayload = []byte(`{"id":"0190f5a4-0000-7000-8000-000000000000","action":"update","occurred_at":"2026-11-27T10:00:00.000000Z","data":{"id":1,"first_name":"First1","last_name":"Lastname1","email":"first1.lastname1.1@example1.com","address":"1 Main Street","created_at":"2020-01-01T00:00:00.000000Z","updated_at":"2026-11-27T10:00:00.000000Z"},"changed":["address"]}`)

// patchAddress is PATCH /api/v1/users/{id} {"address": ...}: in one
// transaction, lock the row, write every field, append the event.
func (r *rawDB) patchAddress(ctx context.Context, id int64, address, eventID string) (err error) {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var u rawUser
	// A transaction's statements close with it (Commit or Rollback).
	if err := tx.StmtContext(ctx, r.lockUser).QueryRowContext(ctx, id).Scan(u.dest()...); err != nil { //nolint:sqlclosecheck // see above
		return fmt.Errorf("lock user %d: %w", id, err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	res, err := tx.StmtContext(ctx, r.updateUser).ExecContext(ctx, address, u.Email, strings.ToLower(u.Email), //nolint:sqlclosecheck // closes with tx
		u.FirstName, strings.ToLower(u.FirstName), u.LastName, strings.ToLower(u.LastName), u.PasswordHash, now, u.Version+1, id)
	if err != nil {
		return fmt.Errorf("update user %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("update user %d: %d rows", id, n)
	}
	if _, err := tx.StmtContext(ctx, r.appendOutbox).ExecContext(ctx, eventID, domain.ActionUpdate.EventType(), //nolint:sqlclosecheck // closes with tx
		strconv.FormatInt(id, 10), rawEventPayload, now, now); err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	return tx.Commit()
}
