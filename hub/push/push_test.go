package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/syncproto"
)

func TestPush_AppliesAndReportsVersion(t *testing.T) {
	e := newEnv(t, nil)
	resp := e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{
		insertChange(1, order(1, "a", "1.00", 1)),
		insertChange(2, order(2, "b", "2.00", 2)),
	}})
	st, _ := e.store.State(context.Background())
	for i, r := range resp.Results {
		if r.Status != syncproto.PushApplied || r.Version != st.Head || r.ID != int64(i+1) {
			t.Errorf("result %d: %+v, want applied at version %d", i, r, st.Head)
		}
	}
	if r, ok := e.db.row(2); !ok || !sameRow(rowRaw(r), order(2, "b", "2.00", 2)) {
		t.Fatalf("central row 2: %v %v", r, ok)
	}
	if e.db.applies[0].tag != (cdc.Tag{Origin: "till-1", Batch: "b1"}) || len(e.db.applies[0].changes) != 2 {
		t.Fatalf("apply call: %+v", e.db.applies[0])
	}
	info, ok, _ := e.store.Row(context.Background(), ordersTable.Name, keyText(1))
	if !ok || info.Origin != "till-1" || info.Version != st.Head {
		t.Fatalf("row index after push: %+v", info)
	}
	evs := e.auditEvents(audit.ActionPush)
	if len(evs) != 1 || evs[0].Actor != "edge:till-1" || !strings.Contains(evs[0].Detail, "applied=2") {
		t.Fatalf("push audit: %+v", evs)
	}
}

func TestPush_IdempotentResend(t *testing.T) {
	e := newEnv(t, nil)
	req := syncproto.PushRequest{Edge: "till-1", BatchID: "b-same", Changes: []syncproto.PushChange{
		insertChange(1, order(1, "a", "1.00", 1)),
		insertChange(2, order(2, "b", "2.00", 2)),
	}}
	first := e.push(req)
	second := e.push(req)
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("re-send answered differently:\n%+v\n%+v", first, second)
	}
	// After a restart too.
	e.reopen()
	third := e.push(req)
	if !reflect.DeepEqual(first, third) {
		t.Fatalf("re-send after restart answered differently:\n%+v\n%+v", first, third)
	}
	if n := e.db.applyCount(); n != 1 {
		t.Fatalf("Apply called %d times, want 1", n)
	}
	if first.Results[0].Status != syncproto.PushApplied {
		t.Fatalf("first answer: %+v", first)
	}
	// The same batch id from another edge is refused.
	other := req
	other.Edge = "till-2"
	if _, err := e.svc.Push(context.Background(), other); KindOf(err) != KindState {
		t.Fatalf("batch id of another edge: %v", err)
	}
}

func TestPush_ConcurrentDuplicates(t *testing.T) {
	e := newEnv(t, nil)
	req := syncproto.PushRequest{Edge: "till-1", BatchID: "b-conc", Changes: []syncproto.PushChange{insertChange(1, order(1, "a", "1.00", 1))}}
	const n = 6
	resps := make([]syncproto.PushResponse, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i], errs[i] = e.svc.Push(context.Background(), req)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("push %d: %v", i, errs[i])
		}
		if !reflect.DeepEqual(resps[i], resps[0]) {
			t.Fatalf("answers differ: %+v vs %+v", resps[i], resps[0])
		}
	}
	if c := e.db.applyCount(); c != 1 {
		t.Fatalf("Apply called %d times, want 1", c)
	}
}

func TestPush_RejectedConstraintOthersApplied(t *testing.T) {
	e := newEnv(t, nil)
	e.db.refuse = func(c cdc.Change) error {
		if v, _ := c.After.Get("id"); v.AsInt() == 2 {
			return errors.New(`new row for relation "orders" violates check constraint "orders_total_check"`)
		}
		return nil
	}
	resp := e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{
		insertChange(1, order(1, "a", "1.00", 1)),
		insertChange(2, order(2, "b", "-2.00", 2)),
		insertChange(3, order(3, "c", "3.00", 3)),
	}})
	r := resp.Results
	if r[0].Status != syncproto.PushApplied || r[2].Status != syncproto.PushApplied || r[0].Version == 0 {
		t.Fatalf("others not applied: %+v", r)
	}
	if r[1].Status != syncproto.PushRejected || r[1].Code != CodeConstraint || !strings.Contains(r[1].Reason, "orders_total_check") {
		t.Fatalf("rejected change: %+v", r[1])
	}
	if _, ok := e.db.row(2); ok {
		t.Fatal("refused row was written")
	}
	list, err := e.svc.RejectedChanges(context.Background(), ListFilter{Status: StatusOpen})
	if err != nil || len(list) != 1 {
		t.Fatalf("rejected list: %+v %v", list, err)
	}
	if list[0].Edge != "till-1" || list[0].BatchID != "b1" || list[0].Key != keyText(2) || list[0].Code != CodeConstraint {
		t.Fatalf("rejected record: %+v", list[0])
	}
	evs := e.auditEvents(audit.ActionReject)
	if len(evs) != 1 || evs[0].Key != keyText(2) || !strings.Contains(evs[0].Detail, "orders_total_check") {
		t.Fatalf("reject audit: %+v", evs)
	}
}

func TestPush_BadChanges(t *testing.T) {
	e := newEnv(t, nil)
	good := insertChange(9, order(9, "ok", "1.00", 1))
	mk := func(id int64, mutate func(*syncproto.PushChange)) syncproto.PushChange {
		c := insertChange(id, order(id, "x", "1.00", 1))
		mutate(&c)
		return c
	}
	cases := []struct {
		change syncproto.PushChange
		parts  []string
	}{
		{mk(1, func(c *syncproto.PushChange) { c.Table = "public.nope" }), []string{"public.nope"}},
		{mk(2, func(c *syncproto.PushChange) { c.Op = "x" }), []string{"public.orders", `"x"`}},
		{mk(3, func(c *syncproto.PushChange) { c.Key = json.RawMessage(`{"id":3,"note":"x"}`) }), []string{"note", "not a key column"}},
		{mk(4, func(c *syncproto.PushChange) { c.Key = json.RawMessage(`{}`) }), []string{"key column id"}},
		{mk(5, func(c *syncproto.PushChange) { c.Row = json.RawMessage(`{"id":5,"colour":"red"}`) }), []string{`"colour"`, "public.orders"}},
		{mk(6, func(c *syncproto.PushChange) { c.Row = json.RawMessage(`{"id":6,"qty":"lots"}`) }), []string{"qty", "lots"}},
		{mk(7, func(c *syncproto.PushChange) { c.Op = "u"; c.Row = nil }), []string{"without a row"}},
		{mk(8, func(c *syncproto.PushChange) { c.HLC = "yesterday" }), []string{"hlc"}},
		{mk(10, func(c *syncproto.PushChange) { c.Key = keyRaw(11) }), []string{"key column id", "11", "10"}},
		{mk(12, func(c *syncproto.PushChange) { c.Op = "d"; c.Row = nil; c.Key = json.RawMessage(`{"id":"twelve"}`) }), []string{"id", "twelve"}},
	}
	req := syncproto.PushRequest{Edge: "till-1", BatchID: "b-bad"}
	for _, c := range cases {
		req.Changes = append(req.Changes, c.change)
	}
	req.Changes = append(req.Changes, good)
	resp := e.push(req)
	for i, c := range cases {
		r := resp.Results[i]
		if r.Status != syncproto.PushRejected || r.Code != CodeBadChange {
			t.Errorf("change %d: %+v, want rejected bad_change", c.change.ID, r)
			continue
		}
		mustContain(t, fmt.Sprintf("reason of change %d", c.change.ID), r.Reason, c.parts...)
	}
	if last := resp.Results[len(cases)]; last.Status != syncproto.PushApplied {
		t.Fatalf("valid change in the same batch: %+v", last)
	}
	if _, ok := e.db.row(9); !ok {
		t.Fatal("valid change not written")
	}
	if calls := e.db.applies; len(calls) != 1 || len(calls[0].changes) != 1 {
		t.Fatalf("bad changes reached the Applier: %+v", calls)
	}
}

func TestPush_TooLarge(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.MaxBatchChanges = 2 })
	req := syncproto.PushRequest{Edge: "till-1", BatchID: "big", Changes: []syncproto.PushChange{
		insertChange(1, order(1, "a", "1", 1)), insertChange(2, order(2, "a", "1", 1)), insertChange(3, order(3, "a", "1", 1))}}
	if _, err := e.svc.Push(context.Background(), req); KindOf(err) != KindTooLarge {
		t.Fatalf("3 changes with a limit of 2: %v", err)
	}
	if _, err := e.svc.Push(context.Background(), syncproto.PushRequest{Edge: "till 1", BatchID: "x"}); KindOf(err) != KindInvalid {
		t.Fatalf("edge id with a space: %v", err)
	}
}

func TestPush_WaitTimeoutAnswersWithoutVersion(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.WaitTimeout = 50 * time.Millisecond })
	e.db.capture = false
	resp := e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{insertChange(1, order(1, "a", "1.00", 1))}})
	if r := resp.Results[0]; r.Status != syncproto.PushApplied || r.Version != 0 {
		t.Fatalf("uncaptured write: %+v, want applied without version", r)
	}
}

// serverRow writes order id as the central database would and returns its version.
func (e *env) serverRow(id int64, r cdc.Row, exists bool) int64 {
	e.t.Helper()
	if exists {
		return e.db.write("", cdc.Change{Table: ordersTable.Name, Op: cdc.OpUpdate, Before: orderKey(id), After: r})
	}
	return e.db.write("", cdc.Change{Table: ordersTable.Name, Op: cdc.OpInsert, After: r})
}

func TestPush_ConflictPolicies(t *testing.T) {
	base := order(7, "base", "9.90", 1)
	server := order(7, "base", "12.00", 1)
	client := order(7, "client", "9.90", 1)
	for _, tc := range []struct {
		name    string
		policy  conflict.TablePolicy
		hlc     time.Time
		outcome string
		central cdc.Row
	}{
		{"server-wins", conflict.TablePolicy{Policy: conflict.ServerWins}, time.Time{}, syncproto.OutcomeServerWon, server},
		{"client-wins", conflict.TablePolicy{Policy: conflict.ClientWins}, time.Time{}, syncproto.OutcomeClientWon, client},
		{"lww older edit", conflict.TablePolicy{Policy: conflict.LWW}, time.Date(2026, 1, 10, 11, 0, 0, 0, time.UTC), syncproto.OutcomeServerWon, server},
		{"lww newer edit", conflict.TablePolicy{Policy: conflict.LWW}, time.Date(2026, 1, 10, 12, 30, 0, 0, time.UTC), syncproto.OutcomeClientWon, client},
		{"merge", conflict.TablePolicy{Policy: conflict.Merge}, time.Time{}, syncproto.OutcomeMerged, order(7, "client", "12.00", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config, _ *Deps) {
				c.Policies = map[string]conflict.TablePolicy{ordersTable.Name: tc.policy}
			})
			v1 := e.serverRow(7, base, false)
			e.serverRow(7, server, true) // newer than the edge's base, by the central database
			ch := updateChange(1, v1, base, client)
			ch.HLC = ""
			if !tc.hlc.IsZero() {
				ch.HLC = hlcAt(tc.hlc, "till-1")
			}
			resp := e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", SentAt: e.now.UnixMicro(), Changes: []syncproto.PushChange{ch}})
			r := resp.Results[0]
			if r.Status != syncproto.PushConflict || r.Outcome != tc.outcome || r.Policy != string(tc.policy.Policy) {
				t.Fatalf("result %+v, want conflict %s", r, tc.outcome)
			}
			if !sameRow(r.Row, tc.central) {
				t.Errorf("answered row %s, want %s", r.Row, rowRaw(tc.central))
			}
			if got, _ := e.db.row(7); !sameRow(rowRaw(got), tc.central) {
				t.Errorf("central row %s, want %s", rowRaw(got), rowRaw(tc.central))
			}
			written := tc.outcome != syncproto.OutcomeServerWon
			if written != (r.Version > 0) {
				t.Errorf("version %d for outcome %s", r.Version, tc.outcome)
			}
			evs := e.auditEvents(audit.ActionConflict)
			if len(evs) != 1 || evs[0].Outcome != tc.outcome || !sameRow(evs[0].Before, server) || !sameRow(evs[0].After, client) {
				t.Fatalf("conflict audit: %+v", evs)
			}
			mustContain(t, "audit detail", evs[0].Detail, "policy="+string(tc.policy.Policy), "kind=update_vs_update")
		})
	}
}

func TestPush_NoConflictForOwnOrOlderWrites(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) {
		c.DefaultPolicy = conflict.TablePolicy{Policy: conflict.ServerWins}
	})
	v1 := e.serverRow(7, order(7, "base", "9.90", 1), false)
	// The edge's own earlier write is newer than its base: no conflict.
	e.db.write("till-1", cdc.Change{Table: ordersTable.Name, Op: cdc.OpUpdate, Before: orderKey(7), After: order(7, "mine", "9.90", 1)})
	resp := e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{
		updateChange(1, v1, nil, order(7, "mine again", "9.90", 1))}})
	if r := resp.Results[0]; r.Status != syncproto.PushApplied {
		t.Fatalf("own write: %+v", r)
	}
	// Another edge's write is a conflict for till-1.
	e.db.write("till-2", cdc.Change{Table: ordersTable.Name, Op: cdc.OpUpdate, Before: orderKey(7), After: order(7, "theirs", "9.90", 1)})
	resp = e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b2", Changes: []syncproto.PushChange{
		updateChange(1, resp.Results[0].Version, nil, order(7, "mine 3", "9.90", 1))}})
	if r := resp.Results[0]; r.Status != syncproto.PushConflict || r.Outcome != syncproto.OutcomeServerWon {
		t.Fatalf("other edge's write: %+v", r)
	}
}

func TestPush_InsertVsInsertClientWinsUpdates(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) {
		c.Policies = map[string]conflict.TablePolicy{ordersTable.Name: {Policy: conflict.ClientWins}}
	})
	e.serverRow(7, order(7, "server", "1.00", 1), false)
	resp := e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{insertChange(1, order(7, "client", "2.00", 2))}})
	r := resp.Results[0]
	if r.Status != syncproto.PushConflict || r.Outcome != syncproto.OutcomeClientWon || r.Version == 0 {
		t.Fatalf("insert vs insert: %+v", r)
	}
	if got, _ := e.db.row(7); !sameRow(rowRaw(got), order(7, "client", "2.00", 2)) {
		t.Fatalf("central row %s", rowRaw(got))
	}
	if op := e.db.applies[0].changes[0].Op; op != cdc.OpUpdate {
		t.Fatalf("winning insert written as %s, want an update of the existing row", op)
	}
}

func TestPush_DeleteVsUpdate(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) {
		c.Policies = map[string]conflict.TablePolicy{ordersTable.Name: {Policy: conflict.ServerWins}}
	})
	v1 := e.serverRow(7, order(7, "base", "1.00", 1), false)
	e.db.write("", cdc.Change{Table: ordersTable.Name, Op: cdc.OpDelete, Before: orderKey(7)})
	resp := e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{
		updateChange(1, v1, order(7, "base", "1.00", 1), order(7, "edited", "1.00", 1))}})
	r := resp.Results[0]
	if r.Status != syncproto.PushConflict || r.Outcome != syncproto.OutcomeServerWon || r.Row != nil {
		t.Fatalf("update of a row deleted on the server: %+v", r)
	}
	if _, ok := e.db.row(7); ok {
		t.Fatal("deleted row came back")
	}
	evs := e.auditEvents(audit.ActionConflict)
	if len(evs) != 1 || !strings.Contains(evs[0].Detail, "kind=update_vs_delete") {
		t.Fatalf("audit: %+v", evs)
	}
}

func TestPush_ConcurrentEdgesSeeUncapturedWrites(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) {
		c.Policies = map[string]conflict.TablePolicy{ordersTable.Name: {Policy: conflict.ServerWins}}
		c.WaitTimeout = 20 * time.Millisecond
	})
	v1 := e.serverRow(7, order(7, "base", "1.00", 1), false)
	e.db.capture = false // till-1's write is not captured yet when till-2 pushes
	r1 := e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "a", Changes: []syncproto.PushChange{updateChange(1, v1, nil, order(7, "one", "1.00", 1))}})
	r2 := e.push(syncproto.PushRequest{Edge: "till-2", BatchID: "b", Changes: []syncproto.PushChange{updateChange(1, v1, nil, order(7, "two", "1.00", 1))}})
	if r1.Results[0].Status != syncproto.PushApplied {
		t.Fatalf("first edge: %+v", r1.Results[0])
	}
	if r := r2.Results[0]; r.Status != syncproto.PushConflict || r.Outcome != syncproto.OutcomeServerWon || !sameRow(r.Row, order(7, "one", "1.00", 1)) {
		t.Fatalf("second edge: %+v", r)
	}
}

func TestPush_ManualQueueAndResolve(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) {
		c.Policies = map[string]conflict.TablePolicy{ordersTable.Name: {Policy: conflict.Manual}}
	})
	ctx := context.Background()
	base := order(7, "base", "1.00", 1)
	server := order(7, "server", "1.00", 1)
	client := order(7, "client", "1.00", 5)
	v1 := e.serverRow(7, base, false)
	e.serverRow(7, server, true)
	e.serverRow(8, order(8, "base", "1.00", 1), false)
	v8 := e.serverRow(8, order(8, "server", "1.00", 1), true)
	e.serverRow(8, order(8, "server2", "1.00", 1), true)
	resp := e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{
		updateChange(1, v1, base, client),
		updateChange(2, v8-1, nil, order(8, "client", "1.00", 1)),
	}})
	r := resp.Results[0]
	if r.Status != syncproto.PushConflict || r.Outcome != syncproto.OutcomeManual || r.ConflictID == 0 || !sameRow(r.Row, server) || r.Version != 0 {
		t.Fatalf("manual conflict: %+v", r)
	}
	if got, _ := e.db.row(7); !sameRow(rowRaw(got), server) {
		t.Fatalf("central row changed by a queued conflict: %s", rowRaw(got))
	}
	if n := e.db.applyCount(); n != 0 {
		t.Fatalf("Apply called %d times for a batch of queued conflicts", n)
	}
	open, err := e.svc.Conflicts(ctx, ListFilter{Status: StatusOpen, Table: ordersTable.Name, Edge: "till-1"})
	if err != nil || len(open) != 2 {
		t.Fatalf("open conflicts: %+v %v", open, err)
	}
	c := open[0]
	if c.ID != r.ConflictID || c.Key != keyText(7) || !sameRow(c.Client, client) || !sameRow(c.Server, server) || !sameRow(c.Base, base) || c.Op != "u" || c.BatchID != "b1" {
		t.Fatalf("queued conflict: %+v", c)
	}
	if _, err := e.svc.Resolve(ctx, c.ID, "flip_coin", nil, "alice"); KindOf(err) != KindInvalid {
		t.Fatalf("unknown action: %v", err)
	}
	done, err := e.svc.Resolve(ctx, c.ID, ActionTakeClient, nil, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != StatusResolved || done.Resolution != ActionTakeClient || done.ResolvedBy != "alice" || !sameRow(done.Result, client) {
		t.Fatalf("resolved conflict: %+v", done)
	}
	if got, _ := e.db.row(7); !sameRow(rowRaw(got), client) {
		t.Fatalf("central row after take_client: %s", rowRaw(got))
	}
	last := e.db.applies[len(e.db.applies)-1]
	if last.tag != (cdc.Tag{Origin: "", Batch: fmt.Sprintf("resolve-%d", c.ID)}) {
		t.Fatalf("resolution tag %+v", last.tag)
	}
	if _, err := e.svc.Resolve(ctx, c.ID, ActionKeepServer, nil, "bob"); KindOf(err) != KindState {
		t.Fatalf("second resolution: %v", err)
	}

	// A merged row given by the admin.
	c2 := open[1]
	if _, err := e.svc.Resolve(ctx, c2.ID, ActionMerged, json.RawMessage(`{"id":9,"note":"x"}`), "bob"); KindOf(err) != KindInvalid {
		t.Fatalf("merged row with another key: %v", err)
	}
	merged := order(8, "merged", "2.00", 3)
	if _, err := e.svc.Resolve(ctx, c2.ID, ActionMerged, rowRaw(merged), "bob"); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.db.row(8); !sameRow(rowRaw(got), merged) {
		t.Fatalf("central row after merged: %s", rowRaw(got))
	}
	if _, err := e.svc.Conflict(ctx, 999); KindOf(err) != KindNotFound {
		t.Fatalf("unknown conflict: %v", err)
	}
	evs := e.auditEvents(audit.ActionResolve)
	if len(evs) != 2 || evs[0].Actor != "admin:alice" || evs[0].Outcome != ActionTakeClient || !sameRow(evs[0].Before, server) || !sameRow(evs[0].After, client) {
		t.Fatalf("resolve audit: %+v", evs)
	}
	conflictEvs := e.auditEvents(audit.ActionConflict)
	if len(conflictEvs) != 2 || !strings.Contains(conflictEvs[0].Detail, fmt.Sprintf("conflict_id=%d", c.ID)) {
		t.Fatalf("conflict audit: %+v", conflictEvs)
	}
}

func TestPush_RetryAndDiscardRejected(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.db.refuse = func(cdc.Change) error { return errors.New("insert or update violates foreign key constraint") }
	e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{
		insertChange(1, order(1, "a", "1.00", 1)), insertChange(2, order(2, "b", "1.00", 1))}})
	list, err := e.svc.RejectedChanges(ctx, ListFilter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("rejected: %+v %v", list, err)
	}
	// Still refused: the record stays open with the reason.
	if r, err := e.svc.Retry(ctx, list[0].ID, "alice"); err != nil || r.Status != StatusOpen {
		t.Fatalf("retry refused again: %+v %v", r, err)
	}
	if again, _ := e.svc.RejectedChanges(ctx, ListFilter{}); len(again) != 2 {
		t.Fatalf("a refused retry added records: %+v", again)
	}
	e.db.refuse = nil
	r, err := e.svc.Retry(ctx, list[0].ID, "alice")
	if err != nil || r.Status != StatusRetried || r.HandledBy != "alice" {
		t.Fatalf("retry: %+v %v", r, err)
	}
	var res syncproto.PushResult
	if err := json.Unmarshal(r.Result, &res); err != nil || res.Status != syncproto.PushApplied {
		t.Fatalf("retry result %s: %v", r.Result, err)
	}
	if _, ok := e.db.row(1); !ok {
		t.Fatal("retried change not written")
	}
	if tag := e.db.applies[len(e.db.applies)-1].tag; tag.Origin != "" || !strings.HasPrefix(tag.Batch, fmt.Sprintf("retry-%d-", list[0].ID)) {
		t.Fatalf("retry tag %+v", tag)
	}
	d, err := e.svc.Discard(ctx, list[1].ID, "bob")
	if err != nil || d.Status != StatusDiscarded {
		t.Fatalf("discard: %+v %v", d, err)
	}
	if _, err := e.svc.Discard(ctx, list[1].ID, "bob"); KindOf(err) != KindState {
		t.Fatalf("second discard: %v", err)
	}
	if _, ok := e.db.row(2); ok {
		t.Fatal("discarded change written")
	}
	if open, _ := e.svc.RejectedChanges(ctx, ListFilter{Status: StatusOpen}); len(open) != 0 {
		t.Fatalf("open after retry and discard: %+v", open)
	}
	if evs := e.auditEvents(audit.ActionAdmin); len(evs) != 3 {
		t.Fatalf("admin audit events: %+v", evs)
	}
}

func TestCheckText(t *testing.T) {
	for _, tc := range []struct {
		v  cdc.Value
		ok bool
	}{
		{cdc.Text(cdc.KindDecimal, "12.50"), true},
		{cdc.Text(cdc.KindDecimal, "-0.5e-3"), true},
		{cdc.Text(cdc.KindDecimal, ".5"), true},
		{cdc.Text(cdc.KindDecimal, "NaN"), true},
		{cdc.Text(cdc.KindDecimal, "much"), false},
		{cdc.Text(cdc.KindDecimal, "1.2.3"), false},
		{cdc.Text(cdc.KindDecimal, "1e"), false},
		{cdc.Text(cdc.KindDecimal, ""), false},
		{cdc.Text(cdc.KindUUID, "7c0e4a52-9a3e-4b8e-8f7e-0123456789AB"), true},
		{cdc.Text(cdc.KindUUID, "7c0e4a52-9a3e-4b8e-8f7e-0123456789"), false},
		{cdc.Text(cdc.KindUUID, "7c0e4a52x9a3e-4b8e-8f7e-0123456789ab"), false},
		{cdc.Text(cdc.KindJSON, `{"a":[1,2]}`), true},
		{cdc.Text(cdc.KindJSON, `{"a":`), false},
		{cdc.Text(cdc.KindText, "anything"), true},
	} {
		if err := checkText(tc.v); (err == nil) != tc.ok {
			t.Errorf("%s %q: %v, want ok=%v", tc.v.Kind(), tc.v.AsString(), err, tc.ok)
		}
	}
}

func TestClipAuditFields(t *testing.T) {
	e := audit.Event{Key: strings.Repeat("é", 600), Detail: "short"}
	clipEvent(&e)
	if len(e.Key) > auditNameMax || !strings.HasSuffix(e.Key, "…") || !utf8ValidString(e.Key) {
		t.Fatalf("clipped key: %d bytes, valid %v", len(e.Key), utf8ValidString(e.Key))
	}
	if e.Detail != "short" {
		t.Fatalf("short detail changed: %q", e.Detail)
	}
}

func utf8ValidString(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestPush_ResolutionCountsBeforeCapture: a resolution written but not yet captured is
// the row's latest version for pushes after it, so a stale edge change conflicts.
func TestPush_ResolutionCountsBeforeCapture(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) {
		c.Policies = map[string]conflict.TablePolicy{ordersTable.Name: {Policy: conflict.Manual}}
		c.WaitTimeout = 10 * time.Millisecond
	})
	ctx := context.Background()
	v1 := e.serverRow(7, order(7, "base", "1.00", 1), false)
	e.serverRow(7, order(7, "server", "1.00", 1), true)
	resp := e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{updateChange(1, v1, nil, order(7, "one", "1.00", 1))}})
	e.db.mu.Lock()
	e.db.capture = false
	e.db.mu.Unlock()
	if _, err := e.svc.Resolve(ctx, resp.Results[0].ConflictID, ActionTakeClient, nil, "alice"); err != nil {
		t.Fatal(err)
	}
	// till-1 itself pushes again on the version it knew: the resolution, written by
	// the central database, is newer.
	r := e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b2", Changes: []syncproto.PushChange{updateChange(1, v1+1, nil, order(7, "two", "1.00", 1))}}).Results[0]
	if r.Status != syncproto.PushConflict || r.Outcome != syncproto.OutcomeManual {
		t.Fatalf("push after an uncaptured resolution: %+v", r)
	}
}
