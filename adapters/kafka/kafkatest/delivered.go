package kafkatest

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/marketplace/usersvc/domain"
)

// IsTombstone reports whether r is a tombstone: a null value without
// headers, which the publisher writes after each delete event.
func IsTombstone(r *kgo.Record) bool { return r.Value == nil && len(r.Headers) == 0 }

// CheckDelivered asserts that every sent message arrived as the publisher
// writes it (key, value, exactly the CloudEvents headers with source), that
// nothing else arrived but tombstones, each right after a delete event of
// its key in its partition, and that each key's first deliveries keep the
// order of sent. It returns the number of duplicates (delivery is at least
// once).
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
	lastOfKey := map[string]*kgo.Record{} // per key, the previous record in arrival order
	for _, r := range recs {
		prev := lastOfKey[string(r.Key)]
		lastOfKey[string(r.Key)] = r
		if IsTombstone(r) {
			if prevType, _ := headerOf(prev, "ce_type"); prevType != domain.ActionDelete.EventType() || prev.Partition != r.Partition {
				t.Fatalf("a tombstone for key %q (partition %d) does not follow a delete event of that key in its partition", r.Key, r.Partition)
			}
			continue
		}
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

func headerOf(r *kgo.Record, key string) (string, bool) {
	if r == nil {
		return "", false
	}
	return Header(r, key)
}
