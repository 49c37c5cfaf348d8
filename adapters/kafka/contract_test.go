package kafka_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/ports"
	"github.com/marketplace/usersvc/ports/porttest"
)

// TestEventPublisherContract runs the publisher suite on a three-partition
// topic of its own broker, reading records back with a plain consumer.
// Headers follow the CloudEvents Kafka binding (binary mode): ce_<name>,
// and content-type for datacontenttype; any other header is an error.
func TestEventPublisherContract(t *testing.T) {
	porttest.RunEventPublisherContract(t, func(t *testing.T) (ports.EventPublisher, porttest.Received) {
		b := startBroker(t)
		received := func(t *testing.T, n int) []porttest.Delivered {
			t.Helper()
			// Tombstones are not events: TestDeleteIsFollowedByItsTombstone
			// checks them.
			var recs []*kgo.Record
			for want := n; len(recs) < n; want += n - len(recs) {
				recs = slices.DeleteFunc(consume(t, b, want, 10*time.Second), kafkatest.IsTombstone)
			}
			got := make([]porttest.Delivered, len(recs))
			for i, r := range recs {
				attrs := map[string]string{}
				w3c := map[string]string{}
				for _, h := range r.Headers {
					switch name, ok := strings.CutPrefix(h.Key, "ce_"); {
					case ok:
						attrs[name] = string(h.Value)
					case h.Key == "content-type":
						attrs["datacontenttype"] = string(h.Value)
					case h.Key == "traceparent" || h.Key == "tracestate":
						w3c[h.Key] = string(h.Value)
					default:
						t.Errorf("record with unexpected header %q", h.Key)
					}
				}
				// The plain W3C headers repeat the extension, for Kafka
				// instrumentations that know only them.
				for _, name := range []string{"traceparent", "tracestate"} {
					if w3c[name] != attrs[name] {
						t.Errorf("header %s = %q, ce_%s = %q; want the same", name, w3c[name], name, attrs[name])
					}
				}
				got[i] = porttest.Delivered{Key: string(r.Key), Payload: r.Value, Attrs: attrs}
			}
			return got
		}
		return newPublisher(t, b, nil), received
	}, porttest.PublisherOptions{Attrs: map[string]string{"source": "usersvc-test", "datacontenttype": "application/json"}})
}
