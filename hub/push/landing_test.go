package push

import (
	"context"
	"testing"

	"github.com/synchub/synchub/hub/syncproto"
)

// TestLanded_KeepsALaterBatchsPendingWrite: when batch 1 of edge A and then batch 2 of
// edge B wrote the same row and batch 1 lands first, the row still counts as B's
// uncaptured write, so A's next change to it is checked against B's.
func TestLanded_KeepsALaterBatchsPendingWrite(t *testing.T) {
	e := newEnv(t, nil)
	ref := rowRef{ordersTable.Name, "[1]"}
	e.svc.addPending("batch-1", ref, "edge-a", e.now, false, nil)
	e.svc.addPending("batch-2", ref, "edge-b", e.now, false, nil)
	e.svc.Landed(context.Background(), []Landing{{Batch: "batch-1", Version: 7}})
	e.svc.mu.Lock()
	p, ok := e.svc.pending[ref]
	e.svc.mu.Unlock()
	if !ok || p.edge != "edge-b" {
		t.Fatalf("after batch 1 landed the row's pending write is %+v (present %v), want edge-b's from batch 2", p, ok)
	}
	e.svc.Landed(context.Background(), []Landing{{Batch: "batch-2", Version: 8}})
	e.svc.mu.Lock()
	_, ok = e.svc.pending[ref]
	e.svc.mu.Unlock()
	if ok {
		t.Fatal("the pending write stayed after the batch that wrote it landed")
	}
}

// TestPending_LandingBeforeTheWriteReturns: when the capture of a batch is reported
// before its write returned, its rows are not noted as pending: no later landing would
// clear them, and another edge that has seen the write would meet a false conflict.
func TestPending_LandingBeforeTheWriteReturns(t *testing.T) {
	e := newEnv(t, nil)
	e.db.landNow = true
	resp := e.push(syncproto.PushRequest{Edge: "edge-a", BatchID: "a1", Changes: []syncproto.PushChange{insertChange(1, order(1, "a", "1.00", 1))}})
	v := resp.Results[0].Version
	if v == 0 {
		t.Fatalf("answer %+v: want the landing's version", resp.Results[0])
	}
	e.svc.mu.Lock()
	n := len(e.svc.pending)
	e.svc.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d rows noted as pending after their write was captured", n)
	}
	// Edge b has pulled version v and updates the row: no conflict.
	resp = e.push(syncproto.PushRequest{Edge: "edge-b", BatchID: "b1", Changes: []syncproto.PushChange{
		updateChange(1, v, order(1, "a", "1.00", 1), order(1, "b", "1.00", 1))}})
	if r := resp.Results[0]; r.Status != syncproto.PushApplied {
		t.Fatalf("edge b's update of the row it has seen: %+v, want applied", r)
	}
}
