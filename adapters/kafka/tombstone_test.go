package kafka_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/marketplace/usersvc/adapters/kafka"
	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/domain"
)

// person is a user with personal data that must not outlive its deletion
// on the topic.
func person(id int64) domain.User {
	return domain.User{ID: id, Email: fmt.Sprintf("person%d@example.ch", id), FirstName: fmt.Sprintf("Firstname%d", id),
		LastName: fmt.Sprintf("Lastname%d", id), Address: fmt.Sprintf("Gasse %d, 8000 Zürich", id), Country: "CH",
		PasswordHash: "never-published", Version: 1, CreatedAt: t0, UpdatedAt: t0}
}

// personal is what of u no record after its deletion may hold.
func personal(u domain.User) []string { return []string{u.Email, u.FirstName, u.LastName, u.Address} }

// eventOf is the outbox message of action on u, at position seq.
func eventOf(t *testing.T, seq int64, action domain.Action, u domain.User) domain.Message {
	t.Helper()
	return eventAt(t, seq, action, u, t0)
}

// eventAt is eventOf with the event's time from base: a broker applies
// retention.ms (7 days by default) to record timestamps, so a test of
// compaction needs recent ones.
func eventAt(t *testing.T, seq int64, action domain.Action, u domain.User, base time.Time) domain.Message {
	t.Helper()
	var changed []string
	if action == domain.ActionUpdate {
		changed = []string{domain.FieldAddress}
	}
	m, err := domain.NewEvent(fmt.Sprintf("00000000-0000-7000-8000-%012d", seq), action, u, changed, base.Add(time.Duration(seq)*time.Millisecond)).Message()
	if err != nil {
		t.Fatal(err)
	}
	m.Seq = seq
	return m
}

func publishAll(t *testing.T, p *kafka.Publisher, msgs []domain.Message) {
	t.Helper()
	if acked, err := p.Publish(context.Background(), msgs); err != nil || acked != len(msgs) {
		t.Fatalf("Publish = %d, %v; want %d, nil", acked, err, len(msgs))
	}
}

// byPartition sorts records into partitions, in offset order.
func byPartition(recs []*kgo.Record) map[int32][]*kgo.Record {
	out := map[int32][]*kgo.Record{}
	for _, r := range recs {
		out[r.Partition] = append(out[r.Partition], r)
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b *kgo.Record) int { return cmp.Compare(a.Offset, b.Offset) })
	}
	return out
}

// On Kafka every delete event is followed, in its partition, by a
// tombstone for its key (null value, no headers), and nothing produced from
// the delete on carries the deleted user's email, names or address.
func TestDeleteIsFollowedByItsTombstone(t *testing.T) {
	b := startBroker(t) // three partitions
	p := newPublisher(t, b, nil)

	// Users 1-6 are created and updated; then 1-3 are deleted while 4-6
	// change again; then 7-9 arrive.
	var seq int64
	next := func(a domain.Action, u domain.User) domain.Message { seq++; return eventOf(t, seq, a, u) }
	var before, deletes, after []domain.Message
	for id := int64(1); id <= 6; id++ {
		before = append(before, next(domain.ActionCreate, person(id)), next(domain.ActionUpdate, person(id)))
	}
	for id := int64(1); id <= 3; id++ {
		deletes = append(deletes, next(domain.ActionDelete, person(id)), next(domain.ActionUpdate, person(id+3)))
	}
	for id := int64(7); id <= 9; id++ {
		after = append(after, next(domain.ActionCreate, person(id)))
	}
	publishAll(t, p, before)
	publishAll(t, p, deletes)
	publishAll(t, p, after)

	sent := slices.Concat(before, deletes, after)
	recs := consume(t, b, len(sent)+3, 10*time.Second)
	kafkatest.CheckDelivered(t, recs, sent, "usersvc-test")

	tombstones := 0
	for part, rs := range byPartition(recs) {
		for i, r := range rs {
			if kafkatest.IsTombstone(r) {
				tombstones++
				continue
			}
			if typ, _ := kafkatest.Header(r, "ce_type"); typ != domain.ActionDelete.EventType() {
				continue
			}
			if want := `{"id":` + string(r.Key) + `}`; !bytes.Contains(r.Value, []byte(`"data":`+want)) {
				t.Errorf("delete event %s: data is not exactly %s", r.Value, want)
			}
			// The next record of this key in the partition is its tombstone.
			var following *kgo.Record
			for _, later := range rs[i+1:] {
				if string(later.Key) == string(r.Key) {
					following = later
					break
				}
			}
			if following == nil || !kafkatest.IsTombstone(following) || following.Value != nil || len(following.Headers) != 0 {
				t.Errorf("partition %d: the delete of user %s is followed by %+v, want its tombstone", part, r.Key, following)
			}
			// Scan every record produced from the delete on: in this
			// partition past its offset, and the later batch everywhere.
			id, _ := strconv.ParseInt(string(r.Key), 10, 64)
			u := person(id)
			scan := slices.Clone(rs[i:])
			for _, other := range recs {
				if id, _ := kafkatest.Header(other, "ce_id"); slices.ContainsFunc(after, func(m domain.Message) bool { return m.EventID == id }) {
					scan = append(scan, other)
				}
			}
			for _, s := range scan {
				text := string(s.Value)
				for _, h := range s.Headers {
					text += " " + h.Key + "=" + string(h.Value)
				}
				for _, field := range personal(u) {
					if bytes.Contains([]byte(text), []byte(field)) {
						t.Errorf("a record produced after the delete of user %d holds %q: %s", id, field, text)
					}
				}
			}
		}
	}
	if tombstones != 3 {
		t.Errorf("%d tombstones, want 3 (one per delete)", tombstones)
	}
}

// KAFKA_TOMBSTONES=false publishes the delete event alone.
func TestNoTombstonesWhenTurnedOff(t *testing.T) {
	b := startBroker(t)
	p := kafkatest.NewPublisher(t, kafka.Config{Brokers: []string{b.addr}, Topic: b.topic, Source: "usersvc-test", NoTombstones: true}, testLogger(t))
	sent := []domain.Message{eventOf(t, 1, domain.ActionCreate, person(1)), eventOf(t, 2, domain.ActionDelete, person(1))}
	publishAll(t, p, sent)
	recs := consume(t, b, 2, 10*time.Second)
	kafkatest.CheckDelivered(t, recs, sent, "usersvc-test")
	for _, r := range recs {
		if kafkatest.IsTombstone(r) {
			t.Errorf("a tombstone was published with tombstones turned off")
		}
	}
}

func TestTailShowsTombstones(t *testing.T) {
	b := startBroker(t)
	p := newPublisher(t, b, nil)
	sent := []domain.Message{eventOf(t, 1, domain.ActionCreate, person(42)), eventOf(t, 2, domain.ActionDelete, person(42))}
	publishAll(t, p, sent)
	out, stop := startTail(t, b, true)
	lines := waitLines(t, out, 3, 15*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{string(sent[0].Payload), string(sent[1].Payload), `{"tombstone":true,"key":"42"}`}
	if !slices.Equal(lines, want) {
		t.Errorf("tail printed %q, want %q", lines, want)
	}
}

// createCompactedTopic creates a one-partition topic with
// cleanup.policy=compact on the broker.
func createCompactedTopic(t *testing.T, addr, name string, configs map[string]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic %s: %+v, %v", name, resp, err)
	}
}

// Compaction of a real compacted topic (kfake implements cleanup.policy=
// compact) leaves no record with a deleted user's data: its tombstone
// supersedes its events, and once delete.retention.ms has passed the
// tombstone goes too. Without tombstones the id-only delete event is what
// stays of the user, forever.
func TestCompactionForgetsADeletedUser(t *testing.T) {
	tests := []struct {
		name         string
		noTombstones bool
		retention    string // delete.retention.ms
		wantLeft     func(t *testing.T, rs []*kgo.Record)
	}{
		{"tombstone kept within delete.retention.ms", false, "86400000", func(t *testing.T, rs []*kgo.Record) {
			if len(rs) != 1 || !kafkatest.IsTombstone(rs[0]) {
				t.Errorf("left of the deleted user: %d records, want only its tombstone", len(rs))
			}
		}},
		{"nothing left past delete.retention.ms", false, "0", func(t *testing.T, rs []*kgo.Record) {
			if len(rs) != 0 {
				t.Errorf("left of the deleted user: %d records, want none", len(rs))
			}
		}},
		{"without tombstones the id-only delete event stays", true, "0", func(t *testing.T, rs []*kgo.Record) {
			if len(rs) != 1 || string(rs[0].Value) == "" || !bytes.Contains(rs[0].Value, []byte(`"data":{"id":1}`)) {
				t.Errorf("left of the deleted user: %d records, want its delete event alone", len(rs))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const compacted = "users-compacted"
			b, _ := startFaultyBroker(t, 1)
			createCompactedTopic(t, b.Addr(), compacted, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": tc.retention})
			p := kafkatest.NewPublisher(t, kafka.Config{Brokers: []string{b.Addr()}, Topic: compacted, Source: "usersvc-test", NoTombstones: tc.noTombstones}, testLogger(t))
			gone, kept := person(1), person(2)
			now := time.Now()
			ev := func(seq int64, a domain.Action, u domain.User) domain.Message { return eventAt(t, seq, a, u, now) }
			publishAll(t, p, []domain.Message{ev(1, domain.ActionCreate, gone), ev(2, domain.ActionCreate, kept), ev(3, domain.ActionUpdate, gone)})
			publishAll(t, p, []domain.Message{ev(4, domain.ActionDelete, gone)})
			// The broker never compacts the active (last) batch: a later
			// event closes the delete's.
			publishAll(t, p, []domain.Message{ev(5, domain.ActionUpdate, kept)})
			wantBefore := 6
			if tc.noTombstones {
				wantBefore = 5
			}
			before := kafkatest.Consume(t, b.Addr(), compacted, wantBefore, 10*time.Second)
			b.Cluster().Compact()

			after := kafkatest.Consume(t, b.Addr(), compacted, 1, 10*time.Second)
			if len(after) >= len(before) {
				t.Fatalf("compaction removed nothing: %d records before, %d after", len(before), len(after))
			}
			var left []*kgo.Record
			for _, r := range after {
				for _, field := range personal(gone) {
					if bytes.Contains(r.Value, []byte(field)) {
						t.Errorf("after compaction a record holds %q of the deleted user: %s", field, r.Value)
					}
				}
				if string(r.Key) == "1" {
					left = append(left, r)
				}
			}
			tc.wantLeft(t, left)
			if last := after[len(after)-1]; string(last.Key) != "2" || kafkatest.IsTombstone(last) {
				t.Errorf("the other user's latest event is gone: last record %s", last.Value)
			}
		})
	}
}
