package edge

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/synchub/synchub/hub/syncproto"
)

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
