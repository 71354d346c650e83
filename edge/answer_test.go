package edge

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/hub/syncproto"
)

func TestPush_Rejected(t *testing.T) {
	var events []ConflictEvent
	h, a, db := syncedItems(t, func(c *Config) { c.OnConflict = func(e ConflictEvent) { events = append(events, e) } })
	appExec(t, db, `UPDATE items SET price = '-1' WHERE id = 1`)
	appExec(t, db, `UPDATE items SET name = 'forbidden' WHERE id = 2`)
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		resp := syncproto.PushResponse{BatchID: req.BatchID}
		for _, c := range req.Changes {
			r := syncproto.PushResult{ID: c.ID, Status: syncproto.PushRejected, Reason: "check constraint price_positive", Code: "constraint"}
			if strings.Contains(string(c.Row), "forbidden") {
				r.Reason, r.Code = "out of scope", "forbidden"
				r.Row = json.RawMessage(`{"id":2,"name":"two v2","price":"2.50"}`)
				r.Version = 2
			}
			resp.Results = append(resp.Results, r)
		}
		return http.StatusOK, resp
	}
	rep := pushNow(t, a)
	if rep.Rejected != 2 {
		t.Errorf("report %+v", rep)
	}
	got := dump(t, db, "items")
	// Row 1 stays as the edge wrote it (no row in the answer); row 2 is restored.
	if strings.Join(got, ",") != "1|one|-1,2|two v2|2.50" {
		t.Errorf("rows after rejection: %v", got)
	}
	rej := rejectedRows(t, db)
	if len(rej) != 2 || rej[0] != "public.items|u|constraint|check constraint price_positive" || rej[1] != "public.items|u|forbidden|out of scope" {
		t.Errorf("_synchub_rejected: %v", rej)
	}
	if len(events) != 2 || events[0].Status != syncproto.PushRejected || events[1].Code != "forbidden" {
		t.Errorf("events: %+v", events)
	}
	if st := a.Status(); st.RejectedTotal != 2 || st.Pending != 0 {
		t.Errorf("status rejected_total=%d pending=%d", st.RejectedTotal, st.Pending)
	}
	if rows := readOutboxRows(t, db); len(rows) != 0 {
		t.Errorf("restoring the hub's row was captured: %+v", rows)
	}

	// A batch the hub refuses as a whole goes to _synchub_rejected with its message.
	appExec(t, db, `UPDATE items SET name = 'bad batch' WHERE id = 1`)
	h.onPush = func(int, *syncproto.PushRequest) (int, any) {
		return http.StatusBadRequest, syncproto.Error{Code: "bad_push", Message: "batch is malformed"}
	}
	rep = pushNow(t, a)
	rej = rejectedRows(t, db)
	if rep.Rejected != 1 || len(rej) != 3 || rej[2] != "public.items|u|bad_push|batch is malformed" {
		t.Errorf("whole batch refused: report %+v rejected %v", rep, rej)
	}
	// 5xx keeps the batch for a retry.
	appExec(t, db, `UPDATE items SET name = 'retry me' WHERE id = 1`)
	h.onPush = func(int, *syncproto.PushRequest) (int, any) {
		return http.StatusServiceUnavailable, syncproto.Error{Code: "unavailable", Message: "down"}
	}
	if _, err := a.PushNow(context.Background()); err == nil {
		t.Fatal("want an error for a 503")
	}
	if rows := readOutboxRows(t, db); len(rows) != 1 || !rows[0].batch.Valid {
		t.Errorf("after a 503 the outbox is %+v; want the entry kept in its batch", rows)
	}
	list, err := a.Rejected(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].Code != "bad_push" || list[2].Code != "constraint" || list[2].BatchID == "" ||
		string(list[2].Key) != `{"id":1}` || !strings.Contains(string(list[2].Row), `"-1"`) || time.Since(list[0].At) > time.Minute {
		t.Errorf("Rejected: %+v", list)
	}
}

func rejectedRows(t testing.TB, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT tbl, op, code, reason FROM _synchub_rejected ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a, b, c, d string
		if err := rows.Scan(&a, &b, &c, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, a+"|"+b+"|"+c+"|"+d)
	}
	return out
}

func TestPush_ConflictOutcomes(t *testing.T) {
	var events []ConflictEvent
	h, a, db := syncedItems(t, func(c *Config) { c.OnConflict = func(e ConflictEvent) { events = append(events, e) } })
	appExec(t, db, `UPDATE items SET name = 'one local' WHERE id = 1`)
	appExec(t, db, `UPDATE items SET name = 'two local' WHERE id = 2`)
	appExec(t, db, `INSERT INTO items (id, name, price) VALUES (8, 'eight local', '8.00')`)
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		resp := syncproto.PushResponse{BatchID: req.BatchID}
		for _, c := range req.Changes {
			r := syncproto.PushResult{ID: c.ID, Status: syncproto.PushConflict, Policy: "server-wins", ConflictID: 70}
			switch string(c.Key) {
			case `{"id":1}`:
				r.Outcome, r.Version = syncproto.OutcomeServerWon, 9
				r.Row = json.RawMessage(`{"id":1,"name":"one server","price":"1.75"}`)
			case `{"id":2}`:
				r.Outcome, r.Policy = syncproto.OutcomeManual, "manual" // deleted on the server
			case `{"id":8}`:
				r.Outcome, r.Policy, r.Version = syncproto.OutcomeMerged, "merge", 10
				r.Row = json.RawMessage(`{"id":8,"name":"eight merged","price":"8.00"}`)
			}
			resp.Results = append(resp.Results, r)
		}
		return http.StatusOK, resp
	}
	rep := pushNow(t, a)
	if rep.Conflicts != 3 {
		t.Errorf("report %+v", rep)
	}
	got := dump(t, db, "items")
	if strings.Join(got, ",") != "1|one server|1.75,8|eight merged|8.00" {
		t.Errorf("rows after the conflicts: %v", got)
	}
	if len(events) != 3 || events[0].Outcome != syncproto.OutcomeServerWon || string(events[0].Winner) == "" || events[0].ConflictID != 70 {
		t.Errorf("events: %+v", events)
	}
	if rows := readOutboxRows(t, db); len(rows) != 0 {
		t.Errorf("applying the winners was captured: %+v", rows)
	}
	// The winner's version is the base of the next local write.
	appExec(t, db, `UPDATE items SET name = 'one again' WHERE id = 1`)
	appExec(t, db, `UPDATE items SET name = 'eight again' WHERE id = 8`)
	rows := readOutboxRows(t, db)
	if len(rows) != 2 || rows[0].baseVersion != 9 || rows[1].baseVersion != 10 {
		t.Errorf("bases after the conflicts: %+v", rows)
	}
}

func TestPush_WinnerDoesNotOverwriteLaterWrite(t *testing.T) {
	h, a, db := syncedItems(t)
	appExec(t, db, `UPDATE items SET name = 'first' WHERE id = 1`)
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		// The application writes the row again while the batch is in flight.
		if _, err := db.Exec(`UPDATE items SET name = 'second' WHERE id = 1`); err != nil {
			h.t.Errorf("write during push: %v", err)
		}
		resp := syncproto.PushResponse{BatchID: req.BatchID}
		for _, c := range req.Changes {
			resp.Results = append(resp.Results, syncproto.PushResult{ID: c.ID, Status: syncproto.PushConflict,
				Outcome: syncproto.OutcomeServerWon, Row: json.RawMessage(`{"id":1,"name":"server","price":"1.50"}`), Version: 5})
		}
		h.onPush = nil
		return http.StatusOK, resp
	}
	pushNow(t, a)
	if got := dump(t, db, "items"); got[0] != "1|second|1.50" {
		t.Errorf("row 1 = %s; the later local write was lost", got[0])
	}
	p := h.pushed()
	if len(p) != 2 || string(p[1].Changes[0].Row) != `{"id":1,"name":"second","price":"1.50"}` {
		t.Errorf("the later write was not pushed next: %+v", p)
	}
}

// TestPush_AnswerBeforeOlderPulledChanges: the push answer arrives before the pull has
// shown an older foreign change and the edge's own write. The older change must not
// overwrite the pushed row for good: with the write's version known it is skipped; with
// it unknown, the echo restores the hub's state.
func TestPush_AnswerBeforeOlderPulledChanges(t *testing.T) {
	h, a, db := syncedItems(t)
	appExec(t, db, `UPDATE items SET name = 'one edge' WHERE id = 1`)
	appExec(t, db, `UPDATE items SET name = 'two edge' WHERE id = 2`)
	head := h.head()
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		resp := syncproto.PushResponse{BatchID: req.BatchID}
		for _, c := range req.Changes {
			r := syncproto.PushResult{ID: c.ID, Status: syncproto.PushConflict, Outcome: syncproto.OutcomeClientWon}
			if string(c.Key) == `{"id":1}` {
				r.Version = head + 2 // known: after the foreign change at head+1
			}
			resp.Results = append(resp.Results, r)
		}
		return http.StatusOK, resp
	}
	pushNow(t, a)
	// The log: foreign writes to both rows, then the edge's write of both.
	h.commit(0, upd(1, "one foreign"), upd(2, "two foreign"))
	h.commitFrom("test-edge", time.Now().UnixMicro(), upd(1, "one edge"), upd(2, "two edge"))

	// Pull only the foreign version first.
	ctx := context.Background()
	a.cfg.PageLimit = 2
	a.client.limit = 2
	if _, err := a.step(ctx, 0); err != nil {
		t.Fatal(err)
	}
	got := dump(t, db, "items")
	if got[0] != "1|one edge|1.50" || got[1] != "2|two foreign|2.50" {
		t.Errorf("after the older foreign change: %v; want row 1 kept (stale change) and row 2 overwritten", got)
	}
	pullOnly(t, a)
	got = dump(t, db, "items")
	if got[0] != "1|one edge|1.50" || got[1] != "2|two edge|2.50" {
		t.Errorf("after the echo: %v; want both rows at the edge's write", got)
	}
	st := a.Status()
	if st.Stale != 1 || st.EchoesSkipped != 1 {
		t.Errorf("stale=%d echoes_skipped=%d; want 1 and 1 (row 1's echo only records its version)", st.Stale, st.EchoesSkipped)
	}
	var pushed int
	if err := db.QueryRow(`SELECT count(*) FROM _synchub_rowver WHERE pushed = 1`).Scan(&pushed); err != nil || pushed != 0 {
		t.Errorf("rows still marked pushed after their echoes: %d %v", pushed, err)
	}
}

// TestPush_LaterWriteIsRebasedOnThePushedRow: a write to a row made while the row's
// previous write is being pushed is sent next with the pushed row (at the version the
// hub gave it) as its base, not the image from before the pushed write.
func TestPush_LaterWriteIsRebasedOnThePushedRow(t *testing.T) {
	h, a, db := syncedItems(t)
	appExec(t, db, `UPDATE items SET name = 'first' WHERE id = 1`)
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		resp := syncproto.PushResponse{BatchID: req.BatchID}
		if n == 1 {
			if _, err := db.Exec(`UPDATE items SET name = 'second' WHERE id = 1`); err != nil {
				h.t.Errorf("write during push: %v", err)
			}
		}
		for _, c := range req.Changes {
			resp.Results = append(resp.Results, syncproto.PushResult{ID: c.ID, Status: syncproto.PushApplied, Version: int64(40 + n)})
		}
		return http.StatusOK, resp
	}
	pushNow(t, a)
	pushNow(t, a)
	p := h.pushed()
	if len(p) != 2 {
		t.Fatalf("%d pushes, want 2", len(p))
	}
	second := p[1].Changes[0]
	var base struct{ Name string }
	if err := json.Unmarshal(second.Base, &base); err != nil {
		t.Fatalf("base of the second push %s: %v", second.Base, err)
	}
	if second.BaseVersion != 41 || base.Name != "first" {
		t.Fatalf("second push has base version %d and base name %q; want 41 and the pushed row's 'first'", second.BaseVersion, base.Name)
	}
}
