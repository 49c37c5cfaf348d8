package domain

import (
	"context"
	"errors"
	"slices"
	"strings"
)

// Scope is a permission a caller's token grants, as the OAuth2 server
// issues it.
type Scope string

const (
	ScopeUsersRead         Scope = "users:read"
	ScopeUsersWrite        Scope = "users:write"
	ScopeUsersDelete       Scope = "users:delete"
	ScopeCredentialsVerify Scope = "credentials:verify"
)

// AllScopes lists every scope the service knows, in a stable order.
func AllScopes() []Scope {
	return []Scope{ScopeUsersRead, ScopeUsersWrite, ScopeUsersDelete, ScopeCredentialsVerify}
}

// ParseScopes splits an OAuth2 scope string (space-separated, RFC 6749
// §3.3). Unknown scopes are kept: they grant nothing here but are the
// caller's own business.
func ParseScopes(s string) []Scope {
	fields := strings.Fields(s)
	out := make([]Scope, 0, len(fields))
	for _, f := range fields {
		out = append(out, Scope(f))
	}
	return out
}

// Operation names something a caller can ask of the service, whatever the
// inbound adapter (HTTP route, CLI command, RPC).
type Operation string

const (
	OpListUsers         Operation = "list_users"
	OpGetUser           Operation = "get_user"
	OpCreateUser        Operation = "create_user"
	OpReplaceUser       Operation = "replace_user"
	OpPatchUser         Operation = "patch_user"
	OpDeleteUser        Operation = "delete_user"
	OpVerifyCredentials Operation = "verify_credentials" //nolint:gosec // G101: an operation name, not a credential
)

// requiredScope is the one table of which operation needs which scope.
// An operation missing here is refused to everyone but the anonymous
// principal of AUTH_MODE=none, so a new operation is closed until listed.
var requiredScope = map[Operation]Scope{
	OpListUsers:         ScopeUsersRead,
	OpGetUser:           ScopeUsersRead,
	OpCreateUser:        ScopeUsersWrite,
	OpReplaceUser:       ScopeUsersWrite,
	OpPatchUser:         ScopeUsersWrite,
	OpDeleteUser:        ScopeUsersDelete,
	OpVerifyCredentials: ScopeCredentialsVerify,
}

// RequiredScope returns the scope op needs (false for an unknown operation).
func RequiredScope(op Operation) (Scope, bool) {
	s, ok := requiredScope[op]
	return s, ok
}

// Principal is the authenticated caller of a request.
type Principal struct {
	// Subject is the token's sub: who the caller is (a service's client).
	Subject string
	// ClientID is the OAuth2 client the token was issued to (client_id or
	// azp), when the token says.
	ClientID string
	Scopes   []Scope
	// Anonymous marks the caller of AUTH_MODE=none: nobody proved anything,
	// every scope is granted, and no actor is recorded.
	Anonymous bool
}

// AnonymousPrincipal is the caller when authentication is switched off.
func AnonymousPrincipal() Principal {
	return Principal{Anonymous: true, Scopes: AllScopes()}
}

// HasScope reports whether the principal was granted s.
func (p Principal) HasScope(s Scope) bool {
	return slices.Contains(p.Scopes, s)
}

// Authorize returns nil when the principal may perform op, and otherwise a
// *ScopeError (matching ErrInsufficientScope) naming the scope needed.
func (p Principal) Authorize(op Operation) error {
	need, ok := requiredScope[op]
	if !ok {
		if p.Anonymous {
			return nil
		}
		return &ScopeError{Op: op}
	}
	if p.HasScope(need) {
		return nil
	}
	return &ScopeError{Op: op, Needed: need}
}

// Actor is what events record as the author of a change: the subject, or
// nil when nobody authenticated.
func (p Principal) Actor() *string {
	if p.Anonymous || p.Subject == "" {
		return nil
	}
	s := p.Subject
	return &s
}

type principalKey struct{}

// ContextWithPrincipal returns ctx carrying p.
func ContextWithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries, and false when none was
// set (work not started by a caller, e.g. the relay).
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

var (
	// ErrUnauthenticated matches every AuthError: the caller did not prove
	// who it is.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrInsufficientScope matches every ScopeError: the caller is known
	// but lacks the permission.
	ErrInsufficientScope = errors.New("insufficient scope")
)

// AuthReason is why a credential was refused: a closed set, so metrics and
// answers stay bounded whatever a caller sends.
type AuthReason string

const (
	AuthMissing     AuthReason = "missing"
	AuthMalformed   AuthReason = "malformed"
	AuthSignature   AuthReason = "signature"
	AuthExpired     AuthReason = "expired"
	AuthNotYetValid AuthReason = "not_yet_valid"
	AuthIssuer      AuthReason = "issuer"
	AuthAudience    AuthReason = "audience"
	AuthAlgorithm   AuthReason = "algorithm"
	AuthUnknownKey  AuthReason = "unknown_key"
)

// AuthReasons lists the closed set in a stable order.
func AuthReasons() []AuthReason {
	return []AuthReason{AuthMissing, AuthMalformed, AuthSignature, AuthExpired, AuthNotYetValid,
		AuthIssuer, AuthAudience, AuthAlgorithm, AuthUnknownKey}
}

// Description says in a few words which check failed. It is safe to show
// to the caller: it never contains any part of the credential.
func (r AuthReason) Description() string {
	switch r {
	case AuthMissing:
		return "no bearer token"
	case AuthMalformed:
		return "malformed token"
	case AuthSignature:
		return "signature invalid"
	case AuthExpired:
		return "token expired"
	case AuthNotYetValid:
		return "token not yet valid"
	case AuthIssuer:
		return "wrong issuer"
	case AuthAudience:
		return "wrong audience"
	case AuthAlgorithm:
		return "algorithm not allowed"
	case AuthUnknownKey:
		return "unknown signing key"
	}
	return "invalid token"
}

// AuthError reports a refused credential. Err, when set, is the detail for
// operators' logs; callers see only Reason's description.
type AuthError struct {
	Reason AuthReason
	Err    error
}

// Unauthenticated builds an AuthError.
func Unauthenticated(reason AuthReason, err error) *AuthError {
	return &AuthError{Reason: reason, Err: err}
}

func (e *AuthError) Error() string {
	if e.Err != nil {
		return "unauthenticated: " + e.Reason.Description() + ": " + e.Err.Error()
	}
	return "unauthenticated: " + e.Reason.Description()
}
func (e *AuthError) Unwrap() error        { return e.Err }
func (e *AuthError) Is(target error) bool { return target == ErrUnauthenticated }

// ScopeError reports that the principal lacks the scope an operation needs.
// Needed is empty for an operation no scope grants.
type ScopeError struct {
	Op     Operation
	Needed Scope
}

func (e *ScopeError) Error() string {
	if e.Needed == "" {
		return "insufficient scope: " + string(e.Op) + " is not permitted"
	}
	return "insufficient scope: " + string(e.Op) + " needs " + string(e.Needed)
}
func (e *ScopeError) Is(target error) bool { return target == ErrInsufficientScope }

// DependencyIdentityProvider names the OAuth2 server's key set in
// UnavailableError: until its keys are known no token can be checked.
const DependencyIdentityProvider = "Authentication"
