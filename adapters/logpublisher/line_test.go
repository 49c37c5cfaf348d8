package logpublisher_test

import (
	"bytes"
	"testing"

	"github.com/marketplace/usersvc/adapters/logpublisher"
)

func TestAppendLine(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	cases := []struct {
		name    string
		payload string
		traceID string
		want    string
		wantErr bool
	}{
		{"compacted to one line", "{\n  \"id\": \"e1\",\n  \"data\": {\"id\": 1}\n}", "", `{"id":"e1","data":{"id":1}}` + "\n", false},
		{"trace id first", `{"id": "e1", "data": {"id": 1}}`, id, `{"trace_id":"` + id + `","id":"e1","data":{"id":1}}` + "\n", false},
		{"trace id in an empty object", `{ }`, id, `{"trace_id":"` + id + `"}` + "\n", false},
		{"not an object: left as it is", `["a", 1]`, id, `["a",1]` + "\n", false},
		{"not JSON", `{"id":`, id, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			buf := bytes.NewBufferString("before\n")
			err := logpublisher.AppendLine(buf, []byte(c.payload), c.traceID)
			if (err != nil) != c.wantErr {
				t.Fatalf("AppendLine = %v, want error %v", err, c.wantErr)
			}
			if got := buf.String(); got != "before\n"+c.want {
				t.Errorf("buffer %q, want %q", got, "before\n"+c.want)
			}
		})
	}
}
