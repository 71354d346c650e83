package edge

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/synchub/synchub/hub/syncproto"
)

// formBatch returns the batch to send: the one already formed and unanswered, if any,
// or a new one of up to Config.PushBatch changes. A new batch gets its id stored on its
// outbox entries and its HLC stamps in _synchub_batch_stamps before it is sent, so
// that a re-send after a lost answer or a crash is the same batch. Entries that
// collapse to nothing are deleted; entries that cannot be encoded are moved to
// _synchub_rejected. batchID is empty when there is nothing to send; more then says
// whether entries remain.
//
// inFlight are the ids of batches formed in this push and not answered yet (sent, or
// ready to be sent), which are not returned again; busy are the rows they write. A new
// batch stops before the first row in busy, so that no two unanswered batches write the
// same row: the hub may then decide them while the earlier one is still being captured,
// and no answer moves the base of a change already sent.
func (a *Agent) formBatch(ctx context.Context, conn *sql.Conn, inFlight []string, busy rowSet, rep *PushReport) (batchID string, items []batchItem, more bool, err error) {
	tables := a.catalogue()
	if tables == nil {
		// Close (or a pull replacing its connection) has dropped the catalogue: without
		// it every change would look like one of a table no longer synced.
		if a.closed.Load() {
			return "", nil, false, ErrClosed
		}
		return "", nil, false, errors.New("read the outbox: the local schema is being reloaded; the push is retried")
	}
	var open string
	// INDEXED BY: without it SQLite walks the whole outbox in seq order to find the few
	// entries that belong to a formed batch.
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE((SELECT batch_id FROM _synchub_outbox INDEXED BY _synchub_outbox_batched
		WHERE batch_id IS NOT NULL AND batch_id NOT IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT 1), '')`, idList(inFlight)).Scan(&open); err != nil {
		return "", nil, false, fmt.Errorf("read the outbox: %w", err)
	}
	if open != "" {
		entries, err := readOutbox(ctx, conn, `SELECT `+outboxColumns+` FROM _synchub_outbox WHERE batch_id = ? ORDER BY seq`, open)
		if err != nil {
			return "", nil, false, err
		}
		if err := loadStamps(ctx, conn, open, entries); err != nil {
			return "", nil, false, err
		}
		items, bad := buildItems(tables, groupEntries(entries))
		if len(bad) > 0 {
			// The schema changed under the batch: what can no longer be encoded is
			// recorded as rejected; the rest is re-sent under the same id.
			if err := a.rejectGroups(ctx, conn, open, bad, len(items) == 0, rep); err != nil {
				return "", nil, false, err
			}
		}
		if len(items) == 0 {
			return "", nil, true, nil
		}
		return open, items, true, nil
	}

	id := uuid.NewString()
	var groups []*outGroup
	var events []ConflictEvent
	err = inApplying(ctx, conn, func() error {
		// A window of PushBatch entries: a row's entries within it fold into one change, and
		// its later entries go in a later batch, rebased by this one's answer. A wider
		// window folded a few more entries but read twice the rows for every batch.
		limit := a.cfg.PushBatch
		entries, err := readOutbox(ctx, conn, `SELECT `+outboxColumns+` FROM _synchub_outbox WHERE batch_id IS NULL ORDER BY seq LIMIT ?`, limit+1)
		if err != nil {
			return err
		}
		more = len(entries) > limit
		if more {
			entries = entries[:limit]
		}
		groups = groupEntries(entries)
		if len(groups) > a.cfg.PushBatch {
			groups, more = groups[:a.cfg.PushBatch], true
		}
		for i, g := range groups {
			if busy.touches(g) {
				// A later write of a row whose push is still unanswered: it waits for that
				// answer (which moves its base), and so does everything after it.
				groups, more = groups[:i], true
				break
			}
		}
		var marks markList
		for _, g := range groups {
			c := collapse(g)
			if c.op == 0 {
				if err := deleteEntries(ctx, conn, g.seqs()); err != nil {
					return err
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
				marks.add(g, pc.HLC)
				items = append(items, batchItem{g: g, t: t, c: c, change: pc})
				continue
			}
			if err != nil {
				return err
			}
			events = append(events, *ev)
			rep.Rejected++
		}
		if len(items) > 0 {
			if err := marks.store(ctx, conn, id); err != nil {
				return err
			}
			if err := setMetaOn(ctx, conn, metaHLC, a.clock.current().String()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", nil, false, err
	}
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

// rowSet holds rows (table and key text) of batches sent and not yet answered.
type rowSet map[[2]string]struct{}

// addItems adds the rows the items write, under their old and new keys.
func (r rowSet) addItems(items []batchItem) {
	for _, it := range items {
		for _, e := range it.g.entries {
			r[[2]string{e.tbl, e.ktext}] = struct{}{}
			r[[2]string{e.tbl, e.nktext}] = struct{}{}
		}
	}
}

// touches reports whether any entry of g writes a row in r.
func (r rowSet) touches(g *outGroup) bool {
	if len(r) == 0 {
		return false
	}
	for _, e := range g.entries {
		if _, ok := r[[2]string{e.tbl, e.ktext}]; ok {
			return true
		}
		if _, ok := r[[2]string{e.tbl, e.nktext}]; ok {
			return true
		}
	}
	return false
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
// reports them to Config.OnConflict. whole says they are all the batch holds: its
// stamps go too.
func (a *Agent) rejectGroups(ctx context.Context, conn *sql.Conn, id string, bad []badGroup, whole bool, rep *PushReport) error {
	var events []ConflictEvent
	err := inApplying(ctx, conn, func() error {
		for _, b := range bad {
			ev, err := rejectLocal(ctx, conn, b.g, b.c, b.code, b.reason)
			if err != nil {
				return err
			}
			ev.BatchID = id
			events = append(events, *ev)
		}
		if whole {
			if _, err := conn.ExecContext(ctx, `DELETE FROM _synchub_batch_stamps WHERE batch_id = ?`, id); err != nil {
				return fmt.Errorf("delete the stamps of batch %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
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

// markList collects the outbox entries of a batch being formed and the HLC stamps of
// its changes, to be stored with two statements: one UPDATE per entry, or stamps
// written onto each entry, cost more than forming the rest of the batch.
type markList struct {
	seqs   []byte // JSON array of the entries' seqs
	stamps []byte // JSON object: a change's id (its last entry's seq) → its HLC stamp
}

func (m *markList) add(g *outGroup, hlc string) {
	for _, e := range g.entries {
		m.seqs = appendListItem(m.seqs, '[')
		m.seqs = strconv.AppendInt(m.seqs, e.seq, 10)
	}
	m.stamps = appendListItem(m.stamps, '{')
	m.stamps = append(m.stamps, '"')
	m.stamps = strconv.AppendInt(m.stamps, g.last().seq, 10)
	m.stamps = append(m.stamps, '"', ':')
	m.stamps = strconv.AppendQuote(m.stamps, hlc)
}

func appendListItem(b []byte, open byte) []byte {
	if len(b) == 0 {
		return append(b, open)
	}
	return append(b, ',')
}

// store writes the batch id onto the collected entries and records the stamps.
func (m *markList) store(ctx context.Context, conn *sql.Conn, id string) error {
	if len(m.seqs) == 0 {
		return nil
	}
	if _, err := conn.ExecContext(ctx, `UPDATE _synchub_outbox SET batch_id = ?1 WHERE seq IN (SELECT value FROM json_each(?2))`,
		id, string(append(m.seqs, ']'))); err != nil {
		return fmt.Errorf("mark the outbox entries of batch %s: %w", id, err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT OR REPLACE INTO _synchub_batch_stamps (batch_id, stamps) VALUES (?, ?)`,
		id, string(append(m.stamps, '}'))); err != nil {
		return fmt.Errorf("record the stamps of batch %s: %w", id, err)
	}
	return nil
}

// loadStamps sets the HLC stamps recorded for batch id on its entries. Entries of
// batches formed before stamps were recorded this way keep the stamp of their hlc
// column.
func loadStamps(ctx context.Context, conn *sql.Conn, id string, entries []*outEntry) error {
	var raw string
	err := conn.QueryRowContext(ctx, `SELECT stamps FROM _synchub_batch_stamps WHERE batch_id = ?`, id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the stamps of batch %s: %w", id, err)
	}
	var stamps map[string]string
	if err := json.Unmarshal([]byte(raw), &stamps); err != nil {
		return fmt.Errorf("read the stamps of batch %s: %w", id, err)
	}
	for _, e := range entries {
		if h, ok := stamps[strconv.FormatInt(e.seq, 10)]; ok {
			e.hlc = h
		}
	}
	return nil
}

// dropBatch deletes batch id's entries and stamps.
func dropBatch(ctx context.Context, conn *sql.Conn, id string) error {
	if _, err := conn.ExecContext(ctx, `DELETE FROM _synchub_outbox WHERE batch_id = ?`, id); err != nil {
		return fmt.Errorf("delete batch %s from the outbox: %w", id, err)
	}
	if _, err := conn.ExecContext(ctx, `DELETE FROM _synchub_batch_stamps WHERE batch_id = ?`, id); err != nil {
		return fmt.Errorf("delete the stamps of batch %s: %w", id, err)
	}
	return nil
}

// idList encodes batch ids as a JSON array for json_each.
func idList(ids []string) string {
	if len(ids) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(ids)
	return string(b)
}

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
	var events []ConflictEvent
	err := inApplying(ctx, conn, func() error {
		now := time.Now().UnixMicro()
		for _, it := range items {
			pc := &it.change
			if err := insertRejected(ctx, conn, pc, id, reason, code, now); err != nil {
				return err
			}
			events = append(events, ConflictEvent{BatchID: id, Table: pc.Table, Key: pc.Key, Op: pc.Op, Status: syncproto.PushRejected,
				Local: pc.Row, Reason: reason, Code: code})
			rep.Rejected++
		}
		return dropBatch(ctx, conn, id)
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}

func insertRejected(ctx context.Context, conn *sql.Conn, pc *syncproto.PushChange, batch, reason, code string, at int64) error {
	if _, err := conn.ExecContext(ctx, `INSERT INTO _synchub_rejected (seq, tbl, key_json, op, row_json, base_version, reason, code, batch_id, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, pc.ID, pc.Table, string(pc.Key), pc.Op, nullText(pc.Row), pc.BaseVersion, reason, code, batch, at); err != nil {
		return fmt.Errorf("record a rejected change: %w", err)
	}
	return nil
}
