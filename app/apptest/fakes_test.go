package apptest_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/domain"
)

// TestHasher covers what the fake adds to the port's contract (which
// TestHasherContract proves): HashOf predicts its hashes, failures can be
// injected, calls are counted.
func TestHasher(t *testing.T) {
	h := apptest.NewHasher()
	hash, err := h.Hash(ctx, "correct horse")
	if err != nil || hash != apptest.HashOf("correct horse") {
		t.Fatalf("Hash = %q, %v; want HashOf's", hash, err)
	}
	h.FailHash(errX)
	h.FailVerify(errX)
	if _, err := h.Hash(ctx, "x"); !errors.Is(err, errX) {
		t.Errorf("Hash with failure = %v", err)
	}
	if _, err := h.Verify(ctx, hash, "x"); !errors.Is(err, errX) {
		t.Errorf("Verify with failure = %v", err)
	}
	h.FailHash(nil)
	h.FailVerify(nil)
	if ok, err := h.Verify(ctx, hash, "correct horse"); !ok || err != nil {
		t.Errorf("Verify after clearing the failure = %v, %v", ok, err)
	}
	if h.HashCalls() != 2 || h.VerifyCalls() != 2 {
		t.Errorf("calls: hash %d verify %d, want 2 and 2", h.HashCalls(), h.VerifyCalls())
	}
}

// TestGeolocator covers what the fake adds to the port's contract:
// failures injected for every address, and counted calls.
func TestGeolocator(t *testing.T) {
	ch := domain.LocationIn("CH")
	g := apptest.NewGeolocator(map[netip.Addr]domain.Location{netip.MustParseAddr("192.0.2.1"): ch})
	g.Fail(errX)
	if _, err := g.Locate(ctx, netip.MustParseAddr("192.0.2.1")); !errors.Is(err, errX) {
		t.Errorf("Locate while failing = %v", err)
	}
	g.Fail(nil)
	if loc, err := g.Locate(ctx, netip.MustParseAddr("192.0.2.1")); loc != ch || err != nil {
		t.Errorf("Locate after clearing the failure = %+v, %v", loc, err)
	}
	g.Set(netip.MustParseAddr("::ffff:198.51.100.7"), domain.LocationIn("FR"))
	if loc, err := g.Locate(ctx, netip.MustParseAddr("198.51.100.7")); loc.CountryCode != "FR" || err != nil {
		t.Errorf("Locate of an address Set in its IPv4-mapped form = %+v, %v", loc, err)
	}
	if g.Calls() != 3 {
		t.Errorf("calls = %d, want 3", g.Calls())
	}
}

func TestClockAndNotifier(t *testing.T) {
	c := apptest.NewClock(epoch)
	if first, second := c.Now(), c.Now(); !first.Equal(epoch) || !second.Equal(epoch) {
		t.Error("a clock without step moved")
	}
	c.SetStep(time.Second)
	c.Advance(time.Minute)
	if got := c.Now(); !got.Equal(epoch.Add(time.Minute)) {
		t.Errorf("after Advance: %v", got)
	}
	if got := c.Now(); !got.Equal(epoch.Add(time.Minute + time.Second)) {
		t.Errorf("step not applied: %v", got)
	}
	var seen int
	n := apptest.NewNotifier(func() { seen++ })
	n.Notify()
	n.Notify()
	if n.Count() != 2 || seen != 2 {
		t.Errorf("count %d hook %d", n.Count(), seen)
	}
	var zero apptest.Notifier
	zero.Notify()
	if zero.Count() != 1 {
		t.Error("zero notifier did not count")
	}
}
