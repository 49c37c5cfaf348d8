package logpublisher_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/adapters/logpublisher"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/ports/porttest"
	"github.com/marketplace/usersvc/test/eventschema"
	"github.com/marketplace/usersvc/test/syncbuf"
)

// TestEventPublisherContract reads the lines back as the deliveries: a
// line is the payload, and the key is the user id inside it. Lines carry no
// CloudEvents attributes; the order is the order of the lines.
func TestEventPublisherContract(t *testing.T) {
	porttest.RunEventPublisherContract(t, func(t *testing.T) (ports.EventPublisher, porttest.Received) {
		out := &syncbuf.Buffer{}
		received := func(t *testing.T, n int) []porttest.Delivered {
			t.Helper()
			var got []porttest.Delivered
			for line := range strings.Lines(out.String()) {
				if !strings.HasSuffix(line, "\n") {
					t.Fatalf("unterminated line %q", line)
				}
				payload := []byte(strings.TrimSuffix(line, "\n"))
				var body domain.EventBody
				if err := json.Unmarshal(payload, &body); err != nil {
					t.Fatalf("line %q is not the event contract: %v", line, err)
				}
				eventschema.Check(t, payload)
				got = append(got, porttest.Delivered{Key: strconv.FormatInt(body.Data.ID, 10), Payload: payload})
			}
			// Publish wrote every line before it returned: nothing to wait for.
			if len(got) < n {
				t.Fatalf("%d lines written, want at least %d", len(got), n)
			}
			return got
		}
		return logpublisher.New(out), received
	}, porttest.PublisherOptions{NoAttributes: true, GlobalOrder: true})
}
