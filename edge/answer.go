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
	err = inApplying(ctx, conn, func() error {
		if err := dropBatch(ctx, conn, id); err != nil {
			return err
		}
		now := time.Now().UnixMicro()
		var pushed pushedRows
		for _, it := range items {
			res := byID[it.change.ID]
			if res.Status != syncproto.PushApplied {
				// What follows may write the same rows' versions: record the pushed ones
				// first, in answer order.
				if err := a.storePushed(ctx, conn, &pushed); err != nil {
					return fmt.Errorf("apply the hub's answer to batch %s: %w", id, err)
				}
			}
			ev := ConflictEvent{BatchID: id, Table: it.t.source, Key: it.change.Key, Op: it.change.Op, Status: res.Status,
				Outcome: res.Outcome, Policy: res.Policy, ConflictID: res.ConflictID, Local: it.change.Row, Winner: res.Row,
				Version: res.Version, Reason: res.Reason, Code: res.Code}
			switch res.Status {
			case syncproto.PushApplied:
				rep.Applied++
				pushed.add(it, res.Version)
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
				return fmt.Errorf("apply the hub's answer for change %d of batch %s: %w", it.change.ID, id, err)
			}
		}
		if err := a.storePushed(ctx, conn, &pushed); err != nil {
			return fmt.Errorf("apply the hub's answer to batch %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}

// recordPushed records that a row's local state is what the hub wrote from the edge's
// change (see pushedRows); for a conflict the hub resolved to the edge's own row.
func (a *Agent) recordPushed(ctx context.Context, conn *sql.Conn, it batchItem, version int64) error {
	var p pushedRows
	p.add(it, version)
	return a.storePushed(ctx, conn, &p)
}

// pushedRows collects the rows of an answer the hub applied as pushed, to record them
// with a few statements per table instead of three per row. Each row's version (the
// answer's, or else the change's base until the change log shows the write) is
// recorded as pushed; a deleted row keeps such an entry too, so that an older pulled
// change does not bring it back. Rows with later local writes still in the outbox get
// those writes rebased (see rebaseLater).
type pushedRows struct {
	versions map[pushedKey][]string  // key texts by table and version
	rebase   map[string][]rebaseItem // items answered with a version, by table
	order    []pushedKey
}

type rebaseItem struct {
	it      batchItem
	version int64
}

type pushedKey struct {
	tbl     string
	version int64
}

func (p *pushedRows) add(it batchItem, version int64) {
	f, l := it.g.first(), it.g.last()
	if version <= 0 {
		version = f.baseVersion
	} else {
		if p.rebase == nil {
			p.rebase = map[string][]rebaseItem{}
		}
		p.rebase[it.t.source] = append(p.rebase[it.t.source], rebaseItem{it, version})
	}
	k := pushedKey{it.t.source, version}
	if p.versions == nil {
		p.versions = map[pushedKey][]string{}
	}
	if _, ok := p.versions[k]; !ok {
		p.order = append(p.order, k)
	}
	if it.c.op == 'd' || f.ktext != l.nktext {
		p.versions[k] = append(p.versions[k], f.ktext)
	}
	if it.c.op != 'd' {
		p.versions[k] = append(p.versions[k], l.nktext)
	}
}

// storePushed writes what p collected and empties it.
func (a *Agent) storePushed(ctx context.Context, conn *sql.Conn, p *pushedRows) error {
	for tbl, items := range p.rebase {
		if err := a.rebaseLater(ctx, conn, tbl, items); err != nil {
			return err
		}
	}
	for _, k := range p.order {
		list, err := json.Marshal(p.versions[k])
		if err != nil {
			return err
		}
		st, done, err := a.pushStmt(ctx, conn, setPushedSQL)
		if err == nil {
			_, err = st.ExecContext(ctx, k.tbl, k.version, string(list))
			done()
		}
		if err != nil {
			return fmt.Errorf("record the versions of pushed rows of %s: %w", k.tbl, err)
		}
	}
	*p = pushedRows{}
	return nil
}

// setPushedSQL records the key texts in the JSON array ?3 of table ?1 at version ?2.
// "WHERE true" keeps SQLite from reading ON CONFLICT as a join constraint.
const setPushedSQL = `INSERT INTO _synchub_rowver (tbl, ktext, version, pushed) SELECT ?1, value, ?2, 1 FROM json_each(?3) WHERE true
		ON CONFLICT (tbl, ktext) DO UPDATE SET version = max(version, excluded.version), pushed = 1`

// laterWritesSQL returns the indexes, in the JSON array ?2 of key texts of table ?1, of
// rows that have entries in the outbox. CROSS JOIN makes SQLite walk the array and
// probe the outbox indexes, rather than scan the table's entries per array element.
const laterWritesSQL = `SELECT m.key FROM json_each(?2) AS m CROSS JOIN _synchub_outbox AS o
		WHERE o.tbl = ?1 AND o.nktext = m.value AND o.ktext = m.value
	UNION SELECT m.key FROM json_each(?2) AS m CROSS JOIN _synchub_outbox AS o
		WHERE o.tbl = ?1 AND o.ktext = m.value AND o.ktext <> o.nktext`

// rebaseLater moves the base of the rows' later local writes (written while their
// batch was on its way, still in the outbox) to what the hub now holds: the pushed row
// at its new version. Their base was the row before the pushed write, and a merge
// against that stale base would count the pushed write's fields as changed again by
// the edge. One query finds the rows that have later writes (usually none).
func (a *Agent) rebaseLater(ctx context.Context, conn *sql.Conn, tbl string, items []rebaseItem) error {
	keys := make([]string, len(items))
	for i, r := range items {
		keys[i] = r.it.g.last().nktext
	}
	list, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	st, done, err := a.pushStmt(ctx, conn, laterWritesSQL)
	if err != nil {
		return fmt.Errorf("look up later local writes of %s: %w", tbl, err)
	}
	defer done()
	rows, err := st.QueryContext(ctx, tbl, string(list))
	if err != nil {
		return fmt.Errorf("look up later local writes of %s: %w", tbl, err)
	}
	var hits []int
	for rows.Next() {
		var i int
		if err := rows.Scan(&i); err != nil {
			rows.Close()
			return fmt.Errorf("look up later local writes of %s: %w", tbl, err)
		}
		hits = append(hits, i)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("look up later local writes of %s: %w", tbl, err)
	}
	for _, i := range hits {
		if i < 0 || i >= len(items) {
			return fmt.Errorf("look up later local writes of %s: index %d out of range", tbl, i)
		}
		l, version := items[i].it.g.last(), items[i].version
		var base any
		if l.op != 'd' {
			base = string(l.row)
		}
		// The two statements match the two outbox indexes: entries that keep the row's
		// key (nktext = ktext) and entries that change it (ktext <> nktext).
		for _, q := range []string{
			`UPDATE _synchub_outbox SET base_version = ?1, base_json = ?2 WHERE tbl = ?3 AND nktext = ?4 AND ktext = ?4`,
			`UPDATE _synchub_outbox SET base_version = ?1, base_json = ?2 WHERE tbl = ?3 AND ktext = ?4 AND ktext <> nktext`,
		} {
			if _, err := conn.ExecContext(ctx, q, version, base, tbl, l.nktext); err != nil {
				return fmt.Errorf("rebase later local writes of a row of %s: %w", tbl, err)
			}
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

// deleteSQL deletes one row of t by its primary key.
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

// pushStmt returns query prepared on conn: once for the push's own connection, where
// it is kept (re-parsing per batch cost more than running it), else for one use, to be
// closed by the caller (done reports which).
func (a *Agent) pushStmt(ctx context.Context, conn *sql.Conn, query string) (st *sql.Stmt, done func(), err error) {
	if st := a.pstmts[query]; st != nil && conn == a.pconn {
		return st, func() {}, nil
	}
	if st, err = conn.PrepareContext(ctx, query); err != nil {
		return nil, nil, err
	}
	if conn != a.pconn {
		return st, func() { st.Close() }, nil
	}
	if a.pstmts == nil {
		a.pstmts = map[string]*sql.Stmt{}
	}
	a.pstmts[query] = st
	return st, func() {}, nil
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
