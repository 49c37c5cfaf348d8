// Package redact is the one place that hides secrets in what the service
// prints: URLs (userinfo and every password-like query parameter) for
// start-up logs and connection errors, and known secret values inside
// library messages.
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces a hidden value.
const Mask = "xxxxx"

// secretWords mark a parameter name as password-like: password, pass, pwd,
// passwd, secret, token, key (apikey, sslkey...), sslpassword, credential,
// auth, signature.
var secretWords = []string{"pass", "pwd", "secret", "token", "key", "credential", "auth", "sig"}

// SecretParam reports whether a query parameter or setting name is
// password-like.
func SecretParam(name string) bool {
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// URL returns raw with the userinfo password and the values of
// password-like query parameters masked. An unparsable URL is masked
// between "://" and the last "@", and in every password-like parameter.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		out := raw
		if i, j := strings.Index(out, "://"), strings.LastIndex(out, "@"); i >= 0 && j > i {
			out = out[:i+3] + Mask + out[j:]
		}
		if q := strings.IndexByte(out, '?'); q >= 0 {
			out = out[:q+1] + params(out[q+1:])
		}
		return out
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
	}
	u.RawQuery = params(u.RawQuery)
	return u.String()
}

// params masks password-like values of a raw query, keeping its order.
func params(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if ok && SecretParam(name) {
			parts[i] = k + "=" + Mask
		}
	}
	return strings.Join(parts, "&")
}

// Secrets returns the secret values inside raw: the userinfo password and
// the password-like parameter values of a URL, or of a key=value,key=value
// list such as KAFKA_CONFIG; a value of neither form is a secret itself.
func Secrets(raw string) []string {
	var out []string
	add := func(v string) {
		if len(v) >= 3 { // shorter values would mask unrelated text
			out = append(out, v)
		}
	}
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" && (u.Host != "" || u.Opaque != "") {
		if pw, ok := u.User.Password(); ok {
			add(pw)
			add(url.QueryEscape(pw))
		}
		for k, vs := range u.Query() {
			if SecretParam(k) {
				for _, v := range vs {
					add(v)
				}
			}
		}
		return out
	}
	if strings.Contains(raw, "=") {
		for _, item := range strings.Split(raw, ",") {
			if k, v, ok := strings.Cut(item, "="); ok && SecretParam(strings.TrimSpace(k)) {
				add(strings.TrimSpace(v))
			}
		}
		return out
	}
	add(raw)
	return out
}

// Text replaces every occurrence of each secret in msg with Mask, for
// library messages that may quote a credential.
func Text(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, Mask)
		}
	}
	return msg
}
