package edge_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/edge"
)

func TestSignRequest(t *testing.T) {
	body := []byte(`{"edge":"till-1"}`)
	req, err := http.NewRequest(http.MethodPost, "https://hub.example:8443/v1/push?x=1&y=2", nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1700000000, 0)
	edge.SignRequest(req, body, "key_0123", "shs_secret", at)

	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, []byte("shs_secret"))
	m.Write([]byte("SYNCHUB-HMAC-SHA256\nPOST\n/v1/push?x=1&y=2\n1700000000\n" + hex.EncodeToString(sum[:])))
	want := hex.EncodeToString(m.Sum(nil))
	if got := req.Header.Get("X-Synchub-Signature"); got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
	if req.Header.Get("X-Synchub-Timestamp") != "1700000000" || req.Header.Get("X-Synchub-Key-Id") != "key_0123" {
		t.Fatalf("headers %v", req.Header)
	}
	edge.SignRequest(req, []byte(`{}`), "key_0123", "shs_secret", at)
	if req.Header.Get("X-Synchub-Signature") == want {
		t.Fatal("a different body gave the same signature")
	}
}

func TestAuthorize(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://hub/v1/schema", nil)
	edge.Authorize(req, "", "")
	if req.Header.Get("Authorization") != "" {
		t.Fatal("Authorization set without credentials")
	}
	edge.Authorize(req, "", "eyJ.a.b")
	if req.Header.Get("Authorization") != "Bearer eyJ.a.b" {
		t.Fatalf("token: %q", req.Header.Get("Authorization"))
	}
	edge.Authorize(req, "shk_key", "eyJ.a.b")
	if req.Header.Get("Authorization") != "Bearer shk_key" {
		t.Fatalf("API key: %q", req.Header.Get("Authorization"))
	}
}

func TestNewHTTPClient_BadFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	for name, cfg := range map[string]edge.TLSConfig{
		"missing CA file":  {CAFile: filepath.Join(dir, "nope.pem")},
		"CA not PEM":       {CAFile: notPEM},
		"cert without key": {CertFile: notPEM},
	} {
		if _, err := edge.NewHTTPClient(cfg, 0); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "edge config") {
			t.Errorf("%s: error %q does not name the setting", name, err)
		}
	}
	if _, err := edge.NewHTTPClient(edge.TLSConfig{}, time.Second); err != nil {
		t.Fatal(err)
	}
}
