package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// httpClient talks to the service on loopback only; every request is
// bounded.
var httpClient = &http.Client{Timeout: 15 * time.Second}

const (
	mediaJSON = "application/json"
	mediaForm = "application/x-www-form-urlencoded"
)

// call is one HTTP request. path is relative to the service (or an absolute
// URL it handed out, such as a next link).
type call struct {
	method string
	path   string
	ctype  string
	body   io.Reader
	header map[string]string
}

// reply is a whole answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func jsonCall(method, path string, body any) call {
	return call{method: method, path: path, ctype: mediaJSON, body: bytes.NewReader(mustJSON(body))}
}

func rawCall(method, path, ctype, body string) call {
	return call{method: method, path: path, ctype: ctype, body: strings.NewReader(body)}
}

func get(path string) call { return call{method: http.MethodGet, path: path} }

// with adds a request header; an empty value sends none (not even the
// service's default token).
func (c call) with(name, value string) call {
	c.header = maps.Clone(c.header)
	if c.header == nil {
		c.header = map[string]string{}
	}
	c.header[name] = value
	return c
}

func mustJSON(v any) []byte {
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only the tests' own literals are marshalled
	}
	return b
}

// do sends c and checks what every answer must satisfy: JSON (or empty),
// and no secret in its body or headers.
func (s *service) do(t *testing.T, c call) reply {
	t.Helper()
	target := c.path
	if !strings.HasPrefix(target, "http://") {
		target = s.base + target
	} else if !strings.HasPrefix(target, s.base+"/") {
		t.Fatalf("%s is not a URL of the service at %s", target, s.base)
	}
	req, err := http.NewRequest(c.method, target, c.body)
	if err != nil {
		t.Fatal(err)
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	for k, v := range c.header {
		if v == "" {
			req.Header.Del(k) // e.g. no Authorization at all
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", c.method, c.path, err)
	}
	s.mu.Lock()
	s.answered++
	s.mu.Unlock()
	r := reply{status: res.StatusCode, header: res.Header, body: body}
	var headers strings.Builder
	for k, vs := range res.Header {
		headers.WriteString(k + ": " + strings.Join(vs, ", ") + "\n")
	}
	for _, leak := range s.leaks(string(body) + "\n" + headers.String()) {
		t.Errorf("%s %s: the answer contains %s", c.method, c.path, leak)
	}
	if len(body) > 0 {
		// application/json, or a JSON-based type such as the event
		// schema's application/schema+json.
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, mediaJSON) && !isJSONSuffixed(ct) {
			t.Errorf("%s %s: Content-Type %q, want JSON", c.method, c.path, ct)
		}
		if !json.Valid(body) {
			t.Errorf("%s %s: the answer is not JSON: %s", c.method, c.path, body)
		}
	}
	return r
}

// isJSONSuffixed reports a structured-syntax "+json" media type (RFC 6839).
func isJSONSuffixed(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// expectJSON fails t unless r has the status and a body equal to want as
// JSON values.
func expectJSON(t *testing.T, r reply, status int, want string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var got, exp any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("answer %q is not JSON: %v", r.body, err)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("bad expectation %q: %v", want, err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("answer %s, want %s", r.body, want)
	}
}

func expectStatus(t *testing.T, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
}

// user is the API's representation of a user: its URL and the data an
// event carries.
type user struct {
	URL string `json:"url"`
	userData
}

// userData is a user's public data, in answers and in events' "data".
type userData struct {
	ID        int64  `json:"id"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Email     string `json:"email"`
	Address   string `json:"address"`
	Country   string `json:"country"` // null reads as ""
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

var userKeys = []string{"url", "id", "first_name", "last_name", "email", "address", "country", "created_at", "updated_at"}

// timestamp is RFC 3339 in UTC with sub-second precision.
var timestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$`)

// checkTime fails t unless v is a timestamp of the contract taken during
// the suite.
func checkTime(t *testing.T, what, v string) time.Time {
	t.Helper()
	if !timestamp.MatchString(v) {
		t.Fatalf("%s %q is not RFC 3339 UTC with sub-second precision", what, v)
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t.Fatalf("%s %q: %v", what, v, err)
	}
	if at.Before(suiteStart.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
		t.Fatalf("%s %s is not the time of this suite (%s to now)", what, v, suiteStart.UTC().Format(time.RFC3339))
	}
	return at
}

// exactKeys fails t unless the JSON object raw has exactly the keys.
func exactKeys(t *testing.T, what string, raw []byte, keys ...string) {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("%s is not a JSON object: %v: %s", what, err, raw)
	}
	got := slices.Sorted(maps.Keys(obj))
	want := slices.Sorted(slices.Values(keys))
	if !slices.Equal(got, want) {
		t.Fatalf("%s has the keys %q, want %q: %s", what, got, want, raw)
	}
}

// asUser decodes a user answer and checks its shape: exact keys, absolute
// URL on the service, timestamps of the contract, ETag.
func (s *service) asUser(t *testing.T, r reply) user {
	t.Helper()
	exactKeys(t, "user", r.body, userKeys...)
	var u user
	if err := json.Unmarshal(r.body, &u); err != nil {
		t.Fatal(err)
	}
	if want := s.userURL(u.ID); u.URL != want {
		t.Fatalf("url %q, want %q", u.URL, want)
	}
	created, updated := checkTime(t, "created_at", u.CreatedAt), checkTime(t, "updated_at", u.UpdatedAt)
	if updated.Before(created) {
		t.Fatalf("updated_at %s before created_at %s", u.UpdatedAt, u.CreatedAt)
	}
	if r.header.Get("ETag") == "" {
		t.Fatalf("no ETag on a user answer")
	}
	return u
}

func (s *service) userURL(id int64) string { return s.base + userPath(id) }

func userPath(id int64) string { return "/api/v1/users/" + strconv.FormatInt(id, 10) }

// create posts input as JSON, expects 201 with Location and ETag "1", and
// records the create event it must produce.
func (s *service) create(t *testing.T, input map[string]string) user {
	t.Helper()
	return s.created(t, s.do(t, jsonCall(http.MethodPost, "/api/v1/users", input)))
}

// created checks a 201 answer and records its create event.
func (s *service) created(t *testing.T, r reply) user {
	t.Helper()
	expectStatus(t, r, http.StatusCreated)
	u := s.asUser(t, r)
	if loc := r.header.Get("Location"); loc != u.URL {
		t.Fatalf("Location %q, want the user's url %q", loc, u.URL)
	}
	if etag := r.header.Get("ETag"); etag != `"1"` {
		t.Fatalf(`ETag %s of a new user, want "1"`, etag)
	}
	if u.CreatedAt != u.UpdatedAt {
		t.Fatalf("new user: created_at %s, updated_at %s", u.CreatedAt, u.UpdatedAt)
	}
	s.expect("create", u)
	return u
}

// input is a valid creation body for a person.
func (s *service) input(first, last, email string) map[string]string {
	return map[string]string{
		"first_name": first, "last_name": last, "email": email,
		"password": s.password(strings.ToLower(first)), "address": "Bahnhofstrasse 1, 8001 Zürich",
	}
}

// query encodes list parameters.
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return "/api/v1/users?" + v.Encode()
}

func mustUnmarshal(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}
