package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/hub/rules"
	"github.com/synchub/synchub/hub/syncproto"
)

var salesTable = cdc.Table{
	Name: "public.sales",
	Columns: []cdc.Column{
		{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "store_id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "total", SourceType: "numeric(12,2)", Kind: cdc.KindDecimal, SQLiteType: "TEXT", Nullable: true},
		{Name: "margin", SourceType: "numeric(12,2)", Kind: cdc.KindDecimal, SQLiteType: "TEXT", Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

var productsTable = cdc.Table{
	Name:       "public.products",
	Columns:    []cdc.Column{{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"}, {Name: "name", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT"}},
	PrimaryKey: []string{"id"},
}

func sale(id, store int64) cdc.Row {
	return cdc.Row{
		{Name: "id", Value: cdc.Int(id)},
		{Name: "store_id", Value: cdc.Int(store)},
		{Name: "total", Value: cdc.Text(cdc.KindDecimal, fmt.Sprintf("%d.00", id))},
		{Name: "margin", Value: cdc.Text(cdc.KindDecimal, "0.42")},
	}
}

func saleIns(id, store int64) cdc.Change {
	return cdc.Change{Table: salesTable.Name, Op: cdc.OpInsert, After: sale(id, store)}
}

func saleUpd(id, store int64) cdc.Change {
	return cdc.Change{Table: salesTable.Name, Op: cdc.OpUpdate, Before: cdc.Row{{Name: "id", Value: cdc.Int(id)}}, After: sale(id, store)}
}

type rulesEnv struct {
	store *changelog.SQLiteStore
	srv   *api.Server
	db    *memApplier
	audit *audit.SQLite
	pos   int64
}

func newRulesEnv(t *testing.T) *rulesEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(dir, "changelog.db")
	store, err := changelog.OpenSQLite(ctx, scfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	set, err := rules.Compile(rules.Config{Groups: map[string]rules.GroupConfig{
		"stores": {Tables: map[string]rules.TableConfig{
			salesTable.Name:    {Filter: "store_id = {edge.store_id}", Columns: []string{"id", "store_id", "total"}},
			productsTable.Name: {Filter: "all"},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetRules(ctx, set); err != nil {
		t.Fatal(err)
	}
	al, err := audit.OpenSQLite(ctx, filepath.Join(dir, "audit.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	e := &rulesEnv{store: store, db: &memApplier{rows: map[string]cdc.Row{}}, audit: al}
	// The snapshot: 20 sales, alternating between stores 7 and 8, and a product.
	var snap []cdc.Change
	for id := int64(1); id <= 20; id++ {
		snap = append(snap, saleIns(id, 7+id%2))
	}
	snap = append(snap, cdc.Change{Table: productsTable.Name, Op: cdc.OpInsert, After: cdc.Row{{Name: "id", Value: cdc.Int(1)}, {Name: "name", Value: cdc.Text(cdc.KindText, "tea")}}})
	e.commit(t, snap...)
	pcfg := noWaitConfig()
	pcfg.MetaPath = push.DefaultMetaPath(scfg.Path)
	svc, err := push.Open(ctx, pcfg, push.Deps{Store: store, Applier: e.db, Audit: al})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	e.srv = newServer(t, api.DefaultConfig(), api.Deps{Store: store, Push: svc, Audit: al, Rules: set})
	return e
}

// commit appends one source transaction and mirrors it in the central database.
func (e *rulesEnv) commit(t *testing.T, changes ...cdc.Change) {
	t.Helper()
	ctx := context.Background()
	b, err := e.store.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetTables([]cdc.Table{salesTable, productsTable}); err != nil {
		t.Fatal(err)
	}
	e.pos++
	if err := b.AppendTx(ctx, &cdc.Tx{Pos: testPos(e.pos), CommitTime: time.Now().Add(-time.Hour), Changes: changes}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	e.db.mu.Lock()
	for _, c := range changes {
		if c.Table == salesTable.Name {
			e.db.rows[syncproto.KeyText(&salesTable, c.After)] = c.After
		}
	}
	e.db.mu.Unlock()
}

// as returns an app that serves the API to an edge with the given claims, the way the
// auth middleware in front of it would establish the identity.
func (e *rulesEnv) as(edge string, claims map[string]any) *fiber.App {
	app := fiber.New()
	app.Use(func(c *fiber.Ctx) error {
		auth.WithIdentity(c, &auth.Identity{Edge: edge, Method: "api_key", Claims: claims})
		return c.Next()
	})
	app.Mount("/", e.srv.App())
	return app
}

func call(t *testing.T, app *fiber.App, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := app.Test(req, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// pullHTTP pulls like an edge from since until caught up, with page limit limit.
func pullHTTP(t *testing.T, app *fiber.App, since int64, limit int) (changes []syncproto.WireChange, next int64) {
	t.Helper()
	cursor := ""
	for range 1000 {
		url := fmt.Sprintf("/v1/changes?since=%d&limit=%d", since, limit)
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		resp, body := call(t, app, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
		}
		var p syncproto.Page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("page: %v: %s", err, body)
		}
		n := 0
		for _, e := range p.Entries {
			changes = append(changes, e.Changes...)
			n += len(e.Changes)
		}
		if !p.Commit {
			cursor = p.Cursor
			continue
		}
		cursor = ""
		if n == 0 {
			return changes, p.Next
		}
		since = p.Next
	}
	t.Fatal("pull did not finish")
	return nil, 0
}

// storeOf returns the store_id in a wire row, or -1.
func storeOf(t *testing.T, raw json.RawMessage) int64 {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("row %s: %v", raw, err)
	}
	v, ok := m["store_id"]
	if !ok {
		return -1
	}
	var n int64
	if err := json.Unmarshal(v, &n); err != nil {
		t.Fatalf("store_id %s: %v", v, err)
	}
	return n
}

func TestAPI_RulesIsolatePulls(t *testing.T) {
	e := newRulesEnv(t)
	e.commit(t, saleUpd(2, 7), saleUpd(3, 7)) // 2 stays in 7, 3 moves from 8 to 7
	e.commit(t, saleUpd(4, 8))                // 4 moves from 7 to 8
	e.commit(t, saleUpd(5, 8))                // store 8 only
	edge7 := e.as("till-7", map[string]any{"group": "stores", "store_id": float64(7)})
	edge8 := e.as("till-8", map[string]any{"group": "stores", "store_id": "8"})

	check := func(name string, app *fiber.App, since int64, store int64) map[int64]bool {
		t.Helper()
		changes, next := pullHTTP(t, app, since, 4)
		st, _ := e.store.State(context.Background())
		if next != st.Head {
			t.Fatalf("%s: watermark %d, want the head %d", name, next, st.Head)
		}
		rows := map[int64]bool{}
		for _, c := range changes {
			switch c.Table {
			case productsTable.Name:
				continue
			case salesTable.Name:
			default:
				t.Fatalf("%s received table %s", name, c.Table)
			}
			var id struct {
				ID int64 `json:"id"`
			}
			if c.Op == "d" {
				_ = json.Unmarshal(c.Key, &id)
				delete(rows, id.ID)
				continue
			}
			if s := storeOf(t, c.Row); s != store {
				t.Fatalf("%s received a row of store %d: %s", name, s, c.Row)
			}
			if strings.Contains(string(c.Row), "margin") {
				t.Fatalf("%s received a column outside its allow-list: %s", name, c.Row)
			}
			_ = json.Unmarshal(c.Row, &id)
			rows[id.ID] = true
		}
		return rows
	}
	// Bootstrap (snapshot and stream) of each store.
	r7 := check("store 7", edge7, 0, 7)
	want7 := map[int64]bool{2: true, 3: true, 6: true, 8: true, 10: true, 12: true, 14: true, 16: true, 18: true, 20: true}
	if fmt.Sprint(r7) != fmt.Sprint(want7) {
		t.Fatalf("store 7 holds %v, want %v", r7, want7)
	}
	r8 := check("store 8", edge8, 0, 8)
	if !r8[4] || r8[3] || len(r8) != 10 {
		t.Fatalf("store 8 holds %v", r8)
	}
	// The same after compaction: a bootstrap still sees only its store.
	if _, err := e.store.Compact(context.Background(), changelog.CompactOptions{Retention: 0, TombstoneRetention: 0}); err != nil {
		t.Fatal(err)
	}
	if r := check("store 7 after compaction", edge7, 0, 7); fmt.Sprint(r) != fmt.Sprint(want7) {
		t.Fatalf("store 7 after compaction holds %v, want %v", r, want7)
	}

	// A row moving from store 7 to 8: it disappears from 7 and appears on 8.
	st, _ := e.store.State(context.Background())
	e.commit(t, saleUpd(6, 8))
	c7, _ := pullHTTP(t, edge7, st.Head, 100)
	c8, _ := pullHTTP(t, edge8, st.Head, 100)
	if len(c7) != 1 || c7[0].Op != "d" || string(c7[0].Key) != `{"id":6}` {
		t.Fatalf("store 7 after the move received %+v, want the delete of row 6", c7)
	}
	if len(c8) != 1 || c8[0].Op != "i" || string(c8[0].Row) != `{"id":6,"store_id":8,"total":"6.00"}` {
		t.Fatalf("store 8 after the move received %+v, want the insert of row 6", c8)
	}

	// An edge with no group claim gets nothing but is told the head.
	none := e.as("till-x", nil)
	if changes, next := pullHTTP(t, none, 0, 100); len(changes) != 0 || next == 0 {
		t.Fatalf("edge without claims: %d changes, next %d", len(changes), next)
	}
	// Without an identity (no auth middleware) the edge has no claims either.
	resp, body := get(t, e.srv, "/v1/changes?since=0", auth.EdgeHeader, "till-7")
	var p syncproto.Page
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &p) != nil || len(p.Entries) != 0 {
		t.Fatalf("header-named edge under rules: %d %s", resp.StatusCode, body)
	}
}

func TestAPI_RulesFilterSchema(t *testing.T) {
	e := newRulesEnv(t)
	req, _ := http.NewRequest(http.MethodGet, "/v1/schema", nil)
	resp, body := call(t, e.as("till-7", map[string]any{"group": "stores", "store_id": 7}), req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("schema: %d %s", resp.StatusCode, body)
	}
	var sr syncproto.SchemaResponse
	if err := json.Unmarshal(body, &sr); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tb := range sr.Tables {
		var cols []string
		for _, c := range tb.Columns {
			cols = append(cols, c.Name)
		}
		got = append(got, tb.Name+"("+strings.Join(cols, ",")+")")
	}
	if strings.Join(got, " ") != "public.sales(id,store_id,total) public.products(id,name)" {
		t.Fatalf("scoped schema: %v", got)
	}
	if etag := resp.Header.Get("ETag"); !strings.Contains(etag, "stores") {
		t.Fatalf("scoped schema ETag %q does not name the group", etag)
	}
	resp, body = call(t, e.as("till-x", map[string]any{"group": "nobody"}), req)
	if err := json.Unmarshal(body, &sr); err != nil || len(sr.Tables) != 0 {
		t.Fatalf("schema of an edge of an unknown group: %d %s", resp.StatusCode, body)
	}
}

func TestAPI_RulesForbidOutOfScopePush(t *testing.T) {
	e := newRulesEnv(t)
	edge7 := e.as("till-7", map[string]any{"group": "stores", "store_id": "7"})
	pushReq := func(batch string, change string) syncproto.PushResponse {
		t.Helper()
		body := `{"edge":"till-7","batch_id":"` + batch + `","sent_at":0,"changes":[` + change + `]}`
		req, _ := http.NewRequest(http.MethodPost, "/v1/push", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, out := call(t, edge7, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("push %s: %d %s", batch, resp.StatusCode, out)
		}
		var pr syncproto.PushResponse
		if err := json.Unmarshal(out, &pr); err != nil {
			t.Fatal(err)
		}
		return pr
	}
	cases := map[string]string{
		// A new row of store 8.
		"b-insert8": `{"id":1,"t":"public.sales","op":"i","key":{"id":100},"row":{"id":100,"store_id":8,"total":"1.00"},"base_version":0}`,
		// Store 7's row 2, moved to store 8.
		"b-move": `{"id":2,"t":"public.sales","op":"u","key":{"id":2},"row":{"id":2,"store_id":8,"total":"2.00"},"base_version":1}`,
		// Store 8's row 1, claimed for store 7.
		"b-steal": `{"id":3,"t":"public.sales","op":"u","key":{"id":1},"row":{"id":1,"store_id":7,"total":"1.00"},"base_version":1}`,
	}
	for batch, change := range cases {
		pr := pushReq(batch, change)
		if r := pr.Results[0]; r.Status != syncproto.PushRejected || r.Code != push.CodeForbidden {
			t.Fatalf("%s: %+v, want rejected forbidden", batch, r)
		}
	}
	e.db.mu.Lock()
	applied := len(e.db.tags)
	e.db.mu.Unlock()
	if applied != 0 {
		t.Fatalf("the Applier was called %d times for forbidden changes", applied)
	}
	evs, err := e.audit.Query(context.Background(), audit.Filter{Action: audit.ActionReject, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(cases) {
		t.Fatalf("%d reject audit events, want %d", len(evs), len(cases))
	}
	for _, ev := range evs {
		if !strings.HasPrefix(ev.Detail, "forbidden: ") || ev.Edge != "till-7" {
			t.Fatalf("audit event %+v", ev)
		}
	}
	// An in-scope write goes through.
	pr := pushReq("b-ok", `{"id":4,"t":"public.sales","op":"u","key":{"id":2},"row":{"id":2,"store_id":7,"total":"2.50"},"base_version":1}`)
	if r := pr.Results[0]; r.Status != syncproto.PushApplied {
		t.Fatalf("in-scope push: %+v", r)
	}
}
