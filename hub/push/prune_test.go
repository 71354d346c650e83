package push

import (
	"context"
	"strings"
	"testing"
	"time"

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

// TestPrune_FinishedBatchKeepsOnlyItsAnswer: once a batch is answered its plan and its
// landing record are gone; a landing that comes after the answer is not recorded.
func TestPrune_FinishedBatchKeepsOnlyItsAnswer(t *testing.T) {
	e := newEnv(t, nil)
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
}

// TestPrune_ExpiredAnswerIsNotAppliedAgain: after push.answer_retention a re-send of a
// batch is refused (KindExpired), not applied a second time; a younger batch keeps its
// answer.
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
	writes := e.db.applyCount()
	_, err = e.svc.Push(context.Background(), old)
	if KindOf(err) != KindExpired || !strings.Contains(err.Error(), "push.answer_retention") {
		t.Fatalf("re-send of the expired batch: %v, want KindExpired naming push.answer_retention", err)
	}
	if got := e.db.applyCount(); got != writes {
		t.Fatalf("the re-sent expired batch was written again (%d writes, want %d)", got, writes)
	}
	if resp := e.push(young); resp.Results[0].Status != syncproto.PushApplied {
		t.Fatalf("re-send of the young batch: %+v, want its stored answer", resp)
	}
	if got := e.db.applyCount(); got != writes {
		t.Fatalf("the re-sent young batch was written again")
	}
	if n := e.metaCount(`SELECT count(*) FROM push_batches`); n != 2 {
		t.Fatalf("%d batch records, want both kept", n)
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
