package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/rules"
	"github.com/synchub/synchub/hub/syncproto"
)

const isolationSchema = `
CREATE TABLE public.orders (id int PRIMARY KEY, store_id int NOT NULL, total numeric(10,2) NOT NULL, note text);
CREATE TABLE public.products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL, cost numeric(10,2));
INSERT INTO public.orders SELECT g, 7 + g % 2, g * 1.5, 'order ' || g FROM generate_series(1, 20) g;
INSERT INTO public.products VALUES (1, 'tea', 3.50, 1.10), (2, 'cake', 4.20, 2.00);
`

func isolationRules() rules.Config {
	return rules.Config{Groups: map[string]rules.GroupConfig{
		"stores": {Tables: map[string]rules.TableConfig{
			"public.orders":   {Filter: "store_id = {edge.store_id}"},
			"public.products": {Filter: "all", Columns: []string{"id", "name", "price"}},
		}},
	}}
}

// isolationStack is a hub with API keys and sync rules, and one edge per store.
func isolationStack(t *testing.T) (s *stack, e7, e8 *edge.Agent, key7 string) {
	t.Helper()
	s = newStackKeys(t, isolationSchema, []string{"public.orders", "public.products"},
		func(c *hub.Config) { c.Rules = isolationRules() }, true)
	s.waitStreaming()
	open := func(name string, store int) (*edge.Agent, string) {
		k, err := s.keys.Create(context.Background(), auth.KeySpec{Edge: name, Claims: map[string]any{"group": "stores", "store_id": store}})
		if err != nil {
			t.Fatalf("create key: %v", err)
		}
		a := s.newEdgeWith(name, func(c *edge.Config) { c.APIKey = k.Key })
		s.syncEdge(a)
		if err := a.InitSyncAll(context.Background()); err != nil {
			t.Fatalf("init sync %s: %v", name, err)
		}
		return a, k.Key
	}
	e7, key7 = open("store-7", 7)
	e8, _ = open("store-8", 8)
	return s, e7, e8, key7
}

func storesOf(t testing.TB, a *edge.Agent) string {
	t.Helper()
	return edgeValue(t, a, `SELECT group_concat(DISTINCT store_id) FROM orders`)
}

// TestIntegration_IsolationPullsAndMoves: each store's edge receives only its rows, in
// the snapshot and in the stream, and products without the columns outside the
// allow-list; a row moved from store 7 to store 8 leaves edge 7 and reaches edge 8.
func TestIntegration_IsolationPullsAndMoves(t *testing.T) {
	s, e7, e8, _ := isolationStack(t)
	if got := storesOf(t, e7); got != "7" {
		t.Fatalf("edge of store 7 holds orders of stores %q after bootstrap, want only 7", got)
	}
	if got := storesOf(t, e8); got != "8" {
		t.Fatalf("edge of store 8 holds orders of stores %q after bootstrap, want only 8", got)
	}
	if got := edgeValue(t, e7, `SELECT count(*) FROM pragma_table_info('products') WHERE name = 'cost'`); got != "0" {
		t.Fatal("edge of store 7 has the products.cost column, which is outside the allow-list")
	}
	s.exec(`INSERT INTO orders VALUES (100, 8, 9.99, 'new for 8'), (101, 7, 1.00, 'new for 7')`)
	s.exec(`UPDATE orders SET store_id = 8, note = 'moved' WHERE id = 2`) // even ids are store 7's
	s.waitHubCaughtUp()
	s.syncEdge(e7)
	s.syncEdge(e8)
	if got := storesOf(t, e7); got != "7" {
		t.Fatalf("edge of store 7 holds orders of stores %q after the stream, want only 7", got)
	}
	if got := edgeValue(t, e7, `SELECT count(*) FROM orders WHERE id IN (2, 100)`); got != "0" {
		t.Fatalf("edge of store 7 still holds the moved row or got store 8's new row (%s)", got)
	}
	if got := edgeValue(t, e8, `SELECT note FROM orders WHERE id = 2`); got != "moved" {
		t.Fatalf("the row moved to store 8 is %q on edge 8, want 'moved'", got)
	}
	if got := edgeValue(t, e8, `SELECT count(*) FROM orders`); got != "12" {
		t.Fatalf("edge of store 8 holds %s orders, want 12 (10 + moved + new)", got)
	}
}

// TestIntegration_IsolationForbiddenWrites: edge 7 writing a store-8 row, or moving its
// own row to store 8, is rejected as forbidden and audited, and nothing changes in
// PostgreSQL, the change log or edge 8.
func TestIntegration_IsolationForbiddenWrites(t *testing.T) {
	s, e7, e8, _ := isolationStack(t)
	headBefore := s.head()
	before := s.exec(`SELECT string_agg(id || ':' || store_id || ':' || note, ',' ORDER BY id) FROM orders`)
	// Odd ids belong to store 8, even ids to store 7.
	edgeExec(t, e7, `INSERT INTO orders (id, store_id, total, note) VALUES (1, 8, 1.00, 'sneaky')`)
	edgeExec(t, e7, `UPDATE orders SET store_id = 8 WHERE id = 2`)
	rep := push(t, e7)
	if rep.Rejected != 2 || rep.Applied != 0 {
		t.Fatalf("push: %+v, want 2 rejected, 0 applied", rep)
	}
	if after := s.exec(`SELECT string_agg(id || ':' || store_id || ':' || note, ',' ORDER BY id) FROM orders`); after != before {
		t.Fatalf("PostgreSQL changed:\n before %s\n after  %s", before, after)
	}
	time.Sleep(200 * time.Millisecond)
	if got := s.head(); got != headBefore {
		t.Fatalf("change log head moved from %d to %d after forbidden writes", headBefore, got)
	}
	s.syncEdge(e8)
	if got := edgeValue(t, e8, `SELECT note FROM orders WHERE id = 1`); got != "order 1" {
		t.Fatalf("edge 8's row 1 is %q, want it untouched", got)
	}
	if got := edgeValue(t, e8, `SELECT count(*) FROM orders WHERE id = 2`); got != "0" {
		t.Fatal("edge 8 received store 7's row 2")
	}
	var codes []string
	rows, err := e7.DB().Query(`SELECT code FROM _synchub_rejected ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		rows.Scan(&c)
		codes = append(codes, c)
	}
	rows.Close()
	if strings.Join(codes, ",") != "forbidden,forbidden" {
		t.Fatalf("edge 7's rejected changes have codes %v, want two forbidden", codes)
	}
	ev, err := s.audit.Query(context.Background(), audit.Filter{Action: audit.ActionReject, Edge: "store-7", Limit: 100})
	if err != nil || len(ev) != 2 || !strings.HasPrefix(ev[0].Detail, "forbidden") {
		t.Fatalf("audit of the forbidden writes: %+v, %v; want 2 reject events with a forbidden detail", ev, err)
	}
}

// TestIntegration_IsolationBadRequests: bad credentials and hostile or broken pushes get
// a 4xx with a JSON body (or a per-change rejection), never a 500, and write nothing.
func TestIntegration_IsolationBadRequests(t *testing.T) {
	s, _, _, key7 := isolationStack(t)
	revoked, err := s.keys.Create(context.Background(), auth.KeySpec{Edge: "gone", Claims: map[string]any{"group": "stores", "store_id": 7}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.keys.Revoke(context.Background(), revoked.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	before := s.exec(`SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o`)
	headBefore := s.head()

	do := func(method, path, key, body string, hdr map[string]string) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, s.url+path, rd)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	change := func(table, op, key, row string) string {
		return fmt.Sprintf(`{"edge":"store-7","batch_id":"%s","sent_at":%d,"changes":[{"id":1,"t":%q,"op":%q,"key":%s,"row":%s,"base_version":0,"hlc":"%019d-00000-store-7"}]}`,
			newBatchID(), time.Now().UnixMicro(), table, op, key, row, time.Now().UnixMicro())
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(change("public.orders", "i", `{"id":500}`, `{"id":500,"store_id":7,"total":"1.00","note":"x"}`)))
	zw.Close()
	truncated := gz.Bytes()[:gz.Len()/2]

	for _, tc := range []struct {
		name, method, path, key, body string
		hdr                           map[string]string
		want                          int
		rejectedCode                  string // for 200 answers: the change's rejection code
	}{
		{name: "no credential", method: "GET", path: "/v1/changes?since=0", want: 401},
		{name: "malformed credential", method: "GET", path: "/v1/changes?since=0", key: "not-a-key", want: 401},
		{name: "revoked key", method: "GET", path: "/v1/changes?since=0", key: revoked.Key, want: 401},
		{name: "malformed JSON", method: "POST", path: "/v1/push", key: key7, body: `{"edge":"store-7","changes":[`, want: 400},
		{name: "truncated gzip", method: "POST", path: "/v1/push", key: key7, body: string(truncated), hdr: map[string]string{"Content-Encoding": "gzip"}, want: 400},
		{name: "unknown table", method: "POST", path: "/v1/push", key: key7, body: change("public.nope", "i", `{"id":1}`, `{"id":1}`), want: 200, rejectedCode: "bad_change"},
		{name: "unknown column", method: "POST", path: "/v1/push", key: key7, body: change("public.orders", "i", `{"id":501}`, `{"id":501,"store_id":7,"total":"1.00","bogus":1}`), want: 200, rejectedCode: "bad_change"},
		{name: "column outside the allow-list", method: "POST", path: "/v1/push", key: key7, body: change("public.products", "u", `{"id":1}`, `{"id":1,"name":"tea","price":"3.50","cost":"0.01"}`), want: 200, rejectedCode: "forbidden"},
		{name: "hostile identifier", method: "POST", path: "/v1/push", key: key7, body: change(`x\"; DROP TABLE orders; --`, "i", `{"id":1}`, `{"id":1}`), want: 200, rejectedCode: "bad_change"},
		{name: "wrong value type", method: "POST", path: "/v1/push", key: key7, body: change("public.orders", "i", `{"id":502}`, `{"id":"five hundred","store_id":7,"total":"1.00","note":"x"}`), want: 200, rejectedCode: "bad_change"},
		{name: "another edge's name", method: "POST", path: "/v1/push", key: key7, body: strings.Replace(change("public.orders", "i", `{"id":503}`, `{"id":503,"store_id":7,"total":"1.00","note":"x"}`), `"edge":"store-7"`, `"edge":"store-8"`, 1), want: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(tc.method, tc.path, tc.key, tc.body, tc.hdr)
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
			if !strings.HasPrefix(strings.TrimSpace(body), "{") {
				t.Fatalf("body is not JSON: %s", body)
			}
			if tc.rejectedCode != "" {
				if !strings.Contains(body, `"status":"`+syncproto.PushRejected+`"`) || !strings.Contains(body, `"code":"`+tc.rejectedCode+`"`) {
					t.Fatalf("want the change rejected with code %s: %s", tc.rejectedCode, body)
				}
			}
		})
	}
	if after := s.exec(`SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o`); after != before {
		t.Fatal("PostgreSQL's orders changed after refused requests")
	}
	time.Sleep(200 * time.Millisecond)
	if got := s.head(); got != headBefore {
		t.Fatalf("change log head moved from %d to %d after refused requests", headBefore, got)
	}
	ev, err := s.audit.Query(context.Background(), audit.Filter{Action: audit.ActionAuthFailure, Limit: 100})
	if err != nil || len(ev) < 3 {
		t.Fatalf("audit has %d auth failures (%v), want at least 3", len(ev), err)
	}
}

func newBatchID() string { return uuid.NewString() }

// TestIntegration_IsolationScopeChange: an edge whose credential now selects other rows
// (its store changed) is told so by the hub (410 scope_changed) and re-bootstraps into
// the new scope: it drops the old store's rows and receives the new store's.
func TestIntegration_IsolationScopeChange(t *testing.T) {
	s, e7, _, _ := isolationStack(t)
	if got := storesOf(t, e7); got != "7" {
		t.Fatalf("before: edge holds stores %q, want 7", got)
	}
	if err := e7.Close(); err != nil {
		t.Fatal(err)
	}
	k, err := s.keys.Create(context.Background(), auth.KeySpec{Edge: "store-7", Claims: map[string]any{"group": "stores", "store_id": 8}})
	if err != nil {
		t.Fatal(err)
	}
	moved := s.newEdgeWith("store-7", func(c *edge.Config) { c.APIKey = k.Key })
	s.syncEdge(moved)
	if got := storesOf(t, moved); got != "8" {
		t.Fatalf("after the edge's store changed to 8 it holds stores %q, want only 8", got)
	}
	if moved.Status().Rebootstraps != 1 {
		t.Fatalf("the edge re-bootstrapped %d times, want once", moved.Status().Rebootstraps)
	}
}
