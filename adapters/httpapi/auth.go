package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Authenticator is what the adapter needs to authenticate callers: the
// port, and readiness (no token can be checked until the issuer's keys are
// known, so /readyz fails meanwhile).
type Authenticator interface {
	ports.Authenticator
	Ready(ctx context.Context) error
}

// AuthObserver is told why a request was refused (metrics).
type AuthObserver interface {
	// AuthFailed counts one refusal; reason is a domain.AuthReason or
	// ReasonScope.
	AuthFailed(reason string)
}

// ReasonScope is the refusal reason of a valid token lacking the scope.
const ReasonScope = "scope"

// realm names the service in WWW-Authenticate challenges.
const realm = "usersvc"

// maxTokenBytes bounds a bearer token; real access tokens are 1-3 KiB.
const maxTokenBytes = 16 << 10

// guard authenticates and authorises a request before its handler does any
// work: it runs as the route's first handler, so a refused request reads no
// body, locates nobody and hashes nothing.
type guard struct {
	auth     Authenticator // nil: authentication is off (AUTH_MODE=none)
	errors   errorMapper
	observer AuthObserver
}

func (g guard) require(op domain.Operation) gin.HandlerFunc {
	if g.auth == nil {
		anonymous := domain.AnonymousPrincipal()
		return func(c *gin.Context) {
			c.Request = c.Request.WithContext(domain.ContextWithPrincipal(c.Request.Context(), anonymous))
		}
	}
	return func(c *gin.Context) {
		p, err := g.authenticate(c)
		if err == nil {
			err = p.Authorize(op)
		}
		if err != nil {
			g.refused(err)
			g.errors.respond(c, err)
			return
		}
		info := infoFrom(c)
		info.Subject, info.ClientID = p.Subject, p.ClientID
		c.Request = c.Request.WithContext(domain.ContextWithPrincipal(c.Request.Context(), p))
	}
}

func (g guard) authenticate(c *gin.Context) (domain.Principal, error) {
	token, err := bearerToken(c.Request.Header)
	if err != nil {
		return domain.Principal{}, err
	}
	return g.auth.Authenticate(c.Request.Context(), token)
}

func (g guard) refused(err error) {
	if g.observer == nil {
		return
	}
	var ae *domain.AuthError
	switch {
	case errors.As(err, &ae):
		g.observer.AuthFailed(string(ae.Reason))
	case errors.Is(err, domain.ErrInsufficientScope):
		g.observer.AuthFailed(ReasonScope)
	}
}

var (
	errNoCredentials = domain.Unauthenticated(domain.AuthMissing, nil)
	errNotBearer     = domain.Unauthenticated(domain.AuthMalformed, errors.New("authorization header is not a bearer token"))
)

// bearerToken reads the token of `Authorization: Bearer <token>` (RFC 6750
// 2.1), the only place a token is taken from.
func bearerToken(h http.Header) (string, error) {
	values := h.Values("Authorization")
	if len(values) == 0 {
		return "", errNoCredentials
	}
	if len(values) > 1 {
		return "", errNotBearer
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errNotBearer
	}
	token = strings.TrimLeft(token, " ")
	if !isB64Token(token) {
		return "", errNotBearer
	}
	return token, nil
}

// isB64Token reports whether s is an RFC 6750 b64token of bounded length:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	if s == "" || len(s) > maxTokenBytes {
		return false
	}
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		switch b := body[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9',
			b == '-', b == '.', b == '_', b == '~', b == '+', b == '/':
		default:
			return false
		}
	}
	return true
}

// challenge is the WWW-Authenticate value of a refusal (RFC 6750 3).
func challenge(err error) string {
	var (
		ae *domain.AuthError
		se *domain.ScopeError
	)
	switch {
	case errors.As(err, &ae) && ae.Reason == domain.AuthMissing:
		return `Bearer realm="` + realm + `"`
	case errors.As(err, &ae):
		return `Bearer realm="` + realm + `", error="invalid_token", error_description="` + ae.Reason.Description() + `"`
	case errors.As(err, &se):
		return `Bearer realm="` + realm + `", error="insufficient_scope", scope="` + string(se.Needed) + `"`
	}
	return `Bearer realm="` + realm + `"`
}
