// Package logpublisher is the event publisher used without a broker (the
// `make run` default): it writes each event as one JSON line, so a developer
// sees events on standard output.
//
// A line is exactly the message value a Kafka consumer receives (the event
// contract JSON: id, action, occurred_at, data, changed), which is also what
// `usersvc events tail` prints (led there by the message's trace id, see
// AppendLine); the CloudEvents attributes are all derivable from it (ce_id =
// id, ce_type from action, ce_subject = data.id).
package logpublisher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/google/wire"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// ProviderSet provides the line publisher as the port; the composition root
// supplies the writer (normally os.Stdout).
var ProviderSet = wire.NewSet(New, wire.Bind(new(ports.EventPublisher), new(*Publisher)))

// Publisher writes events as JSON lines. It is safe for concurrent use;
// lines never interleave.
type Publisher struct {
	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
}

var _ ports.EventPublisher = (*Publisher)(nil)

// New writes to w.
func New(w io.Writer) *Publisher { return &Publisher{w: w} }

// Publish writes one line per message, in order. A message counts as
// acknowledged once its line is written.
func (p *Publisher) Publish(ctx context.Context, msgs []domain.Message) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		p.buf.Reset()
		if err := AppendLine(&p.buf, m.Payload, ""); err != nil {
			return i, fmt.Errorf("event %s (seq %d) is not JSON: %w", m.EventID, m.Seq, err)
		}
		if _, err := p.w.Write(p.buf.Bytes()); err != nil {
			return i, fmt.Errorf("write event %s (seq %d): %w", m.EventID, m.Seq, err)
		}
	}
	return len(msgs), nil
}

// AppendLine appends the line of an event to buf: its JSON payload
// compacted (one line per event whatever the payload's layout) and a
// newline. A traceID (`events tail` passes the one of the message's
// traceparent) is put first in an object payload as "trace_id", so a line
// on the terminal leads to the trace of the request that caused the event;
// the members after it are the payload's, byte for byte. On error buf is
// left as it was.
func AppendLine(buf *bytes.Buffer, payload []byte, traceID string) error {
	start := buf.Len()
	if err := json.Compact(buf, payload); err != nil {
		buf.Truncate(start)
		return err
	}
	if line := buf.Bytes()[start:]; traceID != "" && len(line) > 0 && line[0] == '{' {
		members := bytes.Clone(line[1:]) // "}" for an empty object
		buf.Truncate(start)
		id, _ := json.Marshal(traceID) // cannot fail: a string
		buf.WriteString(`{"trace_id":`)
		buf.Write(id)
		if len(members) > 1 {
			buf.WriteByte(',')
		}
		buf.Write(members)
	}
	buf.WriteByte('\n')
	return nil
}
