// Package ports declares, as Go interfaces only, what the application core
// needs from the outside world. Adapters implement them.
package ports

import (
	"context"
	"net/netip"
	"time"

	"github.com/marketplace/usersvc/domain"
)

// UserReader reads users outside of any transaction.
type UserReader interface {
	// GetUser returns domain.ErrNotFound when no user has this id.
	GetUser(ctx context.Context, id int64) (domain.User, error)
	// ListUsers returns one page of the users matching q, and the number of
	// all matches. With q.Keyset it returns the q.PageSize matches next to
	// the position in q.KeyOrder() (in that order, whichever the direction)
	// and whether more follow, reading about as many rows as it returns at
	// any depth, and counts nothing.
	ListUsers(ctx context.Context, q domain.ListQuery) (domain.UserPage, error)
}

// UnitOfWork runs a function inside one database transaction: everything
// the function writes through Tx commits together or not at all.
type UnitOfWork interface {
	// Do commits when fn returns nil and rolls back otherwise; a failed
	// commit is returned as an error.
	Do(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
}

// Tx is what a use case may do inside a unit of work.
type Tx interface {
	UserWriter
	OutboxWriter
}

// UserWriter changes users inside a transaction.
type UserWriter interface {
	// LockUser loads a user and locks it until the transaction ends
	// (domain.ErrNotFound when absent).
	LockUser(ctx context.Context, id int64) (domain.User, error)
	// InsertUser stores a new user and sets its ID (domain.ErrEmailTaken on
	// a duplicate email).
	InsertUser(ctx context.Context, u *domain.User) error
	// UpdateUser writes every field of a locked user but Country, which
	// InsertUser sets once (domain.ErrEmailTaken on a duplicate email).
	UpdateUser(ctx context.Context, u domain.User) error
	// DeleteUser removes a locked user.
	DeleteUser(ctx context.Context, id int64) error
}

// OutboxWriter appends a message to the transactional outbox.
type OutboxWriter interface {
	AppendMessage(ctx context.Context, m domain.Message) error
}

// Outbox is the relay's view of the outbox.
type Outbox interface {
	// PendingMessages returns up to limit unpublished messages whose Seq is
	// greater than afterSeq, in Seq order (afterSeq 0: from the first). A
	// Seq is taken when the message is appended, not when it commits, so a
	// message of a slower transaction can become visible after others with
	// a higher Seq were returned: a reader that continues from the last Seq
	// it saw does not see it, one that starts again at 0 does.
	PendingMessages(ctx context.Context, afterSeq int64, limit int) ([]domain.Message, error)
	// MarkPublished records that the broker acknowledged these messages.
	MarkPublished(ctx context.Context, seqs []int64, at time.Time) error
	// PurgePublished deletes messages published before the given time.
	PurgePublished(ctx context.Context, before time.Time) (int64, error)
	// Backlog counts unpublished messages and gives the oldest one's time
	// (zero when there is none).
	Backlog(ctx context.Context) (count int64, oldest time.Time, err error)
}

// RelayLock lets one relay publish at a time across replicas sharing a
// database, which keeps the outbox's global order.
type RelayLock interface {
	// TryLock returns ok=false when another holder has the lock. The lock
	// is held until unlock is called or ctx ends, or until it is lost (its
	// holder can no longer prove it holds it, e.g. cut off from the
	// database): held ends then, and work done under the lock must run
	// under held, so that two holders never publish at once.
	TryLock(ctx context.Context) (held context.Context, unlock func(), ok bool, err error)
}

// EventPublisher sends messages to the bus.
type EventPublisher interface {
	// Publish sends msgs in order and waits for the broker's
	// acknowledgements. It returns how many leading messages were
	// acknowledged; on an error the rest must be sent again.
	Publish(ctx context.Context, msgs []domain.Message) (acked int, err error)
}

// BrokerConnector is what an EventPublisher may add: Connect makes sure it
// has a working connection to the broker (making one if it has none)
// without sending anything. The relay calls it before taking the relay
// lock, so that a replica cut off from the broker alone fails to connect
// without holding the lock, while the others publish.
type BrokerConnector interface {
	Connect(ctx context.Context) error
}

// Geolocator places a client address.
type Geolocator interface {
	// Locate returns domain.UnknownLocation for addresses it cannot place
	// (reserved, private, unknown) and an error only when the provider
	// failed; callers must then refuse, not guess.
	Locate(ctx context.Context, ip netip.Addr) (domain.Location, error)
}

// PasswordHasher hashes and checks passwords.
type PasswordHasher interface {
	Hash(ctx context.Context, password string) (string, error)
	// Verify reports whether password matches hash.
	Verify(ctx context.Context, hash, password string) (bool, error)
}

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// OutboxNotifier is told after a commit that wrote to the outbox, so the
// relay publishes without waiting for its next poll.
type OutboxNotifier interface {
	Notify()
}

// Authenticator turns a caller's credential into a principal. Inbound
// adapters call it before any other work of a request; what the principal
// may do is decided by domain.Principal.Authorize, the same for every
// adapter.
type Authenticator interface {
	// Authenticate returns an error wrapping domain.ErrUnauthenticated (a
	// *domain.AuthError) when the token is refused, and a
	// *domain.UnavailableError when it cannot be checked yet (no signing
	// keys known).
	Authenticate(ctx context.Context, bearerToken string) (domain.Principal, error)
}

// LoginFailureStore keeps the failed credential checks per email key, in
// the database every replica shares, so that a lockout holds whichever
// replica a guess reaches.
type LoginFailureStore interface {
	// LoginFailures returns the record of key (the zero value when none).
	LoginFailures(ctx context.Context, key string) (domain.LoginFailures, error)
	// RecordLoginFailure adds one failure at `at` atomically (concurrent
	// calls lose no increment) and returns the record after it. A record
	// whose window started at or before at-window starts again at 1.
	RecordLoginFailure(ctx context.Context, key string, at time.Time, window time.Duration) (domain.LoginFailures, error)
	// ResetLoginFailures forgets key's failures.
	ResetLoginFailures(ctx context.Context, key string) error
	// PurgeLoginFailures removes records whose last failure is before
	// cutoff and returns how many it removed.
	PurgeLoginFailures(ctx context.Context, cutoff time.Time) (int64, error)
}

// PasswordHashReplacer upgrades a stored hash without touching anything
// else of the user (no version, no updated_at, no event).
type PasswordHashReplacer interface {
	// ReplacePasswordHash sets user id's hash to newHash if it is still
	// oldHash; replaced is false when it was not (changed meanwhile, or no
	// such user).
	ReplacePasswordHash(ctx context.Context, id int64, oldHash, newHash string) (replaced bool, err error)
}

// RehashChecker tells whether a stored hash was made with other parameters
// than the ones configured now.
type RehashChecker interface {
	NeedsRehash(hash string) bool
}

// RateLimiter bounds how often one key (a client's address block) may do
// something; each limiter holds one limit.
type RateLimiter interface {
	// Allow takes one event from key's allowance. When none is left it
	// returns ok=false and how long until one is; err when the limiter's
	// store cannot answer.
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// TraceContext reads the trace context of the current request, so that an
// outbox row remembers which request wrote it and the relay's publish joins
// that trace.
type TraceContext interface {
	// Inject returns ctx's W3C traceparent and tracestate values; both are
	// empty when tracing is off or ctx is in no trace.
	Inject(ctx context.Context) (traceparent, tracestate string)
}
