package domain_test

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
)

func ptr(s string) *string { return &s }

// full is a valid complete input; each case changes what it tests.
func full() domain.Input {
	return domain.Input{
		FirstName: ptr("Odile"),
		LastName:  ptr("Deray"),
		Email:     ptr("odile@example.ch"),
		Password:  ptr("s3cret-pw"),
		Address:   ptr("1 Rue du Lac, Genève"),
	}
}

func with(change func(*domain.Input)) domain.Input {
	in := full()
	change(&in)
	return in
}

// fields maps field names to messages, the shape of an expected error.
type fields map[string][]string

func validationFields(t *testing.T, err error) fields {
	t.Helper()
	if err == nil {
		return nil
	}
	var v *domain.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	return fields(v.Fields)
}

func deref(in domain.Input) map[string]any {
	out := map[string]any{}
	for name, p := range map[string]*string{
		domain.FieldFirstName: in.FirstName, domain.FieldLastName: in.LastName, domain.FieldEmail: in.Email,
		domain.FieldPassword: in.Password, domain.FieldAddress: in.Address,
	} {
		if p == nil {
			out[name] = nil
		} else {
			out[name] = *p
		}
	}
	return out
}

var (
	rep      = strings.Repeat
	max70    = domain.MsgMaxLength(domain.MaxNameLength)
	labels63 = rep("a", 63) + "." + rep("b", 63) + "."
)

func TestRulesComplete(t *testing.T) {
	tests := []struct {
		name    string
		in      domain.Input
		want    domain.Input // normalised result when valid
		wantErr fields
	}{
		{
			name: "valid input is normalised: names and address trimmed, email trimmed and lower-cased, password kept",
			in: domain.Input{FirstName: ptr("  Odile "), LastName: ptr("\tDeray\n"), Email: ptr("  Odile@Example.CH "),
				Password: ptr("  spaced pw  "), Address: ptr("  1 Rue du Lac  ")},
			want: domain.Input{FirstName: ptr("Odile"), LastName: ptr("Deray"), Email: ptr("odile@example.ch"),
				Password: ptr("  spaced pw  "), Address: ptr("1 Rue du Lac")},
		},
		{
			name: "address omitted defaults to empty",
			in:   with(func(in *domain.Input) { in.Address = nil }),
			want: with(func(in *domain.Input) { in.Address = ptr("") }),
		},
		{
			name: "blank address becomes empty",
			in:   with(func(in *domain.Input) { in.Address = ptr("   ") }),
			want: with(func(in *domain.Input) { in.Address = ptr("") }),
		},
		{
			name:    "every required field missing",
			in:      domain.Input{},
			wantErr: fields{"first_name": {domain.MsgRequired}, "last_name": {domain.MsgRequired}, "email": {domain.MsgRequired}, "password": {domain.MsgRequired}},
		},
		{
			name: "blank fields are blank, not invalid",
			in: with(func(in *domain.Input) {
				in.FirstName, in.LastName, in.Email, in.Password = ptr(" "), ptr(""), ptr(" \t "), ptr("")
			}),
			wantErr: fields{"first_name": {domain.MsgBlank}, "last_name": {domain.MsgBlank}, "email": {domain.MsgBlank}, "password": {domain.MsgBlank}},
		},
		{
			name: "70 multibyte characters fit a name",
			in:   with(func(in *domain.Input) { in.FirstName, in.LastName = ptr(rep("é", 70)), ptr(rep("日", 70)) }),
			want: with(func(in *domain.Input) { in.FirstName, in.LastName = ptr(rep("é", 70)), ptr(rep("日", 70)) }),
		},
		{
			name: "surrounding spaces do not count",
			in:   with(func(in *domain.Input) { in.FirstName = ptr("  " + rep("x", 70) + "  ") }),
			want: with(func(in *domain.Input) { in.FirstName = ptr(rep("x", 70)) }),
		},
		{
			name:    "71 characters is too long",
			in:      with(func(in *domain.Input) { in.FirstName, in.LastName = ptr(rep("é", 71)), ptr(rep("😀", 71)) }),
			wantErr: fields{"first_name": {max70}, "last_name": {max70}},
		},
		{
			name: "password of 8 and address of 300 characters, multibyte",
			in:   with(func(in *domain.Input) { in.Password, in.Address = ptr(rep("ü", 8)), ptr(rep("ß", 300)) }),
			want: with(func(in *domain.Input) { in.Password, in.Address = ptr(rep("ü", 8)), ptr(rep("ß", 300)) }),
		},
		{
			name: "password of 128 characters",
			in:   with(func(in *domain.Input) { in.Password = ptr(rep("ü", 128)) }),
			want: with(func(in *domain.Input) { in.Password = ptr(rep("ü", 128)) }),
		},
		{
			name:    "password of 7 characters",
			in:      with(func(in *domain.Input) { in.Password = ptr("1234567") }),
			wantErr: fields{"password": {domain.MsgMinLength(8)}},
		},
		{
			name:    "password of 129 characters",
			in:      with(func(in *domain.Input) { in.Password = ptr(rep("p", 129)) }),
			wantErr: fields{"password": {domain.MsgMaxLength(128)}},
		},
		{
			name:    "address of 301 characters",
			in:      with(func(in *domain.Input) { in.Address = ptr(rep("a", 301)) }),
			wantErr: fields{"address": {domain.MsgMaxLength(300)}},
		},
		{
			name:    "email over 254 characters gets only the length message",
			in:      with(func(in *domain.Input) { in.Email = ptr(rep("x", 64) + "@" + labels63 + rep("c", 62)) }),
			wantErr: fields{"email": {domain.MsgMaxLength(254)}},
		},
		{
			name: "errors of several fields are reported together",
			in: with(func(in *domain.Input) {
				in.FirstName, in.Email, in.Password = nil, ptr("not-an-email"), ptr("short")
			}),
			wantErr: fields{"first_name": {domain.MsgRequired}, "email": {domain.MsgEmail}, "password": {domain.MsgMinLength(8)}},
		},
	}
	rules := domain.NewRules(0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rules.Complete(tc.in)
			if gotErr := validationFields(t, err); !reflect.DeepEqual(gotErr, tc.wantErr) {
				t.Fatalf("errors = %v, want %v", gotErr, tc.wantErr)
			}
			if tc.wantErr != nil {
				if !reflect.DeepEqual(got, domain.Input{}) {
					t.Errorf("invalid input returned a value: %v", deref(got))
				}
				return
			}
			if !reflect.DeepEqual(deref(got), deref(tc.want)) {
				t.Errorf("got %v, want %v", deref(got), deref(tc.want))
			}
		})
	}
}

func TestRulesTextMustBeCleanUTF8(t *testing.T) {
	setters := map[string]func(*domain.Input, *string){
		domain.FieldFirstName: func(in *domain.Input, v *string) { in.FirstName = v },
		domain.FieldLastName:  func(in *domain.Input, v *string) { in.LastName = v },
		domain.FieldEmail:     func(in *domain.Input, v *string) { in.Email = v },
		domain.FieldPassword:  func(in *domain.Input, v *string) { in.Password = v },
		domain.FieldAddress:   func(in *domain.Input, v *string) { in.Address = v },
	}
	values := []struct {
		name, value, msg string
	}{
		{"NUL character", "abcd\x00efgh@x.ch", domain.MsgNullChar},
		{"trailing NUL", "abcdefgh@x.ch\x00", domain.MsgNullChar},
		{"invalid UTF-8", "abcd\xffefgh@x.ch", domain.MsgInvalidUTF8},
		{"truncated multibyte sequence", "abcdefgh@x.ch\xc3", domain.MsgInvalidUTF8},
	}
	rules := domain.NewRules(0)
	for field, set := range setters {
		for _, v := range values {
			for mode, validate := range map[string]func(domain.Input) (domain.Input, error){
				"complete": rules.Complete, "partial": rules.Partial,
			} {
				t.Run(field+"/"+v.name+"/"+mode, func(t *testing.T) {
					in := full()
					set(&in, ptr(v.value))
					_, err := validate(in)
					want := fields{field: {v.msg}}
					if got := validationFields(t, err); !reflect.DeepEqual(got, want) {
						t.Errorf("errors = %v, want %v", got, want)
					}
				})
			}
		}
	}
}

func TestRulesEmail(t *testing.T) {
	local64 := rep("l", 64)
	domain189 := labels63 + rep("c", 61) // 63+1+63+1+61
	tests := []struct {
		email string
		want  string // normalised address, "" when invalid
	}{
		{"a@b.ch", "a@b.ch"},
		{"First.Last+tag@Sub.Example.COM", "first.last+tag@sub.example.com"},
		{"  spaced@example.ch\t", "spaced@example.ch"},
		{"o'brien_x-y@ex-ample.co.uk", "o'brien_x-y@ex-ample.co.uk"},
		{"a@1.2", "a@1.2"},
		{local64 + "@b.ch", local64 + "@b.ch"},
		{local64 + "@" + domain189, local64 + "@" + domain189}, // exactly 254
		{"l" + local64 + "@b.ch", ""},                          // local part of 65
		{"Bob <a@b.ch>", ""},
		{"<a@b.ch>", ""},
		{"\"Bob\" <a@b.ch>", ""},
		{"a@b.ch (Bob)", ""},
		{"a@b", ""},
		{"a@localhost", ""},
		{"a b@c.ch", ""},
		{"a@b c.ch", ""},
		{"\"a b\"@c.ch", ""},
		{"\"ab\"@c.ch", ""},
		{"a,b@c.ch", ""},
		{"a@@b.ch", ""},
		{"@b.ch", ""},
		{"a@", ""},
		{"a", ""},
		{"a.@b.ch", ""},
		{"a..b@c.ch", ""},
		{"a@b..ch", ""},
		{"a@.b.ch", ""},
		{"a@b.ch.", ""},
		{"a@-b.ch", ""},
		{"a@b-.ch", ""},
		{"a@b_c.ch", ""},
		{"a@[192.0.2.1]", ""},
		{"a@" + rep("d", 64) + ".ch", ""}, // label over 63
		{"a@b.ch,c@d.ch", ""},
	}
	rules := domain.NewRules(0)
	for _, tc := range tests {
		t.Run(tc.email, func(t *testing.T) {
			got, err := rules.Partial(domain.Input{Email: ptr(tc.email)})
			if tc.want == "" {
				want := fields{"email": {domain.MsgEmail}}
				if gotErr := validationFields(t, err); !reflect.DeepEqual(gotErr, want) {
					t.Errorf("errors = %v, want %v", gotErr, want)
				}
				return
			}
			if err != nil || got.Email == nil || *got.Email != tc.want {
				t.Errorf("got %v, %v; want %q", deref(got)["email"], err, tc.want)
			}
			if !domain.ValidEmail(tc.want) {
				t.Errorf("ValidEmail(%q) = false", tc.want)
			}
		})
	}
}

func TestRulesPasswordMinimum(t *testing.T) {
	tests := []struct {
		name     string
		min      int
		password string
		wantMin  int
		wantErr  fields
	}{
		{name: "default when zero", min: 0, password: "1234567", wantMin: 8, wantErr: fields{"password": {domain.MsgMinLength(8)}}},
		{name: "default when negative", min: -3, password: "12345678", wantMin: 8},
		{name: "configured 12 refuses 11", min: 12, password: rep("x", 11), wantMin: 12, wantErr: fields{"password": {domain.MsgMinLength(12)}}},
		{name: "configured 12 accepts 12", min: 12, password: rep("x", 12), wantMin: 12},
		{name: "configured 4 accepts 4", min: 4, password: "abcd", wantMin: 4},
		{name: "minimum counts characters", min: 10, password: rep("é", 9), wantMin: 10, wantErr: fields{"password": {domain.MsgMinLength(10)}}},
		{name: "maximum stays 128", min: 4, password: rep("x", 129), wantMin: 4, wantErr: fields{"password": {domain.MsgMaxLength(128)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rules := domain.NewRules(tc.min)
			if rules.PasswordMinLength() != tc.wantMin {
				t.Errorf("PasswordMinLength = %d, want %d", rules.PasswordMinLength(), tc.wantMin)
			}
			_, err := rules.Partial(domain.Input{Password: ptr(tc.password)})
			if got := validationFields(t, err); !reflect.DeepEqual(got, tc.wantErr) {
				t.Errorf("errors = %v, want %v", got, tc.wantErr)
			}
		})
	}
}

func TestRulesPartial(t *testing.T) {
	tests := []struct {
		name    string
		in      domain.Input
		want    domain.Input
		wantErr fields
	}{
		{name: "nothing present is valid and stays absent", in: domain.Input{}, want: domain.Input{}},
		{name: "absent address is not defaulted", in: domain.Input{FirstName: ptr(" Ann ")}, want: domain.Input{FirstName: ptr("Ann")}},
		{name: "present empty address is valid", in: domain.Input{Address: ptr("")}, want: domain.Input{Address: ptr("")}},
		{name: "only the present field is checked", in: domain.Input{Email: ptr("Bob <b@c.ch>")}, wantErr: fields{"email": {domain.MsgEmail}}},
		{name: "a present name may not be blank", in: domain.Input{LastName: ptr("  ")}, wantErr: fields{"last_name": {domain.MsgBlank}}},
		{name: "a present password is checked", in: domain.Input{Password: ptr("short")}, wantErr: fields{"password": {domain.MsgMinLength(8)}}},
		{name: "email normalised", in: domain.Input{Email: ptr(" ANN@EXAMPLE.CH ")}, want: domain.Input{Email: ptr("ann@example.ch")}},
		{name: "a rejected field is reported with the others",
			in:      domain.Input{Email: ptr("x"), Rejected: map[string]string{"address": domain.MsgNotString}},
			wantErr: fields{"address": {domain.MsgNotString}, "email": {domain.MsgEmail}}},
		{name: "a rejected field alone", in: domain.Input{Rejected: map[string]string{"first_name": domain.MsgNotString}},
			wantErr: fields{"first_name": {domain.MsgNotString}}},
	}
	rules := domain.NewRules(0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rules.Partial(tc.in)
			if gotErr := validationFields(t, err); !reflect.DeepEqual(gotErr, tc.wantErr) {
				t.Fatalf("errors = %v, want %v", gotErr, tc.wantErr)
			}
			if !reflect.DeepEqual(deref(got), deref(tc.want)) {
				t.Errorf("got %v, want %v", deref(got), deref(tc.want))
			}
		})
	}
}

func TestRulesDoNotAliasInput(t *testing.T) {
	in := domain.Input{FirstName: ptr(" Ann "), Email: ptr("ANN@X.CH")}
	if _, err := domain.NewRules(0).Partial(in); err != nil {
		t.Fatal(err)
	}
	if *in.FirstName != " Ann " || *in.Email != "ANN@X.CH" {
		t.Errorf("validation changed the caller's input: %q %q", *in.FirstName, *in.Email)
	}
}

var zurich = time.FixedZone("CEST", 2*60*60)

func TestNewUser(t *testing.T) {
	in, err := domain.NewRules(0).Complete(full())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2024, 5, 1, 14, 30, 0, 123456789, zurich)
	u := domain.NewUser(in, "hash", now)
	want := domain.User{
		Email: "odile@example.ch", FirstName: "Odile", LastName: "Deray", Address: "1 Rue du Lac, Genève",
		PasswordHash: "hash", Version: 1, CreatedAt: now.UTC(), UpdatedAt: now.UTC(),
	}
	if u != want {
		t.Errorf("NewUser = %+v, want %+v", u, want)
	}
	if u.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt is in %v, want UTC", u.CreatedAt.Location())
	}
}

func TestApplyProfile(t *testing.T) {
	base := domain.User{ID: 7, Email: "a@b.ch", FirstName: "Ann", LastName: "Lee", Address: "Here", PasswordHash: "h", Version: 3}
	tests := []struct {
		name        string
		in          domain.Input
		wantChanged []string
		wantUser    func(*domain.User)
	}{
		{name: "nothing present", in: domain.Input{}},
		{name: "same values", in: domain.Input{Email: ptr("a@b.ch"), FirstName: ptr("Ann"), LastName: ptr("Lee"), Address: ptr("Here")}},
		{name: "password is not the profile's business", in: domain.Input{Password: ptr("new password")}},
		{name: "one field", in: domain.Input{LastName: ptr("Leigh")}, wantChanged: []string{"last_name"},
			wantUser: func(u *domain.User) { u.LastName = "Leigh" }},
		{name: "address cleared", in: domain.Input{Address: ptr("")}, wantChanged: []string{"address"},
			wantUser: func(u *domain.User) { u.Address = "" }},
		{
			name:        "every field, sorted",
			in:          domain.Input{FirstName: ptr("Bo"), LastName: ptr("Li"), Email: ptr("c@d.ch"), Address: ptr("There"), Password: ptr("xxxxxxxx")},
			wantChanged: []string{"address", "email", "first_name", "last_name"},
			wantUser: func(u *domain.User) {
				u.FirstName, u.LastName, u.Email, u.Address = "Bo", "Li", "c@d.ch", "There"
			},
		},
		{name: "case counts as a change of a name", in: domain.Input{FirstName: ptr("ann")}, wantChanged: []string{"first_name"},
			wantUser: func(u *domain.User) { u.FirstName = "ann" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := base
			changed := u.ApplyProfile(tc.in)
			if !reflect.DeepEqual(changed, tc.wantChanged) {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			want := base
			if tc.wantUser != nil {
				tc.wantUser(&want)
			}
			if u != want {
				t.Errorf("user = %+v, want %+v (version and times untouched)", u, want)
			}
		})
	}
}

func TestTouch(t *testing.T) {
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	u := domain.User{ID: 1, Version: 4, CreatedAt: created, UpdatedAt: created}
	now := time.Date(2024, 6, 1, 10, 0, 0, 0, zurich)
	u.Touch(now)
	if u.Version != 5 || !u.UpdatedAt.Equal(now) || u.UpdatedAt.Location() != time.UTC || u.CreatedAt != created {
		t.Errorf("after Touch: %+v", u)
	}
	// A clock behind the last change (another replica's) bumps the version
	// but does not move updated_at backwards.
	last := u.UpdatedAt
	u.Touch(last.Add(-time.Second))
	if u.Version != 6 || !u.UpdatedAt.Equal(last) {
		t.Errorf("after Touch with an earlier clock: version %d, updated_at %s; want 6, %s", u.Version, u.UpdatedAt, last)
	}
}

func TestFormatTime(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"UTC with nanoseconds is cut to microseconds", time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC), "2024-05-01T12:00:00.123456Z"},
		{"other zone converted to UTC", time.Date(2024, 5, 1, 14, 0, 0, 0, zurich), "2024-05-01T12:00:00.000000Z"},
		{"whole second keeps six digits", time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), "1999-12-31T23:59:59.000000Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := domain.FormatTime(tc.in)
			if got != tc.want {
				t.Errorf("FormatTime = %q, want %q", got, tc.want)
			}
			if _, err := time.Parse(time.RFC3339Nano, got); err != nil {
				t.Errorf("not RFC 3339: %v", err)
			}
		})
	}
}

// TestAppendTimeMatchesAppendFormat: the hand-written formatter writes
// what time.AppendFormat writes with TimeLayout, for every date the
// databases can hold and beyond (years past 9999 and before 0 take
// AppendFormat's own spelling).
func TestAppendTimeMatchesAppendFormat(t *testing.T) {
	times := []time.Time{
		{},
		time.Unix(0, 0),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(999, 9, 9, 9, 9, 9, 999, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 15, 12, 30, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 999999, zurich),
		time.Date(2024, 10, 27, 2, 30, 0, 1000, zurich), // the hour Zurich's clocks repeat
		time.Now(),
	}
	rng := rand.New(rand.NewPCG(18, 7))
	for range 10000 {
		times = append(times, time.Unix(rng.Int64N(253402300800), rng.Int64N(1e9)).In(zurich))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat([]byte("prefix "), domain.TimeLayout)
		if got := domain.AppendTime([]byte("prefix "), tm); string(got) != string(want) {
			t.Fatalf("AppendTime(%v) = %q, want %q", tm, got, want)
		}
	}
}

// A field the adapter could not read is reported once, with its own
// message, and never as "required" too; the other fields are still checked.
func TestRulesCompleteReportsRejectedFieldsWithTheRest(t *testing.T) {
	in := domain.Input{
		FirstName: ptr("  "),
		Rejected:  map[string]string{"email": domain.MsgNotString, "address": domain.MsgNotString},
	}
	_, err := domain.NewRules(0).Complete(in)
	want := fields{
		"first_name": {domain.MsgBlank},
		"last_name":  {domain.MsgRequired},
		"email":      {domain.MsgNotString},
		"password":   {domain.MsgRequired},
		"address":    {domain.MsgNotString},
	}
	if got := validationFields(t, err); !reflect.DeepEqual(got, want) {
		t.Fatalf("errors = %v, want %v", got, want)
	}
}
