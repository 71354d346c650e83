package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/synchub/synchub/hub/auth"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openKeys(t testing.TB) *auth.Keys {
	t.Helper()
	k, err := auth.OpenKeys(context.Background(), filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// writePEM writes a public key as PEM to a temporary file and returns its path.
func writePEM(t testing.TB, pub any) (path string, data []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	data = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path = filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// token signs claims with method and key; kid, when not empty, goes in the header.
func token(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validClaims are claims valid at now for issuer "https://id.example" and audience
// "synchub".
func validClaims(now time.Time, sub string) jwt.MapClaims {
	return jwt.MapClaims{
		"sub":      sub,
		"iss":      "https://id.example",
		"aud":      "synchub",
		"exp":      now.Add(time.Hour).Unix(),
		"nbf":      now.Add(-time.Minute).Unix(),
		"store_id": "7",
	}
}

// req builds an auth.Request with an Authorization header and extra headers.
func req(method, target, bearer string, body []byte, header map[string]string) auth.Request {
	h := http.Header{}
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range header {
		h.Set(k, v)
	}
	return auth.Request{Method: method, Target: target, Header: h.Get, Body: body}
}

// wantFailure checks that err is an *auth.Failure with status and reason.
func wantFailure(t testing.TB, err error, status int, reason auth.Reason) {
	t.Helper()
	f, ok := auth.AsFailure(err)
	if !ok {
		t.Fatalf("got error %v, want an auth failure %d %s", err, status, reason)
	}
	if f.Status != status || f.Reason != reason {
		t.Fatalf("got failure %d %s (%s), want %d %s", f.Status, f.Reason, f.Message, status, reason)
	}
	if f.Message == "" {
		t.Fatal("failure has no message")
	}
}
