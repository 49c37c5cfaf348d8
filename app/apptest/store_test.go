package apptest_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
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

func TestStoreUpdateAndDeleteRollBack(t *testing.T) {
	s := apptest.NewStore()
	u := put(t, s, user("Ann", "Lee", "ann@example.ch", epoch))[0]
	err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
		locked, err := tx.LockUser(ctx, u.ID)
		if err != nil {
			return err
		}
		locked.FirstName = "Changed"
		if err := tx.UpdateUser(ctx, locked); err != nil {
			return err
		}
		if got, _ := s.User(u.ID); got.FirstName != "Ann" {
			t.Errorf("uncommitted update visible: %q", got.FirstName)
		}
		if err := tx.DeleteUser(ctx, u.ID); err != nil {
			return err
		}
		if _, err := tx.LockUser(ctx, u.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("transaction still sees its deleted user: %v", err)
		}
		return errX
	})
	if !errors.Is(err, errX) {
		t.Fatalf("Do = %v", err)
	}
	if got, ok := s.User(u.ID); !ok || got != u {
		t.Errorf("user after rollback = %+v, %v; want %+v", got, ok, u)
	}
}

func TestStoreTxRules(t *testing.T) {
	tests := []struct {
		name string
		fn   func(ctx context.Context, tx ports.Tx, existing domain.User) error
		want error // matched with errors.Is; nil means any non-nil error
	}{
		{
			name: "duplicate email on insert, other case",
			fn: func(ctx context.Context, tx ports.Tx, _ domain.User) error {
				u := user("B", "B", "ANN@Example.CH", epoch)
				return tx.InsertUser(ctx, &u)
			},
			want: domain.ErrEmailTaken,
		},
		{
			name: "duplicate email on update",
			fn: func(ctx context.Context, tx ports.Tx, existing domain.User) error {
				u := user("B", "B", "bob@example.ch", epoch)
				if err := tx.InsertUser(ctx, &u); err != nil {
					return err
				}
				u.Email = existing.Email
				return tx.UpdateUser(ctx, u)
			},
			want: domain.ErrEmailTaken,
		},
		{
			name: "email freed by a delete in the same transaction",
			fn: func(ctx context.Context, tx ports.Tx, existing domain.User) error {
				if _, err := tx.LockUser(ctx, existing.ID); err != nil {
					return err
				}
				if err := tx.DeleteUser(ctx, existing.ID); err != nil {
					return err
				}
				u := user("B", "B", existing.Email, epoch)
				if err := tx.InsertUser(ctx, &u); err != nil {
					return err
				}
				return errX
			},
			want: errX,
		},
		{
			name: "lock of a missing user",
			fn: func(ctx context.Context, tx ports.Tx, _ domain.User) error {
				_, err := tx.LockUser(ctx, 999)
				return err
			},
			want: domain.ErrNotFound,
		},
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

func TestStoreTransactionsAreSerialised(t *testing.T) {
	s := apptest.NewStore()
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
				u := user("A", "B", "same@example.ch", epoch)
				return tx.InsertUser(ctx, &u)
			})
		})
	}
	wg.Wait()
	var ok, taken int
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, domain.ErrEmailTaken):
			taken++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 || taken != n-1 {
		t.Errorf("ok=%d taken=%d, want 1 and %d", ok, taken, n-1)
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

func TestStoreList(t *testing.T) {
	s := apptest.NewStore()
	// ids 1..6
	put(t, s,
		user("Odile", "Deray", "odile@example.ch", epoch),
		user("alice", "Martin", "alice@deray.ch", epoch.Add(1*time.Hour)),
		user("Bob", "deray", "bob@example.com", epoch.Add(2*time.Hour)),
		user("Alice", "Smith", "asmith@example.ch", epoch.Add(3*time.Hour)),
		user("Zoe", "Martin", "zoe@example.org", epoch.Add(3*time.Hour)),
		user("bob", "Keller", "keller@example.ch", epoch.Add(5*time.Hour)),
	)
	id := func(v int64) *int64 { return &v }
	at := func(h int) *time.Time { t := epoch.Add(time.Duration(h) * time.Hour); return &t }
	asc := func(f string) domain.OrderField { return domain.OrderField{Field: f} }
	desc := func(f string) domain.OrderField { return domain.OrderField{Field: f, Desc: true} }
	tests := []struct {
		name      string
		q         domain.ListQuery
		wantIDs   []int64
		wantTotal int64
	}{
		{name: "all, id order", q: domain.ListQuery{}, wantIDs: []int64{1, 2, 3, 4, 5, 6}},
		{name: "first name, any case", q: domain.ListQuery{FirstName: "ALICE"}, wantIDs: []int64{2, 4}},
		{name: "last name, any case", q: domain.ListQuery{LastName: "deRAY"}, wantIDs: []int64{1, 3}},
		{name: "email exact, not contains", q: domain.ListQuery{Email: "ODILE@example.ch"}, wantIDs: []int64{1}},
		{name: "email partial does not match", q: domain.ListQuery{Email: "odile"}, wantIDs: nil},
		{name: "search: last name equals or email contains", q: domain.ListQuery{Search: "Deray"}, wantIDs: []int64{1, 2, 3}},
		{name: "search: email substring", q: domain.ListQuery{Search: "EXAMPLE.C"}, wantIDs: []int64{1, 3, 4, 6}},
		{name: "search: last name must be equal", q: domain.ListQuery{Search: "Mart"}, wantIDs: nil},
		{name: "filters combine", q: domain.ListQuery{Search: "deray", FirstName: "bob"}, wantIDs: []int64{3}},
		{name: "since_id is exclusive", q: domain.ListQuery{SinceID: id(4)}, wantIDs: []int64{5, 6}},
		{name: "max_id is exclusive", q: domain.ListQuery{MaxID: id(3)}, wantIDs: []int64{1, 2}},
		{name: "id window", q: domain.ListQuery{SinceID: id(1), MaxID: id(4)}, wantIDs: []int64{2, 3}},
		{name: "created_after is exclusive", q: domain.ListQuery{CreatedAfter: at(3)}, wantIDs: []int64{6}},
		{name: "created_before is exclusive", q: domain.ListQuery{CreatedBefore: at(2)}, wantIDs: []int64{1, 2}},
		{name: "created window", q: domain.ListQuery{CreatedAfter: at(0), CreatedBefore: at(5)}, wantIDs: []int64{2, 3, 4, 5}},
		{name: "order by first name ignores case, id breaks ties",
			q:       domain.ListQuery{Ordering: []domain.OrderField{asc(domain.SortFirstName)}},
			wantIDs: []int64{2, 4, 3, 6, 1, 5}},
		{name: "descending first name, id still ascending on ties",
			q:       domain.ListQuery{Ordering: []domain.OrderField{desc(domain.SortFirstName)}},
			wantIDs: []int64{5, 1, 3, 6, 2, 4}},
		{name: "several keys",
			q:       domain.ListQuery{Ordering: []domain.OrderField{asc(domain.SortLastName), desc(domain.SortEmail)}},
			wantIDs: []int64{1, 3, 6, 5, 2, 4}},
		{name: "created_at descending with tie", q: domain.ListQuery{Ordering: []domain.OrderField{desc(domain.SortCreatedAt)}},
			wantIDs: []int64{6, 4, 5, 3, 2, 1}},
		{name: "id descending", q: domain.ListQuery{Ordering: []domain.OrderField{desc(domain.SortID)}},
			wantIDs: []int64{6, 5, 4, 3, 2, 1}},
		{name: "email order", q: domain.ListQuery{Ordering: []domain.OrderField{asc(domain.SortEmail)}},
			wantIDs: []int64{2, 4, 3, 6, 1, 5}},
		{name: "unknown ordering field ignored", q: domain.ListQuery{Ordering: []domain.OrderField{desc("password")}},
			wantIDs: []int64{1, 2, 3, 4, 5, 6}},
		{name: "second page", q: domain.ListQuery{Page: 2, PageSize: 4}, wantIDs: []int64{5, 6}, wantTotal: 6},
		{name: "page past the end is empty with the total", q: domain.ListQuery{Page: 3, PageSize: 4}, wantIDs: nil, wantTotal: 6},
		{name: "paging after ordering and filtering",
			q:       domain.ListQuery{Search: "example", Ordering: []domain.OrderField{desc(domain.SortID)}, Page: 2, PageSize: 2},
			wantIDs: []int64{4, 3}, wantTotal: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if q.Page == 0 {
				q.Page, q.PageSize = 1, domain.MaxPageSize
				tc.wantTotal = int64(len(tc.wantIDs))
			}
			page, err := s.ListUsers(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, u := range page.Users {
				ids = append(ids, u.ID)
			}
			if !slices.Equal(ids, tc.wantIDs) || page.Total != tc.wantTotal {
				t.Errorf("ids %v total %d, want %v total %d", ids, page.Total, tc.wantIDs, tc.wantTotal)
			}
			if got := s.LastListQuery(); !reflect.DeepEqual(got, q) {
				t.Errorf("LastListQuery = %+v, want %+v", got, q)
			}
		})
	}
	for _, q := range []domain.ListQuery{{Page: 0, PageSize: 10}, {Page: 1, PageSize: 0}, {Page: 1, PageSize: 101}} {
		if _, err := s.ListUsers(ctx, q); err == nil {
			t.Errorf("ListUsers(%+v) accepted paging that was not normalised", q)
		}
	}
}

func TestStoreOutbox(t *testing.T) {
	s := apptest.NewStore()
	for i := range 5 {
		err := s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
			m := message(fmt.Sprintf("e%d", i+1))
			m.OccurredAt = epoch.Add(time.Duration(i) * time.Minute)
			return tx.AppendMessage(ctx, m)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(ms []domain.Message) []int64 {
		var out []int64
		for _, m := range ms {
			out = append(out, m.Seq)
		}
		return out
	}
	pending, err := s.PendingMessages(ctx, 3)
	if err != nil || !slices.Equal(seqs(pending), []int64{1, 2, 3}) {
		t.Fatalf("pending = %v, %v", seqs(pending), err)
	}
	pending[0].Payload[0] = 'X' // the caller's copy, not the stored row
	if got := s.Messages()[0].Payload; string(got) != "{}" {
		t.Errorf("stored payload changed through a returned message: %q", got)
	}
	if n, oldest, err := s.Backlog(ctx); err != nil || n != 5 || !oldest.Equal(epoch) {
		t.Errorf("backlog = %d %v %v", n, oldest, err)
	}
	if err := s.MarkPublished(ctx, []int64{1, 3, 99}, epoch.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPublished(ctx, []int64{1}, epoch.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if at, ok := s.PublishedAt(1); !ok || !at.Equal(epoch.Add(time.Hour)) {
		t.Errorf("a second mark moved the publication time: %v %v", at, ok)
	}
	pending, _ = s.PendingMessages(ctx, 10)
	if !slices.Equal(seqs(pending), []int64{2, 4, 5}) {
		t.Errorf("pending after marking = %v", seqs(pending))
	}
	if n, oldest, _ := s.Backlog(ctx); n != 3 || !oldest.Equal(epoch.Add(time.Minute)) {
		t.Errorf("backlog after marking = %d %v", n, oldest)
	}
	if err := s.MarkPublished(ctx, []int64{2}, epoch.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	purged, err := s.PurgePublished(ctx, epoch.Add(2*time.Hour))
	if err != nil || purged != 2 {
		t.Errorf("purged %d, %v; want 2 (seqs 1 and 3)", purged, err)
	}
	if got := seqs(s.Messages()); !slices.Equal(got, []int64{2, 4, 5}) {
		t.Errorf("stored after purge = %v", got)
	}
	if _, err := s.PendingMessages(ctx, 0); err == nil {
		t.Error("limit 0 accepted")
	}
	empty := apptest.NewStore()
	if n, oldest, err := empty.Backlog(ctx); n != 0 || !oldest.IsZero() || err != nil {
		t.Errorf("empty backlog = %d %v %v", n, oldest, err)
	}
}

func TestStoreRelayLock(t *testing.T) {
	s := apptest.NewStore()
	unlock, ok, err := s.TryLock(ctx)
	if err != nil || !ok {
		t.Fatalf("first TryLock = %v %v", ok, err)
	}
	if _, ok, err := s.TryLock(ctx); ok || err != nil {
		t.Fatalf("second TryLock while held = %v %v", ok, err)
	}
	unlock()
	unlock() // idempotent: must not release a later holder's lock
	lctx, cancel := context.WithCancel(ctx)
	_, ok, _ = s.TryLock(lctx)
	if !ok {
		t.Fatal("TryLock after unlock failed")
	}
	unlock()
	if !s.LockHeld() {
		t.Fatal("a stale unlock released the current holder's lock")
	}
	cancel()
	deadline := time.Now().Add(2 * time.Second)
	for s.LockHeld() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s.LockHeld() {
		t.Fatal("lock still held after its context ended")
	}
}
