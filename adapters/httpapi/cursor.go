package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/marketplace/usersvc/domain"
)

// paramCursor switches a list to cursor mode; an empty value is the first page.
const paramCursor = "cursor"

const msgInvalidCursor = "Invalid cursor."

var errInvalidCursor = &httpError{status: http.StatusBadRequest, body: map[string][]string{paramCursor: {msgInvalidCursor}}}

// CursorKeyFunc returns the key that signs list cursors. Every replica
// behind one URL must get the same key, or a cursor one of them wrote is
// refused by the next; it is asked once and kept after its first success.
type CursorKeyFunc func(ctx context.Context) ([]byte, error)

// cursorTagSize is the length of the HMAC-SHA256 tag kept in a cursor:
// 128 bits are far beyond guessing, and keep links short.
const cursorTagSize = 16

// cursorCodec writes and reads the opaque cursor of a list link:
// base64url(payload ‖ tag), payload a small JSON document naming the order
// it belongs to, the direction and the position (the sort values of the
// row next to the page), tag = HMAC-SHA256(key, payload) truncated. The
// position is what the client already received in the row; the tag only
// makes the cursor unforgeable, so that a cursor is always one this
// service wrote, for this order.
type cursorCodec struct {
	source CursorKeyFunc
	mu     sync.Mutex // held while asking source
	signer atomic.Pointer[cursorSigner]
}

func newCursorCodec(source CursorKeyFunc) *cursorCodec {
	if source == nil {
		// One process alone (tests, a single instance): a random key. It
		// does not survive a restart, so the composition root passes one.
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		source = func(context.Context) ([]byte, error) { return key, nil }
	}
	return &cursorCodec{source: source}
}

// signerFor returns the signer of the key, asking source for the key on
// first use (and again after a failure).
func (c *cursorCodec) signerFor(ctx context.Context) (*cursorSigner, error) {
	if s := c.signer.Load(); s != nil {
		return s, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.signer.Load(); s != nil {
		return s, nil
	}
	key, err := c.source(ctx)
	if err != nil {
		return nil, fmt.Errorf("cursor key: %w", err)
	}
	s := newCursorSigner(key)
	c.signer.Store(s)
	return s, nil
}

// cursorSigner computes cursor tags under one key. hmac.New hashes the key
// into its inner and outer states each time (two SHA-256 blocks and five
// allocations); a pooled MAC is Reset to those states instead. A cursor
// page computes three tags.
type cursorSigner struct {
	macs sync.Pool // of hash.Hash, HMAC-SHA256 under the key
}

func newCursorSigner(key []byte) *cursorSigner {
	s := &cursorSigner{}
	s.macs.New = func() any { return hmac.New(sha256.New, key) }
	return s
}

// appendTag appends body's tag, the HMAC truncated to cursorTagSize, to dst.
func (s *cursorSigner) appendTag(dst, body []byte) []byte {
	m := s.macs.Get().(hash.Hash)
	m.Write(body)
	dst = m.Sum(dst)[:len(dst)+cursorTagSize]
	m.Reset()
	s.macs.Put(m)
	return dst
}

// cursorPayload is what a cursor carries.
type cursorPayload struct {
	Order    string   `json:"o"`
	Backward bool     `json:"b,omitempty"`
	Key      []string `json:"k,omitempty"` // nil: the start (or, backward, the end)
}

// orderName spells a KeyOrder, e.g. "-created_at,id".
func orderName(order []domain.OrderField) string {
	parts := make([]string, len(order))
	for i, f := range order {
		parts[i] = f.Field
		if f.Desc {
			parts[i] = "-" + f.Field
		}
	}
	return strings.Join(parts, ",")
}

func (c *cursorCodec) encode(ctx context.Context, order []domain.OrderField, ks domain.Keyset) (string, error) {
	p := cursorPayload{Order: orderName(order), Backward: ks.Backward}
	if ks.From != nil {
		for _, f := range order {
			p.Key = append(p.Key, keyText(*ks.From, f.Field))
		}
	}
	body, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode cursor: %w", err)
	}
	signer, err := c.signerFor(ctx)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(signer.appendTag(body, body)), nil
}

// decode reads a cursor for a request sorted by order. The empty cursor is
// the first page. A cursor that is not one of ours, was edited, or belongs
// to another ordering is errInvalidCursor.
func (c *cursorCodec) decode(ctx context.Context, raw string, order []domain.OrderField) (*domain.Keyset, error) {
	if raw == "" {
		return &domain.Keyset{}, nil
	}
	data, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(data) <= cursorTagSize {
		return nil, errInvalidCursor
	}
	body, got := data[:len(data)-cursorTagSize], data[len(data)-cursorTagSize:]
	signer, err := c.signerFor(ctx)
	if err != nil {
		return nil, err
	}
	var want [sha256.Size]byte
	if !hmac.Equal(got, signer.appendTag(want[:0], body)) {
		return nil, errInvalidCursor
	}
	var p cursorPayload
	if err := json.Unmarshal(body, &p); err != nil || p.Order != orderName(order) {
		return nil, errInvalidCursor
	}
	ks := &domain.Keyset{Backward: p.Backward}
	if p.Key == nil {
		return ks, nil
	}
	if len(p.Key) != len(order) {
		return nil, errInvalidCursor
	}
	var k domain.SortKey
	for i, f := range order {
		if !setKeyText(&k, f.Field, p.Key[i]) {
			return nil, errInvalidCursor
		}
	}
	ks.From = &k
	return ks, nil
}

func keyText(k domain.SortKey, field string) string {
	switch field {
	case domain.SortFirstName:
		return k.FirstName
	case domain.SortLastName:
		return k.LastName
	case domain.SortEmail:
		return k.Email
	case domain.SortCreatedAt:
		return k.CreatedAt.UTC().Format(time.RFC3339Nano)
	}
	return strconv.FormatInt(k.ID, 10)
}

func setKeyText(k *domain.SortKey, field, v string) bool {
	var err error
	switch field {
	case domain.SortFirstName:
		k.FirstName = v
	case domain.SortLastName:
		k.LastName = v
	case domain.SortEmail:
		k.Email = v
	case domain.SortCreatedAt:
		k.CreatedAt, err = time.Parse(time.RFC3339Nano, v)
	default:
		k.ID, err = strconv.ParseInt(v, 10, 64)
	}
	return err == nil
}
