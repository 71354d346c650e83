package push

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/syncproto"
)

func (e *env) metaCount(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.svc.db.QueryRow(query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// plainStore hides the SQLite change log's batch records (changelog.BatchVersioner),
// as a store without them would.
type plainStore struct{ changelog.Store }

// TestPrune_FinishedBatchKeepsOnlyItsAnswer: once a batch is answered its plan is gone.
// With a store that does not record batches itself, the hub keeps the landings of
// batches still being written (an interrupted one learns its outcome from it) and none
// of answered batches.
func TestPrune_FinishedBatchKeepsOnlyItsAnswer(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) {
		c.WaitTimeout = 500 * time.Millisecond
		d.Store = plainStore{d.Store}
	})
	e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{insertChange(1, order(1, "a", "1.00", 1))}})
	if n := e.metaCount(`SELECT count(*) FROM push_batches WHERE batch_id = 'b1' AND state = 'done' AND plan = '' AND response <> ''`); n != 1 {
		t.Fatalf("answered batch record: %d rows with an answer and no plan, want 1", n)
	}
	if n := e.metaCount(`SELECT count(*) FROM landed_batches`); n != 0 {
		t.Fatalf("%d landing records after the answer, want 0", n)
	}
	e.svc.Landed(context.Background(), []Landing{{Batch: "b1", Version: 99}})
	if n := e.metaCount(`SELECT count(*) FROM landed_batches`); n != 0 {
		t.Fatalf("a landing after the answer was recorded (%d rows)", n)
	}
	b2 := syncproto.PushRequest{Edge: "till-1", BatchID: "b2", Changes: []syncproto.PushChange{insertChange(1, order(2, "b", "1.00", 1))}}
	e.interruptedPush(b2, true, false)
	if n := e.metaCount(`SELECT count(*) FROM landed_batches WHERE batch_id = 'b2'`); n != 1 {
		t.Fatalf("the landing of the interrupted batch b2 was not recorded (%d rows)", n)
	}
	if r := e.push(b2).Results[0]; r.Status != syncproto.PushApplied || r.Version == 0 {
		t.Fatalf("re-send of b2: %+v, want applied with its version", r)
	}
	if n := e.db.applyCount(); n != 2 {
		t.Fatalf("%d central-database writes, want 2 (b2 not again)", n)
	}
}

// TestPrune_ExpiredAnswerIsNotAppliedAgain: after push.answer_retention a re-send of a
// batch is not applied a second time but answered with the rows as the central
// database has them now (null for a row it no longer has).
func TestPrune_ExpiredAnswerIsNotAppliedAgain(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.AnswerRetention = 24 * time.Hour })
	old := syncproto.PushRequest{Edge: "till-1", BatchID: "old", Changes: []syncproto.PushChange{insertChange(1, order(1, "a", "1.00", 1))}}
	e.push(old)
	e.now = e.now.Add(20 * time.Hour)
	young := syncproto.PushRequest{Edge: "till-1", BatchID: "young", Changes: []syncproto.PushChange{insertChange(2, order(2, "b", "2.00", 1))}}
	e.push(young)
	e.now = e.now.Add(5 * time.Hour)
	n, err := e.svc.Prune(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Prune: %d answers, %v; want 1", n, err)
	}
	// A row the central database no longer has is answered null, so the edge drops it.
	gone := syncproto.PushRequest{Edge: "till-1", BatchID: "gone", Changes: []syncproto.PushChange{insertChange(1, order(3, "c", "3.00", 1))}}
	e.push(gone)
	e.now = e.now.Add(25 * time.Hour)
	if n, err := e.svc.Prune(context.Background()); err != nil || n != 2 {
		t.Fatalf("second Prune: %d answers, %v; want 2 (gone, young)", n, err)
	}
	e.db.write("", cdc.Change{Table: ordersTable.Name, Op: cdc.OpDelete, Before: orderKey(3)})
	if r := e.push(gone).Results[0]; r.Code != CodeAnswerExpired || string(r.Row) != "null" {
		t.Fatalf("re-send of an expired batch whose row is gone: %+v, want row null", r)
	}
	// The central database changed the old batch's row since, and deleted the young
	// one's.
	e.serverRow(1, order(1, "server", "1.00", 1), true)
	writes := e.db.applyCount()
	resp := e.push(old)
	r := resp.Results[0]
	if r.Status != syncproto.PushRejected || r.Code != CodeAnswerExpired || !strings.Contains(r.Reason, "push.answer_retention") ||
		!sameRow(r.Row, order(1, "server", "1.00", 1)) {
		t.Fatalf("re-send of the expired batch: %+v, want rejected answer_expired naming push.answer_retention, with the current row", r)
	}
	if got := e.db.applyCount(); got != writes {
		t.Fatalf("the re-sent expired batch was written again (%d writes, want %d)", got, writes)
	}
	if evs := e.auditEvents(audit.ActionPush); evs[len(evs)-1].Outcome != CodeAnswerExpired {
		t.Fatalf("last push audit event %+v, want outcome answer_expired", evs[len(evs)-1])
	}
	if n := e.metaCount(`SELECT count(*) FROM push_batches`); n != 3 {
		t.Fatalf("%d batch records, want all kept", n)
	}
}

// TestPrune_ZeroRetentionKeepsAnswers: answer_retention 0 keeps answers for ever, and
// Prune still clears stale landing records.
func TestPrune_ZeroRetentionKeepsAnswers(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.AnswerRetention = 0 })
	e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{insertChange(1, order(1, "a", "1.00", 1))}})
	if _, err := e.svc.db.Exec(`INSERT INTO landed_batches (batch_id, version, landed) VALUES ('b1', 7, 0)`); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(10 * 365 * 24 * time.Hour)
	if n, err := e.svc.Prune(context.Background()); err != nil || n != 0 {
		t.Fatalf("Prune: %d, %v; want nothing discarded", n, err)
	}
	if n := e.metaCount(`SELECT count(*) FROM landed_batches`); n != 0 {
		t.Fatalf("a finished batch's landing record was kept")
	}
	if n := e.metaCount(`SELECT count(*) FROM push_batches WHERE response <> ''`); n != 1 {
		t.Fatalf("the answer was discarded with answer_retention 0")
	}
}

// TestPush_ResendAnsweredAfterLimitLowered: a batch answered under a larger
// max_batch_changes is answered from its record when re-sent after the limit was
// lowered, not refused as too large.
func TestPush_ResendAnsweredAfterLimitLowered(t *testing.T) {
	e := newEnv(t, nil)
	req := syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{
		insertChange(1, order(1, "a", "1.00", 1)), insertChange(2, order(2, "b", "1.00", 1))}}
	first := e.push(req)
	e.cfg.MaxBatchChanges = 1
	e.reopen()
	again := e.push(req)
	if again.Results[1].Status != first.Results[1].Status || again.Results[1].Version != first.Results[1].Version {
		t.Fatalf("re-send after lowering the limit: %+v, want the stored answer %+v", again.Results, first.Results)
	}
}

// TestPrune_KeepsBatchRecordsOfBatchesBeingWritten: Prune makes the change log forget
// which version holds an answered batch, but not a batch still "applying" (interrupted
// after its commit, its landing lost), whose re-send then learns its outcome from it.
func TestPrune_KeepsBatchRecordsOfBatchesBeingWritten(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.WaitTimeout = 500 * time.Millisecond })
	ctx := context.Background()
	e.push(syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{insertChange(1, order(1, "a", "1.00", 1))}})
	b2 := syncproto.PushRequest{Edge: "till-1", BatchID: "b2", Changes: []syncproto.PushChange{insertChange(1, order(2, "b", "1.00", 1))}}
	e.interruptedPush(b2, true, true)
	if _, err := e.svc.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.store.BatchVersion(ctx, "b1"); ok {
		t.Error("the answered batch b1 is still recorded in the change log")
	}
	v2, ok, _ := e.store.BatchVersion(ctx, "b2")
	if !ok {
		t.Fatal("the interrupted batch b2 was forgotten by the change log")
	}
	if r := e.push(b2).Results[0]; r.Status != syncproto.PushApplied || r.Version != v2 {
		t.Fatalf("re-send of b2: %+v, want applied at %d", r, v2)
	}
	if n := e.db.applyCount(); n != 2 {
		t.Fatalf("%d central-database writes, want 2 (b2 not again)", n)
	}
}

// TestPrune_ExpiredAnswerOfAKeyChange: the expired answer to an update that moved a
// row to a new key carries the row under its old key while the central database has
// one there, else under the new key.
func TestPrune_ExpiredAnswerOfAKeyChange(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.AnswerRetention = time.Hour })
	v := e.serverRow(1, order(1, "a", "1.00", 1), false)
	change := updateChange(1, v, order(1, "a", "1.00", 1), order(9, "a", "1.00", 1))
	change.Key = keyRaw(1) // the row had key 1 before the update
	move := syncproto.PushRequest{Edge: "till-1", BatchID: "move", Changes: []syncproto.PushChange{change}}
	if r := e.push(move).Results[0]; r.Status != syncproto.PushApplied {
		t.Fatalf("key change: %+v", r)
	}
	e.now = e.now.Add(2 * time.Hour)
	if n, err := e.svc.Prune(context.Background()); err != nil || n != 1 {
		t.Fatalf("Prune: %d, %v", n, err)
	}
	if r := e.push(move).Results[0]; r.Code != CodeAnswerExpired || !sameRow(r.Row, order(9, "a", "1.00", 1)) {
		t.Fatalf("expired answer after the key change was applied: %+v, want the row under key 9", r)
	}
	// The central database has a row under the old key again: that one is the answer.
	e.serverRow(1, order(1, "back", "1.00", 1), false)
	if r := e.push(move).Results[0]; !sameRow(r.Row, order(1, "back", "1.00", 1)) {
		t.Fatalf("expired answer with a row under the old key: %+v, want that row", r)
	}
}
