package apptest_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

var (
	ctx   = context.Background()
	epoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	errX  = errors.New("injected")
)

func user(first, last, email string, created time.Time) domain.User {
	return domain.User{FirstName: first, LastName: last, Email: email, PasswordHash: apptest.HashOf("secret-pw"),
		Version: 1, CreatedAt: created, UpdatedAt: created}
}

func put(t *testing.T, s *apptest.Store, users ...domain.User) []domain.User {
	t.Helper()
	out := make([]domain.User, len(users))
	for i, u := range users {
		var err error
		if out[i], err = s.Put(u); err != nil {
			t.Fatalf("put %+v: %v", u, err)
		}
	}
	return out
}

func message(id string) domain.Message {
	return domain.Message{EventID: id, Type: "users.user.created", Key: "1", OccurredAt: epoch, Payload: []byte(`{}`)}
}

func TestStoreTransactions(t *testing.T) {
	tests := []struct {
		name       string
		fail       string // operation made to fail, "" for none
		fnErr      error  // what the transaction's function returns
		wantErr    error
		wantUsers  int
		wantMsgs   int
		wantCommit bool
	}{
		{name: "commit makes writes visible", wantUsers: 1, wantMsgs: 1, wantCommit: true},
		{name: "function error discards writes", fnErr: errX, wantErr: errX},
		{name: "failed commit discards writes", fail: apptest.OpCommit, wantErr: errX},
		{name: "failed append discards the insert", fail: apptest.OpAppendMessage, wantErr: errX},
		{name: "failed insert leaves nothing", fail: apptest.OpInsertUser, wantErr: errX},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := apptest.NewStore()
			if tc.fail != "" {
				s.FailNext(tc.fail, errX)
			}
			err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
				u := user("Ann", "Lee", "ann@example.ch", epoch)
				if err := tx.InsertUser(ctx, &u); err != nil {
					return err
				}
				if _, err := s.GetUser(ctx, u.ID); !errors.Is(err, domain.ErrNotFound) {
					t.Errorf("uncommitted user visible outside the transaction: %v", err)
				}
				if got, err := tx.LockUser(ctx, u.ID); err != nil || got != u {
					t.Errorf("transaction does not see its own insert: %+v, %v", got, err)
				}
				if err := tx.AppendMessage(ctx, message("e1")); err != nil {
					return err
				}
				if n := len(s.Messages()); n != 0 {
					t.Errorf("uncommitted message visible: %d", n)
				}
				return tc.fnErr
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Do error = %v, want %v", err, tc.wantErr)
			}
			if n := len(s.Users()); n != tc.wantUsers {
				t.Errorf("users = %d, want %d", n, tc.wantUsers)
			}
			if n := len(s.Messages()); n != tc.wantMsgs {
				t.Errorf("messages = %d, want %d", n, tc.wantMsgs)
			}
			if got := s.Commits() == 1 && s.Rollbacks() == 0; got != tc.wantCommit {
				t.Errorf("commits %d rollbacks %d, want committed=%v", s.Commits(), s.Rollbacks(), tc.wantCommit)
			}
		})
	}
}

// TestStoreTxRules covers the rules the fake enforces beyond the port's
// contract (TestStoreContract), to catch careless callers.
func TestStoreTxRules(t *testing.T) {
	tests := []struct {
		name string
		fn   func(ctx context.Context, tx ports.Tx, existing domain.User) error
		want error // matched with errors.Is; nil means any non-nil error
	}{
		{
			name: "update without lock",
			fn: func(ctx context.Context, tx ports.Tx, existing domain.User) error {
				return tx.UpdateUser(ctx, existing)
			},
		},
		{
			name: "delete without lock",
			fn: func(ctx context.Context, tx ports.Tx, existing domain.User) error {
				return tx.DeleteUser(ctx, existing.ID)
			},
		},
		{
			name: "insert with a preset id",
			fn: func(ctx context.Context, tx ports.Tx, _ domain.User) error {
				u := user("B", "B", "bob@example.ch", epoch)
				u.ID = 42
				return tx.InsertUser(ctx, &u)
			},
		},
		{
			name: "message without event id",
			fn: func(ctx context.Context, tx ports.Tx, _ domain.User) error {
				return tx.AppendMessage(ctx, message(""))
			},
		},
		{
			name: "message with a payload that is not JSON",
			fn: func(ctx context.Context, tx ports.Tx, _ domain.User) error {
				m := message("e1")
				m.Payload = []byte("{")
				return tx.AppendMessage(ctx, m)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := apptest.NewStore()
			existing := put(t, s, user("Ann", "Lee", "ann@example.ch", epoch))[0]
			err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tc.fn(ctx, tx, existing) })
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Do = %v, want %v", err, tc.want)
			}
			if got := s.Users(); len(got) != 1 || got[0] != existing {
				t.Errorf("users after a failed transaction = %+v", got)
			}
		})
	}
}

func TestStoreTxUnusableAfterEnd(t *testing.T) {
	s := apptest.NewStore()
	var leaked ports.Tx
	if err := s.Do(ctx, func(_ context.Context, tx ports.Tx) error { leaked = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	u := user("A", "B", "a@b.ch", epoch)
	if err := leaked.InsertUser(ctx, &u); !errors.Is(err, apptest.ErrTxDone) {
		t.Fatalf("insert after the end = %v, want ErrTxDone", err)
	}
	if len(s.Users()) != 0 {
		t.Error("a write after the end was stored")
	}
}

func TestStoreCanceledContext(t *testing.T) {
	s := apptest.NewStore()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.GetUser(canceled, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("GetUser = %v", err)
	}
	if err := s.Do(canceled, func(context.Context, ports.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Do = %v", err)
	}
}

func TestStoreFailureInjection(t *testing.T) {
	s := apptest.NewStore()
	s.FailNext(apptest.OpGetUser, errX)
	s.FailNext(apptest.OpGetUser, errX)
	for i := range 2 {
		if _, err := s.GetUser(ctx, 1); !errors.Is(err, errX) {
			t.Errorf("call %d = %v, want the queued error", i+1, err)
		}
	}
	if _, err := s.GetUser(ctx, 1); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("after the queue = %v, want ErrNotFound", err)
	}
	s.FailAlways(apptest.OpBacklog, errX)
	for range 3 {
		if _, _, err := s.Backlog(ctx); !errors.Is(err, errX) {
			t.Errorf("Backlog = %v", err)
		}
	}
	s.FailAlways(apptest.OpBacklog, nil)
	if _, _, err := s.Backlog(ctx); err != nil {
		t.Errorf("Backlog after clearing = %v", err)
	}
	if got := s.Calls(apptest.OpGetUser); got != 3 {
		t.Errorf("GetUser calls = %d, want 3", got)
	}
}

// TestStoreListRecordsAndChecksTheQuery covers what the fake adds to
// listing: it records the query and refuses paging a use case should have
// normalised (the semantics are TestStoreContract's).
func TestStoreListRecordsAndChecksTheQuery(t *testing.T) {
	s := apptest.NewStore()
	put(t, s, user("Ann", "Lee", "ann@example.ch", epoch), user("Bob", "Lee", "bob@example.ch", epoch))
	after := epoch.Add(-time.Hour)
	q := domain.ListQuery{LastName: "lee", CreatedAfter: &after, Ordering: []domain.OrderField{{Field: domain.SortEmail, Desc: true}}, Page: 1, PageSize: 1}
	page, err := s.ListUsers(ctx, q)
	if err != nil || len(page.Users) != 1 || page.Users[0].FirstName != "Bob" || page.Total != 2 {
		t.Fatalf("ListUsers = %+v, %v", page, err)
	}
	if got := s.LastListQuery(); !reflect.DeepEqual(got, q) {
		t.Errorf("LastListQuery = %+v, want %+v", got, q)
	}
	for _, q := range []domain.ListQuery{{Page: 0, PageSize: 10}, {Page: 1, PageSize: 0}, {Page: 1, PageSize: 101}} {
		if _, err := s.ListUsers(ctx, q); err == nil {
			t.Errorf("ListUsers(%+v) accepted paging that was not normalised", q)
		}
	}
}

// TestStoreOutboxExtras covers what the fake adds to the outbox: returned
// messages are copies, PublishedAt tells when a message was marked, and a
// limit below one is a caller's bug.
func TestStoreOutboxExtras(t *testing.T) {
	s := apptest.NewStore()
	err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error { return tx.AppendMessage(ctx, message("e1")) })
	if err != nil {
		t.Fatal(err)
	}
	pending, err := s.PendingMessages(ctx, 0, 3)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	pending[0].Payload[0] = 'X' // the caller's copy, not the stored row
	if got := s.Messages()[0].Payload; string(got) != "{}" {
		t.Errorf("stored payload changed through a returned message: %q", got)
	}
	if _, ok := s.PublishedAt(pending[0].Seq); ok {
		t.Error("PublishedAt before marking says published")
	}
	if err := s.MarkPublished(ctx, []int64{pending[0].Seq}, epoch.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if at, ok := s.PublishedAt(pending[0].Seq); !ok || !at.Equal(epoch.Add(time.Hour)) {
		t.Errorf("PublishedAt = %v, %v", at, ok)
	}
	if _, err := s.PendingMessages(ctx, 0, 0); err == nil {
		t.Error("limit 0 accepted")
	}
}

// TestStoreLockHeld covers the fake's view of its relay lock.
func TestStoreLockHeld(t *testing.T) {
	s := apptest.NewStore()
	if s.LockHeld() {
		t.Fatal("a new store's lock is held")
	}
	_, unlock, ok, err := s.TryLock(ctx)
	if err != nil || !ok || !s.LockHeld() {
		t.Fatalf("TryLock = %v, %v; LockHeld %v", ok, err, s.LockHeld())
	}
	unlock()
	if s.LockHeld() {
		t.Fatal("lock held after unlock")
	}
}

func TestStoreLoseLock(t *testing.T) {
	s := apptest.NewStore()
	held, unlock, ok, err := s.TryLock(ctx)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	defer unlock()
	s.LoseLock()
	if held.Err() == nil {
		t.Fatal("held context still live after LoseLock")
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.LockHeld() {
		if time.Now().After(deadline) {
			t.Fatal("lock still held 5s after it was lost")
		}
		time.Sleep(time.Millisecond)
	}
}
