package domain

import (
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// Field names: the API's names for the writable user fields. They key
// validation errors and an update event's "changed" list.
const (
	FieldFirstName = "first_name"
	FieldLastName  = "last_name"
	FieldEmail     = "email"
	FieldPassword  = "password"
	FieldAddress   = "address"
)

// Length limits, in characters.
const (
	MaxNameLength     = 70
	MaxEmailLength    = 254
	MaxPasswordLength = 128
	MaxAddressLength  = 300

	DefaultPasswordMinLength = 8
)

// User is a stored user. PasswordHash is never shown outside the service.
type User struct {
	ID           int64
	Email        string
	FirstName    string
	LastName     string
	Address      string
	PasswordHash string
	// Country is the ISO 3166-1 alpha-2 code of the country the user was
	// created from, as the geolocation decided it; "" for users created
	// before the service recorded it. It is set once, at creation: no
	// client input changes it.
	Country string
	// Version starts at 1 and grows by one with every change; it backs ETags.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Input is user data as a client sent it. A nil field was absent, which a
// patch distinguishes from an empty value.
type Input struct {
	FirstName *string
	LastName  *string
	Email     *string
	Password  *string
	Address   *string
	// Rejected maps fields the client sent but an adapter could not read as
	// text (null, a number, an object) to the message to report. Rules
	// report them together with the other fields' problems, so the client
	// learns everything wrong with its input at once.
	Rejected map[string]string
}

// Rules validates and normalises Input. The zero value is not usable; build
// it with NewRules.
type Rules struct {
	passwordMinLength int
}

// NewRules returns the validation rules with the given minimum password
// length (DefaultPasswordMinLength when minPassword <= 0).
func NewRules(minPassword int) Rules {
	if minPassword <= 0 {
		minPassword = DefaultPasswordMinLength
	}
	return Rules{passwordMinLength: minPassword}
}

// PasswordMinLength is the configured minimum.
func (r Rules) PasswordMinLength() int { return r.passwordMinLength }

// Complete validates a full representation (create, replace): first name,
// last name, email and password are required, address defaults to "". The
// result has every field set and normalised.
func (r Rules) Complete(in Input) (Input, error) {
	if in.Address == nil {
		empty := ""
		in.Address = &empty
	}
	return r.validate(in, true)
}

// Partial validates a patch: only the present fields are checked and
// normalised; absent ones stay nil.
func (r Rules) Partial(in Input) (Input, error) {
	return r.validate(in, false)
}

func (r Rules) validate(in Input, complete bool) (Input, error) {
	errs := &ValidationError{}
	for field, msg := range in.Rejected {
		errs.Add(field, msg)
	}
	// A rejected field was present, so it is not "required", and its own
	// message already says what is wrong with it.
	text := func(field string, v *string, required bool, min, max int, trim bool) *string {
		if _, rejected := in.Rejected[field]; rejected {
			return nil
		}
		return r.text(errs, field, v, required, min, max, trim)
	}
	out := Input{
		FirstName: text(FieldFirstName, in.FirstName, complete, 1, MaxNameLength, true),
		LastName:  text(FieldLastName, in.LastName, complete, 1, MaxNameLength, true),
		Email:     text(FieldEmail, in.Email, complete, 1, MaxEmailLength, true),
		Password:  text(FieldPassword, in.Password, complete, r.passwordMinLength, MaxPasswordLength, false),
		Address:   text(FieldAddress, in.Address, false, 0, MaxAddressLength, true),
	}
	if out.Email != nil && len(errs.Fields[FieldEmail]) == 0 {
		lower := strings.ToLower(*out.Email)
		out.Email = &lower
		if !ValidEmail(lower) {
			errs.Add(FieldEmail, MsgEmail)
		}
	}
	if err := errs.OrNil(); err != nil {
		return Input{}, err
	}
	return out, nil
}

// text checks one text field and returns its normalised value (nil when
// absent). min 1 means "may not be blank"; larger minimums are length rules.
func (r Rules) text(errs *ValidationError, field string, v *string, required bool, min, max int, trim bool) *string {
	if v == nil {
		if required {
			errs.Add(field, MsgRequired)
		}
		return nil
	}
	s := *v
	if !utf8.ValidString(s) {
		errs.Add(field, MsgInvalidUTF8)
		return nil
	}
	if strings.ContainsRune(s, 0) {
		errs.Add(field, MsgNullChar)
		return nil
	}
	if trim {
		s = strings.TrimSpace(s)
	}
	n := utf8.RuneCountInString(s)
	switch {
	case n == 0 && min > 0:
		errs.Add(field, MsgBlank)
	case n > max:
		errs.Add(field, MsgMaxLength(max))
	case n < min:
		errs.Add(field, MsgMinLength(min))
	}
	return &s
}

// ValidEmail reports whether s is a plain address (no display name, no
// comments, no quoted local part) with a dotted domain of LDH labels.
func ValidEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at > 64 || at == len(s)-1 {
		return false
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return false
	}
	local, domainPart := s[:at], s[at+1:]
	if strings.ContainsAny(local, "\"() <>[]\\,;:") {
		return false
	}
	labels := strings.Split(domainPart, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !validLabel(l) {
			return false
		}
	}
	return true
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, c := range []byte(l) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// NewUser builds a user from a Complete input and its password hash.
func NewUser(in Input, passwordHash string, now time.Time) User {
	now = now.UTC()
	return User{
		Email:        *in.Email,
		FirstName:    *in.FirstName,
		LastName:     *in.LastName,
		Address:      *in.Address,
		PasswordHash: passwordHash,
		Version:      1,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
}

// ApplyProfile sets the present, validated non-password fields and returns
// the sorted names of those whose value changed. Passwords are handled by
// the caller, which alone can compare them against the hash.
func (u *User) ApplyProfile(in Input) []string {
	var changed []string
	set := func(field string, dst *string, v *string) {
		if v != nil && *dst != *v {
			*dst = *v
			changed = append(changed, field)
		}
	}
	set(FieldAddress, &u.Address, in.Address)
	set(FieldEmail, &u.Email, in.Email)
	set(FieldFirstName, &u.FirstName, in.FirstName)
	set(FieldLastName, &u.LastName, in.LastName)
	return changed
}

// Touch records a change: the version grows and updated_at moves to now,
// never backwards (another replica's clock may run behind this one's).
func (u *User) Touch(now time.Time) {
	u.Version++
	if now = now.UTC(); now.After(u.UpdatedAt) {
		u.UpdatedAt = now
	}
}

// TimeLayout is how every timestamp leaves the service: RFC 3339, UTC, with
// microseconds (the precision the databases keep).
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// FormatTime renders t with TimeLayout.
func FormatTime(t time.Time) string { return string(AppendTime(nil, t)) }

// AppendTime appends t rendered with TimeLayout to b. Its fields are
// written directly: a list page has two timestamps per user, and
// AppendFormat, which interprets the layout each time, was a twentieth of
// a cursor walk's CPU. Years outside 0-9999 take AppendFormat's spelling.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	hour, minute, second := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, second, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends the width lowest decimal digits of n (n >= 0),
// zero-padded.
func appendDigits(b []byte, n, width int) []byte {
	b = append(b, make([]byte, width)...)
	for i := len(b) - 1; i >= len(b)-width; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return b
}
