package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// maxJWKSBody bounds a key set document.
const maxJWKSBody = 1 << 20

var (
	errUnknownKID      = errors.New("kid not in the key set")
	errJWKSUnavailable = errors.New("key set unavailable")
)

// jwks is a cached JSON Web Key Set. A kid not in the cache refetches the set, at
// most once per minRefresh however many requests ask, so tokens with made-up kids
// cannot make the hub hammer the identity provider.
type jwks struct {
	url        string
	client     *http.Client
	minRefresh time.Duration
	ttl        time.Duration
	now        func() time.Time

	mu          sync.Mutex
	keys        map[string]jwkKey
	fetched     time.Time // last successful fetch
	lastAttempt time.Time
}

// jwkKey is a usable key of the set with the one algorithm it verifies.
type jwkKey struct {
	alg string
	key any
}

func newJWKS(url string, client *http.Client, minRefresh, ttl time.Duration, now func() time.Time) *jwks {
	return &jwks{url: url, client: client, minRefresh: minRefresh, ttl: ttl, now: now}
}

// key returns the key with this kid, fetching the set when the cache is stale or does
// not know the kid (and the last fetch attempt is older than minRefresh).
func (j *jwks) key(ctx context.Context, kid string) (jwkKey, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.now()
	k, ok := j.keys[kid]
	if ok && now.Sub(j.fetched) < j.ttl {
		return k, nil
	}
	if !j.lastAttempt.IsZero() && now.Sub(j.lastAttempt) < j.minRefresh {
		if ok {
			return k, nil
		}
		if j.keys == nil {
			return jwkKey{}, errJWKSUnavailable
		}
		return jwkKey{}, errUnknownKID
	}
	j.lastAttempt = now
	keys, err := j.fetch(ctx)
	if err != nil {
		if ok {
			return k, nil // a key we had stays usable while the provider is down
		}
		return jwkKey{}, fmt.Errorf("%w: %v", errJWKSUnavailable, err)
	}
	j.keys, j.fetched = keys, now
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return jwkKey{}, errUnknownKID
}

func (j *jwks) fetch(ctx context.Context) (map[string]jwkKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch key set %s: %w", j.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch key set %s: HTTP %d", j.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBody))
	if err != nil {
		return nil, fmt.Errorf("fetch key set %s: %w", j.url, err)
	}
	return parseJWKS(body)
}

// rawJWK holds the JWK fields the hub uses (RFC 7517, 7518, 8037).
type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a key set. Keys without a kid, for encryption, or of a type the hub
// does not verify with are skipped; a set with no usable key is an error.
func parseJWKS(body []byte) (map[string]jwkKey, error) {
	var set struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("key set is not JSON: %w", err)
	}
	out := map[string]jwkKey{}
	for _, k := range set.Keys {
		if k.Kid == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		key, err := k.parse()
		if err != nil {
			continue
		}
		if k.Alg != "" && k.Alg != key.alg {
			continue
		}
		out[k.Kid] = key
	}
	if len(out) == 0 {
		return nil, errors.New("key set has no usable signing key (RSA, P-256 or Ed25519 with a kid)")
	}
	return out, nil
}

func (k rawJWK) parse() (jwkKey, error) {
	switch k.Kty {
	case "RSA":
		n, err := b64Int(k.N)
		if err != nil {
			return jwkKey{}, err
		}
		e, err := b64Int(k.E)
		if err != nil {
			return jwkKey{}, err
		}
		if n.BitLen() < 2048 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31 {
			return jwkKey{}, errors.New("RSA key too small or bad exponent")
		}
		return jwkKey{alg: AlgRS256, key: &rsa.PublicKey{N: n, E: int(e.Int64())}}, nil
	case "EC":
		if k.Crv != "P-256" {
			return jwkKey{}, errors.New("EC curve is not P-256")
		}
		x, err := b64Fixed(k.X, 32)
		if err != nil {
			return jwkKey{}, err
		}
		y, err := b64Fixed(k.Y, 32)
		if err != nil {
			return jwkKey{}, err
		}
		// Parse through the uncompressed point encoding, which checks the point is on
		// the curve.
		pt := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
		if err != nil {
			return jwkKey{}, err
		}
		return jwkKey{alg: AlgES256, key: pub}, nil
	case "OKP":
		if k.Crv != "Ed25519" {
			return jwkKey{}, errors.New("OKP curve is not Ed25519")
		}
		x, err := b64Fixed(k.X, ed25519.PublicKeySize)
		if err != nil {
			return jwkKey{}, err
		}
		return jwkKey{alg: AlgEdDSA, key: ed25519.PublicKey(x)}, nil
	}
	return jwkKey{}, fmt.Errorf("key type %q not supported", k.Kty)
}

func b64Int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}

func b64Fixed(s string, n int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("bad base64url value of %d bytes", n)
	}
	return b, nil
}
