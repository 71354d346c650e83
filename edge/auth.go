package edge

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// The headers of an authenticated request to the hub. They mirror the hub's
// (hub/auth), which the edge does not import.
const (
	headerAuthorization = "Authorization"
	headerTimestamp     = "X-Synchub-Timestamp"
	headerSignature     = "X-Synchub-Signature"
	headerKeyID         = "X-Synchub-Key-Id"
	signingScheme       = "SYNCHUB-HMAC-SHA256"
)

// TLSConfig says how the edge checks the hub's certificate and, optionally, which
// client certificate it presents.
type TLSConfig struct {
	// CAFile is a PEM bundle of the certificate authorities that may sign the hub's
	// certificate, for a hub whose certificate the system's roots do not cover (a
	// private CA). Empty uses the system's roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key, for hubs behind a
	// proxy that requires mutual TLS. Both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the hub's certificate (default: the
	// host of the hub URL).
	ServerName string
}

// NewHTTPClient returns an HTTP client for the hub with cfg's TLS settings (TLS 1.2 at
// least) and the agent's usual connection timeouts. responseTimeout bounds the wait
// for response headers (0: none); give it Config.Wait+Config.RequestTimeout.
func NewHTTPClient(cfg TLSConfig, responseTimeout time.Duration) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("edge config: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("edge config: ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	switch {
	case cfg.CertFile != "" && cfg.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("edge config: client certificate %s / key %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case cfg.CertFile != "" || cfg.KeyFile != "":
		return nil, errors.New("edge config: set both cert_file and key_file for a client certificate, or neither")
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		MaxIdleConns:          4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: responseTimeout,
		ForceAttemptHTTP2:     true,
	}}, nil
}

// Authorize sets the request's credential: the API key when it is set, else the
// token (a JWT). With neither it leaves the request as it is.
func Authorize(req *http.Request, apiKey, token string) {
	switch {
	case apiKey != "":
		req.Header.Set(headerAuthorization, "Bearer "+apiKey)
	case token != "":
		req.Header.Set(headerAuthorization, "Bearer "+token)
	}
}

// SignRequest signs req for the hub with the signing secret of key keyID, at now.
// body must be the exact bytes sent (after compression, if the body is compressed),
// nil for a request without a body. Sign each request as it is sent: the hub refuses
// a timestamp outside its window and any signature it has already seen.
func SignRequest(req *http.Request, body []byte, keyID, secret string, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set(headerTimestamp, ts)
	req.Header.Set(headerKeyID, keyID)
	req.Header.Set(headerSignature, signature(secret, req.Method, req.URL.RequestURI(), ts, body))
}

// signature is the hex HMAC-SHA256 of the string to sign: the scheme, the method, the
// request target, the timestamp and the hex SHA-256 of the body, joined by newlines.
func signature(secret, method, target, ts string, body []byte) string {
	sum := sha256.Sum256(body)
	var b bytes.Buffer
	b.WriteString(signingScheme + "\n")
	b.WriteString(strings.ToUpper(method) + "\n")
	b.WriteString(target + "\n")
	b.WriteString(ts + "\n")
	b.WriteString(hex.EncodeToString(sum[:]))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(b.Bytes())
	return hex.EncodeToString(m.Sum(nil))
}
