package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
)

// runCLI runs the binary's entry point and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func keysConfig(t *testing.T) (cfgPath, keysPath, auditPath string) {
	t.Helper()
	dir := t.TempDir()
	keysPath = filepath.Join(dir, "data", "keys.db")
	auditPath = filepath.Join(dir, "data", "audit.db")
	cfgPath = writeConfig(t, "auth:\n  keys_path: "+keysPath+"\naudit:\n  path: "+auditPath+"\n")
	return cfgPath, keysPath, auditPath
}

var (
	keyRe    = regexp.MustCompile(`api key:\s+(shk_\S+)`)
	idRe     = regexp.MustCompile(`id:\s+(key_[0-9a-f]+)`)
	secretRe = regexp.MustCompile(`signing secret:\s+(shs_\S+)`)
)

func TestKeysCLI_CreateListRevoke(t *testing.T) {
	ctx := context.Background()
	cfg, keysPath, auditPath := keysConfig(t)

	code, out, errOut := runCLI(t, "keys", "create", "--config", cfg, "--edge", "till-1", "--claim", "store_id=7", "--claim", "regions=eu,us", "--signing")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	key, id, secret := keyRe.FindStringSubmatch(out), idRe.FindStringSubmatch(out), secretRe.FindStringSubmatch(out)
	if key == nil || id == nil || secret == nil {
		t.Fatalf("create output lacks the key, id or signing secret:\n%s", out)
	}
	code, out2, errOut := runCLI(t, "keys", "create", "--config", cfg, "--admin", "otto", "--role", "operator")
	if code != 0 {
		t.Fatalf("create admin: exit %d: %s", code, errOut)
	}
	adminID := idRe.FindStringSubmatch(out2)
	if adminID == nil {
		t.Fatalf("admin create output:\n%s", out2)
	}

	keys, err := auth.OpenKeys(ctx, keysPath)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	ki, gotSecret, err := keys.Lookup(ctx, key[1])
	if err != nil {
		t.Fatalf("the printed key does not authenticate: %v", err)
	}
	if ki.ID != id[1] || ki.Edge != "till-1" || gotSecret != secret[1] ||
		!reflect.DeepEqual(ki.Claims, map[string]any{"store_id": "7", "regions": []any{"eu", "us"}}) {
		t.Fatalf("stored key %+v (secret matches: %v)", ki, gotSecret == secret[1])
	}

	code, list, errOut := runCLI(t, "keys", "list", "--config", cfg)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	if !strings.Contains(list, id[1]) || !strings.Contains(list, "edge:till-1") || !strings.Contains(list, "admin:otto") || !strings.Contains(list, `regions=["eu","us"]`) {
		t.Fatalf("list:\n%s", list)
	}
	if strings.Contains(list, key[1]) || strings.Contains(list, secret[1]) {
		t.Fatal("keys list shows a key or a signing secret")
	}

	if code, _, errOut := runCLI(t, "keys", "revoke", "--config", cfg, id[1]); code != 0 {
		t.Fatalf("revoke: exit %d: %s", code, errOut)
	}
	if _, _, err := keys.Lookup(ctx, key[1]); err == nil {
		t.Fatal("a revoked key still authenticates")
	}
	if code, _, _ := runCLI(t, "keys", "revoke", "--config", cfg, "--edge", "till-1"); code == 0 {
		t.Fatal("revoking an edge without valid keys succeeded")
	}
	if code, _, errOut := runCLI(t, "keys", "revoke", "--config", cfg, "key_000000000000"); code == 0 || !strings.Contains(errOut, "no API key") {
		t.Fatalf("revoking an unknown id: exit %d: %s", code, errOut)
	}

	al, err := audit.OpenSQLite(ctx, auditPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	created, err := al.Query(ctx, audit.Filter{Action: audit.ActionKeyCreate})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := al.Query(ctx, audit.Filter{Action: audit.ActionKeyRevoke})
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 2 || len(revoked) != 1 || revoked[0].Key != id[1] || revoked[0].Edge != "till-1" {
		t.Fatalf("audit: created %+v, revoked %+v", created, revoked)
	}
	for _, ev := range append(created, revoked...) {
		if !strings.HasPrefix(ev.Actor, audit.AdminActorPrefix) || strings.Contains(ev.Detail, key[1]) || strings.Contains(ev.Detail, secret[1]) {
			t.Fatalf("audit event %+v: want an admin actor and no secret", ev)
		}
	}
}

func TestKeysCLI_BadArguments(t *testing.T) {
	cfg, _, _ := keysConfig(t)
	for _, args := range [][]string{
		{"keys"},
		{"keys", "rotate"},
		{"keys", "create", "--config", cfg},
		{"keys", "create", "--config", cfg, "--admin", "otto", "--role", "root"},
		{"keys", "create", "--config", cfg, "--edge", "a", "--claim", "novalue"},
		{"keys", "revoke", "--config", cfg},
	} {
		if code, _, errOut := runCLI(t, args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d (%q), want a usage error (2)", args, code, errOut)
		}
	}
}

func TestServeHub_RefusesPublicListenWithoutAuth(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultFileConfig()
	cfg.Listen = "0.0.0.0:0"
	cfg.Source.DSN = "postgres://app@127.0.0.1:1/app"
	cfg.Source.Tables = []string{"public.orders"}
	cfg.Store.Path = filepath.Join(dir, "changelog.db")
	cfg.Push.MetaPath = filepath.Join(dir, "meta.db")
	cfg.Audit.Path = filepath.Join(dir, "audit.db")
	cfg.Auth.KeysPath = filepath.Join(dir, "keys.db")
	cfg.Dashboard.EdgesPath = filepath.Join(dir, "edges.db")
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	err := serveHub(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "auth.methods") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("serveHub on 0.0.0.0 without edge authentication: %v, want a refusal naming auth.methods and loopback", err)
	}
	if _, err := os.Stat(cfg.Store.Path); err == nil {
		t.Fatal("the change log was opened before the refusal")
	}
}

func TestLoadConfig_AuthLimitsTLS(t *testing.T) {
	p := writeConfig(t, `listen: 0.0.0.0:8443
source: {kind: postgres, dsn: "postgres://a@h/db", tables: [public.t]}
auth:
  methods: [api_key, jwt]
  jwt:
    jwks_url: https://id.example/.well-known/jwks.json
    issuer: https://id.example
    audience: synchub
  signing: {required: true, window: 2m}
limits: {max_body_bytes: 1048576, max_batch_changes: 500, rate_per_second: 5, burst: 10, max_long_polls: 1}
tls: {cert_file: /etc/synchub/hub.pem, key_file: /etc/synchub/hub.key}
`)
	cfg, err := loadConfig(p, []string{"SYNCHUB_LIMITS_RATE_PER_SECOND=2.5", "SYNCHUB_AUTH_JWT_AUDIENCE=hub", "SYNCHUB_AUTH_METHODS=jwt"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	h := cfg.hubConfig()
	if h.API.BodyLimit != 1<<20 || h.Push.MaxBatchChanges != 500 || h.API.Limits.RatePerSecond != 2.5 || h.API.Limits.Burst != 10 ||
		h.API.Limits.MaxLongPolls != 1 || h.API.TLS.CertFile != "/etc/synchub/hub.pem" {
		t.Fatalf("hub config: API %+v, push batch %d", h.API, h.Push.MaxBatchChanges)
	}
	a := cfg.authConfig()
	if !reflect.DeepEqual(a.Methods, []string{"jwt"}) || a.JWT.Audience != "hub" || !a.Signing.Required || a.JWT.EdgeClaim != "sub" {
		t.Fatalf("auth config: %+v", a)
	}

	bad := writeConfig(t, "source: {kind: postgres, dsn: x, tables: [t]}\nauth:\n  methods: [password]\n")
	cfg, err = loadConfig(bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "auth.methods") {
		t.Fatalf("unknown method: %v", err)
	}
}
