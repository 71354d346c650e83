package auth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/synchub/synchub/hub/auth"
)

func keyAuth(t testing.TB, clk *clock, required bool) (*auth.Authenticator, *auth.Keys) {
	t.Helper()
	keys := openKeys(t)
	cfg := auth.DefaultConfig()
	cfg.Methods = []string{auth.MethodAPIKey}
	cfg.Signing.Required = required
	cfg.Now = clk.Now
	a, err := auth.New(cfg, keys)
	if err != nil {
		t.Fatal(err)
	}
	return a, keys
}

func signed(key, keyID, secret, method, target string, body []byte, at time.Time) auth.Request {
	ts := strconv.FormatInt(at.Unix(), 10)
	return req(method, target, key, body, map[string]string{
		auth.TimestampHeader: ts,
		auth.KeyIDHeader:     keyID,
		auth.SignatureHeader: auth.Sign(secret, method, target, ts, body),
	})
}

func TestSign_StringToSign(t *testing.T) {
	body := []byte(`{"edge":"till-1"}`)
	sum := sha256.Sum256(body)
	want := "SYNCHUB-HMAC-SHA256\nPOST\n/v1/push?x=1\n1700000000\n" + hex.EncodeToString(sum[:])
	if got := auth.StringToSign("post", "/v1/push?x=1", "1700000000", body); got != want {
		t.Fatalf("string to sign:\n%q\nwant\n%q", got, want)
	}
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write([]byte(want))
	if got := auth.Sign("s3cret", "POST", "/v1/push?x=1", "1700000000", body); got != hex.EncodeToString(m.Sum(nil)) {
		t.Fatalf("signature %s is not the HMAC-SHA256 of the string to sign", got)
	}
}

func TestSigning_Checks(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	a, keys := keyAuth(t, clk, false)
	ck, err := keys.Create(ctx, auth.KeySpec{Edge: "till-1", Signing: true})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"batch_id":"b1"}`)
	now := clk.Now()

	if _, err := a.Edge(ctx, signed(ck.Key, ck.ID, ck.SigningSecret, "POST", "/v1/push", body, now)); err != nil {
		t.Fatalf("a correctly signed request: %v", err)
	}
	// The same request again is a replay.
	_, err = a.Edge(ctx, signed(ck.Key, ck.ID, ck.SigningSecret, "POST", "/v1/push", body, now))
	wantFailure(t, err, 401, auth.ReasonReplayed)

	_, err = a.Edge(ctx, req("POST", "/v1/push", ck.Key, body, nil))
	wantFailure(t, err, 401, auth.ReasonMissingSignature)

	bad := signed(ck.Key, ck.ID, "shs_wrong", "POST", "/v1/push", body, now.Add(time.Second))
	_, err = a.Edge(ctx, bad)
	wantFailure(t, err, 401, auth.ReasonBadSignature)

	// A signature over another body, path or method does not verify.
	r := signed(ck.Key, ck.ID, ck.SigningSecret, "POST", "/v1/push", body, now.Add(2*time.Second))
	r.Body = []byte(`{"batch_id":"b2"}`)
	_, err = a.Edge(ctx, r)
	wantFailure(t, err, 401, auth.ReasonBadSignature)
	r = signed(ck.Key, ck.ID, ck.SigningSecret, "GET", "/v1/changes?since=0", nil, now.Add(3*time.Second))
	r.Target = "/v1/changes?since=5"
	_, err = a.Edge(ctx, r)
	wantFailure(t, err, 401, auth.ReasonBadSignature)

	_, err = a.Edge(ctx, signed(ck.Key, ck.ID, ck.SigningSecret, "POST", "/v1/push", body, now.Add(-6*time.Minute)))
	wantFailure(t, err, 401, auth.ReasonStaleTimestamp)
	_, err = a.Edge(ctx, signed(ck.Key, ck.ID, ck.SigningSecret, "POST", "/v1/push", body, now.Add(6*time.Minute)))
	wantFailure(t, err, 401, auth.ReasonStaleTimestamp)

	// A replay is remembered for the whole window, then refused as stale.
	clk.Add(4 * time.Minute)
	_, err = a.Edge(ctx, signed(ck.Key, ck.ID, ck.SigningSecret, "POST", "/v1/push", body, now))
	wantFailure(t, err, 401, auth.ReasonReplayed)
	clk.Add(2 * time.Minute)
	_, err = a.Edge(ctx, signed(ck.Key, ck.ID, ck.SigningSecret, "POST", "/v1/push", body, now))
	wantFailure(t, err, 401, auth.ReasonStaleTimestamp)
}

func TestSigning_RequiredGlobally(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	a, keys := keyAuth(t, clk, true)
	plain, err := keys.Create(ctx, auth.KeySpec{Edge: "till-2"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Edge(ctx, req("GET", "/v1/schema", plain.Key, nil, nil))
	wantFailure(t, err, 401, auth.ReasonMissingSignature)

	// Without global signing, a key without a secret needs no signature.
	b, keys2 := keyAuth(t, clk, false)
	plain2, err := keys2.Create(ctx, auth.KeySpec{Edge: "till-2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Edge(ctx, req("GET", "/v1/schema", plain2.Key, nil, nil)); err != nil {
		t.Fatal(err)
	}
}

func TestSigning_JWTWithSigningKey(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	priv := rsaKey(t)
	path, _ := writePEM(t, &priv.PublicKey)
	keys := openKeys(t)
	cfg := auth.DefaultConfig()
	cfg.Methods = []string{auth.MethodJWT}
	cfg.JWT = fileJWT(auth.AlgRS256, path)
	cfg.JWT.Issuer, cfg.JWT.Audience = "https://id.example", "synchub"
	cfg.Signing.Required = true
	cfg.Now = clk.Now
	a, err := auth.New(cfg, keys)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.Create(ctx, auth.KeySpec{Edge: "till-1", Signing: true})
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.Create(ctx, auth.KeySpec{Edge: "till-2", Signing: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := token(t, jwt.SigningMethodRS256, priv, "", validClaims(clk.Now(), "till-1"))
	if _, err := a.Edge(ctx, signed(tok, sk.ID, sk.SigningSecret, "GET", "/v1/schema", nil, clk.Now())); err != nil {
		t.Fatal(err)
	}
	_, err = a.Edge(ctx, req("GET", "/v1/schema", tok, nil, nil))
	wantFailure(t, err, 401, auth.ReasonMissingSignature)
	// Another edge's signing key does not sign for till-1.
	_, err = a.Edge(ctx, signed(tok, other.ID, other.SigningSecret, "GET", "/v1/schema", nil, clk.Now()))
	wantFailure(t, err, 401, auth.ReasonBadSignature)
}

func TestAdmin_Roles(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	a, keys := keyAuth(t, clk, false)
	viewer, _ := keys.Create(ctx, auth.KeySpec{Admin: "vera", Role: auth.RoleViewer})
	op, _ := keys.Create(ctx, auth.KeySpec{Admin: "otto", Role: auth.RoleOperator})
	edge, _ := keys.Create(ctx, auth.KeySpec{Edge: "till-1"})

	if id, err := a.Admin(ctx, req("GET", "/v1/conflicts", viewer.Key, nil, nil), auth.RoleViewer); err != nil || id.Admin != "vera" {
		t.Fatalf("viewer reading: %+v %v", id, err)
	}
	_, err := a.Admin(ctx, req("POST", "/v1/conflicts/1/resolve", viewer.Key, nil, nil), auth.RoleOperator)
	wantFailure(t, err, 403, auth.ReasonWrongRole)
	if _, err := a.Admin(ctx, req("POST", "/v1/conflicts/1/resolve", op.Key, nil, nil), auth.RoleOperator); err != nil {
		t.Fatal(err)
	}
	_, err = a.Admin(ctx, req("GET", "/v1/conflicts", edge.Key, nil, nil), auth.RoleViewer)
	wantFailure(t, err, 403, auth.ReasonNotAdmin)
	_, err = a.Edge(ctx, req("GET", "/v1/schema", op.Key, nil, nil))
	wantFailure(t, err, 403, auth.ReasonNotEdge)
	_, err = a.Admin(ctx, req("GET", "/v1/conflicts", "", nil, nil), auth.RoleViewer)
	wantFailure(t, err, 401, auth.ReasonMissingCredentials)
	_, err = a.Admin(ctx, auth.Request{Method: "GET", Target: "/", Header: func(string) string { return "Basic abc" }}, auth.RoleViewer)
	wantFailure(t, err, 401, auth.ReasonMalformed)
}
