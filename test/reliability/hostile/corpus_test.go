package hostile_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
)

// world is what the corpus may refer to: the server and the seeded users.
type world struct {
	base   string   // http://127.0.0.1:port
	ids    []int64  // seeded users, in id order
	emails []string // their emails
}

func (w world) user(i int) string { return fmt.Sprintf("/api/v1/users/%d", w.ids[i]) }

const usersPath = "/api/v1/users"

// fieldNames are the writable fields, in the order cases are generated.
var fieldNames = []string{"first_name", "last_name", "email", "password", "address"}

// validUser is a creation body that would succeed: cases break one thing
// in it, so a refusal that did not happen would show up as a new row.
var validUser = map[string]any{
	"first_name": "Eve", "last_name": "Hacker", "email": "eve@example.ch",
	"password": "correct-horse-9", "address": "Nowhere 1",
}

func with(kv ...any) map[string]any {
	m := maps.Clone(validUser)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func without(m map[string]any, keys ...string) map[string]any {
	m = maps.Clone(m)
	for _, k := range keys {
		delete(m, k)
	}
	return m
}

func encode(m map[string]any) string {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func form(m map[string]string) string {
	v := url.Values{}
	for k, s := range m {
		v.Set(k, s)
	}
	return v.Encode()
}

func post(body string) hostileCase {
	return hostileCase{req: jsonReq(http.MethodPost, usersPath, body)}
}

func jsonReq(method, path, body string) (r stackRequest) {
	r.Method, r.Path, r.Body, r.ContentType = method, path, []byte(body), "application/json"
	return r
}

// corpus is every hostile request, built against w.
func corpus(w world) []hostileCase {
	var cs []hostileCase
	add := func(name string, c hostileCase, status int, want check) {
		c.name, c.status, c.want = name, status, want
		cs = append(cs, c)
	}
	malformedJSON(w, add)
	wrongTypes(w, add)
	sizes(w, add)
	encodings(w, add)
	lengths(w, add)
	payloadsInFields(w, add)
	payloadsInFilters(w, add)
	paging(w, add)
	paths(w, add)
	methods(w, add)
	contentTypes(w, add)
	headerAbuse(w, add)
	forms(w, add)
	protocol(w, add)
	verifyRoute(w, add)
	return cs
}

type adder func(name string, c hostileCase, status int, want check)

func malformedJSON(_ world, add adder) {
	for _, tc := range []struct{ name, body, msg string }{
		{"whitespace only", " \n\t ", "unexpected end of JSON input"},
		{"lone open brace", "{", "unexpected end of JSON input"},
		{"truncated after key", `{"first_name":`, "unexpected end of JSON input"},
		{"truncated inside string", `{"first_name":"Ev`, "unexpected end of JSON input"},
		{"valid body cut in half", encode(validUser)[:40], "unexpected end of JSON input"},
		{"trailing comma", `{"first_name":"Eve",}`, "invalid character '}' looking for beginning of object key string"},
		{"single quotes", `{'first_name':'Eve'}`, `invalid character '\'' looking for beginning of object key string`},
		{"unquoted key", `{first_name:"Eve"}`, "invalid character 'f' looking for beginning of object key string"},
		{"garbage after object", encode(validUser) + " x", "invalid character 'x' after top-level value"},
		{"two objects", encode(validUser) + encode(validUser), "invalid character '{' after top-level value"},
		{"comment", `{/* hi */"first_name":"Eve"}`, "invalid character '/' looking for beginning of object key string"},
		{"NaN", `{"first_name":NaN}`, "invalid character 'N' looking for beginning of value"},
		{"hex number", `{"first_name":0x10}`, "invalid character 'x' after object key:value pair"},
		{"missing colon", `{"first_name" "Eve"}`, "invalid character '\"' after object key"},
	} {
		add("json/"+tc.name, post(tc.body), 400, parseError("JSON", tc.msg))
	}
	// encoding/json words these differently in Go 1.26 and 1.27 (shown as
	// 1.26 | 1.27); the fragments name the fault in both.
	for _, tc := range []struct {
		name, body string
		fragments  []string
	}{
		// 'ï' looking for beginning of value | '\ufeff' looking for beginning of value
		{"byte order mark", "\ufeff" + encode(validUser), []string{"invalid character '", "' looking for beginning of value"}},
		// invalid character 'q' in string escape code | invalid escape sequence `\q` in string
		{"bad escape", `{"first_name":"\q"}`, []string{"invalid ", "q", " in string", "escape"}},
		// invalid character '\t' in string literal | invalid character '\t' in string
		{"raw tab in string", "{\"first_name\":\"a\tb\"}", []string{`invalid character '\t' in string`}},
		{"raw NUL byte in string", "{\"first_name\":\"a\x00b\"}", []string{`invalid character '\x00' in string`}},
	} {
		add("json/"+tc.name, post(tc.body), 400, parseErrorSaying("JSON", tc.fragments...))
	}
	for _, tc := range []struct{ body, kind string }{
		{`[]`, "list"}, {`[` + encode(validUser) + `]`, "list"}, {`"` + "eve@example.ch" + `"`, "str"},
		{`42`, "number"}, {`true`, "bool"}, {`null`, "null"},
	} {
		add("json/top-level "+tc.kind+" "+tc.body[:min(len(tc.body), 8)], post(tc.body), 400,
			fields("non_field_errors", "Invalid data. Expected a dictionary, but got "+tc.kind+"."))
	}
	add("json/empty body", post(""), 400, requiredAll)
	add("json/empty object", post("{}"), 400, requiredAll)
	add("json/duplicate key, last one invalid", post(strings.Replace(encode(validUser), `"email":"eve@example.ch"`, `"email":"eve@example.ch","email":"not-an-email"`, 1)),
		400, fields("email", msgEmail))
}

// wrongTypes puts every non-string JSON type in every field of every write.
func wrongTypes(w world, add adder) {
	values := []struct {
		name string
		v    any
		msg  string
	}{
		{"integer", 42, msgNotString}, {"float", 1.5, msgNotString}, {"bool", true, msgNotString},
		{"object", map[string]any{"$gt": ""}, msgNotString}, {"array", []any{"Eve"}, msgNotString},
		{"null", nil, msgNotNull},
	}
	writes := []struct{ method, path string }{
		{http.MethodPost, usersPath}, {http.MethodPut, w.user(0)}, {http.MethodPatch, w.user(0)},
	}
	for _, wr := range writes {
		for _, f := range fieldNames {
			for _, v := range values {
				name := fmt.Sprintf("types/%s %s as %s", wr.method, f, v.name)
				add(name, hostileCase{req: jsonReq(wr.method, wr.path, encode(with(f, v.v)))}, 400, fields(f, v.msg))
			}
		}
	}
}

func sizes(w world, add adder) {
	const limit = 1 << 20
	pad := func(body string, total int) string { // JSON with trailing blanks up to total bytes
		return body + strings.Repeat(" ", total-len(body))
	}
	valid := encode(validUser)
	add("size/POST 1 MiB + 1 byte", post(pad(valid, limit+1)), 413, tooLarge)
	chunked := post(pad(valid, limit+1))
	chunked.req.Chunked = true
	add("size/POST 1 MiB + 1 byte chunked", chunked, 413, tooLarge)
	add("size/PATCH 2 MiB", hostileCase{req: jsonReq(http.MethodPatch, w.user(0), pad(`{"address":"x"}`, 2*limit))}, 413, tooLarge)
	big := hostileCase{req: jsonReq(http.MethodPut, w.user(0), pad(encode(with("address", "x")), limit+1))}
	big.req.ContentType = "application/x-www-form-urlencoded"
	big.req.Body = []byte(form(map[string]string{"first_name": "Eve", "last_name": "H", "email": "e@example.ch", "password": "correct-horse-9", "address": strings.Repeat("a", limit)}))
	add("size/PUT form 1 MiB + body", big, 413, tooLarge)
	add("size/exactly 1 MiB is read", post(pad(encode(without(validUser, "password")), limit)), 400, fields("password", msgRequired))
	add("size/60k unknown keys", post(manyKeys(60_000)), 400, requiredAll)
	add("size/500k-character first_name", post(encode(with("first_name", strings.Repeat("A", 500_000)))), 400, fields("first_name", msgMax(70)))
	add("size/500k-character password", post(encode(with("password", strings.Repeat("p", 500_000)))), 400, fields("password", msgMax(128)))

	deep := func(open, close string, n int) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	// Go 1.26 says "invalid character '[' exceeded max depth", 1.27 only
	// "exceeded max depth".
	tooDeep := parseErrorSaying("JSON", "exceeded max depth")
	add("nesting/10001 arrays", post(deep("[", "]", 10001)), 400, tooDeep)
	add("nesting/10001 objects", post(strings.Repeat(`{"a":`, 10001)+"1"+strings.Repeat("}", 10001)), 400, tooDeep)
	add("nesting/200k arrays", post(deep("[", "]", 200_000)), 400, tooDeep)
	// The wrong type is reported with the other fields' problems, all at once.
	add("nesting/9000 arrays in first_name", post(`{"first_name":`+deep("[", "]", 9000)+`}`), 400,
		fields("first_name", msgNotString, "email", msgRequired, "last_name", msgRequired, "password", msgRequired))
}

func manyKeys(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	b.WriteByte('}')
	return b.String()
}

func encodings(w world, add adder) {
	for _, tc := range []struct{ name, bytes string }{
		{"0xFF byte", "\xff"}, {"overlong slash", "\xc0\xaf"}, {"UTF-16 surrogate", "\xed\xa0\x80"},
		{"truncated sequence", "\xe2\x82"}, {"continuation byte alone", "\x80"},
	} {
		body := strings.Replace(encode(validUser), "Eve", "E"+tc.bytes+"ve", 1)
		add("utf8/JSON with "+tc.name, post(body), 400, parseError("JSON", "invalid UTF-8 in request body"))
	}
	add("utf8/invalid UTF-8 in a key", post(`{"first_`+"\xff"+`name":"Eve"}`), 400, parseError("JSON", "invalid UTF-8 in request body"))
	// A lone surrogate escape is valid JSON syntax; it decodes to U+FFFD.
	add("utf8/lone surrogate escape decodes", post(strings.Replace(encode(without(validUser, "password")), "Eve", `\ud800`, 1)), 400, fields("password", msgRequired))
	for _, f := range fieldNames {
		v := "Eve\x00il"
		if f == "email" {
			v = "eve\x00@example.ch"
		}
		add("nul/JSON \\u0000 in "+f, post(encode(with(f, v))), 400, fields(f, msgNUL))
		add("nul/PATCH \\u0000 in "+f, hostileCase{req: jsonReq(http.MethodPatch, w.user(1), encode(map[string]any{f: v}))}, 400, fields(f, msgNUL))
	}
	for _, f := range fieldNames {
		m := map[string]string{}
		for k, v := range validUser {
			m[k] = v.(string)
		}
		m[f] = "x\x00correct-horse"
		c := post(form(m))
		c.req.ContentType = "application/x-www-form-urlencoded"
		add("nul/form %00 in "+f, c, 400, fields(f, msgNUL))
		m[f] = "x\xffcorrect-horse"
		c = post(form(m))
		c.req.ContentType = "application/x-www-form-urlencoded"
		add("utf8/form %FF in "+f, c, 400, fields(f, msgBadUTF8))
	}
	// Stored text never holds NUL or invalid UTF-8, so such filters match nothing.
	for _, q := range []string{"first_name=%00", "last_name=a%00b", "email=%ff%fe", "search=%ff", "search=%00", "search=.ch%00x", "first_name=%c0%af"} {
		add("utf8/filter "+q, hostileCase{req: get(usersPath + "?" + q)}, 200, emptyPage)
	}
}

func lengths(_ world, add adder) {
	rep := strings.Repeat
	for _, tc := range []struct {
		name string
		body map[string]any
		want check
	}{
		{"first_name 71 two-byte characters", with("first_name", rep("é", 71)), fields("first_name", msgMax(70))},
		{"first_name 70 four-byte characters is fine", without(with("first_name", rep("😀", 70)), "password"), fields("password", msgRequired)},
		{"first_name 70 characters plus blanks is fine", without(with("first_name", "  "+rep("a", 70)+"\t "), "password"), fields("password", msgRequired)},
		{"first_name 71 combining characters", with("first_name", "e"+rep("\u0301", 70)), fields("first_name", msgMax(70))},
		{"first_name blanks only", with("first_name", " \t\n "), fields("first_name", msgBlank)},
		{"last_name 71 Cyrillic characters", with("last_name", rep("ж", 71)), fields("last_name", msgMax(70))},
		{"last_name empty", with("last_name", ""), fields("last_name", msgBlank)},
		{"email 255 characters", with("email", rep("a", 64)+"@"+rep("b", 63)+"."+rep("c", 63)+"."+rep("d", 59)+".ch"), fields("email", msgMax(254))},
		{"email with display name", with("email", "Eve <eve@example.ch>"), fields("email", msgEmail)},
		{"email without dotted domain", with("email", "eve@localhost"), fields("email", msgEmail)},
		{"email with two at signs", with("email", "eve@evil@example.ch"), fields("email", msgEmail)},
		{"email local part of 65", with("email", rep("a", 65)+"@example.ch"), fields("email", msgEmail)},
		{"password 129 umlauts", with("password", rep("ü", 129)), fields("password", msgMax(128))},
		{"password 7 umlauts", with("password", rep("ü", 7)), fields("password", msgMin(8))},
		{"password 8 umlauts is fine", without(with("password", rep("ü", 8)), "email"), fields("email", msgRequired)},
		{"password empty", with("password", ""), fields("password", msgBlank)},
		{"address 301 CJK characters", with("address", rep("字", 301)), fields("address", msgMax(300))},
		{"address 300 CJK characters is fine", without(with("address", rep("字", 300)), "password"), fields("password", msgRequired)},
		{"every field too long at once", with("first_name", rep("x", 71), "last_name", rep("x", 71), "email", rep("x", 255), "password", rep("x", 129), "address", rep("x", 301)),
			fields("first_name", msgMax(70), "last_name", msgMax(70), "email", msgMax(254), "password", msgMax(128), "address", msgMax(300))},
	} {
		add("length/"+tc.name, post(encode(tc.body)), 400, tc.want)
	}
}

// payloads are classic injection strings, each at least 8 characters (a
// valid password length) and at most 70 (a valid name length).
var payloads = []struct{ name, s string }{
	{"sql tautology", "' OR '1'='1' -- "},
	{"sql stacked drop", "x'); DROP TABLE users; --"},
	{"sql union", "' UNION SELECT password_hash FROM users --"},
	{"sql time based", "1' AND SLEEP(5) AND '1'='1"},
	{"sql comment", "admin'/*"},
	{"sql hex", "0x27206f7220313d31"},
	{"script tag", "<script>alert(1)</script>"},
	{"img onerror", `"><img src=x onerror=alert(1)>`},
	{"template", "{{7*7}}${7*7}<%= 7*7 %>"},
	{"jndi", "${jndi:ldap://127.0.0.1/a}"},
	{"path traversal", "../../../../etc/passwd"},
	{"crlf", "a\r\nSet-Cookie: x=1"},
	{"rtl override", "\u202egnp.exe-evil"},
	{"like wildcards", "%_%_%_%_"},
	{"nosql operator", `{"$ne": null}`},
}

// payloadsInFields puts every payload in every field of a creation that
// something else makes fail, so nothing is written.
func payloadsInFields(_ world, add adder) {
	for _, p := range payloads {
		for _, f := range fieldNames {
			var body map[string]any
			var want check
			switch f {
			case "email": // none of the payloads is an address
				body, want = with(f, p.s), fields("email", msgEmail)
			case "password":
				body, want = without(with(f, p.s), "email"), fields("email", msgRequired)
			default:
				body, want = without(with(f, p.s), "password"), fields("password", msgRequired)
			}
			add(fmt.Sprintf("inject/%s in %s", p.name, f), post(encode(body)), 400, want)
		}
	}
}

func get(path string) (r stackRequest) {
	r.Method, r.Path = http.MethodGet, path
	return r
}

func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return usersPath + "?" + v.Encode()
}

func payloadsInFilters(w world, add adder) {
	all := listing(3, "", w.ids...)
	for _, p := range payloads {
		for _, f := range []string{"first_name", "last_name", "email", "search"} {
			add(fmt.Sprintf("filter/%s in %s", p.name, f), hostileCase{req: get(query(f, p.s))}, 200, emptyPage)
		}
		add("filter/"+p.name+" in ordering", hostileCase{req: get(query("ordering", p.s))}, 200, all)
	}
	add("filter/search % alone matches nothing", hostileCase{req: get(query("search", "%"))}, 200, emptyPage)
	add("filter/search _ alone matches nothing", hostileCase{req: get(query("search", "_"))}, 200, emptyPage)
	add("filter/search @ matches every email (control)", hostileCase{req: get(query("search", "@"))}, 200, all)
	for _, v := range []string{"' OR 1=1", "1; DROP TABLE users", "0x10", "1e3", "99999999999999999999", "1.5", "٣", "--1", "1 OR 1=1"} {
		for _, f := range []string{"since_id", "max_id"} {
			add(fmt.Sprintf("filter/%s=%s", f, v), hostileCase{req: get(query(f, v))}, 400, fields(f, msgInteger))
		}
	}
	add("filter/since_id minimum int64", hostileCase{req: get(query("since_id", "-9223372036854775808"))}, 200, all)
	add("filter/max_id zero", hostileCase{req: get(query("max_id", "0"))}, 200, emptyPage)
	for _, v := range []string{"' OR 1=1 --", "2026-13-01T00:00:00Z", "yesterday", "1700000000", "2026-01-01", "2026-01-01T25:00:00Z"} {
		for _, f := range []string{"created_after", "created_before"} {
			add(fmt.Sprintf("filter/%s=%s", f, v), hostileCase{req: get(query(f, v))}, 400, fields(f, msgDateTime))
		}
	}
	add("filter/created_after year 9999", hostileCase{req: get(query("created_after", "9999-12-31T23:59:59Z"))}, 200, emptyPage)
	add("filter/created_before year 1", hostileCase{req: get(query("created_before", "0001-01-01T00:00:00Z"))}, 200, emptyPage)
	for _, v := range []string{"-password_hash", "email_ci", "(SELECT 1)", ",,,,-,--id", "id desc", "ID"} {
		add("filter/ordering "+v, hostileCase{req: get(query("ordering", v))}, 200, all)
	}
	add("filter/ordering -id (control)", hostileCase{req: get(query("ordering", "-id"))}, 200, listing(3, "", w.ids[2], w.ids[1], w.ids[0]))
	add("filter/every filter malformed at once", hostileCase{req: get(query("since_id", "x", "max_id", "y", "created_after", "z", "created_before", "w"))}, 400,
		fields("since_id", msgInteger, "max_id", msgInteger, "created_after", msgDateTime, "created_before", msgDateTime))
}

func paging(w world, add adder) {
	all := listing(3, "", w.ids...)
	for _, v := range []string{"0", "-1", "abc", "1.5", "99999999999999999999", "0x1", "' OR 1=1", "2", "21474837", "1e2", " 1"} {
		add("paging/page="+v, hostileCase{req: get(query("page", v))}, 404, invalidPage)
	}
	add("paging/page empty means first", hostileCase{req: get(usersPath + "?page=")}, 200, all)
	for _, v := range []string{"0", "-1", "abc", "1e9", "99999999999999999999", "' OR 1=1", "1000000", "-9223372036854775808"} {
		add("paging/page_size="+v, hostileCase{req: get(query("page_size", v))}, 200, all)
	}
	add("paging/page_size=1 links the next page", hostileCase{req: get(query("page_size", "1"))}, 200,
		listing(3, "/api/v1/users?page=2&page_size=1", w.ids[0]))
	// A query string that does not parse must not be served as if it
	// were empty (every filter silently dropped): like a form body, it is
	// a 400.
	add("query/semicolon separator", hostileCase{req: get(usersPath + "?since_id=1;2")}, 400, parseError("Query", "invalid semicolon separator in query"))
	add("query/bad escape", hostileCase{req: get(usersPath + "?since_id=%zz")}, 400, parseError("Query", `invalid URL escape "%zz"`))
	add("query/over 10000 parameters", hostileCase{req: get(query("email", w.emails[0]) + "&" + strings.Repeat("k&", 10000))}, 400,
		parseError("Query", "number of URL query parameters exceeded limit"))
	add("paging/1000 repeated page parameters", hostileCase{req: get(usersPath + "?" + strings.Repeat("page=1&", 1000))}, 200, all)
}

func paths(w world, add adder) {
	for _, p := range []string{
		"0", "-1", "9223372036854775807", "9223372036854775808", "99999999999999999999999999", "0x1", "1e3",
		"+1", "%201", "1.0", "abc", "%00", "..", "%2e%2e", "1;DROP%20TABLE%20users", "%D9%A3", "1%0A", "null", "undefined", "%27%20OR%201=1",
	} {
		add("path/GET id "+p, hostileCase{req: get(usersPath + "/" + p)}, 404, notFound)
	}
	for _, p := range []string{
		"/api/v1/users/../../etc/passwd", "/api/v1/users/..%2F..%2Fetc%2Fpasswd", "/api/v1/users/1/../2", "/api/v1/users//1",
		"/api/v1//users", "/API/V1/USERS", "/api/v1/users/1/2", "/api/v2/users", "/api/v1/users.json", "/%2e%2e/%2e%2e/etc/passwd",
		"/api/v1/users/1%2F2", "/.env", "/api/v1/users/1/password",
	} {
		add("path/GET "+p, hostileCase{req: get(p)}, 404, notFound)
	}
	patch := `{"address":"changed"}`
	for _, p := range []string{"0", "-1", "abc", "9223372036854775808", "..%2F1"} {
		add("path/PATCH id "+p, hostileCase{req: jsonReq(http.MethodPatch, usersPath+"/"+p, patch)}, 404, notFound)
		add("path/PUT id "+p, hostileCase{req: jsonReq(http.MethodPut, usersPath+"/"+p, encode(validUser))}, 404, notFound)
		add("path/DELETE id "+p, hostileCase{req: stackRequest{Method: http.MethodDelete, Path: usersPath + "/" + p}}, 404, notFound)
	}
	add("path/DELETE max int64 (absent)", hostileCase{req: stackRequest{Method: http.MethodDelete, Path: usersPath + "/9223372036854775807"}}, 404, notFound)
	add("path/GET leading zeros name the user (control)", hostileCase{req: get(fmt.Sprintf("%s/%03d", usersPath, w.ids[0]))}, 200, userAt(w.base, w.ids[0], w.emails[0]))
}

func methods(w world, add adder) {
	for _, m := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace, "FOO", "get", "PROPFIND"} {
		add("method/"+m+" on the collection", hostileCase{req: stackRequest{Method: m, Path: usersPath}}, 405, notAllowed(m, "GET, HEAD, POST"))
	}
	// HEAD is GET without the body (control).
	add("method/HEAD on the collection", hostileCase{req: stackRequest{Method: http.MethodHead, Path: usersPath}}, 200, noBody())
	for _, m := range []string{http.MethodPost, http.MethodOptions, "MOVE"} {
		add("method/"+m+" on a user", hostileCase{req: jsonReq(m, w.user(0), encode(validUser))}, 405, notAllowed(m, "GET, HEAD, PUT, PATCH, DELETE"))
	}
	add("method/POST /healthz", hostileCase{req: jsonReq(http.MethodPost, "/healthz", "{}")}, 405, notAllowed(http.MethodPost, "GET, HEAD"))
	add("method/DELETE /readyz", hostileCase{req: stackRequest{Method: http.MethodDelete, Path: "/readyz"}}, 405, notAllowed(http.MethodDelete, "GET, HEAD"))
}

func contentTypes(w world, add adder) {
	valid := encode(validUser)
	for _, ct := range []string{
		"", "text/plain", "text/html", "application/xml", "multipart/form-data; boundary=x", "application/jsonp",
		"application/json-patch+json", "application/merge-patch+json", "application/json; =broken", "application/json, text/plain",
		"' OR 1=1 --", "<script>alert(1)</script>", "application/" + strings.Repeat("x", 8000),
	} {
		c := post(valid)
		c.req.ContentType = ct
		name := ct
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		add(fmt.Sprintf("ctype/POST %q", name), c, 415, unsupported(ct))
	}
	patch := hostileCase{req: jsonReq(http.MethodPatch, w.user(0), `{"address":"changed"}`)}
	patch.req.ContentType = "text/plain"
	add("ctype/PATCH text/plain", patch, 415, unsupported("text/plain"))
	put := hostileCase{req: jsonReq(http.MethodPut, w.user(0), encode(validUser))}
	put.req.ContentType = ""
	add("ctype/PUT without Content-Type", put, 415, unsupported(""))

	noPassword := encode(without(validUser, "password"))
	for _, ct := range []string{"application/json; charset=utf-16", "APPLICATION/JSON", "application/json;charset=\"utf-8\";q=1"} {
		c := post(noPassword)
		c.req.ContentType = ct
		add(fmt.Sprintf("ctype/POST %q is JSON", ct), c, 400, fields("password", msgRequired))
	}
	formHeader := post(valid)
	formHeader.req.ContentType = "application/x-www-form-urlencoded"
	add("ctype/JSON body labelled as a form", formHeader, 400, requiredAll)
	twice := post(noPassword)
	twice.req.ContentType = ""
	twice.req.Header = header("Content-Type", "application/json", "Content-Type", "text/plain")
	add("ctype/two Content-Type headers: the first counts", twice, 400, fields("password", msgRequired))
}

func headerAbuse(w world, add adder) {
	all := listing(3, "", w.ids...)
	list := func(h http.Header) hostileCase {
		return hostileCase{req: stackRequest{Method: http.MethodGet, Path: usersPath, Header: h}}
	}
	add("header/50 KiB X-Forwarded-For", list(header("X-Forwarded-For", strings.Repeat("1.2.3.4, ", 5000))), 200, all)
	repeated := func(n int) http.Header {
		h := http.Header{}
		for i := range n {
			h.Add("X-Forwarded-For", fmt.Sprintf("10.0.%d.%d", i/250, i%250))
		}
		return h
	}
	// Go 1.27's net/http refuses more than Server.MaxHeaderValueCount
	// (default 500) header lines itself with 431; Go 1.26 hands them all to
	// the service. Under that limit, the service ignores them either way.
	add("header/400 X-Forwarded-For headers", list(repeated(400)), 200, all)
	many := list(repeated(1000))
	many.otherwise = &outcome{status: 431, want: plain("431 Request Header Fields Too Large"), byNetHTTP: true}
	add("header/1000 X-Forwarded-For headers", many, 200, all)
	add("header/garbage X-Forwarded-For", list(header("X-Forwarded-For", "<script>, ' OR 1=1, 999.999.999.999, [::1]:x")), 200, all)
	tooBig := list(header("X-Padding", strings.Repeat("a", 100<<10)))
	tooBig.byNetHTTP = true
	add("header/100 KiB header", tooBig, 431, plain("431 Request Header Fields Too Large"))
	tooBig = list(header("X-Forwarded-For", strings.Repeat("9.9.9.9,", 100<<10/8)))
	tooBig.byNetHTTP = true
	add("header/100 KiB X-Forwarded-For", tooBig, 431, plain("431 Request Header Fields Too Large"))
	const sentID = "evil-<script>-id"
	add("header/X-Request-ID from an untrusted peer is replaced", list(header("X-Request-ID", sentID)), 200, and(all, headerNot("X-Request-ID", sentID)))
	spoof := hostileCase{req: get(w.user(0))}
	spoof.req.Header = header("X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https")
	add("header/X-Forwarded-Host from an untrusted peer is ignored", spoof, 200, userAt(w.base, w.ids[0], w.emails[0]))

	for _, tc := range []struct{ name, value string }{
		{"garbage", "garbage"}, {"weak tag", `W/"1"`}, {"overflowing version", `"99999999999999999999"`},
		{"negative version", `"-1"`}, {"version zero", `"0"`}, {"empty", ""}, {"unquoted version", "1"},
		{"sql", `"1' OR '1'='1"`}, {"1000 stale tags", staleTags(1000)}, {"hex version", `"0x1"`}, {"spaced version", `" 1"`},
	} {
		patch := hostileCase{req: jsonReq(http.MethodPatch, w.user(0), `{"address":"changed"}`)}
		patch.req.Header = header("If-Match", tc.value)
		add("if-match/PATCH "+tc.name, patch, 412, failedPre)
	}
	del := hostileCase{req: stackRequest{Method: http.MethodDelete, Path: w.user(0), Header: header("If-Match", "garbage")}}
	add("if-match/DELETE garbage", del, 412, failedPre)
	put := hostileCase{req: jsonReq(http.MethodPut, w.user(0), encode(with("email", "other@example.ch")))}
	put.req.Header = header("If-Match", `"2"`)
	add("if-match/PUT stale version", put, 412, failedPre)
	invalidFirst := hostileCase{req: jsonReq(http.MethodPatch, w.user(0), `{"email":"nope"}`)}
	invalidFirst.req.Header = header("If-Match", `"1"`)
	add("if-match/validation comes before the precondition", invalidFirst, 400, fields("email", msgEmail))
}

func staleTags(n int) string {
	tags := make([]string, n)
	for i := range tags {
		tags[i] = fmt.Sprintf(`"%d"`, i+2)
	}
	return strings.Join(tags, ", ")
}

func forms(_ world, add adder) {
	formCase := func(body string) hostileCase {
		c := post(body)
		c.req.ContentType = "application/x-www-form-urlencoded"
		return c
	}
	valid := form(map[string]string{"first_name": "Eve", "last_name": "Hacker", "email": "eve@example.ch", "password": "correct-horse-9"})
	add("form/bad escape", formCase(valid+"&address=%zz"), 400, parseError("Form", `invalid URL escape "%zz"`))
	add("form/semicolon separator", formCase(valid+";address=x"), 400, parseError("Form", "invalid semicolon separator in query"))
	add("form/repeated field: the last one counts", formCase("first_name="+strings.Repeat("x", 71)+"&first_name=Eve&last_name=H&email=eve@example.ch"), 400, fields("password", msgRequired))
	add("form/bracket syntax is not a field", formCase("first_name[]=Eve&last_name[]=H&email[]=e@example.ch&password[]=correct-horse-9"), 400, requiredAll)
	add("form/one thousand keys", formCase(strings.Repeat("k=v&", 1000)), 400, requiredAll)
	add("form/twenty thousand keys", formCase(strings.Repeat("k=v&", 20000)), 400, parseError("Form", "number of URL query parameters exceeded limit"))
	add("form/email with display name", formCase(strings.Replace(valid, "eve%40example.ch", "Eve+%3Ceve%40example.ch%3E", 1)), 400, fields("email", msgEmail))
}

// protocol abuse that only a raw socket can send; net/http refuses it
// before the service sees it, with its own plain-text answers.
func protocol(_ world, add adder) {
	const host = "Host: 127.0.0.1\r\n"
	for _, tc := range []struct {
		name, raw string
		want      check
	}{
		{"negative Content-Length", "POST /api/v1/users HTTP/1.1\r\n" + host + "Content-Type: application/json\r\nContent-Length: -1\r\n\r\n", plain("400 Bad Request")},
		{"two different Content-Lengths", "POST /api/v1/users HTTP/1.1\r\n" + host + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", plain("400 Bad Request")},
		{"malformed Host", "GET /api/v1/users HTTP/1.1\r\nHost: evil/../x\r\n\r\n", plain("400 Bad Request: malformed Host header")},
		{"two Host headers", "GET /api/v1/users HTTP/1.1\r\n" + host + host + "\r\n", plain("400 Bad Request")},
		{"header without colon", "GET /api/v1/users HTTP/1.1\r\n" + host + "X-Broken\r\n\r\n", plain("400 Bad Request")},
		{"NUL in a header value", "GET /api/v1/users HTTP/1.1\r\n" + host + "X-Evil: a\x00b\r\n\r\n", plain("400 Bad Request")},
		{"space before colon", "GET /api/v1/users HTTP/1.1\r\n" + host + "X-Evil : a\r\n\r\n", plain("400 Bad Request: invalid header name")},
		{"no HTTP version", "GET /api/v1/users\r\n" + host + "\r\n", plain("400 Bad Request")},
		{"HTTP/1.1 without Host", "GET /api/v1/users HTTP/1.1\r\n\r\n", plain("400 Bad Request: missing required Host header")},
	} {
		add("protocol/"+tc.name, hostileCase{raw: tc.raw, outcome: outcome{byNetHTTP: true}}, 400, tc.want)
	}
}
