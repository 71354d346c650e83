package push

import (
	"context"
	"strings"
	"testing"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/rules"
	"github.com/synchub/synchub/hub/syncproto"
)

// storeScope is the scope of an edge of store `store`: orders whose qty column holds
// the store id (standing in for a store_id column), without the note column.
func storeScope(t *testing.T, claims map[string]any) *rules.Scope {
	t.Helper()
	set, err := rules.Compile(rules.Config{Groups: map[string]rules.GroupConfig{
		"stores": {Tables: map[string]rules.TableConfig{
			ordersTable.Name: {Filter: "qty = {edge.store_id}", Columns: []string{"id", "total", "qty"}},
		}},
		"other": {Tables: map[string]rules.TableConfig{"public.items": {Filter: "all"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return set.Scope(claims)
}

func storeRow(id, store int64) cdc.Row {
	return cdc.Row{
		{Name: "id", Value: cdc.Int(id)},
		{Name: "total", Value: cdc.Text(cdc.KindDecimal, "1.00")},
		{Name: "qty", Value: cdc.Int(store)},
	}
}

func TestPush_OutOfScopeIsForbidden(t *testing.T) {
	e := newEnv(t, nil)
	v := e.db.write("", cdc.Change{Table: ordersTable.Name, Op: cdc.OpInsert, After: order(1, "x", "1.00", 7)},
		cdc.Change{Table: ordersTable.Name, Op: cdc.OpInsert, After: order(2, "y", "2.00", 8)})
	ctx := WithScope(context.Background(), storeScope(t, map[string]any{"group": "stores", "store_id": 7}))
	withNote := order(5, "not allowed", "1.00", 7)
	cases := []struct {
		name string
		pc   syncproto.PushChange
		why  string
	}{
		{"insert into store 8", insertChange(1, storeRow(3, 8)), "new image"},
		{"move own row to store 8", updateChange(2, v, storeRow(1, 7), storeRow(1, 8)), "new image"},
		{"update store 8's row", updateChange(3, v, storeRow(2, 7), storeRow(2, 7)), "row public.orders [2] is outside"},
		{"delete store 8's row", syncproto.PushChange{ID: 4, Table: ordersTable.Name, Op: "d", Key: keyRaw(2), BaseVersion: v}, "outside"},
		{"write a column outside the allow-list", insertChange(5, withNote), "column note"},
	}
	for i, c := range cases {
		before := e.db.applyCount()
		resp, err := e.svc.Push(ctx, syncproto.PushRequest{Edge: "till-7", BatchID: "f" + string(rune('a'+i)), Changes: []syncproto.PushChange{c.pc}})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		r := resp.Results[0]
		if r.Status != syncproto.PushRejected || r.Code != CodeForbidden || !strings.HasPrefix(r.Reason, "forbidden: ") || !strings.Contains(r.Reason, c.why) {
			t.Errorf("%s: result %+v, want rejected forbidden mentioning %q", c.name, r, c.why)
		}
		if n := e.db.applyCount(); n != before {
			t.Errorf("%s: the Applier was called", c.name)
		}
	}
	if r, _ := e.db.row(2); rowID(r) != 2 || !strings.Contains(string(rowRaw(r)), `"qty":8`) {
		t.Fatalf("store 8's row changed: %v", r)
	}
	evs := e.auditEvents(audit.ActionReject)
	if len(evs) != len(cases) {
		t.Fatalf("%d reject audit events, want %d", len(evs), len(cases))
	}
	for _, ev := range evs {
		if ev.Outcome != CodeForbidden || !strings.HasPrefix(ev.Detail, "forbidden: ") || ev.Edge != "till-7" {
			t.Errorf("audit event %+v", ev)
		}
	}

	// In-scope changes still flow, beside a forbidden one in the same batch.
	resp, err := e.svc.Push(ctx, syncproto.PushRequest{Edge: "till-7", BatchID: "ok", Changes: []syncproto.PushChange{
		insertChange(10, storeRow(4, 7)),
		insertChange(11, storeRow(5, 8)),
		updateChange(12, v, storeRow(1, 7), cdc.Row{{Name: "id", Value: cdc.Int(1)}, {Name: "total", Value: cdc.Text(cdc.KindDecimal, "9.00")}}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Results[0].Status != syncproto.PushApplied || resp.Results[1].Code != CodeForbidden || resp.Results[2].Status != syncproto.PushApplied {
		t.Fatalf("mixed batch: %+v", resp.Results)
	}
	last := e.db.applies[len(e.db.applies)-1]
	if len(last.changes) != 2 {
		t.Fatalf("the Applier got %d changes, want the 2 in scope", len(last.changes))
	}

	// A group without the table, and an edge without its claim, may write nothing.
	for _, claims := range []map[string]any{{"group": "other"}, {"group": "stores"}} {
		ctx := WithScope(context.Background(), storeScope(t, claims))
		resp, err := e.svc.Push(ctx, syncproto.PushRequest{Edge: "till-x", BatchID: "x" + claims["group"].(string), Changes: []syncproto.PushChange{insertChange(1, storeRow(9, 7))}})
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.Results[0]; r.Code != CodeForbidden || !strings.Contains(r.Reason, "not in the edge's sync rules") {
			t.Errorf("claims %v: %+v", claims, r)
		}
	}
	// Without a scope in the context nothing is checked (rules off).
	resp = e.push(syncproto.PushRequest{Edge: "till-7", BatchID: "free", Changes: []syncproto.PushChange{insertChange(1, storeRow(20, 8))}})
	if resp.Results[0].Status != syncproto.PushApplied {
		t.Fatalf("push without scope: %+v", resp.Results[0])
	}
}

func TestPush_AnswerRowsKeepToTheAllowList(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.DefaultPolicy = conflict.TablePolicy{Policy: conflict.ServerWins} })
	v := e.db.write("", cdc.Change{Table: ordersTable.Name, Op: cdc.OpInsert, After: order(1, "hidden", "1.00", 7)})
	e.db.write("", cdc.Change{Table: ordersTable.Name, Op: cdc.OpUpdate, Before: orderKey(1), After: order(1, "hidden too", "2.00", 7)})
	ctx := WithScope(context.Background(), storeScope(t, map[string]any{"group": "stores", "store_id": 7}))
	resp, err := e.svc.Push(ctx, syncproto.PushRequest{Edge: "till-7", BatchID: "c1", Changes: []syncproto.PushChange{
		updateChange(1, v, storeRow(1, 7), storeRow(1, 7)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Results[0]
	if r.Status != syncproto.PushConflict || r.Outcome != syncproto.OutcomeServerWon {
		t.Fatalf("result %+v, want a conflict the server won", r)
	}
	if strings.Contains(string(r.Row), "note") || !strings.Contains(string(r.Row), `"total":"2.00"`) {
		t.Fatalf("the answer's row %s must hold only allowed columns", r.Row)
	}
}
