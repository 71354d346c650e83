package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestAdmin_HashPassword(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := runAdmin([]string{"hash-password"}, strings.NewReader("s3cret-enough\n"), &out, &errOut); err != nil {
		t.Fatalf("hash-password: %v (%s)", err, errOut.String())
	}
	h := strings.TrimSpace(out.String())
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret-enough")) != nil {
		t.Fatalf("printed %q, not a bcrypt hash of the password", h)
	}
	// The last line without a newline is read too.
	out.Reset()
	if err := runAdmin([]string{"hash-password"}, strings.NewReader("another-password"), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out.String())), []byte("another-password")) != nil {
		t.Fatal("a password without a trailing newline was not hashed as given")
	}
}

func TestAdmin_Errors(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"hash-password"}, "", "standard input"},
		{[]string{"hash-password"}, "short\n", "shorter than 8"},
		{[]string{"hash-password", "pw-on-the-command-line"}, "", "no arguments"},
		{[]string{"nope"}, "", "unknown subcommand"},
		{nil, "", "missing subcommand"},
	} {
		var out, errOut bytes.Buffer
		err := runAdmin(tc.args, strings.NewReader(tc.stdin), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("admin %v: %v, want an error about %q", tc.args, err, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("admin %v printed %q on a failure", tc.args, out.String())
		}
	}
}

func TestRun_AdminCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"admin", "help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "hash-password") {
		t.Fatalf("synchub admin help: exit %d, %q", code, out.String())
	}
}

func TestLoadConfig_Dashboard(t *testing.T) {
	var out bytes.Buffer
	if err := runAdmin([]string{"hash-password"}, strings.NewReader("correct horse\n"), &out, &out); err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSpace(out.String())
	text := issueConfig + `dashboard:
  session_ttl: 2h
  cookie_secure: true
  online_window: 5m
  edges_path: /var/lib/synchub/edges.db
  users:
    - name: alice
      password_hash: "` + hash + `"
      role: operator
    - name: victor
      password_hash: "` + hash + `"
      role: viewer
`
	cfg, err := loadConfig(writeConfig(t, text), []string{"SYNCHUB_DASHBOARD_SESSION_TTL=3h"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	h := cfg.hubConfig()
	d := h.Dashboard
	if d.SessionTTL != 3*time.Hour || !d.CookieSecure || d.OnlineWindow != 5*time.Minute || h.Edges.Path != "/var/lib/synchub/edges.db" {
		t.Fatalf("dashboard settings: %+v, edges %+v", d, h.Edges)
	}
	if len(d.Users) != 2 || d.Users[0].Name != "alice" || d.Users[0].Role != "operator" || d.Users[1].PasswordHash != hash {
		t.Fatalf("dashboard users: %+v", d.Users)
	}

	bad := strings.Replace(text, "role: viewer", "role: admin", 1)
	cfg, err = loadConfig(writeConfig(t, bad), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "dashboard.users[1]") {
		t.Fatalf("role admin: %v, want an error naming dashboard.users[1]", err)
	}
	cfg = defaultFileConfig()
	cfg.TLS.CertFile, cfg.TLS.KeyFile = "hub.pem", "hub.key"
	if !cfg.hubConfig().Dashboard.CookieSecure {
		t.Fatal("a hub serving HTTPS sets dashboard cookies without Secure")
	}
	if _, err := loadConfig(writeConfig(t, issueConfig+"dashboard:\n  userz: []\n"), nil); err == nil || !strings.Contains(err.Error(), "userz") {
		t.Fatalf("unknown dashboard key: %v", err)
	}
	if _, err := loadConfig("", []string{"SYNCHUB_DASHBOARD_USERS=alice"}); err == nil {
		t.Fatal("users set from the environment were accepted")
	}
	def := defaultFileConfig()
	if def.Dashboard.EdgesPath == "" || def.Dashboard.SessionTTL <= 0 {
		t.Fatalf("default dashboard config: %+v", def.Dashboard)
	}
}
