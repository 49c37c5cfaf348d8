package stack

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/eventschema"
)

// HashMarker starts every stored password hash (PHC format).
const HashMarker = "$argon2id$"

// Leaks returns the secrets that occur in b.
func Leaks(b []byte, secrets ...string) []string {
	var found []string
	for _, s := range secrets {
		if s != "" && bytes.Contains(b, []byte(s)) {
			found = append(found, s)
		}
	}
	return found
}

// internals match what an error body must never show a client: SQL and
// driver messages, network errors, stack traces, source paths, Go type
// names and module paths, hashing details.
var internals = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\b(select\s.+\sfrom|insert\s+into|update\s+\S+\s+set|delete\s+from|where\s+\S+\s*=|sqlstate|syntax error|no such (table|column)|constraint failed|duplicate entry|deadlock)\b`),
	regexp.MustCompile(`(?i)\b(gorm|sqlite|mysql|mariadb|goose|librdkafka|kafka|argon2|password_hash|email_ci|outbox)\b`),
	regexp.MustCompile(`(?i)\b(dial tcp|connection refused|connection reset|broken pipe|i/o timeout|context deadline exceeded|context canceled|bad connection|EOF)\b`),
	regexp.MustCompile(`goroutine \d+|\.go:\d+|runtime error|panic|/usr/local/go|/root/|/work/|/home/|/tmp/`),
	regexp.MustCompile(`\b[a-z][a-z0-9]*\.[A-Z][A-Za-z0-9]*(Error|Err|\{)|\*[a-z][a-z0-9]*\.[A-Z]\w*|\bGo (value|struct)\b`),
	regexp.MustCompile(`github\.com/|golang\.org/|gorm\.io/|\b0x[0-9a-f]{6,}\b`),
}

// Internals returns the fragments of body that betray internals. Strings
// in echoed (a value the client itself sent and the answer quotes, such as
// an unsupported Content-Type) are removed first.
func Internals(body []byte, echoed ...string) []string {
	s := string(body)
	for _, e := range echoed {
		if e == "" {
			continue
		}
		quoted, _ := json.Marshal(e) // how a JSON body quotes it
		s = strings.ReplaceAll(s, string(quoted[1:len(quoted)-1]), "")
		s = strings.ReplaceAll(s, e, "")
	}
	var found []string
	for _, re := range internals {
		found = append(found, re.FindAllString(s, -1)...)
	}
	return found
}

// Delivery is the first delivery of one event read from the broker.
type Delivery struct {
	Key       string
	Partition int32
	Event     domain.EventBody
}

// FirstDeliveries decodes records as events (skipping the tombstones that
// follow deletes) and keeps the first delivery of each event id, in the
// order read; it counts the repeats (delivery is at
// least once). A record that is not an event fails t, and so does one
// that does not match the event schema.
func FirstDeliveries(t testing.TB, recs []*kgo.Record) (firsts []Delivery, duplicates int) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range recs {
		if kafkatest.IsTombstone(r) {
			continue // a delete's tombstone: not an event
		}
		var ev domain.EventBody
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatalf("record at %d/%d is not an event: %q", r.Partition, r.Offset, r.Value)
		}
		eventschema.Check(t, r.Value)
		if seen[ev.ID] {
			duplicates++
			continue
		}
		seen[ev.ID] = true
		firsts = append(firsts, Delivery{Key: string(r.Key), Partition: r.Partition, Event: ev})
	}
	return firsts, duplicates
}

// DurationFromEnv reads a positive duration from the environment variable
// name; unset, it is def, or short under -short.
func DurationFromEnv(t testing.TB, name string, def, short time.Duration) time.Duration {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q is not a positive duration", name, v)
		}
		return d
	}
	if testing.Short() {
		return short
	}
	return def
}
