package hostile_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/marketplace/usersvc/adapters/argon2id"
)

const verifyPath = "/api/v1/credentials/verify"

// countingHasher is argon2id counting every hash and check it runs, so a
// test can show that a refused request hashed nothing.
type countingHasher struct {
	*argon2id.Hasher
	calls atomic.Int64
}

func newCountingHasher() *countingHasher {
	return &countingHasher{Hasher: argon2id.New(argon2id.Cheap, 0)}
}

func (h *countingHasher) Hash(ctx context.Context, password string) (string, error) {
	h.calls.Add(1)
	return h.Hasher.Hash(ctx, password)
}

func (h *countingHasher) Verify(ctx context.Context, hash, password string) (bool, error) {
	h.calls.Add(1)
	return h.Hasher.Verify(ctx, hash, password)
}

// isVerify tells the cases aimed at the credentials route.
func isVerify(c hostileCase) bool { return strings.HasPrefix(c.req.Path, verifyPath) }

// verifyRoute: hostile bodies for POST /api/v1/credentials/verify. Every
// one is refused before any hashing (runCorpus counts the hasher's calls)
// and before counting a failure (the lockout table is in the snapshot).
func verifyRoute(w world, add adder) {
	valid := map[string]any{"email": w.emails[0], "password": seedPassword}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range valid {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	verify := func(body string) hostileCase { return hostileCase{req: jsonReq(http.MethodPost, verifyPath, body)} }
	verifyForm := func(body string) hostileCase {
		c := verify(body)
		c.req.ContentType = "application/x-www-form-urlencoded"
		return c
	}

	// Wrong types.
	for _, f := range []string{"email", "password"} {
		for _, v := range []struct {
			name string
			v    any
			msg  string
		}{
			{"integer", 42, msgNotString}, {"bool", false, msgNotString}, {"object", map[string]any{"$ne": ""}, msgNotString},
			{"array", []any{seedPassword}, msgNotString}, {"null", nil, msgNotNull},
		} {
			add(fmt.Sprintf("verify/%s as %s", f, v.name), verify(encode(with(f, v.v))), 400, fields(f, v.msg))
		}
	}
	add("verify/both as objects", verify(encode(with("email", map[string]any{}, "password", map[string]any{"$gt": ""}))), 400,
		fields("email", msgNotString, "password", msgNotString))

	// Missing body and fields.
	add("verify/no body", verify(""), 400, fields("email", msgRequired, "password", msgRequired))
	add("verify/empty object", verify("{}"), 400, fields("email", msgRequired, "password", msgRequired))
	add("verify/no password", verify(encode(map[string]any{"email": w.emails[0]})), 400, fields("password", msgRequired))
	add("verify/blank fields", verify(encode(with("email", "  ", "password", ""))), 400, fields("email", msgBlank, "password", msgBlank))
	add("verify/top-level null", verify("null"), 400, fields("non_field_errors", "Invalid data. Expected a dictionary, but got null."))
	add("verify/top-level list", verify(`["`+w.emails[0]+`"]`), 400, fields("non_field_errors", "Invalid data. Expected a dictionary, but got list."))
	add("verify/truncated JSON", verify(encode(valid)[:20]), 400, parseError("JSON", "unexpected end of JSON input"))

	// Huge passwords: refused by length, before any hashing.
	add("verify/password of 1025 ASCII bytes", verify(encode(with("password", strings.Repeat("p", 1025)))), 400, fields("password", msgMax(128)))
	add("verify/password of 129 characters", verify(encode(with("password", strings.Repeat("p", 129)))), 400, fields("password", msgMax(128)))
	add("verify/password of 1029 bytes in 343 characters", verify(encode(with("password", strings.Repeat("€", 343)))), 400, fields("password", msgMax(128)))
	add("verify/password of 900k bytes", verify(encode(with("password", strings.Repeat("p", 900_000)))), 400, fields("password", msgMax(128)))
	add("verify/email of 255 characters", verify(encode(with("email", strings.Repeat("a", 244)+"@example.ch"))), 400, fields("email", msgMax(254)))

	// NUL bytes.
	add("verify/NUL in the password", verify(encode(with("password", seedPassword+"\x00"))), 400, fields("password", msgNUL))
	add("verify/NUL in the email", verify(encode(with("email", w.emails[0]+"\x00"))), 400, fields("email", msgNUL))
	add("verify/raw NUL byte in JSON", verify("{\"email\":\"a\x00b\",\"password\":\"x\"}"), 400, parseErrorSaying("JSON", `invalid character '\x00' in string`))
	add("verify/form NUL in the password", verifyForm("email="+w.emails[0]+"&password=seed%00password"), 400, fields("password", msgNUL))

	// Huge bodies.
	const limit = 1 << 20
	padded := encode(valid) + strings.Repeat(" ", limit+1-len(encode(valid)))
	add("verify/1 MiB + 1 byte", verify(padded), 413, tooLarge)
	chunked := verify(padded)
	chunked.req.Chunked = true
	add("verify/1 MiB + 1 byte chunked", chunked, 413, tooLarge)
	add("verify/form 2 MiB", verifyForm("email="+w.emails[0]+"&password="+strings.Repeat("p", 2*limit)), 413, tooLarge)

	// Form bodies.
	add("verify/form without password", verifyForm("email="+w.emails[0]), 400, fields("password", msgRequired))
	add("verify/form password of 1025 bytes", verifyForm("email="+w.emails[0]+"&password="+strings.Repeat("p", 1025)), 400, fields("password", msgMax(128)))
	add("verify/form bad escape", verifyForm("email="+w.emails[0]+"&password=%zz"), 400, parseError("Form", `invalid URL escape "%zz"`))
	add("verify/form bracket syntax", verifyForm("email[]="+w.emails[0]+"&password[]="+seedPassword), 400, fields("email", msgRequired, "password", msgRequired))

	// Media types, methods, the trailing slash.
	plainText := verify(encode(valid))
	plainText.req.ContentType = "text/plain"
	add("verify/text/plain", plainText, 415, unsupported("text/plain"))
	noType := verify(encode(valid))
	noType.req.ContentType = ""
	add("verify/no Content-Type", noType, 415, unsupported(""))
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		add("verify/method "+m, hostileCase{req: stackRequest{Method: m, Path: verifyPath}}, 405, notAllowed(m, "POST"))
	}
	add("verify/trailing slash, empty object", hostileCase{req: jsonReq(http.MethodPost, verifyPath+"/", "{}")}, 400,
		fields("email", msgRequired, "password", msgRequired))
}
