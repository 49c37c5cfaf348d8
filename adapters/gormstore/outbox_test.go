package gormstore

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

func pendingIDs(t *testing.T, s *Store, afterSeq int64, limit int) []string {
	t.Helper()
	msgs, err := s.PendingMessages(context.Background(), afterSeq, limit)
	if err != nil {
		t.Fatalf("PendingMessages: %v", err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.EventID
	}
	return ids
}

// TestOutboxLargeBatches crosses the mark and purge batch sizes (made
// small here, so the loops run several times).
func TestOutboxLargeBatches(t *testing.T) {
	const n = 23
	forEachBackend(t, func(t *testing.T, s *Store) {
		s.markBatch, s.purgeBatch = 4, 5
		ctx := context.Background()
		msgs := make([]domain.Message, n)
		for i := range msgs {
			msgs[i] = message(fmt.Sprintf("bulk-%04d", i), t0.Add(time.Duration(i)*time.Millisecond))
		}
		appendMessages(t, s, msgs...)
		pending, err := s.PendingMessages(ctx, 0, n+10)
		if err != nil || len(pending) != n {
			t.Fatalf("PendingMessages = %d, %v; want %d", len(pending), err, n)
		}
		seqs := make([]int64, 0, n)
		for i, m := range pending {
			if m.EventID != msgs[i].EventID {
				t.Fatalf("pending[%d] = %s, want %s", i, m.EventID, msgs[i].EventID)
			}
			seqs = append(seqs, m.Seq)
		}
		if err := s.MarkPublished(ctx, seqs[:n-1], t0); err != nil {
			t.Fatalf("MarkPublished: %v", err)
		}
		if got := pendingIDs(t, s, 0, 10); !slices.Equal(got, []string{msgs[n-1].EventID}) {
			t.Fatalf("pending = %v, want only the last", got)
		}
		purged, err := s.PurgePublished(ctx, t0.Add(time.Second))
		if err != nil || purged != n-1 {
			t.Fatalf("PurgePublished = %d, %v; want %d", purged, err, n-1)
		}
		if c, _, err := s.Backlog(ctx); err != nil || c != 1 {
			t.Fatalf("Backlog = %d, %v; want 1", c, err)
		}
		// A limit below one asks for nothing (the relay never passes one).
		if got := pendingIDs(t, s, 0, 0); len(got) != 0 {
			t.Fatalf("PendingMessages(0) = %v, want none", got)
		}
	})
}

// TestOutboxLateCommitBelowTheReadPosition shows on the servers (SQLite
// runs one writer at a time) what the relay's pipelined drain relies on: a
// transaction that appended first but commits last holds the lower seq, so
// a reader continuing after the seqs it saw misses it, and a reader
// starting again at 0 finds it, in seq order.
func TestOutboxLateCommitBelowTheReadPosition(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		s := openMigrated(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		appended, release := make(chan struct{}), make(chan struct{})
		slow := make(chan error, 1)
		go func() {
			slow <- s.Do(ctx, func(ctx context.Context, tx ports.Tx) error {
				if err := tx.AppendMessage(ctx, message("slow", t0)); err != nil {
					return err
				}
				close(appended)
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
		select {
		case <-appended:
		case err := <-slow:
			t.Fatalf("slow transaction ended early: %v", err)
		}
		appendMessages(t, s, message("fast", t0)) // commits while "slow" is open

		first, err := s.PendingMessages(ctx, 0, 10)
		if err != nil || len(first) != 1 || first[0].EventID != "fast" {
			t.Fatalf("PendingMessages(0) with slow uncommitted = %v, %v; want [fast]", first, err)
		}
		close(release)
		if err := <-slow; err != nil {
			t.Fatalf("slow transaction: %v", err)
		}
		if got := pendingIDs(t, s, first[0].Seq, 10); len(got) != 0 {
			t.Errorf("PendingMessages(after fast) = %v, want none: slow's seq is lower", got)
		}
		if got := pendingIDs(t, s, 0, 10); !slices.Equal(got, []string{"slow", "fast"}) {
			t.Errorf("PendingMessages(0) = %v, want [slow fast] in seq order", got)
		}
	})
}
