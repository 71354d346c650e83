package hub

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/rules"
	"github.com/synchub/synchub/hub/syncproto"
)

func snapRules() rules.Config {
	return rules.Config{Groups: map[string]rules.GroupConfig{
		"snaps": {Tables: map[string]rules.TableConfig{table.Name: {Filter: "v = {edge.v}"}}},
	}}
}

func TestHub_RulesScopePulls(t *testing.T) {
	src := &fakeSource{history: 5, snapshot: 3}
	r := startHub(t, src, func(c *Config) { c.Rules = snapRules() })
	waitFor(t, "the history in the change log", func() bool {
		st, _ := r.store.State(context.Background())
		return st.Head >= 2 && st.Entries == 8
	})
	pull := func(claims map[string]any) (n int, rows []string) {
		t.Helper()
		app := fiber.New()
		app.Use(func(c *fiber.Ctx) error {
			auth.WithIdentity(c, &auth.Identity{Edge: "e1", Method: "api_key", Claims: claims})
			return c.Next()
		})
		app.Mount("/", r.h.api.App())
		req, _ := http.NewRequest(http.MethodGet, "/v1/changes?since=0", nil)
		resp, err := app.Test(req, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var p syncproto.Page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("page %s: %v", body, err)
		}
		for _, e := range p.Entries {
			for _, c := range e.Changes {
				rows = append(rows, string(c.Row))
			}
		}
		return len(rows), rows
	}
	if n, rows := pull(map[string]any{"group": "snaps", "v": "snap"}); n != 3 || strings.Contains(strings.Join(rows, ""), "tx ") {
		t.Fatalf("edge of v=snap received %d rows: %v", n, rows)
	}
	if n, rows := pull(map[string]any{"group": "snaps", "v": "tx 2"}); n != 1 || !strings.Contains(rows[0], `"tx 2"`) {
		t.Fatalf("edge of v=tx 2 received %v", rows)
	}
	if n, _ := pull(nil); n != 0 {
		t.Fatalf("edge without a group received %d rows", n)
	}
}

func TestHub_RulesCheckedAtStart(t *testing.T) {
	ctx := context.Background()
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(t.TempDir(), "log.db")
	store, err := changelog.OpenSQLite(ctx, scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	b, err := store.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetTables([]cdc.Table{table}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Rules = rules.Config{Groups: map[string]rules.GroupConfig{
		"g": {Tables: map[string]rules.TableConfig{table.Name: {Filter: "store = {edge.store}"}}},
	}}
	reg := prometheus.NewRegistry()
	_, err = New(cfg, Deps{Source: &fakeSource{}, Store: store, Registry: reg, Gatherer: reg})
	if err == nil || !strings.Contains(err.Error(), `"store"`) || !strings.Contains(err.Error(), table.Name) {
		t.Fatalf("New with a rule on an unknown column: %v", err)
	}
	cfg.Rules.Groups["g"].Tables[table.Name] = rules.TableConfig{Filter: "v = {edge"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "group g table public.t") {
		t.Fatalf("Validate with a malformed filter: %v", err)
	}
}
