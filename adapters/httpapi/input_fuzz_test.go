package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/domain"
)

// FuzzDecodeInput runs a write's whole input path on any Content-Type and
// body, as the handlers do: body limit, media type, decoding, then the
// core's rules (complete or partial). Every refusal must map to a 4xx JSON
// answer (400, 413 or 415); an accepted input must be normalised; and a
// JSON object whose writable members are strings must decode to exactly
// those strings.
func FuzzDecodeInput(f *testing.F) {
	valid := `{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.ch","password":"correct-horse"}`
	for _, s := range []struct{ ct, body string }{
		{"application/json", valid},
		{"application/json; charset=utf-8", `{"first_name":" Ada ","email":"ADA@EXAMPLE.CH"}`},
		{"application/json", `{"first_name":1,"last_name":null,"email":[],"password":{}}`},
		{"application/json", `[]`},
		{"application/json", "{\"first_name\":\"\\u0000\"}"},
		{"application/json", "{\"first_name\":\"\xff\"}"},
		{"application/x-www-form-urlencoded", "first_name=Ada&last_name=L&email=a%40b.ch&password=correct-horse"},
		{"application/x-www-form-urlencoded", "first_name=%zz"},
		{"application/x-www-form-urlencoded", "a=1;b=2"},
		{"text/plain", valid},
		{"", ""},
		{"application/json; =", "{}"},
		{"multipart/form-data; boundary=x", "--x--"},
	} {
		f.Add(s.ct, []byte(s.body), false)
	}
	rules := domain.NewRules(0)
	const maxBody = 4 << 10 // small, so that the fuzzer reaches the limit
	f.Fuzz(func(t *testing.T, contentType string, body []byte, partial bool) {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodPost, "/api/v1/users", bytes.NewReader(body))
		c.Request.Header.Set("Content-Type", contentType)
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBody)
		in, err := decodeInput(c)
		if err == nil {
			checkDecodedJSON(t, contentType, body, in)
			if partial {
				in, err = rules.Partial(in)
			} else {
				in, err = rules.Complete(in)
			}
		}
		if err != nil {
			switch status := classifyForFuzz(t, err); status {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			default:
				t.Fatalf("input refused with %d: %v", status, err)
			}
			if len(body) > maxBody && !errors.Is(err, errBodyTooLarge) && isJSONOrForm(contentType) {
				t.Fatalf("a %d-byte body was not refused as too large: %v", len(body), err)
			}
			return
		}
		if len(body) > maxBody {
			t.Fatalf("a %d-byte body was accepted", len(body))
		}
		for _, p := range []*string{in.FirstName, in.LastName, in.Email, in.Address} {
			if p != nil && (*p != strings.TrimSpace(*p) || !utf8.ValidString(*p) || strings.ContainsRune(*p, 0)) {
				t.Fatalf("accepted text %q is not normalised", *p)
			}
		}
		if in.Email != nil && (*in.Email != strings.ToLower(*in.Email) || !domain.ValidEmail(*in.Email)) {
			t.Fatalf("accepted email %q", *in.Email)
		}
	})
}

func isJSONOrForm(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == mediaJSON || mt == mediaForm)
}

// checkDecodedJSON compares the decoder with encoding/json: when the body
// is a JSON object whose writable members are all strings, the input holds
// exactly those members.
func checkDecodedJSON(t *testing.T, contentType string, body []byte, in domain.Input) {
	t.Helper()
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != mediaJSON || !utf8.Valid(body) {
		return
	}
	var obj map[string]any
	if json.Unmarshal(body, &obj) != nil {
		return
	}
	for _, f := range inputFields(&in) {
		v, present := obj[f.name]
		got := *f.dst
		s, isString := v.(string)
		switch {
		case !present && got != nil:
			t.Fatalf("%s decoded as %q from %s, which has no such member", f.name, *got, body)
		case present && isString && (got == nil || *got != s):
			t.Fatalf("%s decoded as %v, want %q", f.name, got, s)
		}
	}
}
