package push

import (
	"context"
	"testing"
)

// TestLanded_KeepsALaterBatchsPendingWrite: when batch 1 of edge A and then batch 2 of
// edge B wrote the same row and batch 1 lands first, the row still counts as B's
// uncaptured write, so A's next change to it is checked against B's.
func TestLanded_KeepsALaterBatchsPendingWrite(t *testing.T) {
	e := newEnv(t, nil)
	ref := rowRef{ordersTable.Name, "[1]"}
	e.svc.addPending("batch-1", ref, "edge-a", e.now, false)
	e.svc.addPending("batch-2", ref, "edge-b", e.now, false)
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
