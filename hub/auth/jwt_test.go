package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/synchub/synchub/hub/auth"
)

func jwtAuth(t testing.TB, clk *clock, jc auth.JWTConfig) *auth.Authenticator {
	t.Helper()
	cfg := auth.DefaultConfig()
	cfg.Methods = []string{auth.MethodJWT}
	cfg.Now = clk.Now
	jc.Issuer, jc.Audience = "https://id.example", "synchub"
	cfg.JWT = jc
	a, err := auth.New(cfg, openKeys(t))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func fileJWT(alg, path string) auth.JWTConfig {
	jc := auth.DefaultJWTConfig()
	jc.Algorithm, jc.KeyFile = alg, path
	return jc
}

func TestJWT_RS256Checks(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	priv := rsaKey(t)
	path, pubPEM := writePEM(t, &priv.PublicKey)
	a := jwtAuth(t, clk, fileJWT(auth.AlgRS256, path))
	ctx := context.Background()

	good := token(t, jwt.SigningMethodRS256, priv, "", validClaims(now, "till-1"))
	id, err := a.Edge(ctx, req("GET", "/v1/changes?since=0", good, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if id.Edge != "till-1" || id.Method != auth.MethodJWT || id.Claims["store_id"] != "7" {
		t.Fatalf("identity %+v", id)
	}

	with := func(k string, v any) jwt.MapClaims {
		c := validClaims(now, "till-1")
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, validClaims(now, "till-1")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	tampered := good[:len(good)-4] + "AAAA"
	if tampered == good {
		t.Fatal("tampering changed nothing")
	}
	cases := []struct {
		name   string
		token  string
		status int
		reason auth.Reason
	}{
		{"missing", "", 401, auth.ReasonMissingCredentials},
		{"malformed", "not-a-jwt", 401, auth.ReasonMalformed},
		{"garbage parts", "a.b.c", 401, auth.ReasonMalformed},
		{"expired", token(t, jwt.SigningMethodRS256, priv, "", with("exp", now.Add(-time.Hour).Unix())), 401, auth.ReasonExpired},
		{"no exp", token(t, jwt.SigningMethodRS256, priv, "", with("exp", nil)), 401, auth.ReasonInvalidToken},
		{"not yet valid", token(t, jwt.SigningMethodRS256, priv, "", with("nbf", now.Add(time.Hour).Unix())), 401, auth.ReasonNotYetValid},
		{"wrong audience", token(t, jwt.SigningMethodRS256, priv, "", with("aud", "other-app")), 401, auth.ReasonWrongAudience},
		{"wrong issuer", token(t, jwt.SigningMethodRS256, priv, "", with("iss", "https://evil.example")), 401, auth.ReasonWrongIssuer},
		{"no edge claim", token(t, jwt.SigningMethodRS256, priv, "", with("sub", nil)), 401, auth.ReasonMissingEdgeClaim},
		{"alg none", none, 401, auth.ReasonBadAlgorithm},
		{"HS256 signed with the public key", token(t, jwt.SigningMethodHS256, pubPEM, "", validClaims(now, "till-1")), 401, auth.ReasonBadAlgorithm},
		{"RS256 by another key", token(t, jwt.SigningMethodRS256, rsaKey(t), "", validClaims(now, "till-1")), 401, auth.ReasonInvalidToken},
		{"tampered signature", tampered, 401, auth.ReasonInvalidToken},
		{"API key when only JWTs are enabled", "shk_abc", 401, auth.ReasonMethodDisabled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := a.Edge(ctx, req("GET", "/v1/changes?since=0", c.token, nil, nil))
			wantFailure(t, err, c.status, c.reason)
		})
	}

	// Within the leeway an expired token still passes; beyond it, not.
	clk.Add(time.Hour + 20*time.Second)
	if _, err := a.Edge(ctx, req("GET", "/", good, nil, nil)); err != nil {
		t.Fatalf("token 20s past exp with 30s leeway: %v", err)
	}
	clk.Add(20 * time.Second)
	_, err = a.Edge(ctx, req("GET", "/", good, nil, nil))
	wantFailure(t, err, 401, auth.ReasonExpired)
}

func TestJWT_OtherAlgorithms(t *testing.T) {
	clk := newClock()
	ctx := context.Background()
	ec, ed := ecKey(t), edKey(t)
	ecPath, _ := writePEM(t, &ec.PublicKey)
	edPath, _ := writePEM(t, ed.Public())
	secret := []byte("0123456789abcdef0123456789abcdef-secret")
	hsPath := filepath.Join(t.TempDir(), "hs.secret")
	if err := os.WriteFile(hsPath, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		alg    string
		path   string
		method jwt.SigningMethod
		key    any
	}{
		{auth.AlgES256, ecPath, jwt.SigningMethodES256, ec},
		{auth.AlgEdDSA, edPath, jwt.SigningMethodEdDSA, ed},
		{auth.AlgHS256, hsPath, jwt.SigningMethodHS256, secret},
	} {
		t.Run(c.alg, func(t *testing.T) {
			a := jwtAuth(t, clk, fileJWT(c.alg, c.path))
			tok := token(t, c.method, c.key, "", validClaims(clk.Now(), "till-9"))
			id, err := a.Edge(ctx, req("GET", "/", tok, nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			if id.Edge != "till-9" {
				t.Fatalf("edge %q", id.Edge)
			}
			// A token of another algorithm is refused even when validly signed.
			other := token(t, jwt.SigningMethodRS256, rsaKey(t), "", validClaims(clk.Now(), "till-9"))
			_, err = a.Edge(ctx, req("GET", "/", other, nil, nil))
			wantFailure(t, err, 401, auth.ReasonBadAlgorithm)
		})
	}
	short := filepath.Join(t.TempDir(), "short.secret")
	os.WriteFile(short, []byte("too-short"), 0o600)
	cfg := auth.DefaultConfig()
	cfg.Methods = []string{auth.MethodJWT}
	cfg.JWT = fileJWT(auth.AlgHS256, short)
	cfg.JWT.Issuer, cfg.JWT.Audience = "i", "a"
	if _, err := auth.New(cfg, openKeys(t)); err == nil {
		t.Error("a 9-byte HS256 secret was accepted")
	}
}

// jwksServer serves a key set that tests can replace, counting fetches.
type jwksServer struct {
	mu      sync.Mutex
	body    []byte
	fetches atomic.Int64
	srv     *httptest.Server
}

func newJWKSServer(t *testing.T) *jwksServer {
	js := &jwksServer{}
	js.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		js.mu.Lock()
		defer js.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(js.body)
	}))
	t.Cleanup(js.srv.Close)
	return js
}

func (js *jwksServer) set(t *testing.T, keys ...map[string]string) {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	js.mu.Lock()
	js.body = b
	js.mu.Unlock()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]string {
	b, err := k.Bytes()
	if err != nil {
		panic(err)
	}
	return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(b[1:33]), "y": b64(b[33:])}
}

func edJWK(kid string, k ed25519.PublicKey) map[string]string {
	return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k)}
}

func TestJWT_JWKSRotation(t *testing.T) {
	clk := newClock()
	ctx := context.Background()
	js := newJWKSServer(t)
	k1, k2 := rsaKey(t), rsaKey(t)
	ec, ed := ecKey(t), edKey(t)
	js.set(t, rsaJWK("k1", &k1.PublicKey), ecJWK("e1", &ec.PublicKey), edJWK("d1", ed.Public().(ed25519.PublicKey)))

	jc := auth.DefaultJWTConfig()
	jc.JWKSURL = js.srv.URL
	jc.JWKSMinRefresh = time.Minute
	jc.JWKSCacheTTL = time.Hour
	a := jwtAuth(t, clk, jc)
	check := func(tok string) error {
		_, err := a.Edge(ctx, req("GET", "/", tok, nil, nil))
		return err
	}

	for _, tok := range []string{
		token(t, jwt.SigningMethodRS256, k1, "k1", validClaims(clk.Now(), "e")),
		token(t, jwt.SigningMethodES256, ec, "e1", validClaims(clk.Now(), "e")),
		token(t, jwt.SigningMethodEdDSA, ed, "d1", validClaims(clk.Now(), "e")),
	} {
		if err := check(tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for three tokens of a fresh set, want 1", n)
	}

	// A token signed with k1's algorithm but naming the EC key's kid is refused.
	wantFailure(t, check(token(t, jwt.SigningMethodRS256, k1, "e1", validClaims(clk.Now(), "e"))), 401, auth.ReasonBadAlgorithm)

	// Unknown kids refetch at most once per JWKSMinRefresh.
	clk.Add(2 * time.Minute)
	for range 5 {
		wantFailure(t, check(token(t, jwt.SigningMethodRS256, k2, "k9", validClaims(clk.Now(), "e"))), 401, auth.ReasonUnknownKID)
	}
	if n := js.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after five unknown-kid tokens, want 2 (one refetch)", n)
	}
	wantFailure(t, check(token(t, jwt.SigningMethodRS256, k2, "", validClaims(clk.Now(), "e"))), 401, auth.ReasonUnknownKID)

	// The provider rotates to k2: a k2 token is accepted once the refresh interval
	// allows a refetch, and k1 tokens keep working while k1 is cached.
	js.set(t, rsaJWK("k2", &k2.PublicKey))
	tok2 := token(t, jwt.SigningMethodRS256, k2, "k2", validClaims(clk.Now(), "e"))
	wantFailure(t, check(tok2), 401, auth.ReasonUnknownKID)
	clk.Add(time.Minute + time.Second)
	if err := check(tok2); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if n := js.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
	// k1 left the set with the refetch.
	wantFailure(t, check(token(t, jwt.SigningMethodRS256, k1, "k1", validClaims(clk.Now(), "e"))), 401, auth.ReasonUnknownKID)
}

func TestJWT_ConfigValidate(t *testing.T) {
	base := func() auth.JWTConfig {
		c := auth.DefaultJWTConfig()
		c.Issuer, c.Audience, c.JWKSURL = "i", "a", "https://id.example/jwks"
		return c
	}
	if err := base().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*auth.JWTConfig){
		"no key":          func(c *auth.JWTConfig) { c.JWKSURL = "" },
		"both keys":       func(c *auth.JWTConfig) { c.KeyFile = "x" },
		"HS256 jwks":      func(c *auth.JWTConfig) { c.Algorithm = auth.AlgHS256 },
		"unknown alg":     func(c *auth.JWTConfig) { c.Algorithm = "none" },
		"no issuer":       func(c *auth.JWTConfig) { c.Issuer = "" },
		"no audience":     func(c *auth.JWTConfig) { c.Audience = "" },
		"key without alg": func(c *auth.JWTConfig) { c.JWKSURL, c.KeyFile = "", "k.pem" },
	} {
		c := base()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
