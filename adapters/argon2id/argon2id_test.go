package argon2id

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports/porttest"
)

var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

// TestPasswordHasherContract proves the hasher against the port's shared
// suite. Cheap parameters keep it fast: the code path is the same for
// OWASP's (TestHashFormat, TestVerifyUsesStoredParameters).
func TestPasswordHasherContract(t *testing.T) {
	porttest.RunPasswordHasherContract(t, New(Cheap, 2), porttest.HasherOptions{})
}

// TestHashFormat checks the PHC string layout and that it records the
// parameters used.
func TestHashFormat(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params Params
		want   string // m,t,p as printed
	}{
		{"owasp parameters", OWASP, "m=9216,t=4,p=1"},
		{"cheap parameters", Cheap, "m=64,t=1,p=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			encoded, err := New(tc.params, 2).Hash(context.Background(), "correct horse battery staple ✓")
			if err != nil {
				t.Fatal(err)
			}
			if !phc.MatchString(encoded) || !strings.Contains(encoded, tc.want) {
				t.Fatalf("hash %q is not a PHC argon2id string with %s", encoded, tc.want)
			}
		})
	}
}

func TestVerifyUsesStoredParameters(t *testing.T) {
	// OWASP's 19 MiB configuration was the default before the 9 MiB one.
	previousDefault := Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	for _, tc := range []struct {
		name   string
		params Params
	}{
		{"cheap parameters", Cheap},
		{"previous default, 19 MiB and 2 passes", previousDefault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, _ := New(tc.params, 1).Hash(context.Background(), "pw-123456")
			h := New(OWASP, 1)
			if ok, err := h.Verify(context.Background(), old, "pw-123456"); err != nil || !ok {
				t.Fatalf("hash made with older parameters no longer verifies: %v %v", ok, err)
			}
			if ok, err := h.Verify(context.Background(), old, "pw-1234567"); err != nil || ok {
				t.Fatalf("wrong password verified against a hash with older parameters: %v %v", ok, err)
			}
		})
	}
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	h := New(Cheap, 1)
	valid, _ := h.Hash(context.Background(), "pw-123456")
	parts := strings.Split(valid, "$")
	for name, encoded := range map[string]string{
		"empty":              "",
		"bcrypt":             "$2a$10$abcdefghijklmnopqrstuv",
		"argon2i":            strings.Replace(valid, "argon2id", "argon2i", 1),
		"wrong version":      strings.Replace(valid, "v=19", "v=16", 1),
		"zero memory":        strings.Replace(valid, parts[3], "m=0,t=1,p=1", 1),
		"huge memory":        strings.Replace(valid, parts[3], "m=99999999,t=1,p=1", 1),
		"bad parameters":     strings.Replace(valid, parts[3], "m=x", 1),
		"salt not base64":    strings.Replace(valid, parts[4], "!!!", 1),
		"missing key":        strings.Join(parts[:5], "$") + "$",
		"too many sections":  valid + "$extra",
		"plain text in hash": "pw-123456",
	} {
		t.Run(name, func(t *testing.T) {
			ok, err := h.Verify(context.Background(), encoded, "pw-123456")
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("Verify(%q) = %v, %v; want ErrMalformedHash", encoded, ok, err)
			}
		})
	}
}

func TestPoolBoundsConcurrencyAndHonoursContext(t *testing.T) {
	h := New(Cheap, 1)
	h.slots <- struct{}{} // the only slot is busy
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "pw-123456"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Hash with every slot busy = %v; want the context's deadline", err)
	}
	<-h.slots
	if _, err := h.Hash(context.Background(), "pw-123456"); err != nil {
		t.Fatalf("Hash after the slot was freed: %v", err)
	}
}

func TestFullQueueRefusesAtOnce(t *testing.T) {
	h := NewPool(Config{Params: Cheap, Concurrency: 1, Queue: 2})
	for range 3 { // one running and two waiting: the pool is full
		h.admitted <- struct{}{}
	}
	valid, err := New(Cheap, 1).Hash(context.Background(), "pw-123456")
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"Hash":   func() error { _, err := h.Hash(context.Background(), "pw-123456"); return err },
		"Verify": func() error { _, err := h.Verify(context.Background(), valid, "pw-123456"); return err },
	} {
		// No deadline: a call that waited instead of refusing would hang.
		if err := call(); !errors.Is(err, domain.ErrOverloaded) {
			t.Errorf("%s with a full queue = %v; want domain.ErrOverloaded", name, err)
		}
	}
	<-h.admitted
	if _, err := h.Hash(context.Background(), "pw-123456"); err != nil {
		t.Fatalf("Hash once a place was free: %v", err)
	}
}

func BenchmarkHashOWASP(b *testing.B) {
	h := New(OWASP, 0)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Hash(ctx, "benchmark-password"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestNeedsRehash(t *testing.T) {
	h := New(Cheap, 1)
	current, err := h.Hash(context.Background(), "pw-123456")
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(OWASP, 1).Hash(context.Background(), "pw-123456")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		hash string
		want bool
	}{
		"current parameters":     {current, false},
		"other parameters":       {other, true},
		"malformed (never used)": {"not-a-hash", false},
	} {
		if got := h.NeedsRehash(tc.hash); got != tc.want {
			t.Errorf("%s: NeedsRehash = %v, want %v", name, got, tc.want)
		}
	}
}
