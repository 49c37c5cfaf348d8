package hostile_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/test/reliability/stack"
)

var fuzzMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions}

// answered are the statuses the API may give a request it can parse.
var answered = map[int]bool{200: true, 201: true, 204: true, 400: true, 403: true, 404: true, 405: true, 412: true, 413: true, 415: true}

var locationRE = regexp.MustCompile(`^http://127\.0\.0\.1/api/v1/users/[1-9][0-9]*$`)

// FuzzHandler sends any method, target, Content-Type, body, If-Match and
// X-Forwarded-For to the whole HTTP API on a SQLite database: the answer
// is never a 5xx nor an unexpected status, every body (but HEAD and 204)
// is JSON, errors are {"detail": ...} or a map of fields to messages, no
// hash ever appears, and a creation's Location names the new user.
func FuzzHandler(f *testing.F) {
	valid := `{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.ch","password":"correct-horse"}`
	for _, s := range []struct {
		method                   uint8
		target, ctype, body, tag string
	}{
		{1, "/api/v1/users", "application/json", valid, ""},
		{1, "/api/v1/users/", "application/x-www-form-urlencoded", "first_name=A&last_name=B&email=f%40example.ch&password=correct-horse", ""},
		{0, "/api/v1/users?search=%25&ordering=-id,email&page_size=1000&since_id=0", "", "", ""},
		{0, "/api/v1/users/1", "", "", ""},
		{3, "/api/v1/users/1", "application/json", `{"address":"Bern"}`, `"1"`},
		{2, "/api/v1/users/1", "application/json", valid, `W/"1"`},
		{4, "/api/v1/users/1", "", "", "*"},
		{1, "/api/v1/users", "application/json", `{"first_name":{"$gt":""}}`, ""},
		{0, "/api/v1/users/..%2F..%2Fetc%2Fpasswd", "", "", ""},
		{5, "/api/v1/users", "", "", ""},
		{1, "/api/v1/users", "text/plain", valid, ""},
		{0, "/api/v1/users?page=99999999999999999999", "", "", ""},
	} {
		f.Add(s.method, s.target, s.ctype, []byte(s.body), s.tag, "198.51.100.1, 127.0.0.1")
	}
	s := stack.Start(f, stack.Options{})
	f.Fuzz(func(t *testing.T, method uint8, target, contentType string, body []byte, ifMatch, forwardedFor string) {
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		if !strings.HasPrefix(target, "/") || !headerSafe(contentType) || !headerSafe(ifMatch) || !headerSafe(forwardedFor) {
			return // net/http would not deliver such a request
		}
		req, err := http.NewRequest(m, "http://127.0.0.1"+target, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.RemoteAddr = "127.0.0.1:40000"
		for name, v := range map[string]string{"Content-Type": contentType, "If-Match": ifMatch, "X-Forwarded-For": forwardedFor} {
			if v != "" {
				req.Header.Set(name, v)
			}
		}
		rec := httptest.NewRecorder()
		s.Handler.ServeHTTP(rec, req)
		res := rec.Result()
		out := rec.Body.Bytes()
		if !answered[res.StatusCode] {
			t.Fatalf("%s %s answered %d: %s", m, target, res.StatusCode, out)
		}
		if bytes.Contains(out, []byte(stack.HashMarker)) {
			t.Fatalf("%s %s: the answer carries a hash", m, target)
		}
		if m == http.MethodHead || res.StatusCode == http.StatusNoContent {
			return
		}
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") || !json.Valid(out) {
			t.Fatalf("%s %s answered %d with %q: %q", m, target, res.StatusCode, res.Header.Get("Content-Type"), out)
		}
		if res.StatusCode == http.StatusCreated && !locationRE.MatchString(res.Header.Get("Location")) {
			t.Fatalf("Location %q", res.Header.Get("Location"))
		}
		if res.StatusCode >= 400 {
			checkErrorBody(t, out)
		}
	})
}

func headerSafe(v string) bool {
	for _, c := range []byte(v) {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func checkErrorBody(t *testing.T, body []byte) {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil || len(obj) == 0 {
		t.Fatalf("error body %q is not a JSON object", body)
	}
	if d, ok := obj["detail"]; ok {
		if s, _ := d.(string); s == "" || len(obj) != 1 {
			t.Fatalf("error body %s", body)
		}
		return
	}
	for k, v := range obj {
		msgs, ok := v.([]any)
		if k == "" || !ok || len(msgs) == 0 {
			t.Fatalf("error body %s", body)
		}
		for _, m := range msgs {
			if s, _ := m.(string); s == "" {
				t.Fatalf("error body %s", body)
			}
		}
	}
}
