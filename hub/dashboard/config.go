// Package dashboard serves the admin dashboard under /ui: sign-in with the admin users
// of hub.yaml (bcrypt password hashes), session cookies, CSRF tokens on every form and
// htmx request, and the overview, edges, conflicts, rejected-changes, audit and
// row-history pages rendered by package ui. Viewers read; operators also resolve
// conflicts and retry or discard rejected changes. Every refused sign-in and every
// admin action is written to the audit log with the admin's name.
package dashboard

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/synchub/synchub/ui"
)

// User is one admin who may sign in.
type User struct {
	Name string
	// PasswordHash is a bcrypt hash (synchub admin hash-password prints one).
	PasswordHash string
	// Role is "viewer" (read only) or "operator" (may also resolve, retry and discard).
	Role string
}

// Config configures the dashboard.
type Config struct {
	Users []User
	// SessionTTL is how long a sign-in lasts; after it the admin signs in again.
	SessionTTL time.Duration
	// CookieSecure marks the session and CSRF cookies Secure: set it when admins reach
	// the dashboard over HTTPS (directly or through a TLS-terminating proxy).
	CookieSecure bool
	// OnlineWindow: an edge seen within it counts as online, else as stale.
	OnlineWindow time.Duration
	// SampleInterval is how often the overview's ingest chart takes a sample; it keeps
	// Samples of them.
	SampleInterval time.Duration
	Samples        int
	// RequestTimeout bounds the work of one page.
	RequestTimeout time.Duration
}

// DefaultConfig returns a configuration with no users (nobody can sign in), 12-hour
// sessions, a 2-minute online window and a 5-minute ingest chart.
func DefaultConfig() Config {
	return Config{
		SessionTTL:     12 * time.Hour,
		OnlineWindow:   2 * time.Minute,
		SampleInterval: 5 * time.Second,
		Samples:        60,
		RequestTimeout: 30 * time.Second,
	}
}

// Validate reports the first invalid setting and how to fix it.
func (c Config) Validate() error {
	seen := map[string]bool{}
	for i, u := range c.Users {
		switch {
		case u.Name == "":
			return fmt.Errorf("dashboard.users[%d]: name is empty", i)
		case len(u.Name) > 64:
			return fmt.Errorf("dashboard.users[%d]: name %.20q… is longer than 64 bytes", i, u.Name)
		case seen[u.Name]:
			return fmt.Errorf("dashboard.users[%d]: name %q appears twice", i, u.Name)
		case u.Role != ui.RoleViewer && u.Role != ui.RoleOperator:
			return fmt.Errorf("dashboard.users[%d] (%s): role %q: use viewer or operator", i, u.Name, u.Role)
		}
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			return fmt.Errorf("dashboard.users[%d] (%s): password_hash is not a bcrypt hash (%v); make one with `synchub admin hash-password`", i, u.Name, err)
		}
		seen[u.Name] = true
	}
	switch {
	case c.SessionTTL < time.Minute:
		return fmt.Errorf("dashboard.session_ttl %v: use at least 1m", c.SessionTTL)
	case c.OnlineWindow <= 0:
		return errors.New("dashboard.online_window must be positive")
	case c.SampleInterval <= 0 || c.Samples < 2:
		return fmt.Errorf("dashboard: sample interval %v and samples %d: need a positive interval and at least 2 samples", c.SampleInterval, c.Samples)
	case c.RequestTimeout <= 0:
		return errors.New("dashboard: request timeout must be positive")
	}
	return nil
}

// HashPassword returns the bcrypt hash of password for a dashboard user.
func HashPassword(password string) (string, error) {
	if len(password) < 8 {
		return "", errors.New("password is shorter than 8 characters; choose a longer one")
	}
	if len(password) > 72 {
		return "", errors.New("password is longer than 72 bytes, which bcrypt cannot hash; choose a shorter one")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}
