package domain_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/marketplace/usersvc/domain"
)

func TestValidationError(t *testing.T) {
	tests := []struct {
		name      string
		build     func() *domain.ValidationError
		wantNil   bool
		wantMsg   string
		wantField map[string][]string
	}{
		{name: "empty is no error", build: func() *domain.ValidationError { return &domain.ValidationError{} }, wantNil: true},
		{name: "nil is no error", build: func() *domain.ValidationError { return nil }, wantNil: true},
		{
			name:      "single field",
			build:     func() *domain.ValidationError { return domain.FieldError("email", domain.MsgEmailTaken) },
			wantMsg:   "invalid input: email: user with this email already exists.",
			wantField: map[string][]string{"email": {domain.MsgEmailTaken}},
		},
		{
			name: "fields sorted, messages in order",
			build: func() *domain.ValidationError {
				v := &domain.ValidationError{}
				v.Add("password", domain.MsgMinLength(8))
				v.Add("email", domain.MsgBlank)
				v.Add("password", domain.MsgNotString)
				return v
			},
			wantMsg: "invalid input: email: This field may not be blank.; " +
				"password: Ensure this field has at least 8 characters. Not a valid string.",
			wantField: map[string][]string{"email": {domain.MsgBlank}, "password": {domain.MsgMinLength(8), domain.MsgNotString}},
		},
		{
			name: "merge appends and ignores nil",
			build: func() *domain.ValidationError {
				v := domain.FieldError("first_name", domain.MsgRequired)
				v.Merge(nil)
				v.Merge(&domain.ValidationError{})
				other := domain.FieldError("first_name", domain.MsgBlank)
				other.Add("address", domain.MsgMaxLength(300))
				v.Merge(other)
				return v
			},
			wantMsg: "invalid input: address: Ensure this field has no more than 300 characters.; " +
				"first_name: This field is required. This field may not be blank.",
			wantField: map[string][]string{"first_name": {domain.MsgRequired, domain.MsgBlank}, "address": {domain.MsgMaxLength(300)}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.build()
			err := v.OrNil()
			if tc.wantNil {
				if err != nil { // an interface holding a typed nil would fail here
					t.Fatalf("OrNil = %#v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantMsg {
				t.Fatalf("Error() = %v, want %q", err, tc.wantMsg)
			}
			var got *domain.ValidationError
			if !errors.As(fmt.Errorf("wrapped: %w", err), &got) || !reflect.DeepEqual(got.Fields, tc.wantField) {
				t.Errorf("fields = %v, want %v", got, tc.wantField)
			}
		})
	}
}

func TestLengthMessages(t *testing.T) {
	if got := domain.MsgMaxLength(70); got != "Ensure this field has no more than 70 characters." {
		t.Errorf("MsgMaxLength = %q", got)
	}
	if got := domain.MsgMinLength(8); got != "Ensure this field has at least 8 characters." {
		t.Errorf("MsgMinLength = %q", got)
	}
}

func TestUnavailableError(t *testing.T) {
	cause := errors.New("connection refused")
	err := domain.Unavailable(domain.DependencyGeolocation, cause)
	wrapped := fmt.Errorf("locate 192.0.2.1: %w", err)
	tests := []struct {
		name   string
		target error
		want   bool
	}{
		{"matches ErrUnavailable", domain.ErrUnavailable, true},
		{"keeps its cause", cause, true},
		{"is not another domain error", domain.ErrNotFound, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := errors.Is(wrapped, tc.target); got != tc.want {
				t.Errorf("errors.Is(..., %v) = %v", tc.target, got)
			}
		})
	}
	if got := err.Error(); got != "geolocation unavailable: connection refused" {
		t.Errorf("Error() = %q", got)
	}
	var u *domain.UnavailableError
	if !errors.As(wrapped, &u) || u.Dependency != domain.DependencyGeolocation {
		t.Errorf("errors.As = %+v", u)
	}
	if errors.Is(cause, domain.ErrUnavailable) {
		t.Error("a plain error matched ErrUnavailable")
	}
}
