package auth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/synchub/synchub/hub/auth"
)

func TestKeys_CreateLookupRevoke(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.db")
	keys, err := auth.OpenKeys(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keys file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}

	claims, err := auth.ParseClaims([]string{"store_id=7", "regions=eu,us"})
	if err != nil {
		t.Fatal(err)
	}
	ck, err := keys.Create(ctx, auth.KeySpec{Edge: "till-1", Claims: claims, Signing: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ck.Key, auth.KeyPrefix) || len(ck.Key) < len(auth.KeyPrefix)+43 {
		t.Fatalf("key %q: want %s and at least 32 random bytes", ck.Key, auth.KeyPrefix)
	}
	if !strings.HasPrefix(ck.SigningSecret, auth.SecretPrefix) {
		t.Fatalf("signing secret %q lacks %s", ck.SigningSecret, auth.SecretPrefix)
	}
	other, err := keys.Create(ctx, auth.KeySpec{Edge: "till-1"})
	if err != nil {
		t.Fatal(err)
	}
	if other.Key == ck.Key || other.ID == ck.ID || other.SigningSecret != "" {
		t.Fatalf("second key repeats the first or has a secret: %+v", other)
	}

	ki, secret, err := keys.Lookup(ctx, ck.Key)
	if err != nil {
		t.Fatal(err)
	}
	if ki.Edge != "till-1" || secret != ck.SigningSecret || !ki.Signing {
		t.Fatalf("lookup: %+v secret %q", ki, secret)
	}
	want := map[string]any{"store_id": "7", "regions": []any{"eu", "us"}}
	if !reflect.DeepEqual(ki.Claims, want) {
		t.Fatalf("claims %v, want %v", ki.Claims, want)
	}

	// The database holds neither key text.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), ck.Key) || strings.Contains(string(raw), other.Key) {
		t.Fatal("the key database contains a key in clear text")
	}

	_, _, err = keys.Lookup(ctx, ck.Key+"x")
	wantFailure(t, err, 401, auth.ReasonUnknownKey)

	if _, err := keys.Revoke(ctx, ck.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = keys.Lookup(ctx, ck.Key)
	wantFailure(t, err, 401, auth.ReasonRevokedKey)
	if _, _, ok, err := keys.SigningSecret(ctx, ck.ID); ok || err != nil {
		t.Fatalf("a revoked key's signing secret is still served (ok %v, err %v)", ok, err)
	}
	if _, err := keys.Revoke(ctx, "key_nope"); !errors.Is(err, auth.ErrKeyNotFound) {
		t.Fatalf("revoke of an unknown id: %v, want ErrKeyNotFound", err)
	}

	revoked, err := keys.RevokeEdge(ctx, "till-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(revoked) != 1 || revoked[0].ID != other.ID {
		t.Fatalf("RevokeEdge revoked %+v, want only %s", revoked, other.ID)
	}
	list, err := keys.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Revoked.IsZero() || list[1].Revoked.IsZero() {
		t.Fatalf("list after revoking all: %+v", list)
	}
}

func TestKeySpec_Validate(t *testing.T) {
	for _, spec := range []auth.KeySpec{
		{},
		{Edge: "a", Admin: "b", Role: auth.RoleViewer},
		{Admin: "ops"},
		{Admin: "ops", Role: "root"},
		{Edge: "a", Role: auth.RoleOperator},
	} {
		if err := spec.Validate(); err == nil {
			t.Errorf("spec %+v accepted", spec)
		}
	}
	if err := (auth.KeySpec{Admin: "ops", Role: auth.RoleViewer}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseClaims(t *testing.T) {
	if _, err := auth.ParseClaims([]string{"novalue"}); err == nil {
		t.Error("a claim without = was accepted")
	}
	if _, err := auth.ParseClaims([]string{"a=1", "a=2"}); err == nil {
		t.Error("a repeated claim was accepted")
	}
}
