package httpapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/marketplace/usersvc/domain"
)

// The representation as encoding/json writes it: the reference the
// hand-written encoder (userjson.go) must match byte for byte.
type (
	refUser struct {
		URL string `json:"url"`
		domain.UserData
	}
	refPage struct {
		Count    int64     `json:"count"`
		Next     *string   `json:"next"`
		Previous *string   `json:"previous"`
		Results  []refUser `json:"results"`
	}
	refCursorPage struct {
		Next     *string   `json:"next"`
		Previous *string   `json:"previous"`
		Results  []refUser `json:"results"`
	}
)

func refUsers(o origin, users []domain.User) []refUser {
	out := make([]refUser, 0, len(users))
	for _, u := range users {
		out = append(out, refUser{URL: o.url(pathUsers+"/"+strconv.FormatInt(u.ID, 10), nil), UserData: u.PublicData()})
	}
	return out
}

// sameAsEncodingJSON compares the hand-written bytes with encoding/json's,
// byte for byte but for one spelling: Go 1.26 writes invalid UTF-8 as the
// escape \ufffd, Go 1.27 as the character U+FFFD, and the tests run on both.
func sameAsEncodingJSON(got, want []byte) bool {
	escaped, raw := []byte(`\ufffd`), []byte(string(utf8.RuneError))
	return utf8.Valid(got) && json.Valid(got) &&
		bytes.Equal(bytes.ReplaceAll(got, escaped, raw), bytes.ReplaceAll(want, escaped, raw))
}

func marshalRef(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("reference encoding: %v", err)
	}
	return b
}

// hostileStrings are what a user's fields or a link may hold that JSON
// must escape, or that encoding/json changes.
var hostileStrings = []string{
	"", "plain", `quote " and backslash \`, "<script>&amp;</script>", "tab\tnewline\nreturn\r",
	"\b\f\x00\x01\x1f\x7f", "Zürich ß 東京 🙂", "line\u2028para\u2029", "bad \xff utf-8 \xc3", "\xed\xa0\x80 surrogate",
	"?search=a&b=c", "\u00a0nbsp", strings.Repeat("é", 300),
}

func TestHandWrittenJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 4, 17, 3, 4, 120_000_000, time.FixedZone("CET", 3600))
	var users []domain.User
	for i, s := range hostileStrings {
		users = append(users, domain.User{
			ID: int64(i*1_000_003 + 1), Email: s + "@example.ch", FirstName: s, LastName: "L" + s, Address: s + s,
			Country: []string{"", "CH", s}[i%3], PasswordHash: "$argon2id$secret", Version: 3,
			CreatedAt: at.Add(time.Duration(i) * time.Hour), UpdatedAt: at.Add(time.Duration(i) * time.Microsecond),
		})
	}
	link := func(s string) *string { return &s }
	origins := []origin{{Scheme: "http", Host: "127.0.0.1:8080"}, {Scheme: "https", Host: "users.example.ch"}, {Scheme: "https", Host: "[::1]:443"}}
	for _, o := range origins {
		t.Run(o.Host, func(t *testing.T) {
			for i, u := range users {
				got := oneUser{enc: newUserEncoder(o), user: u}.appendJSON(nil)
				want := marshalRef(t, refUsers(o, []domain.User{u})[0])
				if !sameAsEncodingJSON(got, want) {
					t.Fatalf("user %d:\n got %s\nwant %s", i, got, want)
				}
				if bytes.Contains(got, []byte("argon2id")) {
					t.Fatalf("user %d: the password hash reached the body: %s", i, got)
				}
			}
			for _, s := range hostileStrings {
				for _, links := range [][2]*string{{nil, nil}, {link("http://x/api/v1/users?cursor=" + s), nil}, {link(s), link("&<>")}} {
					page := listBody{enc: newUserEncoder(o), counted: true, count: 1 << 40, next: links[0], previous: links[1], users: users}
					want := marshalRef(t, refPage{Count: 1 << 40, Next: links[0], Previous: links[1], Results: refUsers(o, users)})
					if got := page.appendJSON(nil); !sameAsEncodingJSON(got, want) {
						t.Fatalf("page:\n got %s\nwant %s", got, want)
					}
					page.counted, page.users = false, nil
					want = marshalRef(t, refCursorPage{Next: links[0], Previous: links[1], Results: []refUser{}})
					if got := page.appendJSON(nil); !sameAsEncodingJSON(got, want) {
						t.Fatalf("empty cursor page:\n got %s\nwant %s", got, want)
					}
				}
			}
		})
	}
}

// FuzzJSONString compares appendJSONString with encoding/json on any
// string; the seeds run with every go test.
func FuzzJSONString(f *testing.F) {
	for _, s := range hostileStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		prefix := []byte("x")
		if got := appendJSONString(prefix, s); !sameAsEncodingJSON(got[1:], want) || got[0] != 'x' {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got[1:], want)
		}
	})
}
