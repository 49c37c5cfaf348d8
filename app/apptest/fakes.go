package apptest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

var (
	_ ports.PasswordHasher = (*Hasher)(nil)
	_ ports.Geolocator     = (*Geolocator)(nil)
	_ ports.Clock          = (*Clock)(nil)
	_ ports.OutboxNotifier = (*Notifier)(nil)
)

// hashPrefix marks the fake's hashes, so a plain password stored by mistake
// never passes for one.
const hashPrefix = "fake$"

// HashOf is the hash Hasher gives password: deterministic and cheap, and
// never the password itself.
func HashOf(password string) string {
	sum := sha256.Sum256([]byte(password))
	return hashPrefix + hex.EncodeToString(sum[:])
}

// Hasher is a ports.PasswordHasher that counts its calls. The zero value
// is ready to use.
type Hasher struct {
	mu          sync.Mutex
	hashCalls   int
	verifyCalls int
	rehashCalls int
	hashErr     error
	verifyErr   error
	onVerify    func()
	onHash      func()
}

// NewHasher returns a hasher that does not fail.
func NewHasher() *Hasher { return &Hasher{} }

// Hash implements ports.PasswordHasher.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	h.mu.Lock()
	h.hashCalls++
	err, hook := h.hashErr, h.onHash
	h.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return HashOf(password), nil
}

// Verify implements ports.PasswordHasher; a hash that is not the fake's is
// an error, as a malformed hash is for a real hasher.
func (h *Hasher) Verify(ctx context.Context, hash, password string) (bool, error) {
	h.mu.Lock()
	h.verifyCalls++
	err, hook := h.verifyErr, h.onVerify
	h.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if !strings.HasPrefix(hash, hashPrefix) {
		return false, fmt.Errorf("apptest: %q is not a hash of the fake hasher", hash)
	}
	return matches(hash, password), nil
}

// FailHash makes every Hash call fail with err (nil to stop).
func (h *Hasher) FailHash(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hashErr = err
}

// FailVerify makes every Verify call fail with err (nil to stop).
func (h *Hasher) FailVerify(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.verifyErr = err
}

// OnVerify runs hook at the start of every Verify call, e.g. to change the
// stored user concurrently with an update.
func (h *Hasher) OnVerify(hook func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onVerify = hook
}

// OnHash runs hook at the start of every Hash call, e.g. to change the
// stored user concurrently with an update.
func (h *Hasher) OnHash(hook func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onHash = hook
}

// HashCalls counts Hash calls, failed ones included.
func (h *Hasher) HashCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hashCalls
}

// VerifyCalls counts Verify calls, failed ones included.
func (h *Hasher) VerifyCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.verifyCalls
}

// Geolocator is a ports.Geolocator answering from a table; addresses it
// lacks are domain.UnknownLocation.
type Geolocator struct {
	mu        sync.Mutex
	locations map[netip.Addr]domain.Location
	err       error
	calls     int
}

// NewGeolocator answers from a copy of locations (nil for none).
func NewGeolocator(locations map[netip.Addr]domain.Location) *Geolocator {
	g := &Geolocator{locations: make(map[netip.Addr]domain.Location, len(locations))}
	for ip, loc := range locations {
		g.locations[ip.Unmap()] = loc
	}
	return g
}

// Locate implements ports.Geolocator. IPv4-mapped IPv6 addresses are looked
// up as IPv4.
func (g *Geolocator) Locate(ctx context.Context, ip netip.Addr) (domain.Location, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if g.err != nil {
		return domain.Location{}, g.err
	}
	if err := ctx.Err(); err != nil {
		return domain.Location{}, err
	}
	if loc, ok := g.locations[ip.Unmap()]; ok {
		return loc, nil
	}
	return domain.UnknownLocation, nil
}

// Set places ip at loc.
func (g *Geolocator) Set(ip netip.Addr, loc domain.Location) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.locations[ip.Unmap()] = loc
}

// Fail makes every Locate call fail with err (nil to stop), as a provider
// that is down.
func (g *Geolocator) Fail(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.err = err
}

// Calls counts Locate calls.
func (g *Geolocator) Calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}

// Clock is a ports.Clock that stands still unless told to move: by
// Advance, Set, or a step added after every Now.
type Clock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

// NewClock returns a clock stopped at now.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

// Now implements ports.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now
	c.now = c.now.Add(c.step)
	return now
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// SetStep makes every later Now call advance the clock by d after answering.
func (c *Clock) SetStep(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.step = d
}

// Notifier is a ports.OutboxNotifier that counts notifications and can run
// a hook on each (to look at the store at that moment). The zero value is
// ready to use.
type Notifier struct {
	mu    sync.Mutex
	count int
	hook  func()
}

// NewNotifier returns a notifier running hook (may be nil) on every Notify.
func NewNotifier(hook func()) *Notifier { return &Notifier{hook: hook} }

// Notify implements ports.OutboxNotifier.
func (n *Notifier) Notify() {
	n.mu.Lock()
	n.count++
	hook := n.hook
	n.mu.Unlock()
	if hook != nil {
		hook()
	}
}

// Count is the number of Notify calls.
func (n *Notifier) Count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.count
}
