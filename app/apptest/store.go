// Package apptest holds in-memory fakes of the ports for tests of the
// application core: a transactional Store (users, outbox, relay lock), a
// Hasher, a Geolocator, a Clock and a Notifier. The fakes are strict where a
// real adapter would be (unique emails, rollback, context cancellation) and
// stricter where that catches bugs in callers (a transaction cannot be used
// after it ended; updates need the row locked first; paging must be
// normalised). Every fake is safe for concurrent use.
package apptest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Operation names accepted by FailNext, FailAlways and Calls.
const (
	OpGetUser         = "GetUser"
	OpListUsers       = "ListUsers"
	OpLockUser        = "LockUser"
	OpInsertUser      = "InsertUser"
	OpUpdateUser      = "UpdateUser"
	OpDeleteUser      = "DeleteUser"
	OpAppendMessage   = "AppendMessage"
	OpCommit          = "Commit"
	OpPendingMessages = "PendingMessages"
	OpMarkPublished   = "MarkPublished"
	OpPurgePublished  = "PurgePublished"
	OpBacklog         = "Backlog"
	OpTryLock         = "TryLock"
)

// ErrTxDone is returned by a Tx used after its unit of work ended.
var ErrTxDone = errors.New("apptest: transaction already ended")

// Store keeps users and outbox messages in memory. Transactions run one at
// a time (which stands in for row locks and the unique email index); their
// writes are private until commit and discarded on error. Reads outside a
// transaction see committed data only. Times are kept in UTC, like the
// databases keep them (which also drop what is finer than a microsecond).
type Store struct {
	txSlot chan struct{} // holds a token while a transaction runs

	mu        sync.Mutex
	users     map[int64]domain.User
	outbox    []outboxRow // ascending Seq
	lastID    int64
	lastSeq   int64
	next      map[string][]error
	always    map[string]error
	calls     map[string]int
	commits   int
	rollbacks int
	lastList  domain.ListQuery
	loseLock  context.CancelFunc
	lockHeld  bool
	failures  map[string]domain.LoginFailures // login failures by key
}

type outboxRow struct {
	msg         domain.Message
	published   bool
	publishedAt time.Time
}

var (
	_ ports.UserReader = (*Store)(nil)
	_ ports.UnitOfWork = (*Store)(nil)
	_ ports.Outbox     = (*Store)(nil)
	_ ports.RelayLock  = (*Store)(nil)
	_ ports.Tx         = (*storeTx)(nil)
)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		txSlot: make(chan struct{}, 1),
		users:  make(map[int64]domain.User),
		next:   make(map[string][]error),
		always: make(map[string]error),
		calls:  make(map[string]int),
	}
}

// FailNext makes the next call of op return err (calls queue up: calling it
// twice fails the next two calls). OpCommit fails a commit after the
// transaction's function succeeded, which then rolls back.
func (s *Store) FailNext(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next[op] = append(s.next[op], err)
}

// FailAlways makes every call of op return err until it is called again
// with a nil err. Errors queued by FailNext come first.
func (s *Store) FailAlways(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.always, op)
		return
	}
	s.always[op] = err
}

// Calls counts the calls of op so far, failed ones included.
func (s *Store) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Commits and Rollbacks count how units of work ended.
func (s *Store) Commits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}

// Rollbacks counts the units of work that ended without a commit.
func (s *Store) Rollbacks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rollbacks
}

// LastListQuery is the query the last ListUsers call received.
func (s *Store) LastListQuery() domain.ListQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastList
}

// enter records a call of op and returns the error it must fail with, if any.
func (s *Store) enter(ctx context.Context, op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	if q := s.next[op]; len(q) > 0 {
		s.next[op] = q[1:]
		return q[0]
	}
	if err := s.always[op]; err != nil {
		return err
	}
	return ctx.Err()
}

// Put stores u as committed data outside any transaction, to arrange a
// test: a zero ID gets the next one, another ID inserts or replaces that
// user. A duplicate email is domain.ErrEmailTaken.
func (s *Store) Put(u domain.User) (domain.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == 0 {
		s.lastID++
		u.ID = s.lastID
	} else {
		s.lastID = max(s.lastID, u.ID)
	}
	if owner, taken := emailOwner(s.users, nil, u.Email); taken && owner != u.ID {
		return domain.User{}, fmt.Errorf("put user %d: %w", u.ID, domain.ErrEmailTaken)
	}
	u = storedUser(u)
	s.users[u.ID] = u
	return u, nil
}

// User returns the committed user with this id.
func (s *Store) User(id int64) (domain.User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	return u, ok
}

// Users returns every committed user, by id.
func (s *Store) Users() []domain.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]domain.User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b domain.User) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Messages returns every committed outbox message still stored, published
// or not, in Seq order.
func (s *Store) Messages() []domain.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]domain.Message, 0, len(s.outbox))
	for _, r := range s.outbox {
		out = append(out, cloneMessage(r.msg))
	}
	return out
}

// PublishedAt tells when the message with this Seq was marked published.
func (s *Store) PublishedAt(seq int64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.outbox {
		if r.msg.Seq == seq {
			return r.publishedAt, r.published
		}
	}
	return time.Time{}, false
}

// GetUser implements ports.UserReader.
func (s *Store) GetUser(ctx context.Context, id int64) (domain.User, error) {
	if err := s.enter(ctx, OpGetUser); err != nil {
		return domain.User{}, err
	}
	if u, ok := s.User(id); ok {
		return u, nil
	}
	return domain.User{}, fmt.Errorf("user %d: %w", id, domain.ErrNotFound)
}

// ListUsers implements ports.UserReader with the API's semantics: text
// filters compare case-insensitively (first_name, last_name and email
// exactly; search matches a last name equal to the term or an email
// containing it); since_id and max_id, created_after and created_before are
// strict bounds; countries keep users with one of the codes; text orderings ignore case and id ascending breaks ties.
// The page must already be normalised (Page >= 1, PageSize 1..MaxPageSize).
func (s *Store) ListUsers(ctx context.Context, q domain.ListQuery) (domain.UserPage, error) {
	if err := s.enter(ctx, OpListUsers); err != nil {
		return domain.UserPage{}, err
	}
	s.mu.Lock()
	s.lastList = q
	s.mu.Unlock()
	if q.Keyset != nil {
		return s.listKeyset(q)
	}
	if q.Page < 1 || q.PageSize < 1 || q.PageSize > domain.MaxPageSize {
		return domain.UserPage{}, fmt.Errorf("apptest: list with page %d and page size %d: paging not normalised", q.Page, q.PageSize)
	}
	var matches []domain.User
	for _, u := range s.Users() {
		if matchesQuery(u, q) {
			matches = append(matches, u)
		}
	}
	slices.SortStableFunc(matches, func(a, b domain.User) int { return compareUsers(a, b, q.Ordering) })
	page := domain.UserPage{Total: int64(len(matches))}
	if off := q.Offset(); off < len(matches) {
		page.Users = matches[off:min(off+q.PageSize, len(matches))]
	}
	return page, nil
}

// listKeyset is the page next to a position: the matches after it (before
// it, backward) in q.KeyOrder(), the nearest PageSize of them.
func (s *Store) listKeyset(q domain.ListQuery) (domain.UserPage, error) {
	if q.PageSize < 1 || q.PageSize > domain.MaxPageSize {
		return domain.UserPage{}, fmt.Errorf("apptest: keyset list with page size %d: not normalised", q.PageSize)
	}
	order := q.KeyOrder()
	var from *domain.User
	if k := q.Keyset.From; k != nil {
		from = &domain.User{ID: k.ID, FirstName: k.FirstName, LastName: k.LastName, Email: k.Email, CreatedAt: k.CreatedAt}
	}
	var matches []domain.User
	for _, u := range s.Users() {
		if !matchesQuery(u, q) {
			continue
		}
		if from != nil {
			c := compareUsers(u, *from, order)
			if q.Keyset.Backward && c >= 0 || !q.Keyset.Backward && c <= 0 {
				continue
			}
		}
		matches = append(matches, u)
	}
	slices.SortFunc(matches, func(a, b domain.User) int { return compareUsers(a, b, order) })
	page := domain.UserPage{More: len(matches) > q.PageSize}
	if q.Keyset.Backward {
		page.Users = matches[max(0, len(matches)-q.PageSize):]
	} else {
		page.Users = matches[:min(len(matches), q.PageSize)]
	}
	return page, nil
}

func matchesQuery(u domain.User, q domain.ListQuery) bool {
	switch {
	case q.FirstName != "" && fold(u.FirstName) != fold(q.FirstName),
		q.LastName != "" && fold(u.LastName) != fold(q.LastName),
		q.Email != "" && fold(u.Email) != fold(q.Email),
		q.Search != "" && fold(u.LastName) != fold(q.Search) && !strings.Contains(fold(u.Email), fold(q.Search)),
		q.SinceID != nil && u.ID <= *q.SinceID,
		q.MaxID != nil && u.ID >= *q.MaxID,
		q.CreatedAfter != nil && !u.CreatedAt.After(*q.CreatedAfter),
		q.CreatedBefore != nil && !u.CreatedAt.Before(*q.CreatedBefore),
		len(q.Countries) > 0 && !slices.Contains(q.Countries, u.Country):
		return false
	}
	return true
}

// fold is how text compares case-insensitively: lower-cased, as a database
// compares lower-cased copies of the columns.
func fold(s string) string { return strings.ToLower(s) }

func compareUsers(a, b domain.User, ordering []domain.OrderField) int {
	for _, o := range ordering {
		var c int
		switch o.Field {
		case domain.SortID:
			c = cmp.Compare(a.ID, b.ID)
		case domain.SortFirstName:
			c = strings.Compare(fold(a.FirstName), fold(b.FirstName))
		case domain.SortLastName:
			c = strings.Compare(fold(a.LastName), fold(b.LastName))
		case domain.SortEmail:
			c = strings.Compare(fold(a.Email), fold(b.Email))
		case domain.SortCreatedAt:
			c = a.CreatedAt.Compare(b.CreatedAt)
		}
		if o.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(a.ID, b.ID)
}

// Do implements ports.UnitOfWork. fn's writes become visible only when it
// returns nil and the commit succeeds; otherwise they are discarded and the
// error is returned unchanged.
func (s *Store) Do(ctx context.Context, fn func(ctx context.Context, tx ports.Tx) error) error {
	select {
	case s.txSlot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.txSlot }()
	tx := &storeTx{store: s, writes: make(map[int64]*domain.User), locked: make(map[int64]bool)}
	committed := false
	defer func() {
		tx.ended = true
		if !committed {
			s.mu.Lock()
			s.rollbacks++
			s.mu.Unlock()
		}
	}()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if err := s.enter(ctx, OpCommit); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, u := range tx.writes {
		if u == nil {
			delete(s.users, id)
		} else {
			s.users[id] = *u
		}
	}
	for _, m := range tx.messages {
		s.outbox = append(s.outbox, outboxRow{msg: m})
	}
	s.commits++
	committed = true
	return nil
}

// storeTx is one transaction's private view: its writes over the committed
// users, and the messages it appended. Only the goroutine running the unit
// of work uses it, like a database transaction.
type storeTx struct {
	store    *Store
	writes   map[int64]*domain.User // nil value: deleted in this transaction
	locked   map[int64]bool
	messages []domain.Message
	ended    bool
}

func (tx *storeTx) enter(ctx context.Context, op string) error {
	if tx.ended {
		return fmt.Errorf("%s: %w", op, ErrTxDone)
	}
	return tx.store.enter(ctx, op)
}

// get returns the user as this transaction sees it.
func (tx *storeTx) get(id int64) (domain.User, bool) {
	if u, ok := tx.writes[id]; ok {
		if u == nil {
			return domain.User{}, false
		}
		return *u, true
	}
	return tx.store.User(id)
}

func (tx *storeTx) LockUser(ctx context.Context, id int64) (domain.User, error) {
	if err := tx.enter(ctx, OpLockUser); err != nil {
		return domain.User{}, err
	}
	u, ok := tx.get(id)
	if !ok {
		return domain.User{}, fmt.Errorf("lock user %d: %w", id, domain.ErrNotFound)
	}
	tx.locked[id] = true
	return u, nil
}

func (tx *storeTx) InsertUser(ctx context.Context, u *domain.User) error {
	if err := tx.enter(ctx, OpInsertUser); err != nil {
		return err
	}
	if u.ID != 0 {
		return fmt.Errorf("apptest: insert of a user that already has id %d", u.ID)
	}
	if err := tx.checkEmail(0, u.Email); err != nil {
		return err
	}
	s := tx.store
	s.mu.Lock()
	s.lastID++ // like an auto-increment, a rolled-back insert burns its id
	id := s.lastID
	s.mu.Unlock()
	stored := storedUser(*u)
	stored.ID = id
	tx.writes[id] = &stored
	tx.locked[id] = true
	u.ID = id
	return nil
}

func (tx *storeTx) UpdateUser(ctx context.Context, u domain.User) error {
	if err := tx.enter(ctx, OpUpdateUser); err != nil {
		return err
	}
	if err := tx.requireLocked(OpUpdateUser, u.ID); err != nil {
		return err
	}
	if err := tx.checkEmail(u.ID, u.Email); err != nil {
		return err
	}
	if cur, ok := tx.get(u.ID); ok {
		u.Country = cur.Country // set once, by InsertUser
	}
	u = storedUser(u)
	tx.writes[u.ID] = &u
	return nil
}

func (tx *storeTx) DeleteUser(ctx context.Context, id int64) error {
	if err := tx.enter(ctx, OpDeleteUser); err != nil {
		return err
	}
	if err := tx.requireLocked(OpDeleteUser, id); err != nil {
		return err
	}
	tx.writes[id] = nil
	return nil
}

func (tx *storeTx) AppendMessage(ctx context.Context, m domain.Message) error {
	if err := tx.enter(ctx, OpAppendMessage); err != nil {
		return err
	}
	if m.EventID == "" || m.Type == "" || m.Key == "" || m.OccurredAt.IsZero() || !json.Valid(m.Payload) {
		return fmt.Errorf("apptest: incomplete outbox message %+v", m)
	}
	s := tx.store
	s.mu.Lock()
	s.lastSeq++
	m.Seq = s.lastSeq
	s.mu.Unlock()
	m.OccurredAt = storedTime(m.OccurredAt)
	tx.messages = append(tx.messages, cloneMessage(m))
	return nil
}

// requireLocked refuses writes to rows the transaction did not lock first:
// the port's contract, which a real database would not enforce.
func (tx *storeTx) requireLocked(op string, id int64) error {
	if _, ok := tx.get(id); !ok {
		return fmt.Errorf("%s %d: %w", op, id, domain.ErrNotFound)
	}
	if !tx.locked[id] {
		return fmt.Errorf("apptest: %s of user %d, which this transaction did not lock", op, id)
	}
	return nil
}

// checkEmail plays the unique, case-insensitive index on email.
func (tx *storeTx) checkEmail(self int64, email string) error {
	s := tx.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner, taken := emailOwner(s.users, tx.writes, email); taken && owner != self {
		return domain.ErrEmailTaken
	}
	return nil
}

// emailOwner finds the user holding email among committed users overlaid
// with a transaction's writes (nil for none).
func emailOwner(committed map[int64]domain.User, writes map[int64]*domain.User, email string) (int64, bool) {
	for id, u := range writes {
		if u != nil && fold(u.Email) == fold(email) {
			return id, true
		}
	}
	for id, u := range committed {
		if _, overridden := writes[id]; !overridden && fold(u.Email) == fold(email) {
			return id, true
		}
	}
	return 0, false
}

// PendingMessages implements ports.Outbox.
func (s *Store) PendingMessages(ctx context.Context, afterSeq int64, limit int) ([]domain.Message, error) {
	if err := s.enter(ctx, OpPendingMessages); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("apptest: pending messages with limit %d", limit)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []domain.Message
	for _, r := range s.outbox {
		if len(out) == limit {
			break
		}
		if !r.published && r.msg.Seq > afterSeq {
			out = append(out, cloneMessage(r.msg))
		}
	}
	return out, nil
}

// MarkPublished implements ports.Outbox. Unknown sequence numbers are
// ignored and a message keeps the time it was first marked, so a retried
// mark is harmless.
func (s *Store) MarkPublished(ctx context.Context, seqs []int64, at time.Time) error {
	if err := s.enter(ctx, OpMarkPublished); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.outbox {
		r := &s.outbox[i]
		if !r.published && slices.Contains(seqs, r.msg.Seq) {
			r.published, r.publishedAt = true, at
		}
	}
	return nil
}

// PurgePublished implements ports.Outbox.
func (s *Store) PurgePublished(ctx context.Context, before time.Time) (int64, error) {
	if err := s.enter(ctx, OpPurgePublished); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.outbox)
	s.outbox = slices.DeleteFunc(s.outbox, func(r outboxRow) bool {
		return r.published && r.publishedAt.Before(before)
	})
	return int64(n - len(s.outbox)), nil
}

// Backlog implements ports.Outbox; oldest is the earliest OccurredAt among
// unpublished messages.
func (s *Store) Backlog(ctx context.Context) (int64, time.Time, error) {
	if err := s.enter(ctx, OpBacklog); err != nil {
		return 0, time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		count  int64
		oldest time.Time
	)
	for _, r := range s.outbox {
		if r.published {
			continue
		}
		count++
		if oldest.IsZero() || r.msg.OccurredAt.Before(oldest) {
			oldest = r.msg.OccurredAt
		}
	}
	return count, oldest, nil
}

// TryLock implements ports.RelayLock: one holder at a time, released by
// unlock (idempotent), when ctx ends, or lost through LoseLock.
func (s *Store) TryLock(ctx context.Context) (context.Context, func(), bool, error) {
	if err := s.enter(ctx, OpTryLock); err != nil {
		return nil, nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lockHeld {
		return nil, nil, false, nil
	}
	s.lockHeld = true
	held, lose := context.WithCancel(ctx)
	s.loseLock = lose
	var once sync.Once
	release := func() {
		once.Do(func() {
			lose()
			s.mu.Lock()
			s.lockHeld = false
			s.mu.Unlock()
		})
	}
	stop := context.AfterFunc(held, release)
	return held, func() { stop(); release() }, true, nil
}

// LoseLock makes the current holder lose the relay lock, as a holder cut
// off from the database does: its held context ends and the lock is free.
func (s *Store) LoseLock() {
	s.mu.Lock()
	lose := s.loseLock
	s.mu.Unlock()
	if lose != nil {
		lose()
	}
}

// LockHeld reports whether a relay lock is currently held.
func (s *Store) LockHeld() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lockHeld
}

// storedTime is a time as stored: in UTC. Unlike a database, the fake
// keeps nanoseconds, which the ports' contract allows.
func storedTime(t time.Time) time.Time { return t.UTC() }

func storedUser(u domain.User) domain.User {
	u.CreatedAt, u.UpdatedAt = storedTime(u.CreatedAt), storedTime(u.UpdatedAt)
	return u
}

func cloneMessage(m domain.Message) domain.Message {
	m.Payload = slices.Clone(m.Payload)
	return m
}
