package httpapi

import (
	"net/http"
	"testing"
)

func TestGetUser(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("get@example.ch"))
	tests := []struct {
		name   string
		path   string
		status int
	}{
		{"by id", idPath(u), 200},
		{"trailing slash, no redirect", idPath(u) + "/", 200},
		{"absent", "/api/v1/users/999", 404},
		{"non-numeric", "/api/v1/users/abc", 404},
		{"overflowing int64", "/api/v1/users/99999999999999999999", 404},
		{"zero", "/api/v1/users/0", 404},
		{"negative", "/api/v1/users/-1", 404},
		{"signed", "/api/v1/users/+" + jsonNumber(u["id"]), 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(req{method: http.MethodGet, path: tt.path})
			if tt.status == http.StatusNotFound {
				assertJSON(t, res, 404, `{"detail":"Not found."}`)
				return
			}
			if res.status != tt.status {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			got := res.object(t)
			for _, k := range []string{"id", "url", "email", "first_name", "last_name", "address", "country", "created_at", "updated_at"} {
				if got[k] != u[k] {
					t.Errorf("%s = %v, want %v as created", k, got[k], u[k])
				}
			}
			if et := res.header.Get("ETag"); et != `"1"` {
				t.Errorf("ETag = %q", et)
			}
		})
	}
}

// TestUpdateFlow walks a user through PUT, PATCH and DELETE with and
// without If-Match, checking versions, ETags and 412s.
func TestUpdateFlow(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("flow@example.ch"))
	other := e.create(userBody("other@example.ch"))
	path := idPath(u)
	steps := []struct {
		name    string
		method  string
		path    string
		body    string
		ifMatch string
		status  int
		etag    string         // expected ETag on success
		fields  map[string]any // expected representation fields
		want    string         // expected error body
	}{
		{name: "PUT replaces every field, address omitted means empty", method: "PUT", path: path,
			body:   `{"first_name":"Bea","last_name":"Keller","email":"Bea@Example.ch","password":"n3w-secret!","country":"US"}`,
			status: 200, etag: `"2"`, fields: map[string]any{"first_name": "Bea", "last_name": "Keller", "email": "bea@example.ch", "address": "", "country": "CH"}},
		{name: "PUT with a missing required field", method: "PUT", path: path, body: `{"first_name":"Bea"}`, status: 400,
			want: `{"last_name":["This field is required."],"email":["This field is required."],"password":["This field is required."]}`},
		{name: "PUT to another user's email", method: "PUT", path: path,
			body:   `{"first_name":"Bea","last_name":"Keller","email":"OTHER@example.ch","password":"n3w-secret!"}`,
			status: 400, want: `{"email":["user with this email already exists."]}`},
		{name: "PATCH with a stale If-Match", method: "PATCH", path: path, body: `{"address":"Weg 3"}`, ifMatch: `"1"`, status: 412,
			want: `{"detail":"Precondition failed."}`},
		{name: "PATCH with a weak tag fails", method: "PATCH", path: path, body: `{"address":"Weg 3"}`, ifMatch: `W/"2"`, status: 412,
			want: `{"detail":"Precondition failed."}`},
		{name: "PATCH with the current If-Match", method: "PATCH", path: path + "/", body: `{"address":"Weg 3"}`, ifMatch: `"2"`,
			status: 200, etag: `"3"`, fields: map[string]any{"address": "Weg 3", "first_name": "Bea"}},
		{name: "PATCH that changes nothing keeps the version", method: "PATCH", path: path, body: `{"address":"Weg 3"}`,
			status: 200, etag: `"3"`, fields: map[string]any{"address": "Weg 3"}},
		{name: "PATCH of the read-only country alone changes nothing", method: "PATCH", path: path, body: `{"country":"DE","id":1,"url":"x"}`,
			status: 200, etag: `"3"`, fields: map[string]any{"address": "Weg 3", "country": "CH"}},
		// Never compared with the stored hash, so the ETag says nothing about it.
		{name: "PATCH with the password already set is a change", method: "PATCH", path: path, body: `{"address":"Weg 3","password":"n3w-secret!"}`,
			status: 200, etag: `"4"`, fields: map[string]any{"address": "Weg 3"}},
		{name: "PATCH validates each present field", method: "PATCH", path: path, body: `{"first_name":"","email":"x"}`, status: 400,
			want: `{"first_name":["This field may not be blank."],"email":["Enter a valid email address."]}`},
		{name: "PATCH with a non-string", method: "PATCH", path: path, body: `{"last_name":12}`, status: 400,
			want: `{"last_name":["Not a valid string."]}`},
		{name: "PATCH with null", method: "PATCH", path: path, body: `{"last_name":null}`, status: 400,
			want: `{"last_name":["This field may not be null."]}`},
		{name: "PATCH form encoded", method: "PATCH", path: path, body: "last_name=Keller-Frei", ifMatch: "*",
			status: 200, etag: `"5"`, fields: map[string]any{"last_name": "Keller-Frei"}},
		{name: "PATCH a new password changes the version", method: "PATCH", path: path, body: `{"password":"другой-пароль"}`,
			status: 200, etag: `"6"`},
		{name: "PATCH with malformed JSON", method: "PATCH", path: path, body: `{"last_name":"x",}`, status: 400,
			want: `{"detail":"JSON parse error - invalid character '}' looking for beginning of object key string"}`},
		{name: "PUT to an absent user", method: "PUT", path: "/api/v1/users/999",
			body: `{"first_name":"A","last_name":"B","email":"absent@example.ch","password":"s3cret-pass"}`, status: 404,
			want: `{"detail":"Not found."}`},
		{name: "PATCH a non-numeric id", method: "PATCH", path: "/api/v1/users/x", body: `{}`, status: 404, want: `{"detail":"Not found."}`},
		{name: "DELETE with a stale If-Match", method: "DELETE", path: path, ifMatch: `"5"`, status: 412, want: `{"detail":"Precondition failed."}`},
		{name: "DELETE with one of several tags", method: "DELETE", path: path, ifMatch: `"1", "6"`, status: 204},
		{name: "DELETE again", method: "DELETE", path: path, status: 404, want: `{"detail":"Not found."}`},
		{name: "GET after DELETE", method: "GET", path: path, status: 404, want: `{"detail":"Not found."}`},
		{name: "DELETE with trailing slash", method: "DELETE", path: idPath(other) + "/", ifMatch: "*", status: 204},
	}
	for _, s := range steps {
		r := req{method: s.method, path: s.path, body: s.body}
		if s.body != "" {
			r.ctype = "application/json"
			if s.body[0] != '{' {
				r.ctype = "application/x-www-form-urlencoded"
			}
		}
		if s.ifMatch != "" {
			r.headers = map[string]string{"If-Match": s.ifMatch}
		}
		res := e.do(r)
		if s.want != "" {
			assertJSONStep(t, s.name, res, s.status, s.want)
			continue
		}
		if res.status != s.status {
			t.Fatalf("%s: status %d, want %d: %s", s.name, res.status, s.status, res.body)
		}
		if s.status == http.StatusNoContent {
			continue
		}
		if got := res.header.Get("ETag"); got != s.etag {
			t.Errorf("%s: ETag = %q, want %q", s.name, got, s.etag)
		}
		got := res.object(t)
		for k, want := range s.fields {
			if got[k] != want {
				t.Errorf("%s: %s = %v, want %v", s.name, k, got[k], want)
			}
		}
		if got["id"] != u["id"] || got["created_at"] != u["created_at"] {
			t.Errorf("%s: id or created_at changed: %v", s.name, got)
		}
	}
}

func assertJSONStep(t *testing.T, step string, res response, status int, want string) {
	t.Helper()
	t.Run(step, func(t *testing.T) { assertJSON(t, res, status, want) })
}

func TestWriteMediaTypes(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("media@example.ch"))
	for _, method := range []string{"PUT", "PATCH"} {
		t.Run(method+" text/plain", func(t *testing.T) {
			res := e.do(req{method: method, path: idPath(u), ctype: "text/plain", body: "x"})
			assertJSON(t, res, 415, `{"detail":"Unsupported media type \"text/plain\" in request."}`)
		})
	}
}

// A client holding the current version gets 304 without a body; any
// change makes its tag stale.
func TestGetWithIfNoneMatch(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("conditional@example.ch"))
	tests := []struct {
		name        string
		ifNoneMatch string
		status      int
	}{
		{"current tag", `"1"`, 304},
		{"weak form of the current tag", `W/"1"`, 304},
		{"list holding the current tag", `"7", "1"`, 304},
		{"any version", `*`, 304},
		{"another version", `"2"`, 200},
		{"not one of our tags", `"abc"`, 200},
		{"unquoted", `1`, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(req{method: http.MethodGet, path: idPath(u), headers: map[string]string{"If-None-Match": tt.ifNoneMatch}})
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if et := res.header.Get("ETag"); et != `"1"` {
				t.Errorf("ETag = %q, want \"1\"", et)
			}
			if tt.status == 304 && len(res.body) != 0 {
				t.Errorf("304 with a body: %q", res.body)
			}
			if tt.status == 200 && res.object(t)["email"] != "conditional@example.ch" {
				t.Errorf("200 without the user: %s", res.body)
			}
		})
	}
	t.Run("stale after a change", func(t *testing.T) {
		if res := e.do(jsonReq(http.MethodPatch, idPath(u), `{"address":"Neugasse 2"}`)); res.status != 200 {
			t.Fatalf("PATCH: %d %s", res.status, res.body)
		}
		res := e.do(req{method: http.MethodGet, path: idPath(u), headers: map[string]string{"If-None-Match": `"1"`}})
		if res.status != 200 || res.header.Get("ETag") != `"2"` {
			t.Fatalf("status %d, ETag %q; want 200 with the new version", res.status, res.header.Get("ETag"))
		}
	})
	t.Run("absent user is still 404", func(t *testing.T) {
		res := e.do(req{method: http.MethodGet, path: "/api/v1/users/999", headers: map[string]string{"If-None-Match": `*`}})
		assertJSON(t, res, 404, `{"detail":"Not found."}`)
	})
}

// HEAD answers what GET answers, without the body.
func TestHead(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.create(userBody("head@example.ch"))
	for _, tt := range []struct {
		name, path string
		status     int
	}{
		{"a user", idPath(u), 200},
		{"a user, trailing slash", idPath(u) + "/", 200},
		{"the collection", "/api/v1/users?last_name=Muster", 200},
		{"an absent user", "/api/v1/users/999", 404},
		{"an invalid filter", "/api/v1/users?since_id=x", 400},
		{"a page past the end", "/api/v1/users?page=99", 404},
		{"the health probe", "/healthz", 200},
		{"the readiness probe", "/readyz", 200},
		{"the index", "/", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			get := e.do(req{method: http.MethodGet, path: tt.path})
			head := e.do(req{method: http.MethodHead, path: tt.path})
			if get.status != tt.status || head.status != tt.status {
				t.Fatalf("GET %d, HEAD %d; want %d", get.status, head.status, tt.status)
			}
			if len(head.body) != 0 {
				t.Errorf("HEAD answered a body: %q", head.body)
			}
			for _, h := range []string{"Content-Type", "ETag", "Content-Length"} {
				if head.header.Get(h) != get.header.Get(h) {
					t.Errorf("%s: HEAD %q, GET %q", h, head.header.Get(h), get.header.Get(h))
				}
			}
		})
	}
}
