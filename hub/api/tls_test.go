package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub/api"
)

// testPKI writes a CA and a server certificate for 127.0.0.1 signed by it, and returns
// the files' paths.
func testPKI(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "synchub test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "hub"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("hub.pem", "CERTIFICATE", leafDER), write("hub.key", "PRIVATE KEY", keyDER)
}

func TestTLS_EdgeClientVerifiesHub(t *testing.T) {
	caFile, certFile, keyFile := testPKI(t)
	cfg := api.DefaultConfig()
	cfg.TLS = api.TLSConfig{CertFile: certFile, KeyFile: keyFile}
	s := newServer(t, cfg, api.Deps{Store: newFakeStore(ordersTable)})
	base, _ := serve(t, s)
	url := strings.Replace(base, "http://", "https://", 1) + "/healthz"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	get := func(c *http.Client) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	withCA, err := edge.NewHTTPClient(edge.TLSConfig{CAFile: caFile}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := get(withCA); err != nil || code != 200 {
		t.Fatalf("edge client with the CA: %d %v", code, err)
	}

	withoutCA, err := edge.NewHTTPClient(edge.TLSConfig{}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(withoutCA); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("edge client without the CA: %v, want a certificate verification error", err)
	}

	// TLS 1.1 is refused.
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(pem)
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := get(old); err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}
	// Plain HTTP to the HTTPS port gets no answer it can use.
	if code, err := get(http.DefaultClient); err == nil && code == 200 {
		t.Fatal("plain HTTP was served on the HTTPS listener")
	}
}

func TestTLS_Config(t *testing.T) {
	if err := (api.TLSConfig{CertFile: "a.pem"}).Validate(); err == nil {
		t.Error("cert_file without key_file accepted")
	}
	cfg := api.DefaultConfig()
	cfg.TLS = api.TLSConfig{CertFile: "/nonexistent/a.pem", KeyFile: "/nonexistent/a.key"}
	if _, err := api.New(cfg, api.Deps{Store: newFakeStore(ordersTable)}, nil); err == nil || !strings.Contains(err.Error(), "cert_file") {
		t.Fatalf("missing certificate files: %v", err)
	}
}
