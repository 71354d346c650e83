package auth

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The JWT signing algorithms the hub accepts.
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
)

// minHMACSecret is the shortest HS256 secret accepted: 256 bits.
const minHMACSecret = 32

// JWTConfig says how edge JWTs are verified. Exactly one of KeyFile and JWKSURL is set.
type JWTConfig struct {
	// Algorithm fixes the signing algorithm: HS256, RS256, ES256 or EdDSA. A token
	// signed with any other algorithm is refused, so a token cannot choose how it is
	// checked (an HS256 token "signed" with an RSA public key is refused). Required with
	// KeyFile; with JWKSURL it limits the key set to one algorithm, and when empty each
	// key's type fixes its algorithm (RSA: RS256, P-256: ES256, Ed25519: EdDSA).
	Algorithm string
	// KeyFile is a PEM public key (or certificate) for RS256, ES256 and EdDSA, or a
	// file holding the HS256 secret (at least 32 bytes; surrounding whitespace ignored).
	KeyFile string
	// JWKSURL is an identity provider's JSON Web Key Set; tokens name their key with
	// "kid". An unknown kid triggers a refetch, at most once per JWKSMinRefresh.
	JWKSURL string
	// JWKSMinRefresh bounds how often the key set is fetched; JWKSCacheTTL is how long
	// a fetched set is used before it is fetched again.
	JWKSMinRefresh time.Duration
	JWKSCacheTTL   time.Duration
	// Issuer and Audience are required values of the "iss" and "aud" claims.
	Issuer   string
	Audience string
	// EdgeClaim is the claim holding the edge id ("sub" by default).
	EdgeClaim string
	// Leeway is the clock skew allowed when checking "exp" and "nbf".
	Leeway time.Duration
	// HTTPClient fetches the key set; nil uses a client with a 10s timeout.
	HTTPClient *http.Client
}

// DefaultJWTConfig returns the defaults: edge id in "sub", 30s leeway, key set fetched
// at most every 30s and kept for an hour.
func DefaultJWTConfig() JWTConfig {
	return JWTConfig{EdgeClaim: "sub", Leeway: 30 * time.Second, JWKSMinRefresh: 30 * time.Second, JWKSCacheTTL: time.Hour}
}

// Validate says what is wrong with the configuration and how to fix it.
func (c JWTConfig) Validate() error {
	switch {
	case c.KeyFile == "" && c.JWKSURL == "":
		return errors.New("auth.jwt: set key_file (PEM public key or HS256 secret file) or jwks_url")
	case c.KeyFile != "" && c.JWKSURL != "":
		return errors.New("auth.jwt: set key_file or jwks_url, not both")
	case c.KeyFile != "" && c.Algorithm == "":
		return errors.New("auth.jwt.algorithm: required with key_file; use HS256, RS256, ES256 or EdDSA")
	case c.Algorithm != "" && !slices.Contains([]string{AlgHS256, AlgRS256, AlgES256, AlgEdDSA}, c.Algorithm):
		return fmt.Errorf("auth.jwt.algorithm: %q is not supported; use HS256, RS256, ES256 or EdDSA", c.Algorithm)
	case c.JWKSURL != "" && c.Algorithm == AlgHS256:
		return errors.New("auth.jwt.algorithm: HS256 cannot be used with jwks_url (a key set publishes public keys); use key_file for a shared secret")
	case c.JWKSURL != "" && !strings.HasPrefix(c.JWKSURL, "https://") && !strings.HasPrefix(c.JWKSURL, "http://"):
		return fmt.Errorf("auth.jwt.jwks_url: %q is not an http(s) URL", c.JWKSURL)
	case c.Issuer == "":
		return errors.New("auth.jwt.issuer: required; set the \"iss\" your identity provider puts in edge tokens")
	case c.Audience == "":
		return errors.New("auth.jwt.audience: required; set the \"aud\" edge tokens are issued for (e.g. synchub)")
	case c.EdgeClaim == "":
		return errors.New("auth.jwt.edge_claim: empty; name the claim holding the edge id, e.g. sub")
	case c.Leeway < 0 || c.Leeway > 10*time.Minute:
		return fmt.Errorf("auth.jwt.leeway: %v; use 0 to 10m", c.Leeway)
	case c.JWKSURL != "" && (c.JWKSMinRefresh <= 0 || c.JWKSCacheTTL < c.JWKSMinRefresh):
		return fmt.Errorf("auth.jwt: jwks_min_refresh %v and jwks_cache_ttl %v; need 0 < min_refresh <= cache_ttl", c.JWKSMinRefresh, c.JWKSCacheTTL)
	}
	return nil
}

// jwtVerifier checks edge JWTs.
type jwtVerifier struct {
	cfg     JWTConfig
	methods []string
	static  any   // the key from KeyFile
	set     *jwks // the key set from JWKSURL
	now     func() time.Time
}

func newJWTVerifier(cfg JWTConfig, now func() time.Time) (*jwtVerifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &jwtVerifier{cfg: cfg, now: now}
	if cfg.KeyFile != "" {
		key, err := loadJWTKey(cfg.Algorithm, cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		v.static = key
		v.methods = []string{cfg.Algorithm}
		return v, nil
	}
	v.methods = []string{AlgRS256, AlgES256, AlgEdDSA}
	if cfg.Algorithm != "" {
		v.methods = []string{cfg.Algorithm}
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	v.set = newJWKS(cfg.JWKSURL, client, cfg.JWKSMinRefresh, cfg.JWKSCacheTTL, now)
	return v, nil
}

// loadJWTKey reads the verification key of alg from path.
func loadJWTKey(alg, path string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth.jwt.key_file: %w", err)
	}
	switch alg {
	case AlgHS256:
		secret := []byte(strings.TrimSpace(string(data)))
		if len(secret) < minHMACSecret {
			return nil, fmt.Errorf("auth.jwt.key_file %s: the HS256 secret is %d bytes; use at least %d random bytes", path, len(secret), minHMACSecret)
		}
		if strings.Contains(string(secret), "-----BEGIN") {
			return nil, fmt.Errorf("auth.jwt.key_file %s holds a PEM key, not an HS256 secret; set algorithm to the key's algorithm (RS256, ES256, EdDSA)", path)
		}
		return secret, nil
	case AlgRS256:
		k, err := jwt.ParseRSAPublicKeyFromPEM(data)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.key_file %s: not a PEM RSA public key or certificate: %w", path, err)
		}
		return k, nil
	case AlgES256:
		k, err := jwt.ParseECPublicKeyFromPEM(data)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.key_file %s: not a PEM EC public key or certificate: %w", path, err)
		}
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("auth.jwt.key_file %s: ES256 needs a P-256 key", path)
		}
		return k, nil
	case AlgEdDSA:
		k, err := jwt.ParseEdPublicKeyFromPEM(data)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.key_file %s: not a PEM Ed25519 public key: %w", path, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("auth.jwt.algorithm %q is not supported", alg)
}

// verify checks token and returns the edge's identity.
func (v *jwtVerifier) verify(ctx context.Context, token string) (*Identity, *Failure) {
	alg, err := tokenAlg(token)
	if err != nil {
		return nil, unauthorized(ReasonMalformed, "the bearer token is not a JWT (%v); send an API key (shk_…) or a JWT from your identity provider", err)
	}
	if !slices.Contains(v.methods, alg) {
		return nil, unauthorized(ReasonBadAlgorithm, "token algorithm %q is not accepted; this hub accepts %s tokens only", alg, strings.Join(v.methods, ", "))
	}
	p := jwt.NewParser(
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithLeeway(v.cfg.Leeway),
		jwt.WithTimeFunc(v.now),
	)
	claims := jwt.MapClaims{}
	_, err = p.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) { return v.key(ctx, t) })
	if err != nil {
		return nil, jwtFailure(err, v.cfg)
	}
	edge, ok := claimString(claims[v.cfg.EdgeClaim])
	if !ok || edge == "" {
		return nil, unauthorized(ReasonMissingEdgeClaim, "the token has no %q claim naming the edge; issue edge tokens with it, or set auth.jwt.edge_claim", v.cfg.EdgeClaim)
	}
	return &Identity{Edge: edge, Claims: map[string]any(claims), Method: MethodJWT}, nil
}

// key returns the verification key for t, whose algorithm the parser has already
// checked against the accepted ones.
func (v *jwtVerifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if v.set == nil {
		if alg != v.cfg.Algorithm {
			return nil, errWrongAlg
		}
		return v.static, nil
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errNoKID
	}
	k, err := v.set.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	if k.alg != alg {
		return nil, errWrongAlg
	}
	return k.key, nil
}

var (
	errWrongAlg = errors.New("token algorithm does not match its key's")
	errNoKID    = errors.New("token header has no kid")
)

// jwtFailure maps a parse error to the check that failed.
func jwtFailure(err error, cfg JWTConfig) *Failure {
	f := func(r Reason, msg string) *Failure {
		fl := unauthorized(r, "%s", msg)
		fl.Err = err
		return fl
	}
	switch {
	case errors.Is(err, errUnknownKID):
		return f(ReasonUnknownKID, "the token's kid is not in the identity provider's key set; get a token signed with a current key")
	case errors.Is(err, errNoKID):
		return f(ReasonUnknownKID, "the token header has no kid; the hub verifies tokens against a key set and needs the kid of the signing key")
	case errors.Is(err, errJWKSUnavailable):
		fl := f(ReasonUnavailable, "the hub could not fetch its identity provider's key set; retry later")
		fl.Status = 503
		return fl
	case errors.Is(err, errWrongAlg):
		return f(ReasonBadAlgorithm, "the token's algorithm does not match its key's algorithm")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return f(ReasonMalformed, "the token is not a well-formed JWT")
	case errors.Is(err, jwt.ErrTokenExpired):
		return f(ReasonExpired, "the token has expired (exp); get a new token")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return f(ReasonNotYetValid, "the token is not valid yet (nbf); check the edge's and the issuer's clocks")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return f(ReasonWrongIssuer, fmt.Sprintf("the token's issuer (iss) is not %q", cfg.Issuer))
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return f(ReasonWrongAudience, fmt.Sprintf("the token's audience (aud) does not include %q", cfg.Audience))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return f(ReasonInvalidToken, "the token lacks a required claim (exp, iss and aud are required)")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return f(ReasonInvalidToken, "the token's signature does not verify")
	}
	return f(ReasonInvalidToken, "the token is not valid")
}

// tokenAlg reads the "alg" of a JWT's header without verifying anything.
func tokenAlg(token string) (string, error) {
	head, _, ok := strings.Cut(token, ".")
	if !ok || strings.Count(token, ".") != 2 {
		return "", errors.New("not three dot-separated parts")
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", errors.New("header is not base64url")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", errors.New("header is not JSON")
	}
	return h.Alg, nil
}

// claimString returns a string or number claim as text.
func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case json.Number:
		return x.String(), true
	}
	return "", false
}
