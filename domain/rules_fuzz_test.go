package domain_test

import (
	"errors"
	"net/mail"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/marketplace/usersvc/domain"
)

// spec is the field rules of the API contract (issue 2), written out
// independently of Rules so that the fuzzer compares the two.
var spec = map[string]struct {
	min, max int
	trim     bool
}{
	domain.FieldFirstName: {1, domain.MaxNameLength, true},
	domain.FieldLastName:  {1, domain.MaxNameLength, true},
	domain.FieldEmail:     {1, domain.MaxEmailLength, true},
	domain.FieldAddress:   {0, domain.MaxAddressLength, true},
	domain.FieldPassword:  {-1, domain.MaxPasswordLength, false}, // min: the configured one
}

var fieldOrder = []string{domain.FieldFirstName, domain.FieldLastName, domain.FieldEmail, domain.FieldPassword, domain.FieldAddress}

func fieldPtrs(in *domain.Input) map[string]**string {
	return map[string]**string{
		domain.FieldFirstName: &in.FirstName, domain.FieldLastName: &in.LastName, domain.FieldEmail: &in.Email,
		domain.FieldPassword: &in.Password, domain.FieldAddress: &in.Address,
	}
}

// FuzzRules feeds any five texts (each present or absent) to Complete or
// Partial and checks the outcome against the contract: every accepted
// value is normalised and within its rule, every refusal names only
// fields that break a rule, with the contract's messages, and validation
// is idempotent.
func FuzzRules(f *testing.F) {
	f.Add("Ada", "Lovelace", "Ada@Example.CH", "correct-horse", "Zürich", uint8(0x1f), uint8(0), false)
	f.Add("  Ada  ", "", "ada@example", "short", "", uint8(0x1f), uint8(12), false)
	f.Add("\x00", "\xff", "a@b.ch", "\u00fc\u00fc\u00fc\u00fc\u00fc\u00fc\u00fc\u00fc", strings.Repeat("字", 301), uint8(0x1f), uint8(0), true)
	f.Add("", "", "Eve <eve@example.ch>", "", "", uint8(0x04), uint8(0), true)
	f.Fuzz(func(t *testing.T, first, last, email, password, address string, present, minPassword uint8, partial bool) {
		rules := domain.NewRules(int(minPassword % 24))
		var in domain.Input
		ptrs := fieldPtrs(&in)
		raw := map[string]string{domain.FieldFirstName: first, domain.FieldLastName: last, domain.FieldEmail: email, domain.FieldPassword: password, domain.FieldAddress: address}
		for i, name := range fieldOrder {
			if present&(1<<i) != 0 {
				v := raw[name]
				*ptrs[name] = &v
			}
		}
		validate := rules.Complete
		if partial {
			validate = rules.Partial
		}
		out, err := validate(in)
		want := expectedErrors(in, rules.PasswordMinLength(), !partial)
		if err != nil {
			var verr *domain.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %T %v is not a *ValidationError", err, err)
			}
			if !reflect.DeepEqual(verr.Fields, want) {
				t.Fatalf("input %+v: errors %v, want %v", describe(in), verr.Fields, want)
			}
			return
		}
		if len(want) > 0 {
			t.Fatalf("input %+v accepted, want errors %v", describe(in), want)
		}
		checkNormalised(t, in, out, rules.PasswordMinLength(), !partial)
		again, err := validate(out)
		if err != nil || !reflect.DeepEqual(describe(again), describe(out)) {
			t.Fatalf("validation is not idempotent: %+v -> %+v, %v", describe(out), describe(again), err)
		}
	})
}

// expectedErrors applies the contract to in.
func expectedErrors(in domain.Input, minPassword int, complete bool) map[string][]string {
	errs := map[string][]string{}
	ptrs := fieldPtrs(&in)
	for _, name := range fieldOrder {
		rule := spec[name]
		if rule.min < 0 {
			rule.min = minPassword
		}
		p := *ptrs[name]
		if p == nil {
			if complete && name != domain.FieldAddress {
				errs[name] = []string{domain.MsgRequired}
			}
			continue
		}
		v := *p
		switch {
		case !utf8.ValidString(v):
			errs[name] = []string{domain.MsgInvalidUTF8}
			continue
		case strings.ContainsRune(v, 0):
			errs[name] = []string{domain.MsgNullChar}
			continue
		}
		if rule.trim {
			v = strings.TrimSpace(v)
		}
		n := utf8.RuneCountInString(v)
		switch {
		case n == 0 && rule.min > 0:
			errs[name] = []string{domain.MsgBlank}
		case n > rule.max:
			errs[name] = []string{domain.MsgMaxLength(rule.max)}
		case n < rule.min:
			errs[name] = []string{domain.MsgMinLength(rule.min)}
		case name == domain.FieldEmail && !domain.ValidEmail(strings.ToLower(v)):
			errs[name] = []string{domain.MsgEmail}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func checkNormalised(t *testing.T, in, out domain.Input, minPassword int, complete bool) {
	t.Helper()
	inPtrs, outPtrs := fieldPtrs(&in), fieldPtrs(&out)
	for _, name := range fieldOrder {
		src, dst := *inPtrs[name], *outPtrs[name]
		if name == domain.FieldAddress && complete && src == nil {
			if dst == nil || *dst != "" {
				t.Fatalf("absent address not defaulted to empty: %v", dst)
			}
			continue
		}
		if (src == nil) != (dst == nil) {
			t.Fatalf("%s: present %v in, %v out", name, src != nil, dst != nil)
		}
		if src == nil {
			continue
		}
		v := *dst
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			t.Fatalf("%s: accepted %q", name, v)
		}
		switch name {
		case domain.FieldPassword:
			if v != *src {
				t.Fatalf("password changed by validation: %q -> %q", *src, v)
			}
			if n := utf8.RuneCountInString(v); n < minPassword || n > domain.MaxPasswordLength {
				t.Fatalf("password of %d characters accepted", n)
			}
		case domain.FieldEmail:
			if v != strings.ToLower(strings.TrimSpace(*src)) || !domain.ValidEmail(v) || utf8.RuneCountInString(v) > domain.MaxEmailLength {
				t.Fatalf("email %q normalised to %q", *src, v)
			}
		default:
			if v != strings.TrimSpace(*src) || utf8.RuneCountInString(v) > spec[name].max {
				t.Fatalf("%s %q normalised to %q", name, *src, v)
			}
		}
	}
}

// describe shows an Input's values for messages and comparisons.
func describe(in domain.Input) map[string]string {
	m := map[string]string{}
	for name, p := range fieldPtrs(&in) {
		if *p != nil {
			m[name] = **p
		}
	}
	return m
}

// FuzzValidEmail checks that an accepted address is a plain one: what
// net/mail reads back unchanged, without a display name, blanks, control
// characters or quotes, with a local part of at most 64 bytes and a dotted
// domain of letter-digit-hyphen labels; and that case does not matter.
func FuzzValidEmail(f *testing.F) {
	for _, s := range []string{
		"ada@example.ch", "Ada@Example.CH", "a.b+c@sub.example.co.uk", "eve@localhost", "Eve <eve@example.ch>", `"a b"@example.ch`,
		"a@b@example.ch", "a@-example.ch", "a@example..ch", "a(comment)@example.ch", " a@example.ch", "ü@example.ch", "a@xn--mnchen-3ya.de",
		strings.Repeat("a", 64) + "@example.ch", strings.Repeat("a", 65) + "@example.ch", "o'brien@example.ch", "a@[127.0.0.1]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok := domain.ValidEmail(s)
		if isASCII(s) && ok != domain.ValidEmail(strings.ToLower(s)) {
			t.Fatalf("%q: validity depends on case", s)
		}
		if !ok {
			return
		}
		addr, err := mail.ParseAddress(s)
		if err != nil || addr.Name != "" || addr.Address != s {
			t.Fatalf("%q accepted, but net/mail reads %v, %v", s, addr, err)
		}
		at := strings.LastIndexByte(s, '@')
		local, host := s[:at], s[at+1:]
		if at > 64 || local == "" || strings.ContainsAny(local, "\"()<>[]\\,;: \t") {
			t.Fatalf("%q accepted with local part %q", s, local)
		}
		labels := strings.Split(host, ".")
		if len(labels) < 2 || slices.Contains(labels, "") {
			t.Fatalf("%q accepted with domain %q", s, host)
		}
		for _, c := range []byte(host) {
			if !(c == '.' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				t.Fatalf("%q accepted with byte %q in its domain", s, c)
			}
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("%q accepted with a control character", s)
			}
		}
	})
}

func isASCII(s string) bool {
	for _, c := range []byte(s) {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
