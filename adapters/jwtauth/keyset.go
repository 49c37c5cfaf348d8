package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"golang.org/x/time/rate"
)

// maxKeySetBytes bounds a JWKS document: real ones are a few KiB, and an
// endpoint answering an endless body must not exhaust memory.
const maxKeySetBytes = 1 << 20

// unknownKIDEvery is the least time between two fetches caused by tokens
// naming a kid we do not know, so garbage kids cannot hammer the issuer.
const unknownKIDEvery = 10 * time.Second

// Fetch results, the closed label set of key-set fetch metrics.
const (
	FetchSuccess = "success"
	FetchError   = "error"
)

var (
	errNoKeys      = errors.New("signing keys not fetched yet")
	errUnknownKey  = errors.New("no key with this kid")
	errAmbiguous   = errors.New("token has no kid and the key set holds several keys")
	errNoUsableKey = errors.New("key set holds no usable signing key")
)

// keySet holds the issuer's public signing keys, fetched from a JWKS URL
// (http, https or file) and refreshed in the background.
type keySet struct {
	url      *url.URL
	client   *http.Client
	observer Observer
	now      func() time.Time

	mu     sync.RWMutex
	keys   []jwkset.JWK
	loaded bool

	fetchMu    sync.Mutex // one fetch at a time
	unknownKID *rate.Limiter
}

func newKeySet(u *url.URL, client *http.Client, observer Observer, now func() time.Time) *keySet {
	return &keySet{
		url: u, client: client, observer: observer, now: now,
		unknownKID: rate.NewLimiter(rate.Every(unknownKIDEvery), 1),
	}
}

// ready reports whether at least one fetch succeeded.
func (k *keySet) ready() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.loaded
}

// run fetches the keys now and every interval until ctx ends. Until the
// first success it retries quickly (backing off to 30 s), since no token
// can be checked meanwhile; afterwards a failed fetch keeps the old keys.
func (k *keySet) run(ctx context.Context, interval time.Duration, onError func(error)) {
	backoff := time.Second
	for {
		wait := interval
		if err := k.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			onError(err)
			if !k.ready() {
				wait = min(backoff, interval)
				backoff = min(2*backoff, 30*time.Second)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// refresh fetches the key set once and, when it holds a usable key,
// replaces the keys held.
func (k *keySet) refresh(ctx context.Context) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	return k.refreshLocked(ctx)
}

func (k *keySet) refreshLocked(ctx context.Context) error {
	keys, err := k.fetch(ctx)
	if err == nil && len(keys) == 0 {
		err = errNoUsableKey
	}
	if err != nil {
		k.observer.ObserveKeySetFetch(FetchError, time.Time{})
		return fmt.Errorf("fetch JWKS %s: %w", k.url.Redacted(), err)
	}
	k.mu.Lock()
	k.keys, k.loaded = keys, true
	k.mu.Unlock()
	k.observer.ObserveKeySetFetch(FetchSuccess, k.now())
	return nil
}

func (k *keySet) fetch(ctx context.Context) ([]jwkset.JWK, error) {
	var body io.ReadCloser
	if k.url.Scheme == "file" {
		f, err := os.Open(k.url.Path)
		if err != nil {
			return nil, err
		}
		body = f
	} else {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url.String(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/jwk-set+json, application/json")
		resp, err := k.client.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		body = resp.Body
	}
	defer body.Close()
	raw, err := io.ReadAll(io.LimitReader(body, maxKeySetBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxKeySetBytes {
		return nil, fmt.Errorf("document larger than %d bytes", maxKeySetBytes)
	}
	return parseKeySet(raw)
}

// parseKeySet keeps the public signature keys of a JWKS document. A key it
// cannot use (symmetric, encryption, unknown type) is skipped rather than
// failing the set, so one odd key at the issuer does not lock everyone out.
func parseKeySet(raw []byte) ([]jwkset.JWK, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	keys := make([]jwkset.JWK, 0, len(doc.Keys))
	for _, rk := range doc.Keys {
		jwk, err := jwkset.NewJWKFromRawJSON(rk, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue
		}
		if use := jwk.Marshal().USE; use != "" && use != jwkset.UseSig {
			continue
		}
		switch jwk.Key().(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			keys = append(keys, jwk)
		}
	}
	return keys, nil
}

// lookup returns the key a token names by kid (hasKID), or the only key
// when it names none. An unknown kid triggers one rate-limited fetch, so a
// key rotated in at the issuer works at once.
func (k *keySet) lookup(ctx context.Context, kid string, hasKID bool) (jwkset.JWK, error) {
	if jwk, err := k.find(kid, hasKID); !errors.Is(err, errUnknownKey) {
		return jwk, err
	}
	if !k.unknownKID.Allow() {
		return jwkset.JWK{}, errUnknownKey
	}
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	// Another request may have fetched while this one waited.
	if jwk, err := k.find(kid, hasKID); !errors.Is(err, errUnknownKey) {
		return jwk, err
	}
	if err := k.refreshLocked(ctx); err != nil {
		return jwkset.JWK{}, errors.Join(errUnknownKey, err)
	}
	return k.find(kid, hasKID)
}

func (k *keySet) find(kid string, hasKID bool) (jwkset.JWK, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if !k.loaded {
		return jwkset.JWK{}, errNoKeys
	}
	if !hasKID {
		if len(k.keys) == 1 {
			return k.keys[0], nil
		}
		return jwkset.JWK{}, errAmbiguous
	}
	for _, jwk := range k.keys {
		if jwk.Marshal().KID == kid {
			return jwk, nil
		}
	}
	return jwkset.JWK{}, errUnknownKey
}
