package edge

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/synchub/synchub/hub/syncproto"
)

// outEntry is one row of _synchub_outbox.
type outEntry struct {
	seq         int64
	tbl         string
	ktext       string // key text of the row before the change
	nktext      string // key text after it (the same but for key-changing updates)
	key         []byte // raw key columns before the change
	op          byte   // 'i', 'u' or 'd'
	row         []byte // raw new row; nil for deletes
	base        []byte // raw base image; nil for rows created locally
	baseVersion int64
	wall        int64 // Unix microseconds of the local write
	hlc         string
	batch       string
}

// outGroup is the run of pending entries of one row, in outbox order. An update that
// changes the key moves the group to the new key.
type outGroup struct {
	entries []*outEntry
}

func (g *outGroup) first() *outEntry { return g.entries[0] }
func (g *outGroup) last() *outEntry  { return g.entries[len(g.entries)-1] }

// seqs lists the entries' sequence numbers.
func (g *outGroup) seqs() []int64 {
	out := make([]int64, len(g.entries))
	for i, e := range g.entries {
		out[i] = e.seq
	}
	return out
}

const outboxColumns = `seq, tbl, ktext, nktext, key_json, op, row_json, base_json, base_version, wall, COALESCE(hlc, ''), COALESCE(batch_id, '')`

// readOutbox runs a query selecting outboxColumns and returns the entries.
func readOutbox(ctx context.Context, q querier, query string, args ...any) ([]*outEntry, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read the outbox: %w", err)
	}
	defer rows.Close()
	var out []*outEntry
	for rows.Next() {
		e := &outEntry{}
		var op string
		var key, row, base sql.NullString
		if err := rows.Scan(&e.seq, &e.tbl, &e.ktext, &e.nktext, &key, &op, &row, &base, &e.baseVersion, &e.wall, &e.hlc, &e.batch); err != nil {
			return nil, fmt.Errorf("read the outbox: %w", err)
		}
		if len(op) != 1 {
			return nil, fmt.Errorf("read the outbox: entry %d has op %q", e.seq, op)
		}
		e.op = op[0]
		e.key = []byte(key.String)
		if row.Valid {
			e.row = []byte(row.String)
		}
		if base.Valid {
			e.base = []byte(base.String)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the outbox: %w", err)
	}
	return out, nil
}

// groupEntries groups entries (in outbox order) by row, following key changes.
func groupEntries(entries []*outEntry) []*outGroup {
	var groups []*outGroup
	open := map[string]*outGroup{}
	for _, e := range entries {
		k := e.tbl + "\x00" + e.ktext
		g := open[k]
		if g == nil {
			g = &outGroup{}
			groups = append(groups, g)
		}
		delete(open, k)
		g.entries = append(g.entries, e)
		open[e.tbl+"\x00"+e.nktext] = g
	}
	return groups
}

// collapsed is what a group amounts to.
type collapsed struct {
	op         byte   // 'i', 'u' or 'd'; 0 when nothing needs to be sent
	key        []byte // raw key before the change (for inserts, of the new row)
	row        []byte // raw final row; nil for deletes
	keyFromRow bool
}

// collapse folds a row's pending entries into the one change that takes the hub from
// the row's base to its final state:
//
//	insert … (update)*            → insert of the final row
//	insert … delete               → nothing
//	update … (update)*            → update from the first base to the final row
//	update … delete               → delete
//	delete … delete               → delete
//	delete … insert/update        → update (the row was replaced)
//
// The base version and image are always the first entry's.
func collapse(g *outGroup) collapsed {
	f, l := g.first(), g.last()
	switch {
	case f.op == 'i' && l.op == 'd':
		return collapsed{}
	case f.op == 'i':
		return collapsed{op: 'i', key: l.row, row: l.row, keyFromRow: true}
	case l.op == 'd':
		return collapsed{op: 'd', key: f.key}
	default:
		return collapsed{op: 'u', key: f.key, row: l.row}
	}
}

// encodeGroup turns a group into the change sent to the hub, with values in the hub's
// JSON form. t is the group's synced table.
func encodeGroup(t *table, g *outGroup, c collapsed) (syncproto.PushChange, error) {
	f, l := g.first(), g.last()
	pc := syncproto.PushChange{ID: l.seq, Table: t.source, Op: string(c.op), BaseVersion: f.baseVersion, HLC: l.hlc}
	var err error
	if pc.Key, err = encodeObject(t, c.key, t.pk); err != nil {
		return pc, err
	}
	if c.row != nil {
		if pc.Row, err = encodeObject(t, c.row, nil); err != nil {
			return pc, err
		}
	}
	if f.base != nil && f.baseVersion > 0 {
		if pc.Base, err = encodeObject(t, f.base, nil); err != nil {
			return pc, err
		}
	}
	return pc, nil
}

// rawKeyArgs reads the key columns of a raw captured object as statement arguments.
func rawKeyArgs(t *table, raw []byte) ([]any, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: captured row is not a JSON object: %w", t.source, err)
	}
	out := make([]any, 0, len(t.pk))
	for _, k := range t.pk {
		c := &t.cols[k]
		v, ok := m[c.name]
		if !ok {
			return nil, fmt.Errorf("%s: captured row lacks key column %s", t.source, c.name)
		}
		val, err := capturedValue(c.kind, v)
		if err != nil {
			return nil, fmt.Errorf("%s key column %s: %w", t.source, c.name, err)
		}
		out = append(out, val.SQLiteArg())
	}
	return out, nil
}
