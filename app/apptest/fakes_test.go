package apptest_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/app/apptest"
	"github.com/marketplace/usersvc/domain"
)

func TestHasher(t *testing.T) {
	h := apptest.NewHasher()
	hash, err := h.Hash(ctx, "correct horse")
	if err != nil || hash != apptest.HashOf("correct horse") || strings.Contains(hash, "correct") {
		t.Fatalf("Hash = %q, %v", hash, err)
	}
	tests := []struct {
		name, hash, password string
		want                 bool
		wantErr              bool
	}{
		{name: "same password", hash: hash, password: "correct horse", want: true},
		{name: "other password", hash: hash, password: "correct horse!"},
		{name: "plain text is not a hash", hash: "correct horse", password: "correct horse", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.Verify(ctx, tc.hash, tc.password)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("Verify = %v, %v", got, err)
			}
		})
	}
	h.FailHash(errX)
	h.FailVerify(errX)
	if _, err := h.Hash(ctx, "x"); !errors.Is(err, errX) {
		t.Errorf("Hash with failure = %v", err)
	}
	if _, err := h.Verify(ctx, hash, "x"); !errors.Is(err, errX) {
		t.Errorf("Verify with failure = %v", err)
	}
	if h.HashCalls() != 2 || h.VerifyCalls() != 4 {
		t.Errorf("calls: hash %d verify %d, want 2 and 4", h.HashCalls(), h.VerifyCalls())
	}
}

func TestGeolocator(t *testing.T) {
	ch := domain.Location{CountryCode: "CH", CountryName: "Switzerland"}
	g := apptest.NewGeolocator(map[netip.Addr]domain.Location{netip.MustParseAddr("192.0.2.1"): ch})
	tests := []struct {
		name string
		ip   string
		want domain.Location
	}{
		{name: "known", ip: "192.0.2.1", want: ch},
		{name: "IPv4-mapped IPv6", ip: "::ffff:192.0.2.1", want: ch},
		{name: "unknown", ip: "198.51.100.7", want: domain.UnknownLocation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := g.Locate(ctx, netip.MustParseAddr(tc.ip)); err != nil || got != tc.want {
				t.Errorf("Locate = %+v, %v", got, err)
			}
		})
	}
	g.Fail(errX)
	if _, err := g.Locate(ctx, netip.MustParseAddr("192.0.2.1")); !errors.Is(err, errX) {
		t.Errorf("Locate while failing = %v", err)
	}
	if g.Calls() != 4 {
		t.Errorf("calls = %d", g.Calls())
	}
}

func TestClockAndNotifier(t *testing.T) {
	c := apptest.NewClock(epoch)
	if !c.Now().Equal(epoch) || !c.Now().Equal(epoch) {
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
