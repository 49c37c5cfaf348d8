package porttest

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// HasherOptions describes the hasher under test.
type HasherOptions struct {
	// Unsalted says equal passwords give equal hashes (the deterministic
	// fake of app/apptest); a real hasher salts every hash.
	Unsalted bool
}

// RunPasswordHasherContract proves h against ports.PasswordHasher:
//   - Verify is true for the password that was hashed and false, without
//     an error, for any other (case, spacing, one more character, the
//     empty string);
//   - every character counts, up to domain.MaxPasswordLength characters of
//     multi-byte text (no silent truncation, as bcrypt's at 72 bytes);
//   - Unicode passwords work;
//   - a hash never contains its password;
//   - two hashes of one password differ (fresh salt) unless opts.Unsalted;
//   - a string that is not a hash of h (e.g. a password stored by mistake)
//     is an error, never a match.
//
// The port documents no behaviour for an ended context, so the suite tests
// none. Subtests run in parallel: h must be safe for concurrent use.
func RunPasswordHasherContract(t *testing.T, h ports.PasswordHasher, opts HasherOptions) {
	t.Helper()
	maxASCII := strings.Repeat("x", domain.MaxPasswordLength-1) + "y"
	maxWide := strings.Repeat("🔑", domain.MaxPasswordLength-1) + "é"
	if utf8.RuneCountInString(maxWide) != domain.MaxPasswordLength {
		t.Fatal("test set-up: the long password is not of the maximum length")
	}
	cases := []struct {
		name     string
		password string
		wrong    []string // passwords that must not verify
	}{
		{"ASCII", "correct horse battery staple", []string{
			"Correct horse battery staple", "correct horse battery staple ", " correct horse battery staple",
			"correct horse battery stapl", "correct horse battery staplee", "", "correct\x00horse battery staple",
		}},
		{"Unicode", "pässwörd-日本語-🔑-Ωμέγα", []string{"passwörd-日本語-🔑-Ωμέγα", "PÄSSWÖRD-日本語-🔑-ΩΜΈΓΑ", "pässwörd-日本語-🔑-Ωμεγα"}},
		{"maximum length ASCII", maxASCII, []string{strings.Repeat("x", domain.MaxPasswordLength), maxASCII[:len(maxASCII)-1]}},
		{"maximum length multi-byte, last character counts", maxWide, []string{strings.Repeat("🔑", domain.MaxPasswordLength-1) + "e", strings.Repeat("🔑", domain.MaxPasswordLength)}},
		{"minimum length", "12345678", []string{"1234567", "123456789", "12345679"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			hash, err := h.Hash(ctx, c.password)
			mustNotFail(t, "Hash", err)
			if hash == "" || strings.Contains(hash, c.password) {
				t.Fatalf("Hash = %q: empty or containing the password", hash)
			}
			if ok, err := h.Verify(ctx, hash, c.password); !ok || err != nil {
				t.Errorf("Verify(right password) = %v, %v; want true, nil", ok, err)
			}
			for _, w := range c.wrong {
				if ok, err := h.Verify(ctx, hash, w); ok || err != nil {
					t.Errorf("Verify(%.20q...) = %v, %v; want false, nil", w, ok, err)
				}
			}
			again, err := h.Hash(ctx, c.password)
			mustNotFail(t, "second Hash", err)
			if !opts.Unsalted && again == hash {
				t.Errorf("two hashes of one password are equal (%q): no fresh salt", hash)
			}
			if ok, err := h.Verify(ctx, again, c.password); !ok || err != nil {
				t.Errorf("Verify(right password, second hash) = %v, %v; want true, nil", ok, err)
			}
		})
	}
	t.Run("a string that is not a hash is an error", func(t *testing.T) {
		t.Parallel()
		const pw = "correct horse battery staple"
		for _, notHash := range []string{"", pw, "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"} {
			if ok, err := h.Verify(context.Background(), notHash, pw); ok || err == nil {
				t.Errorf("Verify(%q, password) = %v, %v; want false and an error", notHash, ok, err)
			}
		}
	})
}
