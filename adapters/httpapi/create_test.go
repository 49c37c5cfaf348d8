package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func jsonOf(fields map[string]any) string {
	b, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// valid returns a complete, valid creation body with some fields replaced
// (a nil value removes the field).
func valid(over map[string]any) map[string]any {
	m := map[string]any{
		"first_name": "Alice", "last_name": "Muster", "email": "alice@example.ch", "password": "s3cret-pass",
	}
	for k, v := range over {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

var rfc3339UTC = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`)

func TestCreateSucceeds(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name  string
		req   req
		check map[string]any // expected fields of the representation
	}{
		{
			name:  "JSON, normalised fields, address defaults to empty",
			req:   jsonReq(http.MethodPost, "/api/v1/users", jsonOf(valid(map[string]any{"first_name": "  Alice ", "email": " Alice@Example.CH "}))),
			check: map[string]any{"first_name": "Alice", "last_name": "Muster", "email": "alice@example.ch", "address": "", "country": "CH"},
		},
		{
			name: "form encoded, as curl -d sends",
			req: req{method: http.MethodPost, path: "/api/v1/users", ctype: "application/x-www-form-urlencoded",
				body: url.Values{"first_name": {"Bob"}, "last_name": {"Meier"}, "email": {"bob@example.ch"}, "password": {"s3cret-pass"}, "address": {"Gasse 2"}}.Encode()},
			check: map[string]any{"first_name": "Bob", "email": "bob@example.ch", "address": "Gasse 2"},
		},
		{
			name:  "JSON with charset parameter and trailing slash",
			req:   req{method: http.MethodPost, path: "/api/v1/users/", ctype: "application/json; charset=utf-8", body: jsonOf(valid(map[string]any{"email": "carol@example.ch"}))},
			check: map[string]any{"email": "carol@example.ch"},
		},
		{
			name:  "70 multibyte characters (140 bytes) fit a name",
			req:   jsonReq(http.MethodPost, "/api/v1/users", jsonOf(valid(map[string]any{"email": "d@example.ch", "first_name": strings.Repeat("é", 70)}))),
			check: map[string]any{"first_name": strings.Repeat("é", 70)},
		},
		{
			name:  "8 multibyte characters make a password",
			req:   jsonReq(http.MethodPost, "/api/v1/users", jsonOf(valid(map[string]any{"email": "e@example.ch", "password": "üüüüüüüü"}))),
			check: map[string]any{"email": "e@example.ch"},
		},
		{
			name: "unknown and read-only fields are ignored",
			req: jsonReq(http.MethodPost, "/api/v1/users", jsonOf(valid(map[string]any{"email": "f@example.ch", "id": 9999, "is_admin": true, "url": "http://evil/", "EMAIL": 3,
				"country": "FR"}))),
			check: map[string]any{"email": "f@example.ch", "country": "CH"}, // where the client is, not what it says
		},
		{
			name: "country is read-only in a form too",
			req: req{method: http.MethodPost, path: "/api/v1/users", ctype: "application/x-www-form-urlencoded",
				body: url.Values{"first_name": {"Gus"}, "last_name": {"Meier"}, "email": {"g@example.ch"}, "password": {"s3cret-pass"}, "country": {"US"}}.Encode()},
			check: map[string]any{"email": "g@example.ch", "country": "CH"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(tt.req)
			if res.status != http.StatusCreated {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			u := res.object(t)
			for k, want := range tt.check {
				if u[k] != want {
					t.Errorf("%s = %v, want %v", k, u[k], want)
				}
			}
			if u["id"] == float64(9999) {
				t.Errorf("client chose the id")
			}
			wantURL := e.v4.URL + idPath(u)
			if u["url"] != wantURL || res.header.Get("Location") != wantURL {
				t.Errorf("url = %v, Location = %q, want %q", u["url"], res.header.Get("Location"), wantURL)
			}
			if got := res.header.Get("ETag"); got != `"1"` {
				t.Errorf("ETag = %q, want \"1\"", got)
			}
			for _, k := range []string{"created_at", "updated_at"} {
				if s, _ := u[k].(string); !rfc3339UTC.MatchString(s) {
					t.Errorf("%s = %v, want RFC 3339 UTC", k, u[k])
				}
			}
			wantKeys := []string{"address", "country", "created_at", "email", "first_name", "id", "last_name", "updated_at", "url"}
			if len(u) != len(wantKeys) {
				t.Errorf("representation has keys %v, want exactly %v", keys(u), wantKeys)
			}
		})
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCreateRejects(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.create(jsonOf(valid(map[string]any{"email": "taken@example.ch"})))
	form := func(v url.Values) req {
		return req{method: http.MethodPost, path: "/api/v1/users", ctype: "application/x-www-form-urlencoded", body: v.Encode()}
	}
	post := func(fields map[string]any) req { return jsonReq(http.MethodPost, "/api/v1/users", jsonOf(fields)) }
	tests := []struct {
		name   string
		req    req
		status int
		want   string
	}{
		{"empty object: every required field", post(map[string]any{}), 400,
			`{"first_name":["This field is required."],"last_name":["This field is required."],"email":["This field is required."],"password":["This field is required."]}`},
		{"empty body counts as an empty object", jsonReq(http.MethodPost, "/api/v1/users", ""), 400,
			`{"first_name":["This field is required."],"last_name":["This field is required."],"email":["This field is required."],"password":["This field is required."]}`},
		{"blank after trimming", post(valid(map[string]any{"first_name": "   ", "last_name": ""})), 400,
			`{"first_name":["This field may not be blank."],"last_name":["This field may not be blank."]}`},
		{"invalid email", post(valid(map[string]any{"email": "Alice <alice@example.ch>"})), 400,
			`{"email":["Enter a valid email address."]}`},
		{"taken email, compared case-insensitively", post(valid(map[string]any{"email": "TAKEN@example.ch"})), 400,
			`{"email":["user with this email already exists."]}`},
		{"71 multibyte characters are too long for a name", post(valid(map[string]any{"last_name": strings.Repeat("é", 71)})), 400,
			`{"last_name":["Ensure this field has no more than 70 characters."]}`},
		{"7 multibyte characters (14 bytes) are too short for a password", post(valid(map[string]any{"password": "ööööööö"})), 400,
			`{"password":["Ensure this field has at least 8 characters."]}`},
		{"password over 128 characters", post(valid(map[string]any{"password": strings.Repeat("p", 129)})), 400,
			`{"password":["Ensure this field has no more than 128 characters."]}`},
		{"address over 300 characters", post(valid(map[string]any{"address": strings.Repeat("😀", 301)})), 400,
			`{"address":["Ensure this field has no more than 300 characters."]}`},
		{"email over 254 characters", post(valid(map[string]any{"email": strings.Repeat("a", 60) + "@" + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("e", 10) + ".ch"})), 400,
			`{"email":["Ensure this field has no more than 254 characters."]}`},
		{"NUL character", post(valid(map[string]any{"first_name": "Al\u0000ice"})), 400,
			`{"first_name":["Null characters are not allowed."]}`},
		{"number, bool, object and array are not strings", post(valid(map[string]any{"first_name": 42, "last_name": true, "email": map[string]any{"a": 1}, "address": []any{"x"}})), 400,
			`{"first_name":["Not a valid string."],"last_name":["Not a valid string."],"email":["Not a valid string."],"address":["Not a valid string."]}`},
		{"wrong type reported with the other fields' problems", post(map[string]any{"email": 5, "first_name": " "}), 400,
			`{"email":["Not a valid string."],"first_name":["This field may not be blank."],"last_name":["This field is required."],"password":["This field is required."]}`},
		{"one field missing", post(valid(map[string]any{"password": nil, "address": "x"})), 400,
			`{"password":["This field is required."]}`},
		{"explicit null", jsonReq(http.MethodPost, "/api/v1/users", `{"first_name":"A","last_name":"B","email":"n@example.ch","password":"s3cret-pass","address":null}`), 400,
			`{"address":["This field may not be null."]}`},
		{"top-level array", jsonReq(http.MethodPost, "/api/v1/users", `[{"first_name":"A"}]`), 400,
			`{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
		{"truncated JSON", jsonReq(http.MethodPost, "/api/v1/users", `{"first_name":`), 400,
			`{"detail":"JSON parse error - unexpected end of JSON input"}`},
		{"trailing garbage", jsonReq(http.MethodPost, "/api/v1/users", `{} {}`), 400,
			`{"detail":"JSON parse error - invalid character '{' after top-level value"}`},
		{"invalid UTF-8 in JSON", jsonReq(http.MethodPost, "/api/v1/users", "{\"first_name\":\"\xff\xfe\"}"), 400,
			`{"detail":"JSON parse error - invalid UTF-8 in request body"}`},
		{"form: missing fields", form(url.Values{"first_name": {"A"}}), 400,
			`{"last_name":["This field is required."],"email":["This field is required."],"password":["This field is required."]}`},
		{"form: invalid UTF-8", form(url.Values{"first_name": {"\xff"}, "last_name": {"B"}, "email": {"u@example.ch"}, "password": {"s3cret-pass"}}), 400,
			`{"first_name":["Not valid UTF-8 text."]}`},
		{"form: NUL character", form(url.Values{"first_name": {"a\x00"}, "last_name": {"B"}, "email": {"u@example.ch"}, "password": {"s3cret-pass"}}), 400,
			`{"first_name":["Null characters are not allowed."]}`},
		{"form: bad escape", req{method: http.MethodPost, path: "/api/v1/users", ctype: "application/x-www-form-urlencoded", body: "first_name=%zz"}, 400,
			`{"detail":"Form parse error - invalid URL escape \"%zz\""}`},
		{"plain text is unsupported", req{method: http.MethodPost, path: "/api/v1/users", ctype: "text/plain", body: "hello"}, 415,
			`{"detail":"Unsupported media type \"text/plain\" in request."}`},
		{"multipart is unsupported", req{method: http.MethodPost, path: "/api/v1/users", ctype: "multipart/form-data; boundary=x", body: "--x--"}, 415,
			`{"detail":"Unsupported media type \"multipart/form-data; boundary=x\" in request."}`},
		{"no content type is unsupported", req{method: http.MethodPost, path: "/api/v1/users", body: userBody("z@example.ch")}, 415,
			`{"detail":"Unsupported media type \"\" in request."}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertJSON(t, e.do(tt.req), tt.status, tt.want)
		})
	}
	// Nothing above was stored: only the first user exists.
	assertCount(t, e, 1)
}

func assertCount(t *testing.T, e *testEnv, want int) {
	t.Helper()
	res := e.do(req{method: http.MethodGet, path: "/api/v1/users"})
	if got := res.object(t)["count"]; got != float64(want) {
		t.Fatalf("count = %v, want %d", got, want)
	}
}
