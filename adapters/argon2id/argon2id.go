// Package argon2id hashes passwords with argon2id and stores them as PHC
// strings ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
package argon2id

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/google/wire"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/crypto/argon2"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// Params are argon2id's cost parameters.
type Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
	SaltLength  int
	KeyLength   uint32
}

// OWASP is one of the OWASP Password Storage Cheat Sheet's equivalent
// argon2id configurations: 9 MiB, 4 iterations, 1 degree of parallelism.
// It costs the same CPU as the first one (19 MiB, 2 iterations) with half
// the memory: two hashes at a time are most of the service's heap, and
// memory, not CPU, is what a replica is sized by. Hashes stored with other
// parameters keep verifying (they carry theirs).
var OWASP = Params{MemoryKiB: 9 * 1024, Iterations: 4, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// Cheap are parameters for tests about anything but the hashing cost (64
// KiB, one pass): the format and the code path are OWASP's. Never for
// stored passwords.
var Cheap = Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// DefaultQueue is how many computations may wait for a slot when no other
// bound is configured (PASSWORD_HASH_QUEUE).
const DefaultQueue = 64

// Config sizes a Hasher.
type Config struct {
	Params Params
	// Concurrency is how many hashes run at once (GOMAXPROCS when <= 0).
	Concurrency int
	// Queue is how many more may wait for a running one to finish; past
	// that a call fails at once (0: none waits).
	Queue int
}

// Hasher hashes with a bounded number of concurrent computations, so a
// burst of sign-ups queues instead of allocating MemoryKiB per request, and
// with a bounded queue, so a flood is refused at once instead of making
// every answer wait longer and longer. Hash and Verify share the pool.
type Hasher struct {
	params Params
	slots  chan struct{}
	// admitted holds one token per computation running or waiting.
	admitted chan struct{}
	tracer   trace.Tracer
}

var _ ports.PasswordHasher = (*Hasher)(nil)

// New returns a hasher running at most concurrency hashes at once
// (GOMAXPROCS when concurrency <= 0) with DefaultQueue waiting.
func New(params Params, concurrency int) *Hasher {
	return NewPool(Config{Params: params, Concurrency: concurrency, Queue: DefaultQueue})
}

// NewPool returns a hasher sized by cfg.
func NewPool(cfg Config) *Hasher {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = runtime.GOMAXPROCS(0)
	}
	cfg.Queue = max(cfg.Queue, 0)
	return &Hasher{
		params:   cfg.Params,
		slots:    make(chan struct{}, cfg.Concurrency),
		admitted: make(chan struct{}, cfg.Concurrency+cfg.Queue),
		tracer:   noop.NewTracerProvider().Tracer(""),
	}
}

// WithTracing makes each hash and verification a span of tp (its wait
// for a slot included: that is where a burst of sign-ups spends its time).
func (h *Hasher) WithTracing(tp trace.TracerProvider) *Hasher {
	if tp != nil {
		h.tracer = tp.Tracer("github.com/marketplace/usersvc/adapters/argon2id")
	}
	return h
}

// ProvideOWASP is a hasher with the OWASP parameters and the default pool.
func ProvideOWASP() *Hasher { return New(OWASP, 0) }

// Provide is the production provider: the configured pool, with a span
// per computation when tp is a recording provider (nil: none).
func Provide(cfg Config, tp trace.TracerProvider) *Hasher { return NewPool(cfg).WithTracing(tp) }

// ProviderSet provides the configured hasher as the port.
var ProviderSet = wire.NewSet(Provide, wire.Bind(new(ports.PasswordHasher), new(*Hasher)))

// owaspMinimums are the OWASP Password Storage Cheat Sheet's equivalent
// minimum argon2id configurations (memory in KiB, iterations), each with
// one degree of parallelism.
var owaspMinimums = []struct{ memoryKiB, iterations uint32 }{
	{47104, 1}, {19456, 2}, {12288, 3}, {9216, 4}, {7168, 5},
}

// ValidateParams refuses parameters weaker than every OWASP minimum
// configuration: at least as much memory and as many iterations as one of
// them, and a parallelism of at least 1.
func ValidateParams(p Params) error {
	if p.Parallelism < 1 {
		return fmt.Errorf("argon2id parallelism must be at least 1")
	}
	if p.MemoryKiB > maxMemoryKiB {
		return fmt.Errorf("argon2id memory %d KiB is over the %d KiB a stored hash may ask for", p.MemoryKiB, maxMemoryKiB)
	}
	for _, m := range owaspMinimums {
		if p.MemoryKiB >= m.memoryKiB && p.Iterations >= m.iterations {
			return nil
		}
	}
	return fmt.Errorf("argon2id m=%d KiB, t=%d is weaker than OWASP's minimums (e.g. m=19456,t=2 or m=9216,t=4 or m=7168,t=5)", p.MemoryKiB, p.Iterations)
}

// NeedsRehash reports whether a stored hash was made with other parameters
// than this hasher's (a malformed one never verifies, so it is not
// rehashed either).
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, _, err := decode(encoded)
	if err != nil {
		return false
	}
	return p != h.params
}

// ErrMalformedHash means a stored hash is not a PHC argon2id string.
var ErrMalformedHash = errors.New("malformed argon2id hash")

var b64 = base64.RawStdEncoding

// Hash returns a PHC string with a fresh random salt.
func (h *Hasher) Hash(ctx context.Context, password string) (_ string, err error) {
	ctx, span := h.tracer.Start(ctx, "password hash", trace.WithAttributes(h.attrs(h.params)...))
	defer func() { endSpan(span, err) }()
	salt := make([]byte, h.params.SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key, err := h.derive(ctx, password, salt, h.params)
	if err != nil {
		return "", err
	}
	p := h.params
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks password against a PHC string, using the parameters stored
// in it so that hashes made with older parameters stay valid.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (_ bool, err error) {
	ctx, span := h.tracer.Start(ctx, "password verify")
	defer func() { endSpan(span, err) }()
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, err
	}
	span.SetAttributes(h.attrs(p)...)
	got, err := h.derive(ctx, password, salt, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func (h *Hasher) derive(ctx context.Context, password string, salt []byte, p Params) ([]byte, error) {
	select {
	case h.admitted <- struct{}{}:
		defer func() { <-h.admitted }()
	default:
		return nil, &domain.OverloadedError{Resource: domain.ResourcePasswordHashing}
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a hashing slot: %w", ctx.Err())
	}
	defer func() { <-h.slots }()
	return argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLength), nil
}

// attrs describe the cost of a computation, never its input.
func (h *Hasher) attrs(p Params) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.Int("argon2id.memory_kib", int(p.MemoryKiB)),
		attribute.Int("argon2id.iterations", int(p.Iterations)),
	}
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "hashing failed")
	}
	span.End()
}

// maxMemoryKiB bounds what a stored hash may ask for (1 GiB), so a corrupt
// row cannot make Verify allocate without limit.
const maxMemoryKiB = 1 << 20

func decode(encoded string) (Params, []byte, []byte, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Params{}, nil, nil, ErrMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return Params{}, nil, nil, fmt.Errorf("%w: version %q", ErrMalformedHash, parts[2])
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Parallelism); err != nil ||
		p.MemoryKiB == 0 || p.MemoryKiB > maxMemoryKiB || p.Iterations == 0 || p.Parallelism == 0 {
		return Params{}, nil, nil, fmt.Errorf("%w: parameters %q", ErrMalformedHash, parts[3])
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) == 0 {
		return Params{}, nil, nil, fmt.Errorf("%w: salt", ErrMalformedHash)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) == 0 {
		return Params{}, nil, nil, fmt.Errorf("%w: key", ErrMalformedHash)
	}
	p.SaltLength, p.KeyLength = len(salt), uint32(len(key)) //nolint:gosec // G115: decoded from a hash string, far below 2^32 bytes
	return p, salt, key, nil
}
