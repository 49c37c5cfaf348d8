// Package hostile_test sends a corpus of malformed and hostile requests to
// the real service over real HTTP and checks that each one is refused with
// the expected 4xx status and body, that none is answered 5xx, that no
// answer betrays internals, and that none changes any stored row.
package hostile_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/marketplace/usersvc/test/reliability/stack"
)

type stackRequest = stack.Request

// hostileCase is one request and what it must get.
type hostileCase struct {
	name string
	req  stackRequest
	// raw, when set, is written to the socket as is instead of req.
	raw string
	outcome
	// otherwise, when set, is the one other answer accepted: for a
	// request that net/http refuses itself in some Go releases and
	// passes on to the service in others. It is chosen by its status.
	otherwise *outcome
}

// outcome is an answer a case accepts.
type outcome struct {
	status int
	want   check
	// byNetHTTP marks answers that net/http writes itself, before the
	// service sees the request (plain text, no service headers).
	byNetHTTP bool
}

// expected is the outcome res is judged by: the alternative when there is
// one and res has its status, else the case's own.
func (c hostileCase) expected(res stack.Response) outcome {
	if c.otherwise != nil && res.Status == c.otherwise.status {
		return *c.otherwise
	}
	return c.outcome
}

// check is an expectation on an answer's body (and headers).
type check struct {
	what string
	ok   func(stack.Response) error
}

// exactJSON expects a body equal to doc as JSON values.
func exactJSON(doc string) check {
	var want any
	if err := json.Unmarshal([]byte(doc), &want); err != nil {
		panic(fmt.Sprintf("bad expectation %s: %v", doc, err))
	}
	return check{what: doc, ok: func(r stack.Response) error {
		var got any
		if err := json.Unmarshal(r.Body, &got); err != nil {
			return fmt.Errorf("body is not JSON: %q", clip(r.Body))
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("body %s", clip(r.Body))
		}
		return nil
	}}
}

func detail(msg string) check {
	b, _ := json.Marshal(map[string]string{"detail": msg})
	return exactJSON(string(b))
}

var (
	notFound    = detail("Not found.")
	invalidPage = detail("Invalid page.")
	tooLarge    = detail("Request body too large.")
	failedPre   = detail("Precondition failed.")
	emptyPage   = exactJSON(`{"count":0,"next":null,"previous":null,"results":[]}`)
)

// fields expects a validation body: field, message, field, message...
// (a field may repeat to get several messages, in order).
func fields(pairs ...string) check {
	m := map[string][]string{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = append(m[pairs[i]], pairs[i+1])
	}
	b, _ := json.Marshal(m)
	return exactJSON(string(b))
}

const (
	msgRequired  = "This field is required."
	msgBlank     = "This field may not be blank."
	msgNotString = "Not a valid string."
	msgNotNull   = "This field may not be null."
	msgEmail     = "Enter a valid email address."
	msgNUL       = "Null characters are not allowed."
	msgBadUTF8   = "Not valid UTF-8 text."
	msgInteger   = "A valid integer is required."
	msgDateTime  = "Enter a valid date/time."
)

func msgMax(n int) string { return fmt.Sprintf("Ensure this field has no more than %d characters.", n) }
func msgMin(n int) string { return fmt.Sprintf("Ensure this field has at least %d characters.", n) }

// requiredAll is the answer to a body with none of the required fields.
var requiredAll = fields("email", msgRequired, "first_name", msgRequired, "last_name", msgRequired, "password", msgRequired)

func parseError(kind, msg string) check { return detail(kind + " parse error - " + msg) }

// parseErrorSaying expects {"detail": "<kind> parse error - ..."} whose
// text after the dash contains every fragment. It is for syntax errors
// whose wording encoding/json changed between Go releases (Go 1.27
// rewrote several); the fragments are what the releases we build with
// agree on. Every other case pins the whole text.
func parseErrorSaying(kind string, fragments ...string) check {
	prefix := kind + " parse error - "
	what := fmt.Sprintf(`{"detail": %q + text with %q}`, prefix, fragments)
	return check{what: what, ok: func(r stack.Response) error {
		var got map[string]any
		if err := json.Unmarshal(r.Body, &got); err != nil || len(got) != 1 {
			return fmt.Errorf("body %q", clip(r.Body))
		}
		d, _ := got["detail"].(string)
		text, ok := strings.CutPrefix(d, prefix)
		if !ok {
			return fmt.Errorf("body %s", clip(r.Body))
		}
		for _, f := range fragments {
			if !strings.Contains(text, f) {
				return fmt.Errorf("body %s does not say %q", clip(r.Body), f)
			}
		}
		return nil
	}}
}

// notAllowed is a 405 with its Allow header.
func notAllowed(method, allow string) check {
	body := detail(fmt.Sprintf("Method %q not allowed.", method))
	return check{what: body.what + " + Allow: " + allow, ok: func(r stack.Response) error {
		if got := r.Header.Get("Allow"); got != allow {
			return fmt.Errorf("Allow = %q", got)
		}
		if len(r.Body) == 0 { // HEAD: no body to compare
			return nil
		}
		return body.ok(r)
	}}
}

func unsupported(contentType string) check {
	return detail(fmt.Sprintf("Unsupported media type %q in request.", contentType))
}

// plain expects net/http's own text answer.
func plain(text string) check {
	return check{what: fmt.Sprintf("%q", text), ok: func(r stack.Response) error {
		if string(r.Body) != text {
			return fmt.Errorf("body %q", clip(r.Body))
		}
		return nil
	}}
}

func noBody() check {
	return check{what: "no body", ok: func(r stack.Response) error {
		if len(r.Body) != 0 {
			return fmt.Errorf("body %q", clip(r.Body))
		}
		return nil
	}}
}

// listing expects a page of count users whose ids are exactly ids, in
// order, with next and previous as given ("" for null).
func listing(count int, next string, ids ...int64) check {
	what := fmt.Sprintf("page count=%d ids=%v next=%q previous=null", count, ids, next)
	return check{what: what, ok: func(r stack.Response) error {
		var page struct {
			Count    int     `json:"count"`
			Next     *string `json:"next"`
			Previous *string `json:"previous"`
			Results  []struct {
				ID       int64  `json:"id"`
				URL      string `json:"url"`
				Password *any   `json:"password"`
			} `json:"results"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			return fmt.Errorf("not a page: %q", clip(r.Body))
		}
		var got []int64
		for _, u := range page.Results {
			got = append(got, u.ID)
			if u.Password != nil {
				return fmt.Errorf("a result carries a password field")
			}
		}
		gotNext := ""
		if page.Next != nil {
			gotNext = *page.Next
		}
		if page.Count != count || !slices.Equal(got, ids) || page.Previous != nil || !strings.HasSuffix(gotNext, next) || (next == "") != (page.Next == nil) {
			return fmt.Errorf("count=%d ids=%v next=%v previous=%v", page.Count, got, page.Next, page.Previous)
		}
		return nil
	}}
}

// userAt expects the representation of user id with the given email,
// whose url points at the server itself.
func userAt(base string, id int64, email string) check {
	return check{what: fmt.Sprintf("user %d (%s) at %s", id, email, base), ok: func(r stack.Response) error {
		m := r.Object()
		wantURL := fmt.Sprintf("%s/api/v1/users/%d", base, id)
		if m == nil || m["id"] != float64(id) || m["email"] != email || m["url"] != wantURL {
			return fmt.Errorf("body %s", clip(r.Body))
		}
		if _, ok := m["password"]; ok {
			return fmt.Errorf("the representation carries a password field")
		}
		return nil
	}}
}

// and combines checks.
func and(checks ...check) check {
	var whats []string
	for _, c := range checks {
		whats = append(whats, c.what)
	}
	return check{what: strings.Join(whats, " and "), ok: func(r stack.Response) error {
		for _, c := range checks {
			if err := c.ok(r); err != nil {
				return err
			}
		}
		return nil
	}}
}

// headerNot expects header name to be present and different from sent.
func headerNot(name, sent string) check {
	return check{what: name + " not " + sent, ok: func(r stack.Response) error {
		if got := r.Header.Get(name); got == "" || got == sent {
			return fmt.Errorf("%s = %q", name, got)
		}
		return nil
	}}
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return string(b)
}

// header builds a header with one value per name.
func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}
