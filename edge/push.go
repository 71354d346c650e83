package edge

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/synchub/synchub/hub/syncproto"
)

// ConflictEvent reports a pushed change the hub did not apply as sent: a conflict (with
// how it was resolved) or a rejection. Config.OnConflict receives it after the answer
// has been applied locally.
type ConflictEvent struct {
	BatchID    string
	Table      string          // the hub's table name
	Key        json.RawMessage // key columns of the row as pushed
	Op         string          // "i", "u" or "d"
	Status     string          // syncproto.PushConflict or syncproto.PushRejected
	Outcome    string          // for conflicts: syncproto.OutcomeServerWon, …
	Policy     string          // the table's conflict policy on the hub
	ConflictID int64           // the hub's conflict record, for the dashboard
	Local      json.RawMessage // the row the edge pushed; nil for a delete
	Winner     json.RawMessage // the row as the hub now has it; nil when absent or deleted
	Version    int64           // the change-log version of Winner, when known
	Reason     string          // why a change was rejected
	Code       string          // the rejection's machine-readable code
}

// PushReport says what a push did.
type PushReport struct {
	Batches   int   // batches the hub answered
	Sent      int   // changes sent in those batches
	Applied   int   // changes the hub applied as sent
	Conflicts int   // changes that met a conflict
	Rejected  int   // changes rejected, by the hub or locally (values that fit no column kind)
	Collapsed int   // outbox entries that needed no push (rows inserted and deleted again)
	Pending   int64 // outbox entries left afterwards
}

func (r *PushReport) add(o PushReport) {
	r.Batches += o.Batches
	r.Sent += o.Sent
	r.Applied += o.Applied
	r.Conflicts += o.Conflicts
	r.Rejected += o.Rejected
	r.Collapsed += o.Collapsed
	r.Pending = o.Pending
}

// Rejection codes the edge assigns itself.
const (
	codeBadValue     = "bad_value"     // a captured value does not fit its column's kind
	codeUnknownTable = "unknown_table" // the edge no longer syncs the table
	codeBadRequest   = "bad_request"   // the hub refused the whole batch without a code
	codeBadAnswer    = "bad_answer"    // the hub answered with an unknown status
)

// PushNow sends the outbox to the hub, batch after batch, until it is empty or a push
// fails. A batch whose answer was lost is re-sent with the same batch id, which the hub
// applies only once. Network errors and 5xx answers leave the outbox as it was (retry
// later); a 4xx answer to a whole batch moves its changes to _synchub_rejected with
// the hub's message.
//
// Batches are pipelined: while the hub works on one batch the agent forms the next,
// and while the hub works on that one the agent applies the answer to the first. A
// batch is sent only after the previous one was answered, so the hub sees them in
// order.
func (a *Agent) PushNow(ctx context.Context) (PushReport, error) {
	var total PushReport
	for {
		rep, more, err := a.pushOnce(ctx)
		total.add(rep)
		if err != nil || !more {
			return total, err
		}
	}
}

// pushLoop pushes every Config.PushInterval while the outbox has entries, backing off
// after failures, until ctx ends or the agent is closed.
func (a *Agent) pushLoop(ctx context.Context) {
	bo := backoff{min: a.cfg.BackoffMin, max: a.cfg.BackoffMax}
	el := errorLog{log: a.log, interval: a.cfg.ErrorLogInterval, what: "push to hub"}
	pause := time.Duration(0)
	for {
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			case <-a.stopCtx.Done():
				t.Stop()
				return
			}
		}
		pause = a.cfg.PushInterval
		if a.Status().Pending == 0 {
			if err := a.countPending(ctx); err != nil {
				if ctx.Err() != nil || a.closed.Load() {
					return
				}
				a.log.Warn("read the outbox", "err", err)
				continue
			}
			if a.Status().Pending == 0 {
				continue
			}
		}
		_, err := a.PushNow(ctx)
		switch {
		case ctx.Err() != nil || a.closed.Load():
			return
		case err != nil:
			pause = bo.next()
			el.failed(err, pause)
		default:
			el.succeeded()
			bo.reset()
		}
	}
}

// countPending refreshes the outbox counts in Status from the push connection.
func (a *Agent) countPending(ctx context.Context) error {
	a.pushMu.Lock()
	defer a.pushMu.Unlock()
	conn, err := a.pushConn(ctx)
	if err != nil {
		return err
	}
	return a.refreshCounts(ctx, conn)
}

// refreshCounts reads the outbox and rejection counts into Status.
func (a *Agent) refreshCounts(ctx context.Context, q querier) error {
	var pending, rejected int64
	if err := q.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM _synchub_outbox), (SELECT count(*) FROM _synchub_rejected)`).Scan(&pending, &rejected); err != nil {
		return fmt.Errorf("count the outbox: %w", err)
	}
	a.updateStatus(func(s *Status) { s.Pending, s.RejectedTotal = pending, rejected })
	if m := a.cfg.Metrics; m != nil {
		m.OutboxPending.Set(float64(pending))
	}
	return nil
}

// pushConn returns the push's connection, opening it on first use. Called with pushMu.
func (a *Agent) pushConn(ctx context.Context) (*sql.Conn, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	if a.pconn == nil {
		c, err := a.db.db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("open a connection for pushing: %w", err)
		}
		a.pconn = c
	}
	return a.pconn, nil
}

// catalogue returns the synced tables by hub name, for the push.
func (a *Agent) catalogue() map[string]*table {
	a.catMu.RLock()
	defer a.catMu.RUnlock()
	return a.tables
}

// batchItem is one change of a batch: the group of outbox entries and what is sent.
type batchItem struct {
	g      *outGroup
	t      *table
	c      collapsed
	change syncproto.PushChange
}

// pushOnce forms (or re-forms, after a lost answer) batches, sends them and applies
// the answers, for as long as the outbox has whole batches to send and no push fails
// (see PushNow). more reports whether the outbox may hold more to send.
func (a *Agent) pushOnce(ctx context.Context) (rep PushReport, more bool, err error) {
	a.pushMu.Lock()
	defer a.pushMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(a.stopCtx, cancel)
	defer stop()
	defer func() {
		if errors.Is(err, context.Canceled) && a.closed.Load() {
			err = ErrClosed
		}
		if err != nil && a.pconn != nil && !a.closed.Load() {
			_ = a.refreshCounts(context.WithoutCancel(ctx), a.pconn)
		}
		now := time.Now()
		a.updateStatus(func(s *Status) {
			if err != nil {
				s.LastPushError, s.LastPushErrorTime = err.Error(), now
			} else if rep.Batches > 0 {
				s.LastPushError = ""
			}
			s.Pushed += int64(rep.Sent)
			s.Conflicts += int64(rep.Conflicts)
		})
	}()
	conn, err := a.pushConn(ctx)
	if err != nil {
		return rep, false, err
	}
	out, more, err := a.prepareBatch(ctx, conn, "", &rep)
	if err != nil || out == nil {
		if err == nil {
			err = a.refreshCounts(ctx, conn)
		}
		return rep, more, err
	}
	for {
		answer := make(chan pushAnswer, 1)
		// sent_at is the moment of sending: the hub measures the edge's clock offset by it,
		// so it must not include the time the batch waited behind the previous one.
		out.req.SentAt = time.Now().Add(a.cfg.ClockSkew).UnixMicro()
		go func(out *outgoing) {
			resp, err := a.client.push(ctx, out.req)
			answer <- pushAnswer{resp, err}
		}(out)
		// Form the next batch while the hub works on this one.
		var next *outgoing
		var nextErr error
		if more {
			next, more, nextErr = a.prepareBatch(ctx, conn, out.id, &rep)
		}
		ans := <-answer
		if err := a.finishBatch(ctx, conn, out, ans, &rep); err != nil {
			return rep, false, err
		}
		if nextErr != nil {
			return rep, false, nextErr
		}
		if next != nil && sharesRows(out, next) {
			// The answer moved the base of rows the next batch also writes: form it
			// again (same id) so it carries the new base.
			if next, more, err = a.prepareBatch(ctx, conn, "", &rep); err != nil {
				return rep, false, err
			}
		}
		if next == nil || a.closed.Load() {
			if err := a.refreshCounts(ctx, conn); err != nil {
				return rep, false, err
			}
			rep.Pending = a.Status().Pending
			return rep, true, nil
		}
		out = next
	}
}

// sharesRows reports whether two batches write a row in common.
func sharesRows(a, b *outgoing) bool {
	rows := make(map[[2]string]bool, len(a.items))
	for _, it := range a.items {
		rows[[2]string{it.t.source, it.g.last().nktext}] = true
	}
	for _, it := range b.items {
		if rows[[2]string{it.t.source, it.g.first().ktext}] {
			return true
		}
	}
	return false
}

// outgoing is a formed batch ready to send.
type outgoing struct {
	id    string
	items []batchItem
	req   *syncproto.PushRequest
}

type pushAnswer struct {
	resp *syncproto.PushResponse
	err  error
}

// prepareBatch forms the next batch (see formBatch), leaving out the open batch inFlight
// that is being sent; nil when there is nothing to send.
func (a *Agent) prepareBatch(ctx context.Context, conn *sql.Conn, inFlight string, rep *PushReport) (*outgoing, bool, error) {
	batchID, items, more, err := a.formBatch(ctx, conn, inFlight, rep)
	if err != nil || batchID == "" {
		return nil, more, err
	}
	req := &syncproto.PushRequest{Edge: a.cfg.EdgeID, BatchID: batchID, SentAt: time.Now().Add(a.cfg.ClockSkew).UnixMicro(),
		Changes: make([]syncproto.PushChange, len(items))}
	for i := range items {
		req.Changes[i] = items[i].change
	}
	return &outgoing{id: batchID, items: items, req: req}, more, nil
}

// finishBatch applies the hub's answer to a sent batch: the answer's rows and versions,
// or, when the hub refused the batch as such, its move to _synchub_rejected. A failed
// push (network, 5xx) is returned as it is; the batch stays open for a re-send.
func (a *Agent) finishBatch(ctx context.Context, conn *sql.Conn, out *outgoing, ans pushAnswer, rep *PushReport) error {
	start := time.Now()
	err := ans.err
	if m := a.cfg.Metrics; m != nil && (err != nil && !refusedBatch(err)) {
		m.Pushed(time.Since(start), err, 0, 0, 0)
	}
	var events []ConflictEvent
	switch {
	case err == nil:
		before := *rep
		events, err = a.applyAnswer(ctx, conn, out.id, out.items, ans.resp, rep)
		if err != nil {
			return err
		}
		rep.Batches++
		rep.Sent += len(out.items)
		a.updateStatus(func(s *Status) { s.LastPush = time.Now() })
		if m := a.cfg.Metrics; m != nil {
			m.Pushed(time.Since(start), nil, rep.Applied-before.Applied, rep.Conflicts-before.Conflicts, rep.Rejected-before.Rejected)
		}
	case refusedBatch(err):
		var he *HubError
		errors.As(err, &he)
		code := he.Code
		if code == "" {
			code = codeBadRequest
		}
		a.log.Warn("the hub refused a push batch; its changes are moved to _synchub_rejected", "batch", out.id,
			"changes", len(out.items), "status", he.Status, "code", code, "hub_message", he.Message)
		events, err = a.rejectBatch(ctx, conn, out.id, out.items, he.Message, code, rep)
		if err != nil {
			return err
		}
		rep.Batches++
		if m := a.cfg.Metrics; m != nil {
			m.Pushed(time.Since(start), nil, 0, 0, len(out.items))
		}
	default:
		return err
	}
	for _, ev := range events {
		if a.cfg.OnConflict != nil {
			a.cfg.OnConflict(ev)
		}
	}
	return nil
}

// refusedBatch reports whether err is the hub refusing a batch as such (a 4xx other
// than timeouts, rate limits, authentication and a missing endpoint): sending it again
// would not help.
func refusedBatch(err error) bool {
	var he *HubError
	if !errors.As(err, &he) {
		return false
	}
	switch he.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		// Credentials or the hub's configuration, not the batch: retry once fixed.
		return false
	}
	return he.Status >= 400 && he.Status < 500 && !he.Retryable()
}

// formBatch returns the batch to send: the one already formed and unanswered, if any,
// or a new one of up to Config.PushBatch changes. A new batch gets its id and HLC
// timestamps stored on its outbox entries before it is sent, so that a re-send after a
// lost answer or a crash is the same batch. Entries that collapse to nothing are
// deleted; entries that cannot be encoded are moved to _synchub_rejected. batchID is
// empty when there is nothing to send; more then says whether entries remain.
func (a *Agent) formBatch(ctx context.Context, conn *sql.Conn, inFlight string, rep *PushReport) (batchID string, items []batchItem, more bool, err error) {
	tables := a.catalogue()
	var open string
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE((SELECT batch_id FROM _synchub_outbox WHERE batch_id IS NOT NULL AND batch_id <> ? ORDER BY seq LIMIT 1), '')`, inFlight).Scan(&open); err != nil {
		return "", nil, false, fmt.Errorf("read the outbox: %w", err)
	}
	if open != "" {
		entries, err := readOutbox(ctx, conn, `SELECT `+outboxColumns+` FROM _synchub_outbox WHERE batch_id = ? ORDER BY seq`, open)
		if err != nil {
			return "", nil, false, err
		}
		items, bad := buildItems(tables, groupEntries(entries))
		if len(bad) > 0 {
			// The schema changed under the batch: what can no longer be encoded is
			// recorded as rejected; the rest is re-sent under the same id.
			if err := a.rejectGroups(ctx, conn, open, bad, rep); err != nil {
				return "", nil, false, err
			}
		}
		if len(items) == 0 {
			return "", nil, true, nil
		}
		return open, items, true, nil
	}

	if err := beginApplying(ctx, conn); err != nil {
		return "", nil, false, err
	}
	committed := false
	defer func() {
		if !committed {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	limit := a.cfg.PushBatch * 2
	entries, err := readOutbox(ctx, conn, `SELECT `+outboxColumns+` FROM _synchub_outbox WHERE batch_id IS NULL ORDER BY seq LIMIT ?`, limit+1)
	if err != nil {
		return "", nil, false, err
	}
	more = len(entries) > limit
	if more {
		entries = entries[:limit]
	}
	groups := groupEntries(entries)
	if len(groups) > a.cfg.PushBatch {
		groups, more = groups[:a.cfg.PushBatch], true
	}
	id := uuid.NewString()
	mark, err := conn.PrepareContext(ctx, markBatchSQL)
	if err != nil {
		return "", nil, false, fmt.Errorf("prepare marking a batch: %w", err)
	}
	defer mark.Close()
	var events []ConflictEvent
	for _, g := range groups {
		c := collapse(g)
		if c.op == 0 {
			if err := deleteEntries(ctx, conn, g.seqs()); err != nil {
				return "", nil, false, err
			}
			rep.Collapsed += len(g.entries)
			continue
		}
		t := tables[g.first().tbl]
		var ev *ConflictEvent
		if t == nil {
			ev, err = rejectLocal(ctx, conn, g, c, codeUnknownTable, "the edge no longer syncs table "+g.first().tbl)
		} else if pc, encErr := encodeGroup(t, g, c); encErr != nil {
			ev, err = rejectLocal(ctx, conn, g, c, codeBadValue, encErr.Error())
		} else {
			pc.HLC = a.clock.stamp(g.last().wall + a.cfg.ClockSkew.Microseconds()).String()
			for _, e := range g.entries {
				e.hlc, e.batch = pc.HLC, id
			}
			if err := markBatch(ctx, mark, g.seqs(), id, pc.HLC); err != nil {
				return "", nil, false, err
			}
			items = append(items, batchItem{g: g, t: t, c: c, change: pc})
			continue
		}
		if err != nil {
			return "", nil, false, err
		}
		events = append(events, *ev)
		rep.Rejected++
	}
	if len(items) > 0 {
		if err := setMetaOn(ctx, conn, metaHLC, a.clock.current().String()); err != nil {
			return "", nil, false, err
		}
	}
	if err := commitApplying(ctx, conn); err != nil {
		return "", nil, false, err
	}
	committed = true
	for _, ev := range events {
		a.log.Warn("a local change cannot be pushed; moved to _synchub_rejected", "table", ev.Table, "code", ev.Code, "reason", ev.Reason)
		if a.cfg.OnConflict != nil {
			a.cfg.OnConflict(ev)
		}
	}
	if len(items) == 0 {
		return "", nil, more || len(groups) > 0, nil
	}
	return id, items, true, nil
}

// badGroup is a group of a formed batch that can no longer be encoded.
type badGroup struct {
	g      *outGroup
	c      collapsed
	code   string
	reason string
}

// buildItems encodes the groups of an already formed batch.
func buildItems(tables map[string]*table, groups []*outGroup) (items []batchItem, bad []badGroup) {
	for _, g := range groups {
		c := collapse(g)
		t := tables[g.first().tbl]
		if t == nil {
			bad = append(bad, badGroup{g, c, codeUnknownTable, "the edge no longer syncs table " + g.first().tbl})
			continue
		}
		if c.op == 0 {
			bad = append(bad, badGroup{g, c, codeBadValue, "the entries collapse to nothing"})
			continue
		}
		pc, err := encodeGroup(t, g, c)
		if err != nil {
			bad = append(bad, badGroup{g, c, codeBadValue, err.Error()})
			continue
		}
		items = append(items, batchItem{g: g, t: t, c: c, change: pc})
	}
	return items, bad
}

// rejectGroups moves groups of batch id to _synchub_rejected in one transaction and
// reports them to Config.OnConflict.
func (a *Agent) rejectGroups(ctx context.Context, conn *sql.Conn, id string, bad []badGroup, rep *PushReport) error {
	if err := beginApplying(ctx, conn); err != nil {
		return err
	}
	var events []ConflictEvent
	for _, b := range bad {
		ev, err := rejectLocal(ctx, conn, b.g, b.c, b.code, b.reason)
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			return err
		}
		ev.BatchID = id
		events = append(events, *ev)
	}
	if err := commitApplying(ctx, conn); err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}
	rep.Rejected += len(bad)
	for _, ev := range events {
		a.log.Warn("a change of a batch in flight cannot be re-sent; moved to _synchub_rejected", "batch", id, "table", ev.Table, "code", ev.Code, "reason", ev.Reason)
		if a.cfg.OnConflict != nil {
			a.cfg.OnConflict(ev)
		}
	}
	return nil
}

// markBatch stores the batch id and HLC stamp on outbox entries; st is
// markBatchSQL prepared on the push connection.
func markBatch(ctx context.Context, st *sql.Stmt, seqs []int64, id, hlc string) error {
	for _, s := range seqs {
		if _, err := st.ExecContext(ctx, id, hlc, s); err != nil {
			return fmt.Errorf("mark outbox entry %d for batch %s: %w", s, id, err)
		}
	}
	return nil
}

const markBatchSQL = `UPDATE _synchub_outbox SET batch_id = ?, hlc = ? WHERE seq = ?`

func deleteEntries(ctx context.Context, conn *sql.Conn, seqs []int64) error {
	for _, s := range seqs {
		if _, err := conn.ExecContext(ctx, `DELETE FROM _synchub_outbox WHERE seq = ?`, s); err != nil {
			return fmt.Errorf("delete outbox entry %d: %w", s, err)
		}
	}
	return nil
}

// rejectLocal moves a group the edge cannot send to _synchub_rejected, with its raw
// captured values.
func rejectLocal(ctx context.Context, conn *sql.Conn, g *outGroup, c collapsed, code, reason string) (*ConflictEvent, error) {
	f, l := g.first(), g.last()
	var batch any
	if l.batch != "" {
		batch = l.batch
	}
	op := string(c.op)
	if c.op == 0 {
		op = string(l.op)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO _synchub_rejected (seq, tbl, key_json, op, row_json, base_version, reason, code, batch_id, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, l.seq, f.tbl, string(c.key), op, nullText(c.row), f.baseVersion, reason, code, batch, time.Now().UnixMicro()); err != nil {
		return nil, fmt.Errorf("record a rejected change: %w", err)
	}
	if err := deleteEntries(ctx, conn, g.seqs()); err != nil {
		return nil, err
	}
	return &ConflictEvent{Table: f.tbl, Key: json.RawMessage(c.key), Op: string(c.op), Status: syncproto.PushRejected,
		Local: json.RawMessage(c.row), Reason: reason, Code: code}, nil
}

func nullText(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// rejectBatch moves every change of a batch the hub refused to _synchub_rejected.
func (a *Agent) rejectBatch(ctx context.Context, conn *sql.Conn, id string, items []batchItem, reason, code string, rep *PushReport) ([]ConflictEvent, error) {
	if err := beginApplying(ctx, conn); err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	var events []ConflictEvent
	now := time.Now().UnixMicro()
	for _, it := range items {
		pc := &it.change
		if err := insertRejected(ctx, conn, pc, id, reason, code, now); err != nil {
			return nil, err
		}
		events = append(events, ConflictEvent{BatchID: id, Table: pc.Table, Key: pc.Key, Op: pc.Op, Status: syncproto.PushRejected,
			Local: pc.Row, Reason: reason, Code: code})
		rep.Rejected++
	}
	if _, err := conn.ExecContext(ctx, `DELETE FROM _synchub_outbox WHERE batch_id = ?`, id); err != nil {
		return nil, fmt.Errorf("delete batch %s from the outbox: %w", id, err)
	}
	if err := commitApplying(ctx, conn); err != nil {
		return nil, err
	}
	committed = true
	return events, nil
}

func insertRejected(ctx context.Context, conn *sql.Conn, pc *syncproto.PushChange, batch, reason, code string, at int64) error {
	if _, err := conn.ExecContext(ctx, `INSERT INTO _synchub_rejected (seq, tbl, key_json, op, row_json, base_version, reason, code, batch_id, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, pc.ID, pc.Table, string(pc.Key), pc.Op, nullText(pc.Row), pc.BaseVersion, reason, code, batch, at); err != nil {
		return fmt.Errorf("record a rejected change: %w", err)
	}
	return nil
}

// applyAnswer applies the hub's answer to a batch in one local transaction that also
// deletes the batch from the outbox, and returns the events for Config.OnConflict.
func (a *Agent) applyAnswer(ctx context.Context, conn *sql.Conn, id string, items []batchItem, resp *syncproto.PushResponse, rep *PushReport) (events []ConflictEvent, err error) {
	if resp.BatchID != "" && resp.BatchID != id {
		return nil, fmt.Errorf("push batch %s: the hub answered for batch %s", id, resp.BatchID)
	}
	byID := make(map[int64]*syncproto.PushResult, len(resp.Results))
	for i := range resp.Results {
		byID[resp.Results[i].ID] = &resp.Results[i]
	}
	for _, it := range items {
		if byID[it.change.ID] == nil {
			return nil, fmt.Errorf("push batch %s: the hub's answer has no result for change %d; the batch stays in the outbox", id, it.change.ID)
		}
	}
	if err := beginApplying(ctx, conn); err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if _, err := conn.ExecContext(ctx, `DELETE FROM _synchub_outbox WHERE batch_id = ?`, id); err != nil {
		return nil, fmt.Errorf("delete batch %s from the outbox: %w", id, err)
	}
	now := time.Now().UnixMicro()
	for _, it := range items {
		res := byID[it.change.ID]
		ev := ConflictEvent{BatchID: id, Table: it.t.source, Key: it.change.Key, Op: it.change.Op, Status: res.Status,
			Outcome: res.Outcome, Policy: res.Policy, ConflictID: res.ConflictID, Local: it.change.Row, Winner: res.Row,
			Version: res.Version, Reason: res.Reason, Code: res.Code}
		switch res.Status {
		case syncproto.PushApplied:
			rep.Applied++
			err = a.recordPushed(ctx, conn, it, res.Version)
		case syncproto.PushConflict:
			rep.Conflicts++
			switch {
			case res.Outcome == syncproto.OutcomeServerWon || res.Outcome == syncproto.OutcomeManual:
				err = a.applyWinner(ctx, conn, it, res.Row, res.Version)
			case res.Row != nil:
				err = a.applyWinner(ctx, conn, it, res.Row, res.Version)
			default:
				err = a.recordPushed(ctx, conn, it, res.Version)
			}
			events = append(events, ev)
		case syncproto.PushRejected:
			rep.Rejected++
			code := res.Code
			if code == "" {
				code = "rejected"
			}
			ev.Code = code
			if err = insertRejected(ctx, conn, &it.change, id, res.Reason, code, now); err == nil && res.Row != nil {
				err = a.applyWinner(ctx, conn, it, res.Row, res.Version)
			}
			events = append(events, ev)
		default:
			rep.Rejected++
			reason := fmt.Sprintf("the hub answered with unknown status %q: %s", res.Status, res.Reason)
			ev.Status, ev.Reason, ev.Code = syncproto.PushRejected, reason, codeBadAnswer
			err = insertRejected(ctx, conn, &it.change, id, reason, codeBadAnswer, now)
			events = append(events, ev)
		}
		if err != nil {
			return nil, fmt.Errorf("apply the hub's answer for change %d of batch %s: %w", it.change.ID, id, err)
		}
	}
	if err := commitApplying(ctx, conn); err != nil {
		return nil, err
	}
	committed = true
	return events, nil
}

// recordPushed records that a row's local state is what the hub wrote from the edge's
// change: its version (the answer's, or else the change's base until the change log
// shows the write) marked as pushed. A deleted row keeps such an entry too, so that an
// older pulled change does not bring it back.
func (a *Agent) recordPushed(ctx context.Context, conn *sql.Conn, it batchItem, version int64) error {
	f, l := it.g.first(), it.g.last()
	if version <= 0 {
		version = f.baseVersion
	} else if err := a.rebaseLater(ctx, conn, it, version); err != nil {
		return err
	}
	if it.c.op == 'd' {
		return a.execSetPushedText(ctx, conn, it.t.source, f.ktext, version)
	}
	if f.ktext != l.nktext {
		if err := a.execSetPushedText(ctx, conn, it.t.source, f.ktext, version); err != nil {
			return err
		}
	}
	return a.execSetPushedText(ctx, conn, it.t.source, l.nktext, version)
}

// rebaseLater moves the base of the row's later local writes (written while this batch
// was on its way, still in the outbox) to what the hub now holds: the pushed row at
// version. Their base was the row before the pushed write, and a merge against that
// stale base would count the pushed write's fields as changed again by the edge.
func (a *Agent) rebaseLater(ctx context.Context, conn *sql.Conn, it batchItem, version int64) error {
	l := it.g.last()
	var base any
	if l.op != 'd' {
		base = string(l.row)
	}
	// The two statements match the two outbox indexes: entries that keep the row's key
	// (nktext = ktext) and entries that change it (ktext <> nktext).
	for _, q := range []string{
		`UPDATE _synchub_outbox SET base_version = ?1, base_json = ?2 WHERE tbl = ?3 AND nktext = ?4 AND ktext = ?4`,
		`UPDATE _synchub_outbox SET base_version = ?1, base_json = ?2 WHERE tbl = ?3 AND ktext = ?4 AND ktext <> nktext`,
	} {
		if err := a.pushExec(ctx, conn, q, version, base, it.t.source, l.nktext); err != nil {
			return fmt.Errorf("rebase later local writes of a row of %s: %w", it.t.source, err)
		}
	}
	return nil
}

// applyWinner makes the local row the hub's (row; nil when the hub has no such row),
// unless the row has later local writes waiting in the outbox: those stay on top and
// are pushed next.
func (a *Agent) applyWinner(ctx context.Context, conn *sql.Conn, it batchItem, row json.RawMessage, version int64) error {
	f, l := it.g.first(), it.g.last()
	var pend bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM _synchub_outbox WHERE tbl = ?1 AND nktext IN (?2, ?3))
		OR EXISTS (SELECT 1 FROM _synchub_outbox WHERE tbl = ?1 AND ktext IN (?2, ?3) AND ktext <> nktext)`,
		it.t.source, f.ktext, l.nktext).Scan(&pend); err != nil {
		return fmt.Errorf("look up later local writes: %w", err)
	}
	if pend {
		a.log.Info("the hub's row is not applied locally: the row has newer local writes, which will be pushed", "table", it.t.source, "key", string(it.change.Key))
		return nil
	}
	t := it.t
	// Remove the row as the edge has it (its final key) and under its original key.
	var keys [][]any
	if l.op != 'd' {
		k, err := rawKeyArgs(t, l.row)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	if k, err := rawKeyArgs(t, f.key); err == nil {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if _, err := conn.ExecContext(ctx, deleteSQL(t), k...); err != nil {
			return fmt.Errorf("delete from %s: %w", t.local, err)
		}
	}
	for _, kt := range []string{f.ktext, l.nktext} {
		if err := execDropVersionText(ctx, conn, t.source, kt); err != nil {
			return err
		}
	}
	if row == nil || strings.TrimSpace(string(row)) == "null" {
		return nil
	}
	if err := a.pscan.scan(t, row); err != nil {
		return fmt.Errorf("the hub's row: %w", err)
	}
	q, err := t.upsertSQL(a.pscan.cols)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, q, a.pscan.args...); err != nil {
		return fmt.Errorf("write the hub's row into %s: %w", t.local, err)
	}
	if version <= 0 {
		return nil
	}
	k, err := a.pscan.keyArgs(t, nil)
	if err != nil {
		return err
	}
	args := append(append([]any{t.source}, k...), version)
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("INSERT INTO _synchub_rowver (tbl, ktext, version, pushed) VALUES (?1, %s, ?%d, 1) "+
		"ON CONFLICT (tbl, ktext) DO UPDATE SET version = max(version, excluded.version), pushed = 1", keyText(t, "?"), len(t.pk)+2), args...); err != nil {
		return fmt.Errorf("record the version of a row of %s: %w", t.local, err)
	}
	return nil
}

func deleteSQL(t *table) string {
	var b strings.Builder
	b.WriteString("DELETE FROM ")
	b.WriteString(t.quoted)
	b.WriteString(" WHERE ")
	for i, k := range t.pk {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString(t.cols[k].quoted)
		b.WriteString(" = ?")
	}
	return b.String()
}

const setPushedSQL = `INSERT INTO _synchub_rowver (tbl, ktext, version, pushed) VALUES (?, ?, ?, 1)
		ON CONFLICT (tbl, ktext) DO UPDATE SET version = max(version, excluded.version), pushed = 1`

func (a *Agent) execSetPushedText(ctx context.Context, conn *sql.Conn, tbl, ktext string, version int64) error {
	if err := a.pushExec(ctx, conn, setPushedSQL, tbl, ktext, version); err != nil {
		return fmt.Errorf("record the version of a row of %s: %w", tbl, err)
	}
	return nil
}

// pushExec runs a statement the push repeats for every row of an answer, prepared once
// on the push's connection (re-parsing it per row cost more than running it).
func (a *Agent) pushExec(ctx context.Context, conn *sql.Conn, query string, args ...any) error {
	st := a.pstmts[query]
	if st == nil || conn != a.pconn {
		var err error
		if st, err = conn.PrepareContext(ctx, query); err != nil {
			return err
		}
		if conn == a.pconn {
			if a.pstmts == nil {
				a.pstmts = map[string]*sql.Stmt{}
			}
			a.pstmts[query] = st
		} else {
			defer st.Close()
		}
	}
	_, err := st.ExecContext(ctx, args...)
	return err
}

func execDropVersionText(ctx context.Context, conn *sql.Conn, tbl, ktext string) error {
	if _, err := conn.ExecContext(ctx, `DELETE FROM _synchub_rowver WHERE tbl = ? AND ktext = ?`, tbl, ktext); err != nil {
		return fmt.Errorf("forget the version of a row of %s: %w", tbl, err)
	}
	return nil
}

// setMetaOn writes a _synchub_meta key through conn.
func setMetaOn(ctx context.Context, conn *sql.Conn, k, v string) error {
	if _, err := conn.ExecContext(ctx, `INSERT INTO _synchub_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, k, v); err != nil {
		return fmt.Errorf("write %s to _synchub_meta: %w", k, err)
	}
	return nil
}
