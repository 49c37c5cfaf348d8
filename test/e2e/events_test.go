package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/eventschema"
)

// expectedEvent is what one successful mutation must put on the topic.
type expectedEvent struct {
	action  string
	user    user     // as the API showed it after the change (before it, for a delete)
	changed []string // updates only, sorted
	actor   string   // the sub of the caller's token; "" for null
}

// expect records the event a successful mutation made with the service's
// default token (or none) must produce.
func (s *service) expect(action string, u user, changed ...string) {
	s.expectBy(s.actor, action, u, changed...)
}

// expectBy records the event of a mutation made by the token of sub actor.
func (s *service) expectBy(actor, action string, u user, changed ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expected = append(s.expected, expectedEvent{action: action, user: u, changed: changed, actor: actor})
}

// The event contract, written out here rather than taken from the code.
var (
	ceTypes = map[string]string{
		"create": "users.user.created",
		"update": "users.user.updated",
		"delete": "users.user.deleted",
	}
	eventID      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	eventKeys    = []string{"id", "action", "occurred_at", "actor", "data"}
	dataKeys     = []string{"id", "first_name", "last_name", "email", "address", "country", "created_at", "updated_at"}
	headerValues = map[string]func(r *kgo.Record, body eventBody) string{
		"ce_specversion": func(*kgo.Record, eventBody) string { return "1.0" },
		"ce_id":          func(_ *kgo.Record, b eventBody) string { return b.ID },
		"ce_type":        func(_ *kgo.Record, b eventBody) string { return ceTypes[b.Action] },
		"ce_source":      func(*kgo.Record, eventBody) string { return "usersvc" },
		"ce_subject":     func(r *kgo.Record, _ eventBody) string { return string(r.Key) },
		"content-type":   func(*kgo.Record, eventBody) string { return "application/json" },
	}
)

type eventBody struct {
	ID         string          `json:"id"`
	Action     string          `json:"action"`
	OccurredAt string          `json:"occurred_at"`
	Actor      *string         `json:"actor"`
	Data       json.RawMessage `json:"data"`
	Changed    []string        `json:"changed"`
}

// consume reads the whole topic from its start until at least want records
// arrived, then for a quiet period, so that any event too many (a no-op or
// a refused request that produced one) shows up as well.
func consume(t *testing.T, topic string, want int, quiet time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(containers.Shared(t).KafkaBrokers()...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < want {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d events on %s within 30s, want %d", len(recs), topic, want)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			t.Logf("fetch errors (retried): %v", errs)
		}
		recs = append(recs, fetches.Records()...)
	}
	grace, cancelGrace := context.WithTimeout(context.Background(), quiet)
	defer cancelGrace()
	for grace.Err() == nil {
		recs = append(recs, cl.PollFetches(grace).Records()...)
	}
	return recs
}

// checkEvents reads the service's topic and checks it against the
// successful mutations the test made: exactly one event each (so none for
// the refused, failed and no-op requests in between), each to the contract,
// and each user's events in the order of its mutations.
func (s *service) checkEvents(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	expected := slices.Clone(s.expected)
	s.mu.Unlock()
	if len(expected) == 0 {
		t.Fatal("no mutation was expected: nothing would be checked")
	}
	// Each delete event is followed by a tombstone (same key, null value,
	// no headers), which lets a compacted topic forget the user.
	deletes := 0
	for _, e := range expected {
		if e.action == "delete" {
			deletes++
		}
	}
	recs := consume(t, s.topic, len(expected)+deletes, time.Second)
	if len(recs) != len(expected)+deletes {
		t.Errorf("%d records on the topic for %d successful mutations (%d deletes, each with a tombstone)", len(recs), len(expected), deletes)
	}

	// The events must match the schema the service itself serves (its
	// event contract), not only this suite's idea of them.
	served := s.do(t, get("/schemas/users-events.json"))
	if served.status != http.StatusOK || served.header.Get("Content-Type") != "application/schema+json" {
		t.Fatalf("GET /schemas/users-events.json = %d %q", served.status, served.header.Get("Content-Type"))
	}
	schema, err := eventschema.Compile(served.body)
	if err != nil {
		t.Fatalf("the served event schema: %v", err)
	}
	for _, r := range recs {
		if r.Value != nil {
			if err := eventschema.ValidateWith(schema, r.Value); err != nil {
				t.Errorf("%v\nevent: %s", err, r.Value)
			}
		}
	}

	byUser := map[string][]*kgo.Record{}
	partitionOf := map[string]int32{}
	seen := map[string]bool{}
	for _, r := range recs {
		key := string(r.Key)
		if p, ok := partitionOf[key]; ok && p != r.Partition {
			t.Errorf("user %s has events in partitions %d and %d", key, p, r.Partition)
		}
		partitionOf[key] = r.Partition
		byUser[key] = append(byUser[key], r)
	}
	wantByUser := map[string][]expectedEvent{}
	for _, e := range expected {
		key := strconv.FormatInt(e.user.ID, 10)
		wantByUser[key] = append(wantByUser[key], e)
	}
	for key := range byUser {
		if _, ok := wantByUser[key]; !ok {
			t.Errorf("events with key %q, which is no user the test changed", key)
		}
	}
	for key, want := range wantByUser {
		got := byUser[key]
		// One key, one partition: offsets are the order the broker keeps.
		slices.SortFunc(got, func(a, b *kgo.Record) int { return cmp.Compare(a.Offset, b.Offset) })
		got = dropTombstones(t, key, got)
		var last time.Time
		for i, w := range want {
			if i >= len(got) {
				t.Errorf("user %s: %d events, want %d (missing from %s)", key, len(got), len(want), w.action)
				break
			}
			at := s.checkEvent(t, got[i], w, seen)
			if at.Before(last) {
				t.Errorf("user %s: event %d occurred at %s, before the previous one", key, i, at)
			}
			last = at
		}
		if len(got) > len(want) {
			for _, r := range got[len(want):] {
				t.Errorf("user %s: an event too many: %s", key, r.Value)
			}
		}
	}
	if testing.Verbose() && len(recs) > 0 {
		r := recs[len(recs)-1]
		t.Logf("last event: key %s partition %d headers {%s} value %s", r.Key, r.Partition,
			strings.ReplaceAll(strings.TrimSpace(headerText(r)), "\n", ", "), r.Value)
	}
	t.Logf("%d events on %s checked against %d successful mutations of %d users", len(recs), s.topic, len(expected), len(wantByUser))
}

// checkEvent checks one record against the mutation it must describe and
// returns when it occurred.
func (s *service) checkEvent(t *testing.T, r *kgo.Record, want expectedEvent, seen map[string]bool) time.Time {
	t.Helper()
	for _, leak := range s.leaks(string(r.Value) + "\n" + headerText(r)) {
		t.Errorf("event %s contains %s", r.Value, leak)
	}
	keys := eventKeys
	if want.action == "update" {
		keys = append(slices.Clone(keys), "changed")
	}
	exactKeys(t, "event", r.Value, keys...)
	var body eventBody
	if err := json.Unmarshal(r.Value, &body); err != nil {
		t.Fatalf("event %s: %v", r.Value, err)
	}
	if body.Action != want.action {
		t.Fatalf("user %s: event action %q, want %q: %s", r.Key, body.Action, want.action, r.Value)
	}
	if !eventID.MatchString(body.ID) {
		t.Errorf("event id %q is not a UUID", body.ID)
	}
	switch {
	case want.actor == "" && body.Actor != nil: // AUTH_MODE=none: no caller is known
		t.Errorf("event %s names the actor %q, want null", body.ID, *body.Actor)
	case want.actor != "" && body.Actor == nil:
		t.Errorf("event %s: actor null, want the caller's sub %q", body.ID, want.actor)
	case want.actor != "" && *body.Actor != want.actor:
		t.Errorf("event %s: actor %q, want the caller's sub %q", body.ID, *body.Actor, want.actor)
	}
	if seen[body.ID] {
		t.Errorf("event id %s delivered twice", body.ID)
	}
	seen[body.ID] = true
	at := checkTime(t, "occurred_at", body.OccurredAt)

	if want.action == "delete" {
		// A deletion publishes the id alone.
		exactKeys(t, "delete event data", body.Data, "id")
		if want := `{"id":` + strconv.FormatInt(want.user.ID, 10) + `}`; string(body.Data) != want {
			t.Errorf("delete event data %s, want %s", body.Data, want)
		}
		for _, field := range []string{want.user.Email, want.user.FirstName, want.user.LastName, want.user.Address} {
			if field != "" && strings.Contains(string(r.Value), field) {
				t.Errorf("delete event %s holds %q", r.Value, field)
			}
		}
		checkHeaders(t, r, body, at)
		if string(r.Key) != strconv.FormatInt(want.user.ID, 10) {
			t.Errorf("event %s: key %q, want the user id %d", body.ID, r.Key, want.user.ID)
		}
		return at
	}
	exactKeys(t, "event data", body.Data, dataKeys...)
	var data userData
	if err := json.Unmarshal(body.Data, &data); err != nil {
		t.Fatal(err)
	}
	if wantData := want.user.userData; data != wantData {
		t.Errorf("%s event of user %s: data %+v, want %+v", want.action, r.Key, data, wantData)
	}
	if updated, _ := time.Parse(time.RFC3339Nano, data.UpdatedAt); at.Before(updated) {
		t.Errorf("%s event occurred at %s, before the user's updated_at %s", want.action, body.OccurredAt, data.UpdatedAt)
	}
	if want.action == "update" {
		if !slices.IsSorted(body.Changed) || !slices.Equal(body.Changed, want.changed) {
			t.Errorf("update of user %s: changed %q, want %q (sorted)", r.Key, body.Changed, want.changed)
		}
	}

	checkHeaders(t, r, body, at)
	if string(r.Key) != strconv.FormatInt(want.user.ID, 10) {
		t.Errorf("event %s: key %q, want the user id %d", body.ID, r.Key, want.user.ID)
	}
	return at
}

// dropTombstones checks that each tombstone among one key's records (in
// offset order) directly follows a delete event, and returns the events.
func dropTombstones(t *testing.T, key string, recs []*kgo.Record) []*kgo.Record {
	t.Helper()
	var events []*kgo.Record
	for i, r := range recs {
		if r.Value != nil {
			events = append(events, r)
			continue
		}
		if len(r.Headers) != 0 {
			t.Errorf("user %s: a tombstone with headers", key)
		}
		if typ, _ := header(recs[max(i-1, 0)], "ce_type"); i == 0 || typ != ceTypes["delete"] {
			t.Errorf("user %s: a tombstone that does not follow a delete event", key)
		}
	}
	for _, r := range events {
		if typ, _ := header(r, "ce_type"); typ == ceTypes["delete"] && !followedByTombstone(recs, r) {
			t.Errorf("user %s: the delete event is not followed by its tombstone", key)
		}
	}
	return events
}

func followedByTombstone(recs []*kgo.Record, r *kgo.Record) bool {
	for i, x := range recs {
		if x == r {
			return i+1 < len(recs) && recs[i+1].Value == nil
		}
	}
	return false
}

// checkHeaders checks the CloudEvents headers of an event record.
func checkHeaders(t *testing.T, r *kgo.Record, body eventBody, at time.Time) {
	t.Helper()
	for name, value := range headerValues {
		if got, n := header(r, name); n != 1 || got != value(r, body) {
			t.Errorf("event %s: header %s = %q (%d times), want %q once", body.ID, name, got, n, value(r, body))
		}
	}
	ceTime, n := header(r, "ce_time")
	if n != 1 {
		t.Errorf("event %s: header ce_time present %d times, want once", body.ID, n)
	} else if ct, err := time.Parse(time.RFC3339Nano, ceTime); err != nil || !ct.Equal(at) {
		t.Errorf("event %s: ce_time %q, want the time it occurred, %s", body.ID, ceTime, body.OccurredAt)
	}
}

// header returns the value of a record header and how often it occurs.
func header(r *kgo.Record, name string) (string, int) {
	var value string
	n := 0
	for _, h := range r.Headers {
		if h.Key == name {
			value = string(h.Value)
			n++
		}
	}
	return value, n
}

func headerText(r *kgo.Record) string {
	var b strings.Builder
	for _, h := range r.Headers {
		b.WriteString(h.Key + "=" + string(h.Value) + "\n")
	}
	return b.String()
}

// noEvents fails t when anything reaches the service's topic within wait.
func (s *service) noEvents(t *testing.T, wait time.Duration) {
	t.Helper()
	if recs := consume(t, s.topic, 0, wait); len(recs) != 0 {
		t.Errorf("%d events on the topic, want none; first: %s", len(recs), recs[0].Value)
	}
}
