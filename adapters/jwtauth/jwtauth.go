// Package jwtauth authenticates callers by OAuth2 bearer tokens: JWTs
// signed by the company's OpenID Connect server, checked against the keys
// it publishes as a JWKS. Signatures and key parsing are the kept
// libraries' (golang-jwt/jwt, MicahParks/jwkset); this package chooses the
// key, enforces the policy and turns claims into a domain.Principal.
package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/marketplace/usersvc/domain"
)

// Defaults for Config's zero values.
const (
	DefaultLeeway    = 30 * time.Second
	DefaultRefresh   = 15 * time.Minute
	DefaultCacheSize = 10000
)

// DefaultAlgorithms are accepted when Config.Algorithms is empty.
var DefaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// SupportedAlgorithms are the asymmetric JWS algorithms a key from a JWKS
// can verify. "none" and the HMAC family are never among them: with a
// public key set, an HS* token would be signed with a public value.
var SupportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Observer is told of key-set fetches (metrics).
type Observer interface {
	// ObserveKeySetFetch records one fetch; at is the time of a success
	// (zero for an error).
	ObserveKeySetFetch(result string, at time.Time)
}

type noObserver struct{}

func (noObserver) ObserveKeySetFetch(string, time.Time) {}

// Config configures the authenticator.
type Config struct {
	// Disabled turns authentication off (AUTH_MODE=none): every caller is
	// domain.AnonymousPrincipal. The other fields are then ignored.
	Disabled bool
	// JWKSURL is where the keys are: http(s)://… or file:///path.
	JWKSURL string
	// Issuer is the exact iss every token must carry.
	Issuer string
	// Audience is a value the token's aud must contain.
	Audience string
	// Algorithms are the accepted alg values (DefaultAlgorithms when
	// empty); anything outside SupportedAlgorithms is ignored.
	Algorithms []string
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// Refresh is how often the key set is fetched again.
	Refresh time.Duration
	// CacheSize bounds the verified-token cache (DefaultCacheSize when 0).
	CacheSize int
	// HTTPClient fetches the key set (a client with a 10 s timeout when nil).
	HTTPClient *http.Client
	Observer   Observer
	Logger     *slog.Logger
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time
}

// Authenticator implements ports.Authenticator.
type Authenticator struct {
	disabled bool
	keys     *keySet
	parser   *jwt.Parser
	allowed  []string
	cache    *tokenCache
	now      func() time.Time
}

// New starts fetching the key set in the background and returns the
// authenticator with a function that stops the fetching. It fails only on
// a configuration error; an unreachable JWKS is a readiness matter.
func New(ctx context.Context, cfg Config) (*Authenticator, func(), error) {
	if cfg.Disabled {
		return &Authenticator{disabled: true}, func() {}, nil
	}
	u, err := url.Parse(cfg.JWKSURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") ||
		(u.Scheme == "file" && u.Path == "") || (u.Scheme != "file" && u.Host == "") {
		return nil, nil, fmt.Errorf("JWKS URL %q: want http://, https:// or file:///path", cfg.JWKSURL)
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, nil, errors.New("issuer and audience are required")
	}
	allowed := AllowedAlgorithms(cfg.Algorithms)
	if len(allowed) == 0 {
		return nil, nil, fmt.Errorf("no usable algorithm in %q (supported: %s)", cfg.Algorithms, strings.Join(SupportedAlgorithms, ","))
	}
	if cfg.Leeway < 0 {
		cfg.Leeway = 0
	} else if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authenticator{
		keys:    newKeySet(u, cfg.HTTPClient, cfg.Observer, cfg.Now),
		allowed: allowed,
		cache:   newTokenCache(cfg.CacheSize),
		now:     cfg.Now,
		parser: jwt.NewParser(
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Now),
		),
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	logger := cfg.Logger
	go func() {
		defer close(done)
		a.keys.run(ctx, cfg.Refresh, func(err error) {
			logger.WarnContext(ctx, "JWKS fetch failed", slog.String("error", err.Error()))
		})
	}()
	return a, func() { cancel(); <-done }, nil
}

// AllowedAlgorithms keeps the supported entries of algs (DefaultAlgorithms
// when empty), dropping "none", HS* and unknown names.
func AllowedAlgorithms(algs []string) []string {
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	var out []string
	for _, a := range algs {
		if slices.Contains(SupportedAlgorithms, a) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// Ready reports an error until the key set was fetched once.
func (a *Authenticator) Ready(context.Context) error {
	if a.disabled || a.keys.ready() {
		return nil
	}
	return domain.Unavailable(domain.DependencyIdentityProvider, errNoKeys)
}

// Disabled reports whether authentication is off (AUTH_MODE=none).
func (a *Authenticator) Disabled() bool { return a.disabled }

// claims are the token's claims this service reads.
type claims struct {
	jwt.RegisteredClaims
	Scope    string          `json:"scope"`
	Scp      json.RawMessage `json:"scp"`
	ClientID string          `json:"client_id"`
	AZP      string          `json:"azp"`
}

var (
	errAlgorithm = errors.New("algorithm not allowed or not matching the key")
	errNoSubject = errors.New("token has no sub")
	errScp       = errors.New("scp is neither a string nor an array of strings")
)

// Authenticate checks a bearer token and returns its principal.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (domain.Principal, error) {
	if a.disabled {
		return domain.AnonymousPrincipal(), nil
	}
	now := a.now()
	if p, ok := a.cache.get(token, now); ok {
		return p, nil
	}
	// Without keys a token that needs one is a dependency failure (503),
	// but a malformed or forged one is still the caller's fault (401).
	var c claims
	if _, err := a.parser.ParseWithClaims(token, &c, a.keyfunc(ctx)); err != nil {
		return domain.Principal{}, classify(err, c)
	}
	p, err := principal(c)
	if err != nil {
		return domain.Principal{}, domain.Unauthenticated(domain.AuthMalformed, err)
	}
	a.cache.put(token, p, c.ExpiresAt.Time, now)
	return p, nil
}

// keyfunc picks the verification key: by kid, or the only key. The token's
// alg must be allowed and fit the key's type (and curve), so a key cannot
// be used with an algorithm its owner never meant.
func (a *Authenticator) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg, _ := t.Header["alg"].(string)
		if !slices.Contains(a.allowed, alg) {
			return nil, errAlgorithm
		}
		kidValue, hasKID := t.Header["kid"]
		kid, isString := kidValue.(string)
		if hasKID && !isString {
			return nil, errUnknownKey
		}
		jwk, err := a.keys.lookup(ctx, kid, hasKID)
		if err != nil {
			return nil, err
		}
		if ka := jwk.Marshal().ALG.String(); ka != "" && ka != alg {
			return nil, errAlgorithm
		}
		key := jwk.Key()
		if !fits(alg, key) {
			return nil, errAlgorithm
		}
		return key, nil
	}
}

// fits reports whether key is of the type (and curve) alg signs with.
func fits(alg string, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// classify turns a parser error into the closed set of reasons (or an
// unavailable error when no key was ever fetched). Claims are read before
// they are validated, so c tells which required claim was missing.
func classify(err error, c claims) error {
	reason := domain.AuthMalformed
	switch {
	case errors.Is(err, errNoKeys):
		return domain.Unavailable(domain.DependencyIdentityProvider, err)
	case errors.Is(err, errAlgorithm):
		reason = domain.AuthAlgorithm
	case errors.Is(err, errUnknownKey), errors.Is(err, errAmbiguous):
		reason = domain.AuthUnknownKey
	case errors.Is(err, jwt.ErrTokenMalformed):
		reason = domain.AuthMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The header names an alg the library does not know.
		reason = domain.AuthAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		reason = domain.AuthSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		reason = domain.AuthExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		reason = domain.AuthNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		reason = domain.AuthIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && len(c.Audience) == 0 && c.ExpiresAt != nil:
		reason = domain.AuthAudience
	}
	return domain.Unauthenticated(reason, err)
}

// principal reads who the caller is and what it may do.
func principal(c claims) (domain.Principal, error) {
	if c.Subject == "" {
		return domain.Principal{}, errNoSubject
	}
	scopes := domain.ParseScopes(c.Scope)
	if len(c.Scp) > 0 && string(c.Scp) != "null" {
		var asString string
		var asList []string
		switch {
		case json.Unmarshal(c.Scp, &asString) == nil:
			scopes = append(scopes, domain.ParseScopes(asString)...)
		case json.Unmarshal(c.Scp, &asList) == nil:
			for _, s := range asList {
				scopes = append(scopes, domain.Scope(s))
			}
		default:
			return domain.Principal{}, errScp
		}
	}
	clientID := c.ClientID
	if clientID == "" {
		clientID = c.AZP
	}
	return domain.Principal{Subject: c.Subject, ClientID: clientID, Scopes: scopes}, nil
}

// Provide is New with the metrics observer, for Wire.
func Provide(ctx context.Context, cfg Config, observer Observer) (*Authenticator, func(), error) {
	cfg.Observer = observer
	return New(ctx, cfg)
}
