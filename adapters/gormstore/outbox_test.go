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

func TestOutboxPendingMarkPurgeBacklog(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()

		count, oldest, err := s.Backlog(ctx)
		if err != nil || count != 0 || !oldest.IsZero() {
			t.Fatalf("empty Backlog = %d, %v, %v; want 0, zero time", count, oldest, err)
		}

		// Three transactions; e2's occurred_at is the oldest although it is
		// not first in seq order.
		in := []domain.Message{
			message("e1", t0.Add(2*time.Second+123456*time.Nanosecond)),
			message("e2", t0.Add(time.Second)),
			message("e3", t0.Add(3*time.Second)),
			message("e4", t0.Add(4*time.Second)),
		}
		appendMessages(t, s, in[0])
		appendMessages(t, s, in[1], in[2])
		appendMessages(t, s, in[3])

		msgs, err := s.PendingMessages(ctx, 10)
		if err != nil || len(msgs) != 4 {
			t.Fatalf("PendingMessages = %d messages, %v; want 4", len(msgs), err)
		}
		for i, m := range msgs {
			want := in[i]
			want.Seq = m.Seq
			want.OccurredAt = dbTime(want.OccurredAt)
			if i > 0 && m.Seq <= msgs[i-1].Seq {
				t.Errorf("message %d seq %d not after %d", i, m.Seq, msgs[i-1].Seq)
			}
			if m.EventID != want.EventID || m.Type != want.Type || m.Key != want.Key ||
				!m.OccurredAt.Equal(want.OccurredAt) || m.OccurredAt.Location() != time.UTC || string(m.Payload) != string(want.Payload) {
				t.Errorf("message %d = %+v\nwant        %+v", i, m, want)
			}
		}
		if got := pendingIDs(t, s, 2); !slices.Equal(got, []string{"e1", "e2"}) {
			t.Fatalf("PendingMessages(2) = %v, want [e1 e2]", got)
		}
		if got := pendingIDs(t, s, 0); len(got) != 0 {
			t.Fatalf("PendingMessages(0) = %v, want none", got)
		}
		count, oldest, err = s.Backlog(ctx)
		if err != nil || count != 4 || !oldest.Equal(t0.Add(time.Second)) {
			t.Fatalf("Backlog = %d, %v, %v; want 4, %v", count, oldest, err, t0.Add(time.Second))
		}

		// Mark e1 and e2 (e2 twice: the first time wins).
		pubAt := t0.Add(time.Hour)
		if err := s.MarkPublished(ctx, []int64{msgs[0].Seq, msgs[1].Seq}, pubAt); err != nil {
			t.Fatalf("MarkPublished: %v", err)
		}
		if err := s.MarkPublished(ctx, []int64{msgs[1].Seq}, pubAt.Add(time.Hour)); err != nil {
			t.Fatalf("MarkPublished again: %v", err)
		}
		if err := s.MarkPublished(ctx, nil, pubAt); err != nil {
			t.Fatalf("MarkPublished(nil): %v", err)
		}
		if got := pendingIDs(t, s, 10); !slices.Equal(got, []string{"e3", "e4"}) {
			t.Fatalf("pending after mark = %v, want [e3 e4]", got)
		}
		count, oldest, err = s.Backlog(ctx)
		if err != nil || count != 2 || !oldest.Equal(t0.Add(3*time.Second)) {
			t.Fatalf("Backlog after mark = %d, %v, %v; want 2, %v", count, oldest, err, t0.Add(3*time.Second))
		}

		// Purge: only published rows older than the cutoff go.
		cases := []struct {
			name   string
			before time.Time
			want   int64
		}{
			{"cutoff at publication time keeps them", pubAt, 0},
			{"cutoff after publication removes them", pubAt.Add(time.Microsecond), 2},
			{"nothing left to purge", pubAt.Add(48 * time.Hour), 0},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				n, err := s.PurgePublished(ctx, c.before)
				if err != nil || n != c.want {
					t.Fatalf("PurgePublished = %d, %v; want %d", n, err, c.want)
				}
			})
		}
		if got := pendingIDs(t, s, 10); !slices.Equal(got, []string{"e3", "e4"}) {
			t.Fatalf("pending after purge = %v, want [e3 e4] (unpublished rows are never purged)", got)
		}
	})
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
	})
}
