package kafka

import (
	"fmt"
	"slices"
	"testing"

	"github.com/marketplace/usersvc/domain"
)

// A delete becomes two records, its event then its tombstone, and counts
// as acknowledged only when both are: the relay then sends again a delete
// whose tombstone failed, rather than marking it published.
func TestRecordsAndAckedMessages(t *testing.T) {
	msg := func(a domain.Action) domain.Message { return domain.Message{Type: a.EventType()} }
	msgs := []domain.Message{msg(domain.ActionCreate), msg(domain.ActionDelete), msg(domain.ActionUpdate), msg(domain.ActionDelete)}

	on := (&Publisher{}).records(msgs)
	wantOn := []record{{msg: 0}, {msg: 1}, {msg: 1, tombstone: true}, {msg: 2}, {msg: 3}, {msg: 3, tombstone: true}}
	if !slices.Equal(on, wantOn) {
		t.Fatalf("records = %v, want %v", on, wantOn)
	}
	off := (&Publisher{cfg: Config{NoTombstones: true}}).records(msgs)
	if want := []record{{msg: 0}, {msg: 1}, {msg: 2}, {msg: 3}}; !slices.Equal(off, want) {
		t.Errorf("records without tombstones = %v, want %v", off, want)
	}

	// acked records -> acked messages
	for acked, want := range []int{0, 1, 1, 2, 3, 3, 4} {
		t.Run(fmt.Sprintf("%d records acknowledged", acked), func(t *testing.T) {
			if got := ackedMessages(on, acked, len(msgs)); got != want {
				t.Errorf("ackedMessages = %d, want %d", got, want)
			}
		})
	}
}
