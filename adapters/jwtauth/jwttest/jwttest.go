// Package jwttest is a test OAuth2 issuer: it generates signing keys,
// serves their JWKS over real HTTP on loopback, mints tokens, and can be
// changed mid-test (rotation, an outage, a garbage answer).
package jwttest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Issuer and Audience the tests configure and mint for.
const (
	Issuer   = "https://id.test.invalid/realms/marketplace"
	Audience = "usersvc"
)

// Key is one signing key of the issuer.
type Key struct {
	KID     string
	Alg     string
	Private crypto.Signer
	method  jwt.SigningMethod
}

// Public returns the key's public half.
func (k Key) Public() crypto.PublicKey { return k.Private.Public() }

// NewKey generates a key for alg: RS256 (RSA 2048), ES256 (P-256) or EdDSA.
func NewKey(t testing.TB, kid, alg string) Key {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("jwttest: no key type for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return Key{KID: kid, Alg: alg, Private: priv, method: jwt.GetSigningMethod(alg)}
}

// Server is the issuer's JWKS endpoint.
type Server struct {
	t      testing.TB
	srv    *httptest.Server
	mu     sync.Mutex
	keys   []Key
	status int    // 0: 200 with the key set
	body   []byte // non-nil: answered instead of the key set
	hits   atomic.Int64
}

// NewServer serves the JWKS of keys on loopback until the test ends.
func NewServer(t testing.TB, keys ...Key) *Server {
	t.Helper()
	s := &Server{t: t, keys: keys}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the JWKS URL.
func (s *Server) URL() string { return s.srv.URL + "/jwks.json" }

// Hits counts the JWKS requests served.
func (s *Server) Hits() int64 { return s.hits.Load() }

// SetKeys replaces the published keys (rotation).
func (s *Server) SetKeys(keys ...Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

// Fail makes the endpoint answer status (0: back to normal).
func (s *Server) Fail(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// Answer makes the endpoint answer 200 with body (nil: the key set again).
func (s *Server) Answer(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.mu.Lock()
	status, body, keys := s.status, s.body, s.keys
	s.mu.Unlock()
	if status != 0 {
		http.Error(w, "down", status)
		return
	}
	if body == nil {
		body = JWKS(s.t, keys...)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(body)
}

// JWKS renders the public halves of keys as a JWKS document.
func JWKS(t testing.TB, keys ...Key) []byte {
	t.Helper()
	store := jwkset.NewMemoryStorage()
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: k.KID, ALG: jwkset.ALG(k.Alg), USE: jwkset.UseSig},
		})
		if err != nil {
			t.Fatalf("jwttest: JWK of %s: %v", k.KID, err)
		}
		if err := store.KeyWrite(context.Background(), jwk); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := store.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Claims are a token's claims; Valid fills a typical client-credentials
// token that the tests then spoil one field at a time.
type Claims = jwt.MapClaims

// Valid returns claims of a token issued now for Audience, valid 1 hour.
func Valid(sub string, scope string) Claims {
	now := time.Now()
	return Claims{
		"iss": Issuer, "aud": []string{Audience, "other"}, "sub": sub,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"scope": scope, "client_id": sub + "-client",
	}
}

// Mint signs claims with k, naming k's kid in the header.
func Mint(t testing.TB, k Key, c Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, c)
	tok.Header["kid"] = k.KID
	s, err := tok.SignedString(k.Private)
	if err != nil {
		t.Fatalf("jwttest: sign: %v", err)
	}
	return s
}

// MintHeader signs claims with k and the given header fields (a nil value
// removes the field, e.g. "kid").
func MintHeader(t testing.TB, k Key, header map[string]any, c Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, c)
	tok.Header["kid"] = k.KID
	for name, v := range header {
		if v == nil {
			delete(tok.Header, name)
		} else {
			tok.Header[name] = v
		}
	}
	s, err := tok.SignedString(k.Private)
	if err != nil {
		t.Fatalf("jwttest: sign: %v", err)
	}
	return s
}

// MintWith signs claims with any method and key the library accepts (for
// forged tokens: "none", HS256 keyed by a public key).
func MintWith(t testing.TB, method jwt.SigningMethod, key any, kid string, c Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("jwttest: sign: %v", err)
	}
	return s
}

// Raw returns the JSON text of v (for hand-built headers in tests).
func Raw(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// WithMethod fills the signing method from Alg, for keys built by hand
// (e.g. a published kid with an unpublished private key).
func (k Key) WithMethod() Key {
	k.method = jwt.GetSigningMethod(k.Alg)
	return k
}
