package e2e

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestUsersAPI drives one service (behind a trusted proxy on 127.0.0.1)
// through every operation, its refusals and the country policy, then reads
// its topic: exactly the events of the successful mutations, to the
// contract, in order per user.
func TestUsersAPI(t *testing.T) {
	s := startService(t, serviceOptions{
		geoStatic:      "127.0.0.0/8=CH,::1/128=CH,203.0.113.0/24=FR,198.51.100.0/24=CH",
		trustedProxies: "127.0.0.1/32",
	})
	t.Run("lifecycle", func(t *testing.T) { testLifecycle(t, s) })
	t.Run("validation", func(t *testing.T) { testValidation(t, s) })
	t.Run("routing and media types", func(t *testing.T) { testRouting(t, s) })
	t.Run("country policy behind a trusted proxy", func(t *testing.T) { testTrustedProxy(t, s) })
	t.Run("passwords are argon2id hashes", func(t *testing.T) {
		hashes := s.storedHashes(t)
		if len(hashes) == 0 {
			t.Fatal("no stored user")
		}
		for _, h := range hashes {
			if !strings.HasPrefix(h, "$argon2id$v=19$") {
				t.Errorf("stored password %.12q... is not an argon2id PHC string", h)
			}
		}
	})
	t.Run("events", func(t *testing.T) { s.checkEvents(t) })
}

func testLifecycle(t *testing.T, s *service) {
	pw1, pw2 := s.password("ada"), s.password("ada-new")

	// Create (JSON): trimmed names, trimmed lower-cased email.
	ada := s.create(t, map[string]string{
		"first_name": "  Ada ", "last_name": "Lovelace", "email": " Ada.Lovelace@Example.CH ",
		"password": pw1, "address": "Bahnhofstrasse 1, 8001 Zürich",
	})
	if ada.FirstName != "Ada" || ada.Email != "ada.lovelace@example.ch" || ada.Address != "Bahnhofstrasse 1, 8001 Zürich" {
		t.Fatalf("created %+v: names not trimmed or email not normalised", ada)
	}

	// Create (form-encoded, what curl -d sends): address defaults to "".
	form := url.Values{"first_name": {"Grace"}, "last_name": {"Hopper"}, "email": {"grace@example.ch"}, "password": {s.password("grace")}}
	grace := s.created(t, s.do(t, rawCall(http.MethodPost, "/api/v1/users", mediaForm, form.Encode())))
	if grace.FirstName != "Grace" || grace.Address != "" {
		t.Fatalf("form creation gave %+v", grace)
	}

	// Get, with and without the trailing slash.
	for _, path := range []string{userPath(ada.ID), userPath(ada.ID) + "/"} {
		r := s.do(t, get(path))
		expectStatus(t, r, http.StatusOK)
		if got := s.asUser(t, r); got != ada || r.header.Get("ETag") != `"1"` {
			t.Fatalf("GET %s = %+v ETag %s, want %+v ETag \"1\"", path, got, r.header.Get("ETag"), ada)
		}
	}

	// PATCH with a matching If-Match.
	ada = s.updated(t, s.do(t, jsonCall(http.MethodPatch, userPath(ada.ID), map[string]string{"address": "NYC"}).with("If-Match", `"1"`)),
		`"2"`, "address")
	if ada.Address != "NYC" {
		t.Fatalf("patched address %q", ada.Address)
	}

	// PATCH with a stale If-Match: 412, nothing changes.
	r := s.do(t, jsonCall(http.MethodPatch, userPath(ada.ID), map[string]string{"address": "LA"}).with("If-Match", `"1"`))
	expectJSON(t, r, http.StatusPreconditionFailed, `{"detail": "Precondition failed."}`)
	s.unchanged(t, ada, `"2"`)

	// PATCHes that change nothing: 200, same version, no event.
	for _, body := range []map[string]string{
		{"first_name": "Ada", "address": "NYC"},
		{"email": "ADA.LOVELACE@example.ch "},
		{},
	} {
		r := s.do(t, jsonCall(http.MethodPatch, userPath(ada.ID), body))
		expectStatus(t, r, http.StatusOK)
		if got := s.asUser(t, r); got != ada || r.header.Get("ETag") != `"2"` {
			t.Fatalf("no-op PATCH %v answered %+v ETag %s, want %+v ETag \"2\"", keysOf(body), got, r.header.Get("ETag"), ada)
		}
	}

	// The stored password sent again is a change all the same: it is never
	// compared with the stored hash (that comparison was a guessing oracle).
	ada = s.updated(t, s.do(t, jsonCall(http.MethodPatch, userPath(ada.ID), map[string]string{"password": pw1})),
		`"3"`, "password")

	// PATCH of the password (listed in changed, without a value) and a name.
	ada = s.updated(t, s.do(t, jsonCall(http.MethodPatch, userPath(ada.ID), map[string]string{"password": pw2, "last_name": "Byron"})),
		`"4"`, "last_name", "password")

	// PUT: full replacement, the omitted address becomes "".
	put := map[string]string{"first_name": "Augusta", "last_name": "King", "email": "Augusta.King@Example.ch", "password": pw2}
	ada = s.updated(t, s.do(t, jsonCall(http.MethodPut, userPath(ada.ID), put).with("If-Match", `"4"`)),
		`"5"`, "address", "email", "first_name", "last_name", "password")
	if ada.Address != "" || ada.Email != "augusta.king@example.ch" {
		t.Fatalf("PUT gave %+v", ada)
	}
	// The same PUT again replaces the password only.
	ada = s.updated(t, s.do(t, jsonCall(http.MethodPut, userPath(ada.ID), put)), `"6"`, "password")

	// DELETE with a stale If-Match, then with the current one.
	expectJSON(t, s.do(t, call{method: http.MethodDelete, path: userPath(ada.ID)}.with("If-Match", `"3"`)),
		http.StatusPreconditionFailed, `{"detail": "Precondition failed."}`)
	s.unchanged(t, ada, `"6"`)
	r = s.do(t, call{method: http.MethodDelete, path: userPath(ada.ID)}.with("If-Match", `"6"`))
	expectStatus(t, r, http.StatusNoContent)
	if len(r.body) != 0 {
		t.Fatalf("DELETE answered a body: %q", r.body)
	}
	s.expect("delete", ada)

	// Gone: every operation on it is 404, and so is an id that is no number.
	for _, c := range []call{
		get(userPath(ada.ID)),
		{method: http.MethodDelete, path: userPath(ada.ID)},
		jsonCall(http.MethodPatch, userPath(ada.ID), map[string]string{"address": "x"}),
		jsonCall(http.MethodPut, userPath(ada.ID), put),
		get("/api/v1/users/abc"),
	} {
		expectJSON(t, s.do(t, c), http.StatusNotFound, `{"detail": "Not found."}`)
	}

	// Grace is untouched by all of this.
	s.unchanged(t, grace, `"1"`)
}

// updated checks a 200 answer to a change and records its update event.
func (s *service) updated(t *testing.T, r reply, etag string, changed ...string) user {
	t.Helper()
	expectStatus(t, r, http.StatusOK)
	u := s.asUser(t, r)
	if got := r.header.Get("ETag"); got != etag {
		t.Fatalf("ETag %s after the change, want %s", got, etag)
	}
	if u.UpdatedAt == u.CreatedAt {
		t.Fatalf("updated_at did not move: %s", u.UpdatedAt)
	}
	s.expect("update", u, changed...)
	return u
}

// unchanged checks that GET answers want with etag.
func (s *service) unchanged(t *testing.T, want user, etag string) {
	t.Helper()
	r := s.do(t, get(userPath(want.ID)))
	expectStatus(t, r, http.StatusOK)
	if got := s.asUser(t, r); got != want || r.header.Get("ETag") != etag {
		t.Fatalf("user is %+v ETag %s, want %+v ETag %s", got, r.header.Get("ETag"), want, etag)
	}
}

func keysOf(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func testValidation(t *testing.T, s *service) {
	taken := s.create(t, s.input("Taken", "Owner", "taken@example.ch"))
	other := s.create(t, s.input("Other", "Person", "other@example.ch"))
	// Lengths count characters: 70 two-byte letters fit a name, on MariaDB too.
	long := s.input(strings.Repeat("ü", 70), "Umlaut", "umlaut@example.ch")
	long["address"] = strings.Repeat("€", 300)
	if u := s.create(t, long); u.FirstName != long["first_name"] || u.Address != long["address"] {
		t.Fatalf("multi-byte text came back as %q / %q", u.FirstName, u.Address)
	}

	valid := func(changes map[string]any) map[string]any {
		in := map[string]any{"first_name": "Val", "last_name": "Id", "email": "valid@example.ch", "password": s.password("valid")}
		for k, v := range changes {
			if v == nil {
				delete(in, k)
			} else {
				in[k] = v
			}
		}
		return in
	}
	cases := []struct {
		name   string
		call   call
		status int
		want   string
	}{
		{"every required field missing", jsonCall(http.MethodPost, "/api/v1/users", map[string]string{}), 400,
			`{"first_name": ["This field is required."], "last_name": ["This field is required."],
			  "email": ["This field is required."], "password": ["This field is required."]}`},
		{"blank names, bad email, short password",
			jsonCall(http.MethodPost, "/api/v1/users", valid(map[string]any{"first_name": "   ", "last_name": "", "email": "not-an-email", "password": "short"})), 400,
			`{"first_name": ["This field may not be blank."], "last_name": ["This field may not be blank."],
			  "email": ["Enter a valid email address."], "password": ["Ensure this field has at least 8 characters."]}`},
		{"too long", jsonCall(http.MethodPost, "/api/v1/users", valid(map[string]any{
			"first_name": strings.Repeat("ü", 71), "address": strings.Repeat("a", 301), "password": strings.Repeat("p", 129)})), 400,
			`{"first_name": ["Ensure this field has no more than 70 characters."],
			  "address": ["Ensure this field has no more than 300 characters."],
			  "password": ["Ensure this field has no more than 128 characters."]}`},
		{"display-name email", jsonCall(http.MethodPost, "/api/v1/users", valid(map[string]any{"email": "Val <valid@example.ch>"})), 400,
			`{"email": ["Enter a valid email address."]}`},
		{"not a string", jsonCall(http.MethodPost, "/api/v1/users", valid(map[string]any{"first_name": 42, "last_name": true})), 400,
			`{"first_name": ["Not a valid string."], "last_name": ["Not a valid string."]}`},
		{"taken email in another case", jsonCall(http.MethodPost, "/api/v1/users", valid(map[string]any{"email": "  TAKEN@Example.CH"})), 400,
			`{"email": ["user with this email already exists."]}`},
		{"form without password", rawCall(http.MethodPost, "/api/v1/users", mediaForm, "first_name=Val&last_name=Id&email=valid%40example.ch"), 400,
			`{"password": ["This field is required."]}`},
		{"PATCH to a taken email in another case", jsonCall(http.MethodPatch, userPath(other.ID), map[string]string{"email": "Taken@EXAMPLE.ch"}), 400,
			`{"email": ["user with this email already exists."]}`},
		{"PATCH blanking a name", jsonCall(http.MethodPatch, userPath(other.ID), map[string]string{"last_name": " "}), 400,
			`{"last_name": ["This field may not be blank."]}`},
		{"PUT missing fields", jsonCall(http.MethodPut, userPath(other.ID), map[string]string{"first_name": "Other"}), 400,
			`{"last_name": ["This field is required."], "email": ["This field is required."], "password": ["This field is required."]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { expectJSON(t, s.do(t, c.call), c.status, c.want) })
	}
	t.Run("malformed JSON", func(t *testing.T) {
		r := s.do(t, rawCall(http.MethodPost, "/api/v1/users", mediaJSON, `{"first_name": "Val",`))
		expectStatus(t, r, http.StatusBadRequest)
		exactKeys(t, "answer", r.body, "detail")
		if !strings.Contains(string(r.body), `"JSON parse error - `) {
			t.Fatalf("answer %s, want a JSON parse error", r.body)
		}
	})
	s.unchanged(t, taken, `"1"`)
	s.unchanged(t, other, `"1"`)
}

func testRouting(t *testing.T, s *service) {
	u := s.create(t, s.input("Route", "Tester", "route@example.ch"))
	big := `{"first_name": "` + strings.Repeat("a", 1<<20) + `"}`
	cases := []struct {
		name   string
		call   call
		status int
		want   string
		allow  []string
	}{
		{"unknown route", get("/api/v1/nothing"), 404, `{"detail": "Not found."}`, nil},
		{"DELETE on the collection", call{method: http.MethodDelete, path: "/api/v1/users"}, 405,
			`{"detail": "Method \"DELETE\" not allowed."}`, []string{"GET", "HEAD", "POST"}},
		{"POST on a user", jsonCall(http.MethodPost, userPath(u.ID), map[string]string{}), 405,
			`{"detail": "Method \"POST\" not allowed."}`, []string{"DELETE", "GET", "HEAD", "PATCH", "PUT"}},
		{"create as text/plain", rawCall(http.MethodPost, "/api/v1/users", "text/plain", "first_name=x"), 415,
			`{"detail": "Unsupported media type \"text/plain\" in request."}`, nil},
		{"PATCH as XML", rawCall(http.MethodPatch, userPath(u.ID), "application/xml", "<user/>"), 415,
			`{"detail": "Unsupported media type \"application/xml\" in request."}`, nil},
		{"create over 1 MiB", rawCall(http.MethodPost, "/api/v1/users", mediaJSON, big), 413,
			`{"detail": "Request body too large."}`, nil},
		{"PATCH over 1 MiB", rawCall(http.MethodPatch, userPath(u.ID), mediaJSON, big), 413,
			`{"detail": "Request body too large."}`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do(t, c.call)
			expectJSON(t, r, c.status, c.want)
			if c.allow != nil {
				allow := strings.Split(r.header.Get("Allow"), ", ")
				slices.Sort(allow)
				if !slices.Equal(allow, c.allow) {
					t.Errorf("Allow %q, want %q", r.header.Get("Allow"), c.allow)
				}
			}
		})
	}
	s.unchanged(t, u, `"1"`)
	expectJSON(t, s.do(t, get("/healthz")), http.StatusOK, `{"status": "ok"}`)
}

// testTrustedProxy: the TCP peer (127.0.0.1) is a trusted proxy, so the
// client address is the right-most X-Forwarded-For entry that is not a
// trusted proxy, and X-Forwarded-Proto/-Host shape the URLs.
func testTrustedProxy(t *testing.T, s *service) {
	const refusedFR = `{"detail": "Only users located in Switzerland can be created (remote address in France)"}`
	cases := []struct {
		name      string
		forwarded string
		want      string // answer when refused; "" for a creation
	}{
		{"forwarded from France", frenchAddr, refusedFR},
		{"forwarded from Switzerland", swissAddr, ""},
		{"no header: the proxy's own loopback address, Switzerland", "", ""},
		{"client-written Swiss entry left of the French one", swissAddr + ", " + frenchAddr, refusedFR},
		{"French entry left of the Swiss one", frenchAddr + ", " + swissAddr, ""},
		{"unmapped address", unmappedAddr,
			`{"detail": "Only users located in Switzerland can be created (remote address location unknown)"}`},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := s.input("Proxied", "Client", "proxied"+string(rune('a'+i))+"@example.ch")
			req := jsonCall(http.MethodPost, "/api/v1/users", in)
			if c.forwarded != "" {
				req = req.with("X-Forwarded-For", c.forwarded)
			}
			r := s.do(t, req)
			if c.want != "" {
				expectJSON(t, r, http.StatusForbidden, c.want)
				// Nothing was stored: the email is still free.
				expectJSON(t, s.do(t, get(query("email", in["email"]))), http.StatusOK,
					`{"count": 0, "next": null, "previous": null, "results": []}`)
				return
			}
			s.created(t, r)
		})
	}

	t.Run("forwarded proto, host and request id are believed", func(t *testing.T) {
		req := jsonCall(http.MethodPost, "/api/v1/users", s.input("Forwarded", "Host", "fwd-host@example.ch")).
			with("X-Forwarded-For", swissAddr).with("X-Forwarded-Proto", "https").
			with("X-Forwarded-Host", "users.example.ch").with("X-Request-ID", "e2e-trusted-1")
		r := s.do(t, req)
		expectStatus(t, r, http.StatusCreated)
		var u user
		exactKeys(t, "user", r.body, userKeys...)
		mustUnmarshal(t, r.body, &u)
		want := "https://users.example.ch" + userPath(u.ID)
		if u.URL != want || r.header.Get("Location") != want {
			t.Fatalf("url %q, Location %q, want %q", u.URL, r.header.Get("Location"), want)
		}
		if id := r.header.Get("X-Request-ID"); id != "e2e-trusted-1" {
			t.Errorf("X-Request-ID %q, want the proxy's e2e-trusted-1", id)
		}
		u.URL = s.userURL(u.ID) // the event has no URL; the rest must match
		s.expect("create", u)
	})
}
