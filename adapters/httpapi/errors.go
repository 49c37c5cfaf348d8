package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/domain"
)

// Client-facing messages. They follow the prototype's (Django REST
// Framework's) wording, which clients already match on.
const (
	msgNotFound           = "Not found."
	msgInvalidPage        = "Invalid page."
	msgPreconditionFailed = "Precondition failed."
	msgInternal           = "Internal server error."
	msgBodyTooLarge       = "Request body too large."
	msgBodyTimeout        = "Request body not received in time."
	msgBodyIncomplete     = "Request body could not be read."
	msgTooSlow            = "The service could not answer in time, try again later."
	msgNotNull            = "This field may not be null."
	msgInvalidInteger     = "A valid integer is required."
	msgInvalidDateTime    = "Enter a valid date/time."
	msgNotReady           = "Service not ready."
	msgDraining           = "Service is shutting down."
	msgOverloaded         = "Service busy, try again later."
	msgNotAuthenticated   = "Authentication credentials were not provided."
	msgPermissionDenied   = "You do not have permission to perform this action."
)

// maxEchoedCountry bounds how much of a refused country code an answer
// repeats.
const maxEchoedCountry = 16

// msgInvalidCountry refuses a country filter item, quoted (escaped, cut).
func msgInvalidCountry(item string) string {
	if len(item) > maxEchoedCountry {
		item = item[:maxEchoedCountry] + "..."
	}
	return fmt.Sprintf("%q is not a valid ISO 3166-1 alpha-2 country code.", item)
}

// retryAfterSeconds is what a 503 asks clients to wait: long enough for a
// database failover or a provider's rate limit window to move.
const retryAfterSeconds = 10

// overloadedRetryAfterSeconds is what a 503 for a full work queue asks:
// queues drain in about a second.
const overloadedRetryAfterSeconds = 1

// httpError is a failure the adapter itself detects (bad syntax, media
// type, size), carrying its status and JSON body.
type httpError struct {
	status int
	body   any
}

func (e *httpError) Error() string { return fmt.Sprintf("http %d: %v", e.status, e.body) }

func detailError(status int, detail string) *httpError {
	return &httpError{status: status, body: gin.H{"detail": detail}}
}

var (
	errNotFound       = detailError(http.StatusNotFound, msgNotFound)
	errBodyTooLarge   = detailError(http.StatusRequestEntityTooLarge, msgBodyTooLarge)
	errBodyTimeout    = detailError(http.StatusRequestTimeout, msgBodyTimeout)
	errBodyIncomplete = detailError(http.StatusBadRequest, msgBodyIncomplete)
)

func unsupportedMediaType(contentType string) *httpError {
	return detailError(http.StatusUnsupportedMediaType, fmt.Sprintf("Unsupported media type %q in request.", contentType))
}

// pageTooDeep refuses a page-number request past PAGINATION_MAX_OFFSET: its
// OFFSET would make the database read every row before the page.
func pageTooDeep(maxOffset int) *httpError {
	return detailError(http.StatusBadRequest, fmt.Sprintf(
		"Page too deep: page × page_size may not exceed %d. Walk further with cursor pagination: add %q to the query and follow the next links.",
		maxOffset, paramCursor+"="))
}

func parseError(kind string, err error) *httpError {
	return detailError(http.StatusBadRequest, kind+" parse error - "+err.Error())
}

func methodNotAllowed(method string) *httpError {
	return detailError(http.StatusMethodNotAllowed, fmt.Sprintf("Method %q not allowed.", method))
}

// rateLimitedError is a request over its client's allowance.
type rateLimitedError struct{ retryAfter time.Duration }

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("rate limited, retry after %s", e.retryAfter)
}

// errorMapper turns any error reaching a handler into its answer. This is
// the only place where errors become status codes.
type errorMapper struct {
	logger *slog.Logger
}

func (m errorMapper) respond(c *gin.Context, err error) {
	status, body := m.classify(c, err)
	c.AbortWithStatusJSON(status, body)
}

func (m errorMapper) classify(c *gin.Context, err error) (int, any) {
	var (
		herr        *httpError
		limited     *rateLimitedError
		invalid     *domain.ValidationError
		refused     *domain.CountryNotAllowedError
		unavailable *domain.UnavailableError
		refusedAuth *domain.AuthError
		noScope     *domain.ScopeError
		locked      *domain.LockedOutError
	)
	switch {
	case errors.Is(err, errBodyTimeout):
		// The rest of the body may still come; the connection cannot be reused.
		c.Header("Connection", "close")
		return errBodyTimeout.status, errBodyTimeout.body
	case errors.As(err, &herr):
		return herr.status, herr.body
	case errors.As(err, &refusedAuth):
		// RFC 6750 3: the challenge says what failed; the detail never
		// echoes the token.
		c.Header("WWW-Authenticate", challenge(err))
		if refusedAuth.Reason == domain.AuthMissing {
			return http.StatusUnauthorized, gin.H{"detail": msgNotAuthenticated}
		}
		return http.StatusUnauthorized, gin.H{"detail": "Invalid token: " + refusedAuth.Reason.Description() + "."}
	case errors.As(err, &noScope):
		c.Header("WWW-Authenticate", challenge(err))
		return http.StatusForbidden, gin.H{"detail": msgPermissionDenied + " Scope " + string(noScope.Needed) + " is required."}
	case errors.As(err, &limited):
		// Whole seconds, rounded up, at least 1: what Retry-After can say.
		secs := max(int((limited.retryAfter+time.Second-1)/time.Second), 1)
		c.Header("Retry-After", strconv.Itoa(secs))
		return http.StatusTooManyRequests, gin.H{"detail": fmt.Sprintf("Request was throttled. Expected available in %d seconds.", secs)}
	case errors.As(err, &invalid):
		return http.StatusBadRequest, invalid.Fields
	case errors.Is(err, domain.ErrInvalidCredentials):
		// The same bytes whether the email or the password was wrong.
		return http.StatusBadRequest, map[string][]string{"non_field_errors": {domain.MsgInvalidCredentials}}
	case errors.As(err, &locked):
		c.Header("Retry-After", strconv.FormatInt(int64(math.Ceil(locked.RetryAfter.Seconds())), 10))
		return http.StatusTooManyRequests, gin.H{"detail": domain.MsgLockedOut}
	case errors.Is(err, domain.ErrEmailTaken):
		return http.StatusBadRequest, map[string][]string{domain.FieldEmail: {domain.MsgEmailTaken}}
	case errors.Is(err, domain.ErrNotFound):
		return http.StatusNotFound, gin.H{"detail": msgNotFound}
	case errors.Is(err, domain.ErrInvalidPage):
		return http.StatusNotFound, gin.H{"detail": msgInvalidPage}
	case errors.Is(err, domain.ErrPreconditionFailed):
		return http.StatusPreconditionFailed, gin.H{"detail": msgPreconditionFailed}
	case errors.As(err, &refused):
		return http.StatusForbidden, gin.H{"detail": refused.Error()}
	case pastDeadline(c):
		// REQUEST_TIMEOUT passed while a dependency (database, geolocation,
		// the hashing queue) was still working: it is too slow right now.
		// Drivers do not all say so in their errors, hence any error here.
		m.log(c, slog.LevelWarn, "request deadline exceeded", err)
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds))
		return http.StatusServiceUnavailable, gin.H{"detail": msgTooSlow}
	case errors.Is(err, domain.ErrOverloaded):
		// Refused before any work: the client may simply try again soon.
		m.log(c, slog.LevelWarn, "overloaded", err)
		c.Header("Retry-After", strconv.Itoa(overloadedRetryAfterSeconds))
		return http.StatusServiceUnavailable, gin.H{"detail": msgOverloaded}
	case errors.As(err, &unavailable):
		m.log(c, slog.LevelWarn, "dependency unavailable", err)
		return unavailableAnswer(c, unavailable.Dependency)
	case errors.Is(err, domain.ErrUnavailable):
		m.log(c, slog.LevelWarn, "dependency unavailable", err)
		return unavailableAnswer(c, "")
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		// The client went away; nobody reads this answer, and it is no fault of ours.
		m.log(c, slog.LevelInfo, "request canceled by client", err)
		return 499, gin.H{"detail": "Client closed request."}
	default:
		m.log(c, slog.LevelError, "request failed", err)
		return http.StatusInternalServerError, gin.H{"detail": msgInternal}
	}
}

func unavailableAnswer(c *gin.Context, dependency string) (int, any) {
	c.Header("Retry-After", strconv.Itoa(retryAfterSeconds))
	detail := "Service unavailable, try again later."
	if dependency != "" {
		detail = dependency + " service unavailable, try again later."
	}
	return http.StatusServiceUnavailable, gin.H{"detail": detail}
}

// log records err for operators. Errors built by the core and the adapters
// carry ids and causes, never passwords or hashes.
func (m errorMapper) log(c *gin.Context, level slog.Level, msg string, err error) {
	m.logger.Log(c.Request.Context(), level, msg,
		slog.String("error", err.Error()),
		slog.String("method", c.Request.Method),
		slog.String("route", routeTemplate(c)),
	)
}

// abortWith answers an adapter error outside of a handler's error path
// (middleware, fallbacks, probes); these need no mapping and no logging.
func abortWith(c *gin.Context, e *httpError) {
	c.AbortWithStatusJSON(e.status, e.body)
}
