package httpapi

import (
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/domain"
)

// Users are written as JSON by hand, into the exact bytes encoding/json
// writes for the structs of representation_test.go (HTML-safe escaping
// included; a test compares both on hostile strings, so a field added to
// domain.UserData fails it until it is written here too). A page of 100
// users went through reflection twice (representation structs, then
// encoding/json), the largest cost of a list answer after the database's.

// jsonContentType is what gin's c.JSON sends.
const jsonContentType = "application/json; charset=utf-8"

// jsonAppender is a response body that writes itself.
type jsonAppender interface {
	appendJSON(b []byte) []byte
}

// jsonBuffers recycles response buffers: a page of 100 users is about
// 30 KB. Buffers grown past maxPooledJSON are left to the collector.
var jsonBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledJSON = 256 << 10

// writeJSON answers status with body.
func writeJSON(c *gin.Context, status int, body jsonAppender) {
	buf := jsonBuffers.Get().(*[]byte)
	*buf = body.appendJSON((*buf)[:0])
	c.Data(status, jsonContentType, *buf)
	if cap(*buf) <= maxPooledJSON {
		jsonBuffers.Put(buf)
	}
}

// userEncoder writes users with absolute URLs under one origin.
type userEncoder struct {
	base string // the users collection's URL, ending in "/"
	// urlMember is `{"url":"` and base as a JSON string without its
	// closing quote: what every user starts with, escaped once.
	urlMember []byte
}

func newUserEncoder(o origin) userEncoder {
	base := o.url(pathUsers+"/", nil)
	quoted := appendJSONString([]byte(`{"url":`), base)
	return userEncoder{base: base, urlMember: quoted[:len(quoted)-1]}
}

// url is the user's absolute URL: an id's digits never need escaping, so
// this is the URL the collection's path and the id make, without building
// a url.URL per user.
func (e userEncoder) url(id int64) string {
	return e.base + strconv.FormatInt(id, 10)
}

// appendUser writes u as the API shows it: its URL first, then the public
// data (domain.UserData's fields, never the password or its hash).
func (e userEncoder) appendUser(b []byte, u domain.User) []byte {
	b = append(b, e.urlMember...)
	b = strconv.AppendInt(b, u.ID, 10) // inside the URL's quotes
	b = append(b, `","id":`...)
	b = strconv.AppendInt(b, u.ID, 10)
	b = append(b, `,"first_name":`...)
	b = appendJSONString(b, u.FirstName)
	b = append(b, `,"last_name":`...)
	b = appendJSONString(b, u.LastName)
	b = append(b, `,"email":`...)
	b = appendJSONString(b, u.Email)
	b = append(b, `,"address":`...)
	b = appendJSONString(b, u.Address)
	b = append(b, `,"country":`...)
	if u.Country == "" {
		b = append(b, "null"...)
	} else {
		b = appendJSONString(b, u.Country)
	}
	b = append(b, `,"created_at":"`...)
	b = domain.AppendTime(b, u.CreatedAt)
	b = append(b, `","updated_at":"`...)
	b = domain.AppendTime(b, u.UpdatedAt)
	return append(b, `"}`...)
}

// oneUser is one user's answer.
type oneUser struct {
	enc  userEncoder
	user domain.User
}

func (u oneUser) appendJSON(b []byte) []byte { return u.enc.appendUser(b, u.user) }

// listBody is a list's answer: {"count", "next", "previous", "results"}
// in page-number mode, without "count" in cursor mode.
type listBody struct {
	enc            userEncoder
	counted        bool
	count          int64
	next, previous *string
	users          []domain.User
}

func (l listBody) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if l.counted {
		b = append(b, `"count":`...)
		b = strconv.AppendInt(b, l.count, 10)
		b = append(b, ',')
	}
	b = append(b, `"next":`...)
	b = appendJSONLink(b, l.next)
	b = append(b, `,"previous":`...)
	b = appendJSONLink(b, l.previous)
	b = append(b, `,"results":[`...)
	for i, u := range l.users {
		if i > 0 {
			b = append(b, ',')
		}
		b = l.enc.appendUser(b, u)
	}
	return append(b, "]}"...)
}

func appendJSONLink(b []byte, link *string) []byte {
	if link == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *link)
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as encoding/json does: quoted, with '"', '\\'
// and control characters escaped, '<', '>' and '&' as \u003c, \u003e and
// \u0026 (HTML-safe), U+2028 and U+2029 escaped, and each byte of invalid
// UTF-8 as U+FFFD, the character itself as Go 1.27 writes it (Go 1.26 wrote
// the escape \ufffd; both read back the same).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0 // s[start:i] is still to be copied
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, string(utf8.RuneError)...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
