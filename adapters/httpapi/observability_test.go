package httpapi

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestRequestID(t *testing.T) {
	tests := []struct {
		name    string
		trusted string
		sent    string
		echoed  bool // else a fresh UUID is expected
	}{
		{name: "accepted from a trusted proxy", trusted: "127.0.0.0/8", sent: "edge-4f2a_9:1/x", echoed: true},
		{name: "ignored from an untrusted peer", sent: "edge-4f2a", echoed: false},
		{name: "none sent", trusted: "127.0.0.0/8", echoed: false},
		{name: "forbidden characters replaced", trusted: "127.0.0.0/8", sent: `id"with spaces`, echoed: false},
		{name: "over 128 characters replaced", trusted: "127.0.0.0/8", sent: strings.Repeat("a", 129), echoed: false},
		{name: "128 characters accepted", trusted: "127.0.0.0/8", sent: strings.Repeat("a", 128), echoed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{trusted: tt.trusted})
			r := req{method: http.MethodGet, path: "/api/v1/users/42"}
			if tt.sent != "" {
				r.headers = map[string]string{"X-Request-ID": tt.sent}
			}
			got := e.do(r).header.Get("X-Request-ID")
			if tt.echoed && got != tt.sent {
				t.Fatalf("X-Request-ID = %q, want %q echoed", got, tt.sent)
			}
			if !tt.echoed && !uuidPattern.MatchString(got) {
				t.Fatalf("X-Request-ID = %q, want a generated UUID", got)
			}
			lines := accessLines(t, e, got)
			if len(lines) != 1 {
				t.Fatalf("%d access lines for request %s, want 1", len(lines), got)
			}
		})
	}
}

// LOG_CLIENT_IP decides how much of the client address access lines keep:
// all of it, its network (IPv4 /24, IPv6 /48), or nothing (no field).
func TestAccessLogClientIP(t *testing.T) {
	const v4, v6, mapped = "198.51.100.77", "2001:db8:c4:1234:5678::9", "::ffff:203.0.113.200"
	tests := []struct {
		mode ClientIPLog
		want map[string]any // client field by X-Forwarded-For; nil: no field
	}{
		{ClientIPFull, map[string]any{v4: v4, v6: v6, mapped: "203.0.113.200"}},
		{ClientIPTruncated, map[string]any{v4: "198.51.100.0/24", v6: "2001:db8:c4::/48", mapped: "203.0.113.0/24"}},
		{"", map[string]any{v4: "198.51.100.0/24", v6: "2001:db8:c4::/48", mapped: "203.0.113.0/24"}}, // the default
		{ClientIPNone, nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode)+"-mode", func(t *testing.T) {
			e := newEnv(t, envOptions{trusted: "127.0.0.1", logClientIP: tt.mode})
			for _, sent := range []string{v4, v6, mapped} {
				res := e.do(req{method: http.MethodGet, path: "/api/v1/users", headers: map[string]string{"X-Forwarded-For": sent}})
				lines := accessLines(t, e, res.header.Get("X-Request-ID"))
				if len(lines) != 1 {
					t.Fatalf("%d access lines, want 1", len(lines))
				}
				got, present := lines[0]["client"]
				if tt.want == nil {
					if present {
						t.Errorf("client %s logged as %v, want no client field", sent, got)
					}
					continue
				}
				if got != tt.want[sent] {
					t.Errorf("client %s logged as %v, want %v", sent, got, tt.want[sent])
				}
			}
			if tt.mode != ClientIPFull {
				for _, full := range []string{v4, v6, "203.0.113.200"} {
					if strings.Contains(e.logs.String(), full) {
						t.Errorf("the full address %s reached the log", full)
					}
				}
			}
		})
	}
}

func TestParseClientIPLog(t *testing.T) {
	for in, want := range map[string]ClientIPLog{"": ClientIPTruncated, "full": ClientIPFull, "truncated": ClientIPTruncated, "none": ClientIPNone} {
		if got, err := ParseClientIPLog(in); err != nil || got != want {
			t.Errorf("ParseClientIPLog(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"Full", "partial", "/24"} {
		if _, err := ParseClientIPLog(bad); err == nil {
			t.Errorf("ParseClientIPLog(%q) accepted", bad)
		}
	}
}

// accessLines returns the access-log records of one request.
func accessLines(t *testing.T, e *testEnv, requestID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, rec := range logRecords(t, e.logs) {
		if rec["msg"] == "http request" && rec["request_id"] == requestID {
			out = append(out, rec)
		}
	}
	return out
}

func TestAccessLog(t *testing.T) {
	e := newEnv(t, envOptions{trusted: "::1"})
	u := e.create(userBody("logged@example.ch"))
	t.Run("one line with the contract's fields", func(t *testing.T) {
		r := req{method: http.MethodGet, path: idPath(u) + "/?first_name=private-value", v6: true,
			headers: map[string]string{"X-Forwarded-For": "2001:db8:c4::99"}}
		res := e.do(r)
		id := res.header.Get("X-Request-ID")
		lines := accessLines(t, e, id)
		if len(lines) != 1 {
			t.Fatalf("%d access lines, want 1", len(lines))
		}
		l := lines[0]
		want := map[string]any{"level": "INFO", "method": "GET", "route": "/api/v1/users/:id", "status": float64(200),
			"bytes": float64(len(res.body)), "client": "2001:db8:c4::/48"} // LOG_CLIENT_IP's default: the network
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%s = %v, want %v", k, l[k], v)
			}
		}
		if d, ok := l["duration"].(float64); !ok || d <= 0 {
			t.Errorf("duration = %v", l["duration"])
		}
		if strings.Contains(e.logs.String(), "private-value") {
			t.Errorf("the query string reached the log")
		}
	})
	t.Run("unmatched route and probe", func(t *testing.T) {
		res := e.do(req{method: http.MethodGet, path: "/nowhere"})
		if l := accessLines(t, e, res.header.Get("X-Request-ID")); len(l) != 1 || l[0]["route"] != "unmatched" || l[0]["status"] != float64(404) {
			t.Errorf("unmatched access line = %v", l)
		}
		res = e.do(req{method: http.MethodGet, path: "/healthz"})
		if l := accessLines(t, e, res.header.Get("X-Request-ID")); len(l) != 1 || l[0]["level"] != "DEBUG" {
			t.Errorf("probe access line = %v, want one at DEBUG", l)
		}
	})
	t.Run("error lines carry the request id", func(t *testing.T) {
		e.geo.mode.Store(int32(geoFailing))
		defer e.geo.mode.Store(int32(geoNormal))
		res := e.do(jsonReq(http.MethodPost, "/api/v1/users", userBody("later@example.ch")))
		id := res.header.Get("X-Request-ID")
		var found bool
		for _, rec := range logRecords(t, e.logs) {
			if rec["msg"] == "dependency unavailable" && rec["request_id"] == id {
				found = true
			}
		}
		if !found {
			t.Errorf("no error line tied to request %s", id)
		}
		if l := accessLines(t, e, id); len(l) != 1 || l[0]["status"] != float64(503) || l[0]["level"] != "WARN" && l[0]["level"] != "ERROR" {
			t.Errorf("access line of the 503 = %v", l)
		}
	})
}

func TestAbsoluteURLs(t *testing.T) {
	forwarded := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"}
	tests := []struct {
		name    string
		trusted string
		want    func(e *testEnv) string
	}{
		{name: "forwarded scheme and host from a trusted proxy", trusted: "127.0.0.1", want: func(*testEnv) string { return "https://api.example.com" }},
		{name: "forwarded headers from an untrusted peer ignored", want: func(e *testEnv) string { return e.v4.URL }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{trusted: tt.trusted})
			r := jsonReq(http.MethodPost, "/api/v1/users", userBody(uniqueEmail()))
			r.headers = forwarded
			res := e.do(r)
			base := tt.want(e)
			u := res.object(t)
			if want := base + idPath(u); u["url"] != want || res.header.Get("Location") != want {
				t.Errorf("url = %v, Location = %q, want %s", u["url"], res.header.Get("Location"), want)
			}
			e.create(userBody(uniqueEmail()))
			list := e.do(req{method: http.MethodGet, path: "/api/v1/users?page_size=1", headers: forwarded}).object(t)
			if want := base + "/api/v1/users?page=2&page_size=1"; list["next"] != want {
				t.Errorf("next = %v, want %s", list["next"], want)
			}
		})
	}
}
