package api

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// TLSConfig makes the API serve HTTPS. Both files empty serves plain HTTP.
type TLSConfig struct {
	// CertFile is the PEM certificate chain (leaf first); KeyFile its private key.
	CertFile string
	KeyFile  string
}

// Enabled reports whether HTTPS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Validate says what is wrong with the TLS settings.
func (t TLSConfig) Validate() error {
	if t.Enabled() && (t.CertFile == "" || t.KeyFile == "") {
		return errors.New("tls: set both cert_file and key_file (PEM), or neither for plain HTTP")
	}
	return nil
}

// Load reads the certificate and key and returns the server's TLS configuration:
// TLS 1.2 at least. It returns nil, nil when TLS is not enabled.
func (t TLSConfig) Load() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load cert_file %s and key_file %s: %w", t.CertFile, t.KeyFile, err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
	}, nil
}
