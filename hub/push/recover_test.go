package push

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// interruptedPush runs a push whose Apply is cut off as if the hub stopped, and
// restarts the service.
func (e *env) interruptedPush(req syncproto.PushRequest, afterCommit, skipLanded bool) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.db.mu.Lock()
	e.db.interrupt, e.db.interruptAfterCommit, e.db.skipLanded = cancel, afterCommit, skipLanded
	e.db.mu.Unlock()
	if _, err := e.svc.Push(ctx, req); err == nil {
		e.t.Fatal("interrupted push answered")
	}
	e.reopen()
	e.db.mu.Lock()
	e.db.skipLanded = false
	e.db.mu.Unlock()
	if rec, ok, err := e.svc.loadBatch(context.Background(), req.BatchID); err != nil || !ok || rec.state != stateApplying {
		e.t.Fatalf("record of the interrupted batch: %+v %v %v", rec, ok, err)
	}
}

func TestPush_RecoverCommittedBatch(t *testing.T) {
	for _, tc := range []struct {
		name       string
		skipLanded bool
	}{
		{"landing recorded", false},
		{"landing lost, found in the change log", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config, _ *Deps) { c.WaitTimeout = 50 * time.Millisecond })
			e.db.refuse = func(c cdc.Change) error { return nil }
			req := syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{
				insertChange(1, order(1, "a", "1.00", 1)),
				{ID: 2, Table: "public.nope", Op: "i", Key: keyRaw(2), Row: keyRaw(2)},
				insertChange(3, order(3, "c", "1.00", 1)),
			}}
			e.interruptedPush(req, true, tc.skipLanded)
			st, _ := e.store.State(context.Background())
			resp := e.push(req)
			if n := e.db.applyCount(); n != 1 {
				t.Fatalf("Apply called %d times, want 1", n)
			}
			r := resp.Results
			if r[0].Status != syncproto.PushApplied || r[0].Version != st.Head || r[2].Version != st.Head {
				t.Fatalf("recovered answer: %+v, want applied at %d", r, st.Head)
			}
			if r[1].Status != syncproto.PushRejected || r[1].Code != CodeBadChange {
				t.Fatalf("planned rejection lost: %+v", r[1])
			}
			// The answer is stored now.
			if again := e.push(req); again.Results[0].Version != st.Head || e.db.applyCount() != 1 {
				t.Fatalf("second re-send: %+v", again)
			}
			if list, _ := e.svc.RejectedChanges(context.Background(), ListFilter{}); len(list) != 1 {
				t.Fatalf("rejected records: %+v", list)
			}
		})
	}
}

func TestPush_RecoverBatchThatNeverCommitted(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.WaitTimeout = 500 * time.Millisecond })
	req := syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{insertChange(1, order(1, "a", "1.00", 1))}}
	e.interruptedPush(req, false, false)

	// Nothing newer than the interrupted write has been captured: unknown outcome.
	if _, err := e.svc.Push(context.Background(), req); KindOf(err) != KindPending {
		t.Fatalf("re-send with unknown outcome: %v, want KindPending", err)
	}
	if n := e.db.applyCount(); n != 1 {
		t.Fatalf("Apply called %d times while the outcome was unknown", n)
	}
	// A transaction committed well after the batch was recorded is captured; the
	// interrupted write would have been captured before it, so it never committed.
	e.db.mu.Lock()
	e.db.clock = e.now.Add(2 * e.cfg.LandingGrace)
	e.db.mu.Unlock()
	e.serverRow(50, order(50, "other", "1.00", 1), false)
	resp := e.push(req)
	if r := resp.Results[0]; r.Status != syncproto.PushApplied || r.Version == 0 {
		t.Fatalf("re-applied batch: %+v", r)
	}
	if _, ok := e.db.row(1); !ok {
		t.Fatal("row not written")
	}
	if n := e.db.applyCount(); n != 2 {
		t.Fatalf("Apply called %d times, want 2 (the interrupted one and the re-run)", n)
	}
}

func TestPush_ApplyFailureLetsTheBatchRunAgain(t *testing.T) {
	e := newEnv(t, nil)
	req := syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{insertChange(1, order(1, "a", "1.00", 1))}}
	e.db.failTx = context.DeadlineExceeded
	if _, err := e.svc.Push(context.Background(), req); KindOf(err) != KindUnavailable {
		t.Fatalf("failed transaction: %v", err)
	}
	e.db.failTx = nil
	if r := e.push(req).Results[0]; r.Status != syncproto.PushApplied {
		t.Fatalf("after the failure: %+v", r)
	}
}

// TestPush_OutcomeUnknownIsNotRunAgain: when the connection fails around COMMIT the
// write may have happened, so a re-send must not apply the batch a second time before
// the change log says whether it landed; once it has landed, the re-send is answered
// from it.
func TestPush_OutcomeUnknownIsNotRunAgain(t *testing.T) {
	e := newEnv(t, nil)
	req := syncproto.PushRequest{Edge: "till-1", BatchID: "b1", Changes: []syncproto.PushChange{insertChange(1, order(1, "a", "1.00", 1))}}
	e.db.failTx = fmt.Errorf("apply: %w: connection reset by peer", cdc.ErrOutcomeUnknown)
	if _, err := e.svc.Push(context.Background(), req); KindOf(err) != KindUnavailable {
		t.Fatalf("push with an unknown outcome: %v, want an unavailable error", err)
	}
	e.db.failTx = nil
	if _, err := e.svc.Push(context.Background(), req); err == nil {
		t.Fatal("a re-send was applied again although the first write's outcome is unknown")
	}
	if n := e.db.applyCount(); n != 1 {
		t.Fatalf("Apply called %d times, want 1", n)
	}
}
