package kafkatest

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/marketplace/usersvc/domain"
)

// CheckDelivered asserts that every sent message arrived as the publisher
// writes it (key, value, exactly the CloudEvents headers with source), that
// nothing else arrived, and that each key's first deliveries keep the order
// of sent. It returns the number of duplicates (delivery is at least once).
func CheckDelivered(t testing.TB, recs []*kgo.Record, sent []domain.Message, source string) int {
	t.Helper()
	byID := make(map[string]domain.Message, len(sent))
	rank := make(map[string]int, len(sent))
	for i, m := range sent {
		byID[m.EventID], rank[m.EventID] = m, i
	}
	seen := map[string]bool{}
	lastRank := map[string]int{}
	dups := 0
	for _, r := range recs {
		id, _ := Header(r, "ce_id")
		m, ok := byID[id]
		if !ok {
			t.Fatalf("a record nobody sent arrived: ce_id %q key %q", id, r.Key)
		}
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		if string(r.Key) != m.Key || !bytes.Equal(r.Value, m.Payload) {
			t.Fatalf("event %s: key %q value %s, want key %q value %s", id, r.Key, r.Value, m.Key, m.Payload)
		}
		want := map[string]string{
			"ce_specversion": "1.0",
			"ce_id":          m.EventID,
			"ce_type":        m.Type,
			"ce_source":      source,
			"ce_subject":     m.Key,
			"ce_time":        domain.FormatTime(m.OccurredAt),
			"content-type":   "application/json",
		}
		for k, v := range want {
			if got, ok := Header(r, k); !ok || got != v {
				t.Fatalf("event %s: header %s = %q (present %v), want %q", id, k, got, ok, v)
			}
		}
		if len(r.Headers) != len(want) {
			t.Errorf("event %s has %d headers, want %d", id, len(r.Headers), len(want))
		}
		if prev, ok := lastRank[m.Key]; ok && rank[id] < prev {
			t.Fatalf("key %s: event %s arrived after a later one", m.Key, id)
		}
		lastRank[m.Key] = rank[id]
	}
	if len(seen) != len(sent) {
		var missing []string
		for _, m := range sent {
			if !seen[m.EventID] {
				missing = append(missing, m.EventID)
			}
		}
		t.Fatalf("%d of %d events arrived; missing %d, first %q", len(seen), len(sent), len(missing), missing[:min(5, len(missing))])
	}
	return dups
}
