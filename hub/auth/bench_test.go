package auth_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/synchub/synchub/hub/auth"
)

// BenchmarkAuth_Edge measures the cost authentication adds to one edge request.
func BenchmarkAuth_Edge(b *testing.B) {
	ctx := context.Background()
	clk := newClock()
	b.Run("api_key", func(b *testing.B) {
		a, keys := keyAuth(b, clk, false)
		ck, err := keys.Create(ctx, auth.KeySpec{Edge: "till-1", Claims: map[string]any{"store_id": "7"}})
		if err != nil {
			b.Fatal(err)
		}
		r := req("GET", "/v1/changes?since=0", ck.Key, nil, nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Edge(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("api_key_signed", func(b *testing.B) {
		a, keys := keyAuth(b, clk, false)
		ck, err := keys.Create(ctx, auth.KeySpec{Edge: "till-1", Signing: true})
		if err != nil {
			b.Fatal(err)
		}
		body := make([]byte, 16<<10)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			// A distinct target per request, so none is a replay.
			r := signed(ck.Key, ck.ID, ck.SigningSecret, "POST", "/v1/push?n="+strconv.Itoa(i), body, clk.Now())
			if _, err := a.Edge(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jwt_rs256", func(b *testing.B) {
		priv := rsaKey(b)
		path, _ := writePEM(b, &priv.PublicKey)
		a := jwtAuth(b, clk, fileJWT(auth.AlgRS256, path))
		tok := token(b, jwt.SigningMethodRS256, priv, "", validClaims(clk.Now().Add(time.Minute), "till-1"))
		r := req("GET", "/v1/changes?since=0", tok, nil, nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Edge(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
