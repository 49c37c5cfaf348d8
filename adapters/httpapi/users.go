package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/app"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// usersHandler serves the user resource by driving the use cases.
type usersHandler struct {
	users                      *app.Users
	errors                     errorMapper
	cursors                    *cursorCodec
	maxOffset                  int
	createLimit, passwordLimit ports.RateLimiter
}

// allow takes one event from the client's allowance under limit (nil: no
// limit) and answers the request itself when there is none (429) or the
// limiter cannot tell (503).
func (h *usersHandler) allow(c *gin.Context, limit ports.RateLimiter) bool {
	if limit == nil {
		return true
	}
	block := domain.ClientBlock(infoFrom(c).Client)
	ok, retryAfter, err := limit.Allow(c.Request.Context(), block.String())
	switch {
	case err != nil:
		h.errors.respond(c, fmt.Errorf("rate limit for %s: %w", block, err))
		return false
	case !ok:
		h.errors.respond(c, &rateLimitedError{retryAfter: retryAfter})
		return false
	}
	return true
}

func (h *usersHandler) create(c *gin.Context) {
	if !h.allow(c, h.createLimit) {
		return
	}
	in, err := decodeInput(c)
	if err != nil {
		h.errors.respond(c, err)
		return
	}
	info := infoFrom(c)
	u, err := h.users.Create.Do(c.Request.Context(), in, info.Client)
	if err != nil {
		h.errors.respond(c, err)
		return
	}
	enc := newUserEncoder(info.Origin)
	c.Header("Location", enc.url(u.ID))
	c.Header("ETag", etag(u.Version))
	writeJSON(c, http.StatusCreated, oneUser{enc: enc, user: u})
}

// verify checks an email and password: 200 with the user as GET shows it,
// or the one answer for wrong credentials (see errorMapper).
func (h *usersHandler) verify(c *gin.Context) {
	in, err := decodeInput(c)
	if err != nil {
		h.errors.respond(c, err)
		return
	}
	u, err := h.users.Verify.Do(c.Request.Context(), in)
	h.respondUser(c, u, err)
}

func (h *usersHandler) list(c *gin.Context) {
	// URL.Query would drop what it cannot parse and serve an unfiltered list.
	query, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		h.errors.respond(c, parseError("Query", err))
		return
	}
	q, err := parseListQuery(query)
	if err != nil {
		h.errors.respond(c, err)
		return
	}
	ctx := c.Request.Context()
	_, cursorMode := query[paramCursor]
	switch {
	case cursorMode:
		q.Keyset, err = h.cursors.decode(ctx, query.Get(paramCursor), q.KeyOrder())
	case h.maxOffset > 0 && int64(q.Page)*int64(q.PageSize) > int64(h.maxOffset):
		err = pageTooDeep(h.maxOffset)
	}
	if err != nil {
		h.errors.respond(c, err)
		return
	}
	page, err := h.users.List.Do(ctx, q)
	if err != nil {
		h.errors.respond(c, err)
		return
	}
	if !cursorMode {
		writeJSON(c, http.StatusOK, representPage(infoFrom(c).Origin, c.Request.URL.Path, query, q, page))
		return
	}
	body, err := representCursorPage(ctx, h.cursors, infoFrom(c).Origin, c.Request.URL.Path, query, q, page)
	if err != nil {
		h.errors.respond(c, err)
		return
	}
	writeJSON(c, http.StatusOK, body)
}

func (h *usersHandler) get(c *gin.Context) {
	id, ok := h.userID(c)
	if !ok {
		return
	}
	u, err := h.users.Get.Do(c.Request.Context(), id)
	if err == nil && noneMatch(c.Request.Header.Values("If-None-Match"), u.Version) {
		// The caller's copy is current: 304 with the tag, no body.
		c.Header("ETag", etag(u.Version))
		c.Status(http.StatusNotModified)
		return
	}
	h.respondUser(c, u, err)
}

func (h *usersHandler) replace(c *gin.Context) {
	h.update(c, h.users.Replace.Do)
}

func (h *usersHandler) patch(c *gin.Context) {
	h.update(c, h.users.Patch.Do)
}

type updateFunc = func(ctx context.Context, id int64, in domain.Input, pre domain.Precondition) (domain.User, error)

// update serves PUT and PATCH, which differ only in the use case.
func (h *usersHandler) update(c *gin.Context, do updateFunc) {
	id, ok := h.userID(c)
	if !ok {
		return
	}
	in, err := decodeInput(c)
	if err != nil {
		h.errors.respond(c, err)
		return
	}
	if in.Password != nil && !h.allow(c, h.passwordLimit) {
		return
	}
	u, err := do(c.Request.Context(), id, in, parseIfMatch(c.Request.Header.Values("If-Match")))
	h.respondUser(c, u, err)
}

func (h *usersHandler) delete(c *gin.Context) {
	id, ok := h.userID(c)
	if !ok {
		return
	}
	if err := h.users.Delete.Do(c.Request.Context(), id, parseIfMatch(c.Request.Header.Values("If-Match"))); err != nil {
		h.errors.respond(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// userID reads the path's id; anything but a positive decimal int64 names
// no user, so it answers 404 like an absent one.
func (h *usersHandler) userID(c *gin.Context) (int64, bool) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 || c.Param("id")[0] == '+' {
		h.errors.respond(c, errNotFound)
		return 0, false
	}
	return id, true
}

func (h *usersHandler) respondUser(c *gin.Context, u domain.User, err error) {
	if err != nil {
		h.errors.respond(c, err)
		return
	}
	c.Header("ETag", etag(u.Version))
	writeJSON(c, http.StatusOK, oneUser{enc: newUserEncoder(infoFrom(c).Origin), user: u})
}
