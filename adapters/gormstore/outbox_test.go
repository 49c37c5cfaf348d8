package gormstore

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
)

func pendingIDs(t *testing.T, s *Store, limit int) []string {
	t.Helper()
	msgs, err := s.PendingMessages(context.Background(), limit)
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
		pending, err := s.PendingMessages(ctx, n+10)
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
		if got := pendingIDs(t, s, 10); !slices.Equal(got, []string{msgs[n-1].EventID}) {
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
		if got := pendingIDs(t, s, 0); len(got) != 0 {
			t.Fatalf("PendingMessages(0) = %v, want none", got)
		}
	})
}
