package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hub.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The configuration from the project's first issue must keep working exactly as written.
const issueConfig = `listen: 127.0.0.1:8080
source:
  kind: postgres
  dsn: postgres://app@127.0.0.1:5432/app
  tables: [public.customers, public.orders]
store:
  kind: sqlite
  path: ./data/changelog.db
`

func TestLoadConfig_IssueExample(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, issueConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Source.DSN != "postgres://app@127.0.0.1:5432/app" || !reflect.DeepEqual(cfg.Source.Tables, []string{"public.customers", "public.orders"}) {
		t.Fatalf("source: %+v", cfg.Source)
	}
	if cfg.Store.Path != "./data/changelog.db" || cfg.Listen != "127.0.0.1:8080" {
		t.Fatalf("store/listen: %+v %s", cfg.Store, cfg.Listen)
	}
	if err := cfg.hubConfig().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestLoadConfig_DeployExample(t *testing.T) {
	cfg, err := loadConfig("../../deploy/hub.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Retention != 168*time.Hour || cfg.API.MaxWait != 30*time.Second {
		t.Fatalf("durations: %+v %+v", cfg.Log, cfg.API)
	}
}

func TestLoadConfig_UnknownKeyIsNamed(t *testing.T) {
	_, err := loadConfig(writeConfig(t, issueConfig+"  pathh: x\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "pathh") {
		t.Fatalf("want an error naming the unknown key, got %v", err)
	}
	_, err = loadConfig(writeConfig(t, "listen: x\nsourse:\n  kind: postgres\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "sourse") {
		t.Fatalf("want an error naming the unknown key, got %v", err)
	}
}

func TestLoadConfig_EnvOverrides(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, issueConfig), []string{
		"SYNCHUB_SOURCE_DSN=postgres://other@db/x",
		"SYNCHUB_SOURCE_TABLES=public.a, public.b",
		"SYNCHUB_INGEST_GROUP_MAX_CHANGES=77",
		"SYNCHUB_CHANGELOG_RETENTION=2h",
		"HOME=/root",
		"SYNCHUB_PG_BIN=/usr/lib/postgresql/15/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source.DSN != "postgres://other@db/x" || !reflect.DeepEqual(cfg.Source.Tables, []string{"public.a", "public.b"}) ||
		cfg.Ingest.GroupMaxChanges != 77 || cfg.Log.Retention != 2*time.Hour {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
}

func TestLoadConfig_PushOrderWait(t *testing.T) {
	cfg, err := loadConfig("../../deploy/hub.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.hubConfig().Push.OrderWait; got != 5*time.Second {
		t.Fatalf("push.order_wait from the example file: %v, want 5s", got)
	}
	cfg, err = loadConfig(writeConfig(t, issueConfig+"push:\n  order_wait: 750ms\n"), []string{"SYNCHUB_PUSH_ORDER_WAIT=2s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.hubConfig().Push.OrderWait; got != 2*time.Second {
		t.Fatalf("push.order_wait with an environment override: %v, want 2s", got)
	}
	cfg.Push.OrderWait = 0
	if err := cfg.hubConfig().Push.Validate(nil); err == nil || !strings.Contains(err.Error(), "push.order_wait") {
		t.Fatalf("order_wait 0: want an error naming push.order_wait, got %v", err)
	}
}

func TestLoadConfig_PushAnswerRetention(t *testing.T) {
	cfg, err := loadConfig("../../deploy/hub.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.hubConfig().Push.AnswerRetention; got != 720*time.Hour {
		t.Fatalf("push.answer_retention from the example file: %v, want 720h", got)
	}
	cfg, err = loadConfig(writeConfig(t, issueConfig+"push:\n  answer_retention: 48h\n"), []string{"SYNCHUB_PUSH_ANSWER_RETENTION=0s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.hubConfig().Push.AnswerRetention; got != 0 {
		t.Fatalf("push.answer_retention with an environment override: %v, want 0 (keep for ever)", got)
	}
	for _, bad := range []time.Duration{-time.Hour, 30 * time.Minute} {
		cfg.Push.AnswerRetention = bad
		if err := cfg.hubConfig().Push.Validate(nil); err == nil || !strings.Contains(err.Error(), "push.answer_retention") {
			t.Fatalf("answer_retention %v: want an error naming push.answer_retention, got %v", bad, err)
		}
	}
}

func TestLoadConfig_BadEnv(t *testing.T) {
	for _, env := range []string{"SYNCHUB_SOURCE_DNS=x", "SYNCHUB_INGEST_GROUP_MAX_CHANGES=many", "SYNCHUB_API_MAX_WAIT=30"} {
		_, err := loadConfig("", []string{env})
		name := strings.SplitN(env, "=", 2)[0]
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: want an error naming the variable, got %v", env, err)
		}
	}
}

func TestValidate_NamesTheKey(t *testing.T) {
	cfg := defaultFileConfig()
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "source.dsn") {
		t.Fatalf("missing dsn: %v", err)
	}
	cfg.Source.DSN = "postgres://x@y/z"
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "source.tables") {
		t.Fatalf("missing tables: %v", err)
	}
	cfg.Source.Tables = []string{"public.t"}
	for key, mutate := range map[string]func(*fileConfig){
		"store.synchronous":         func(c *fileConfig) { c.Store.Synchronous = "sometimes" },
		"source.snapshot_page_rows": func(c *fileConfig) { c.Source.SnapshotPageRows = 0 },
		"source.status_interval":    func(c *fileConfig) { c.Source.StatusInterval = -time.Second },
		"log_level":                 func(c *fileConfig) { c.LogLevel = "loud" },
	} {
		bad := cfg
		mutate(&bad)
		if err := bad.validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: want an error naming it, got %v", key, err)
		}
	}
	if err := cfg.validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	cfg.Source.Kind = "oracle"
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "source.kind") {
		t.Fatalf("bad kind: %v", err)
	}
}

func TestRun_UsageAndVersion(t *testing.T) {
	var out, errb strings.Builder
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "synchub ") {
		t.Fatalf("version: code %d, %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown command: code %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"edge"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--hub and --db are required") {
		t.Fatalf("edge without flags: code %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"hub", "--config", "/nonexistent/hub.yaml"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "read config") {
		t.Fatalf("hub with missing config: code %d, %q", code, errb.String())
	}
}
