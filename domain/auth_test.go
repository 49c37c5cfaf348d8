package domain_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/domain"
)

func TestAuthorize(t *testing.T) {
	scoped := func(s ...domain.Scope) domain.Principal { return domain.Principal{Subject: "svc", Scopes: s} }
	tests := []struct {
		name string
		p    domain.Principal
		op   domain.Operation
		need domain.Scope // empty: allowed
	}{
		{"read lists", scoped(domain.ScopeUsersRead), domain.OpListUsers, ""},
		{"read gets", scoped(domain.ScopeUsersRead), domain.OpGetUser, ""},
		{"read does not create", scoped(domain.ScopeUsersRead), domain.OpCreateUser, domain.ScopeUsersWrite},
		{"write creates", scoped(domain.ScopeUsersWrite), domain.OpCreateUser, ""},
		{"write replaces", scoped(domain.ScopeUsersWrite), domain.OpReplaceUser, ""},
		{"write patches", scoped(domain.ScopeUsersWrite), domain.OpPatchUser, ""},
		{"write does not read", scoped(domain.ScopeUsersWrite), domain.OpGetUser, domain.ScopeUsersRead},
		{"write does not delete", scoped(domain.ScopeUsersWrite), domain.OpDeleteUser, domain.ScopeUsersDelete},
		{"delete deletes", scoped(domain.ScopeUsersDelete), domain.OpDeleteUser, ""},
		{"verify needs its own scope", scoped(domain.ScopeUsersRead, domain.ScopeUsersWrite, domain.ScopeUsersDelete),
			domain.OpVerifyCredentials, domain.ScopeCredentialsVerify},
		{"credentials:verify verifies", scoped(domain.ScopeCredentialsVerify), domain.OpVerifyCredentials, ""},
		{"credentials:verify reads nothing", scoped(domain.ScopeCredentialsVerify), domain.OpListUsers, domain.ScopeUsersRead},
		{"no scopes", scoped(), domain.OpListUsers, domain.ScopeUsersRead},
		{"lookalike scope grants nothing", scoped("users:read:extra", "USERS:READ"), domain.OpGetUser, domain.ScopeUsersRead},
		{"anonymous may everything", domain.AnonymousPrincipal(), domain.OpDeleteUser, ""},
		{"anonymous verifies", domain.AnonymousPrincipal(), domain.OpVerifyCredentials, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Authorize(tt.op)
			if tt.need == "" {
				if err != nil {
					t.Fatalf("Authorize(%s) = %v, want nil", tt.op, err)
				}
				return
			}
			var se *domain.ScopeError
			if !errors.As(err, &se) || !errors.Is(err, domain.ErrInsufficientScope) {
				t.Fatalf("Authorize(%s) = %v, want a ScopeError", tt.op, err)
			}
			if se.Needed != tt.need {
				t.Errorf("needed = %q, want %q", se.Needed, tt.need)
			}
			if errors.Is(err, domain.ErrUnauthenticated) {
				t.Error("a scope error must not read as unauthenticated")
			}
		})
	}
}

func TestEveryOperationHasAScope(t *testing.T) {
	ops := []domain.Operation{domain.OpListUsers, domain.OpGetUser, domain.OpCreateUser, domain.OpReplaceUser,
		domain.OpPatchUser, domain.OpDeleteUser, domain.OpVerifyCredentials}
	for _, op := range ops {
		s, ok := domain.RequiredScope(op)
		if !ok || !slices.Contains(domain.AllScopes(), s) {
			t.Errorf("%s: scope %q, %v", op, s, ok)
		}
	}
}

func TestUnknownOperationIsClosed(t *testing.T) {
	p := domain.Principal{Subject: "svc", Scopes: domain.AllScopes()}
	if err := p.Authorize("drop_everything"); !errors.Is(err, domain.ErrInsufficientScope) {
		t.Fatalf("unknown operation: %v, want refused", err)
	}
}

func TestPrincipalContext(t *testing.T) {
	if _, ok := domain.PrincipalFrom(context.Background()); ok {
		t.Fatal("empty context carries a principal")
	}
	p := domain.Principal{Subject: "billing", ClientID: "billing-client", Scopes: []domain.Scope{domain.ScopeUsersRead}}
	got, ok := domain.PrincipalFrom(domain.ContextWithPrincipal(context.Background(), p))
	if !ok || got.Subject != "billing" || got.ClientID != "billing-client" || !got.HasScope(domain.ScopeUsersRead) {
		t.Fatalf("PrincipalFrom = %+v, %v", got, ok)
	}
}

func TestActor(t *testing.T) {
	if a := domain.AnonymousPrincipal().Actor(); a != nil {
		t.Errorf("anonymous actor = %q, want nil", *a)
	}
	if a := (domain.Principal{Subject: "svc"}).Actor(); a == nil || *a != "svc" {
		t.Errorf("actor = %v, want svc", a)
	}
}

func TestParseScopes(t *testing.T) {
	got := domain.ParseScopes("  users:read\tusers:write  openid ")
	want := []domain.Scope{"users:read", "users:write", "openid"}
	if !slices.Equal(got, want) {
		t.Fatalf("ParseScopes = %q, want %q", got, want)
	}
	if got := domain.ParseScopes(""); len(got) != 0 {
		t.Fatalf("ParseScopes(\"\") = %q", got)
	}
}

func TestAuthError(t *testing.T) {
	cause := errors.New("token is expired by 1h")
	err := error(domain.Unauthenticated(domain.AuthExpired, cause))
	if !errors.Is(err, domain.ErrUnauthenticated) || !errors.Is(err, cause) {
		t.Fatalf("%v does not match ErrUnauthenticated and its cause", err)
	}
	if errors.Is(err, domain.ErrInsufficientScope) {
		t.Fatal("an auth error must not read as a scope error")
	}
	var ae *domain.AuthError
	if !errors.As(err, &ae) || ae.Reason != domain.AuthExpired {
		t.Fatalf("As: %+v", ae)
	}
	for _, r := range domain.AuthReasons() {
		d := r.Description()
		if d == "" || d == "invalid token" || strings.ContainsAny(d, "\"\\") {
			t.Errorf("%s: description %q (needs own words, no quotes for the header)", r, d)
		}
	}
}
