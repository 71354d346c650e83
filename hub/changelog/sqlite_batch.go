package changelog

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// Row-index statements. An entry overwritten by a newer version keeps its previous
// value in pv/ps/po/pd (only the first time the version touches it), which is what
// Open restores when that version never completed.
const (
	upsertRowConflict = ` ON CONFLICT (tbl, key) DO UPDATE SET
			pv = CASE WHEN version < excluded.version THEN version ELSE pv END,
			ps = CASE WHEN version < excluded.version THEN seq ELSE ps END,
			po = CASE WHEN version < excluded.version THEN origin ELSE po END,
			pd = CASE WHEN version < excluded.version THEN deleted ELSE pd END,
			version = excluded.version, seq = excluded.seq, origin = excluded.origin, deleted = excluded.deleted`
	truncateRowsSQL = `UPDATE rows SET
			pv = CASE WHEN version < ?1 THEN version ELSE pv END,
			ps = CASE WHEN version < ?1 THEN seq ELSE ps END,
			po = CASE WHEN version < ?1 THEN origin ELSE po END,
			pd = CASE WHEN version < ?1 THEN deleted ELSE pd END,
			version = ?1, seq = ?2, origin = ?3, deleted = 1
		WHERE tbl = ?4`
	getRowSQL    = `SELECT version, seq, deleted FROM rows WHERE tbl = ? AND key = ?`
	getChunkSQL  = `SELECT data FROM chunks WHERE id = ?`
	saveStateSQL = `UPDATE state SET head = ?, position = ?, source_kind = ?, schema_version = ?,
		compacted_through = ?, compact_seal = ?, tombstone_horizon = ?, entries = ?, bytes = ?, head_us = ? WHERE id = 1`
)

// Row-index, chunk and version rows are written in groups (see groupedInsert).
const (
	insertRowHead     = `INSERT INTO rows (tbl, origin, key, version, seq, deleted) VALUES `
	insertChunkHead   = `INSERT INTO chunks (id, n, data) VALUES `
	insertVersionHead = `INSERT INTO versions (version, origin, commit_us, schema_version, changes, bytes, chunks, last_seq) VALUES `
	// insertVersion1Head lists the shared values first (see versions1Spec).
	insertVersion1Head = `INSERT INTO versions (origin, schema_version, version, commit_us, changes, bytes, chunks, last_seq) VALUES `
	// groupedChunkBytes: chunks at least this large are written at once instead of
	// being copied into a group.
	groupedChunkBytes = 16 << 10
)

var (
	indexSpec  = groupedSpec{"row index", insertRowHead, "(?1,?2,?,?,?,?)", upsertRowConflict, []int{256, 16, 1}, 2}
	chunksSpec = groupedSpec{"chunks", insertChunkHead, "(?,?,?)", "", []int{32, 1}, 0}
	// chunks1Spec writes the chunks that hold one change.
	chunks1Spec  = groupedSpec{"chunks", insertChunkHead, "(?,1,?)", "", []int{32, 1}, 0}
	versionsSpec = groupedSpec{"versions", insertVersionHead, "(?,?,?,?,?,?,?,?)", "", []int{64, 8, 1}, 0}
	// versions1Spec writes the versions stored in a single chunk (chunks = 1,
	// last_seq = 0), the common case of small transactions, sharing origin and
	// schema version.
	versions1Spec = groupedSpec{"versions", insertVersion1Head, "(?1,?2,?,?,?,?,1,0)", "", []int{64, 8, 1}, 2}
)

// writerQueries lists the statements the writer uses repeatedly through database/sql.
func writerQueries() []string {
	return append([]string{truncateRowsSQL, getRowSQL, getChunkSQL, saveStateSQL, dropRowSQL, dropTruncatedSQL}, bucketQueries()...)
}

// groupedQueries lists the statements of the grouped inserts, run on the driver.
func groupedQueries() []string {
	var q []string
	for _, g := range []groupedSpec{indexSpec, chunksSpec, chunks1Spec, versionsSpec, versions1Spec, bentriesSpec} {
		q = append(q, g.queries()...)
	}
	return q
}

// sqliteBatch is one writer transaction. Changes are encoded once, into the current
// chunk, which is stored when full, when its version completes, or at Commit.
type sqliteBatch struct {
	s *SQLiteStore
	// ctx runs the per-change statements. It carries Begin's values but not its
	// cancellation: a cancellable context makes the driver watch every statement,
	// which costs more than the statement. Cancellation is checked between changes
	// and fails the batch; Rollback then ends the transaction.
	ctx     context.Context
	inTx    bool // the writer connection is inside the batch's BEGIN
	ws      writerState
	err     error // set when the batch can only be rolled back
	done    bool
	pending int

	buf []byte // "[" followed by the current chunk's changes
	n   int    // changes in buf

	truncate, getRow, getChunk *sql.Stmt

	// Rows not yet written. They are written before anything reads the index or
	// the chunks, and at Commit.
	index, chunks, chunks1, versions, versions1, bentries *groupedInsert

	scratch []byte
	fill    cdc.Row

	// lastPos is the position of the last completed transaction; its text goes into
	// the state at Commit, so the many small transactions of a group format it once.
	lastPos cdc.Position
}

// Begin starts a batch; it waits while a compaction step holds the writer.
func (s *SQLiteStore) Begin(ctx context.Context) (Batch, error) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, errClosed
	case s.batchOpen:
		s.mu.Unlock()
		return nil, errors.New("begin change log batch: a batch is already open; commit or roll back the previous batch first")
	}
	s.batchOpen = true
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		s.batchOpen = false
		s.mu.Unlock()
	}
	if err := s.lockWriter(ctx); err != nil {
		release()
		return nil, fmt.Errorf("begin change log batch: %w", err)
	}
	if _, err := s.wconn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		s.unlockWriter()
		release()
		return nil, fmt.Errorf("begin change log batch: %w", err)
	}
	s.mu.Lock()
	ws := s.committed
	s.mu.Unlock()
	b := &sqliteBatch{
		s:        s,
		ctx:      context.WithoutCancel(ctx),
		inTx:     true,
		ws:       ws,
		buf:      append(s.spare.buf[:0], '['),
		truncate: s.prepared[truncateRowsSQL],
		getRow:   s.prepared[getRowSQL],
		getChunk: s.prepared[getChunkSQL],
	}
	for i, g := range []struct {
		g **groupedInsert
		groupedSpec
	}{{&b.index, indexSpec}, {&b.chunks, chunksSpec}, {&b.chunks1, chunks1Spec}, {&b.versions, versionsSpec}, {&b.versions1, versions1Spec}, {&b.bentries, bentriesSpec}} {
		*g.g = s.newGrouped(g.groupedSpec)
		(*g.g).args = s.spare.args[i][:0]
	}
	return b, nil
}

func (b *sqliteBatch) usable() error {
	switch {
	case b.done:
		return errors.New("change log batch is already committed or rolled back; begin a new one")
	case b.err != nil:
		return fmt.Errorf("change log batch failed earlier and must be rolled back: %w", b.err)
	}
	return nil
}

// fail marks the batch unusable: a part of a transaction may have been written.
func (b *sqliteBatch) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return err
}

// Pending reports the changes appended since Begin.
func (b *sqliteBatch) Pending() int { return b.pending }

// DiscardUnfinished drops the version that earlier batches left open, with the parts
// they committed. It must come before any AppendTx of the batch.
func (b *sqliteBatch) DiscardUnfinished(ctx context.Context) error {
	if err := b.usable(); err != nil {
		return err
	}
	if b.pending > 0 {
		return errors.New("discard unfinished version: the batch already holds changes; call it first")
	}
	ov := b.ws.open
	if ov.version == 0 {
		return nil
	}
	if err := discardAfter(ctx, b.s.wconn, b.ws.head); err != nil {
		return b.fail(err)
	}
	b.ws.entries -= ov.changes
	b.ws.bytes -= ov.bytes
	b.ws.open = openVersion{}
	b.s.bw.reset()
	b.s.bw.broken = 0
	b.s.rows.clear()
	b.s.chunkRows.clear()
	b.s.log.Info("discarded an unfinished version; the source sends it again", "version", ov.version, "changes", ov.changes)
	return nil
}

// SetTables records the captured tables, writing a schema version if they changed.
func (b *sqliteBatch) SetTables(tables []cdc.Table) error {
	if err := b.usable(); err != nil {
		return err
	}
	next, err := copyTables(tables)
	if err != nil {
		return fmt.Errorf("set tables: %w", err)
	}
	if err := b.writeSchema(next); err != nil {
		return b.fail(err)
	}
	return nil
}

// mergeTables applies a transaction's changed table definitions to the schema.
func (b *sqliteBatch) mergeTables(changed []cdc.Table) error {
	add, err := copyTables(changed)
	if err != nil {
		return fmt.Errorf("tables changed by the transaction: %w", err)
	}
	next := slices.Clone(b.ws.tables)
	for _, t := range add {
		if i := slices.IndexFunc(next, func(x cdc.Table) bool { return x.Name == t.Name }); i >= 0 {
			next[i] = t
		} else {
			next = append(next, t)
		}
	}
	return b.writeSchema(next)
}

func copyTables(tables []cdc.Table) ([]cdc.Table, error) {
	out := make([]cdc.Table, len(tables))
	seen := make(map[string]bool, len(tables))
	for i, t := range tables {
		if err := t.Validate(); err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("table %s is listed twice", t.Name)
		}
		seen[t.Name] = true
		out[i] = cdc.Table{Name: t.Name, Columns: slices.Clone(t.Columns), PrimaryKey: slices.Clone(t.PrimaryKey)}
	}
	return out, nil
}

// writeSchema writes tables as a new schema version unless they equal the latest.
func (b *sqliteBatch) writeSchema(tables []cdc.Table) error {
	if b.ws.schemaVersion > 0 && sameTables(b.ws.tables, tables) {
		return nil
	}
	if err := b.s.bw.set.Check(tables); err != nil {
		return fmt.Errorf("the captured tables do not fit the sync rules: %w", err)
	}
	v := b.ws.schemaVersion + 1
	body, err := json.Marshal(syncproto.SchemaResponse{Version: v, Tables: tables})
	if err != nil {
		return fmt.Errorf("encode schema version %d: %w", v, err)
	}
	if _, err := b.s.wconn.ExecContext(b.ctx, `INSERT INTO schemas (version, body) VALUES (?, ?)`, v, body); err != nil {
		return fmt.Errorf("write schema version %d: %w", v, err)
	}
	b.ws.schemaVersion = v
	b.ws.setTables(tables)
	b.s.log.Info("schema version written", "schema_version", v, "tables", len(tables))
	return nil
}

func sameTables(a, b []cdc.Table) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range b {
		j := slices.IndexFunc(a, func(x cdc.Table) bool { return x.Name == b[i].Name })
		if j < 0 || !cdc.SameColumns(&a[j], &b[i]) {
			return false
		}
	}
	return true
}

// AppendTx appends a transaction or one part of it.
func (b *sqliteBatch) AppendTx(ctx context.Context, tx *cdc.Tx) error {
	if err := b.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return b.fail(err)
	}
	if b.ws.open.version == 0 {
		v := b.ws.head + 1
		if v > maxVersion {
			return b.fail(fmt.Errorf("append tx: version %d exceeds the change log's limit", v))
		}
		b.ws.open = openVersion{version: v, lastSeq: -1, origin: tx.Origin}
	}
	if tx.Batch != "" {
		b.ws.open.batch = tx.Batch
	}
	if len(tx.Tables) > 0 {
		if err := b.mergeTables(tx.Tables); err != nil {
			return b.fail(err)
		}
	}
	for i := range tx.Changes {
		if i&255 == 255 {
			if err := ctx.Err(); err != nil {
				return b.fail(err)
			}
		}
		if err := b.appendChange(&tx.Changes[i]); err != nil {
			return b.fail(fmt.Errorf("append change %d (%s %s) to version %d: %w",
				i, tx.Changes[i].Op, tx.Changes[i].Table, b.ws.open.version, err))
		}
		b.pending++
	}
	if tx.More {
		return nil
	}
	if err := b.complete(tx); err != nil {
		return b.fail(err)
	}
	return nil
}

func (b *sqliteBatch) appendChange(c *cdc.Change) error {
	tbl := b.ws.byName[c.Table]
	if tbl == nil {
		return fmt.Errorf("table %s is not in the change log's schema; the source must list it (SetTables or Tx.Tables) before sending its changes", c.Table)
	}
	var key, oldKey string
	switch c.Op {
	case cdc.OpInsert:
		if len(c.After) == 0 {
			return errors.New("insert has no row image")
		}
		key = syncproto.KeyText(tbl, c.After)
	case cdc.OpUpdate:
		if len(c.After) == 0 {
			return errors.New("update has no new row image")
		}
		key = syncproto.KeyText(tbl, c.After)
		if len(c.Before) > 0 && syncproto.KeyChanged(tbl, c.Before, c.After) {
			oldKey = syncproto.KeyText(tbl, c.Before)
		}
		if c.After.HasUnchanged() {
			from := key
			if oldKey != "" {
				from = oldKey
			}
			filled, err := b.fillUnchanged(tbl, c.After, from)
			if err != nil {
				return err
			}
			cc := *c
			cc.After = filled
			c = &cc
		}
	case cdc.OpDelete:
		if len(c.Before) == 0 {
			return errors.New("delete has no key")
		}
		key = syncproto.KeyText(tbl, c.Before)
	case cdc.OpTruncate:
	default:
		return fmt.Errorf("unknown op %d", c.Op)
	}

	// The buckets of the row's previous image are found before the change is
	// encoded: the current chunk is where a previous image may be read from.
	rts := b.routesFor(tbl)
	var olds []string
	if len(rts) > 0 {
		from := key
		if oldKey != "" {
			from = oldKey
		}
		var err error
		if olds, err = b.oldBuckets(rts, tbl, c, from); err != nil {
			return err
		}
	}

	if b.n > 0 {
		b.buf = append(b.buf, ',')
	}
	start := len(b.buf)
	b.buf = syncproto.AppendChange(b.buf, c, tbl)
	ov := &b.ws.open
	if len(rts) > 0 {
		if err := b.routeChange(rts, olds, start, ov.changes+int64(b.n)); err != nil {
			return fmt.Errorf("bucket index: %w", err)
		}
	}
	b.n++

	seq := int64(ov.nextSeq)
	var err error
	switch c.Op {
	case cdc.OpInsert, cdc.OpUpdate:
		if oldKey != "" {
			b.index.add(c.Table, ov.origin, oldKey, ov.version, seq, true)
			b.s.rows.remove(c.Table, oldKey)
		}
		b.index.add(c.Table, ov.origin, key, ov.version, seq, false)
		if b.s.rows.caches(c.Table) {
			if row, ok := field(b.buf[start:], []byte(`"row"`)); ok {
				b.s.rows.put(c.Table, key, row)
			}
		}
	case cdc.OpDelete:
		b.index.add(c.Table, ov.origin, key, ov.version, seq, true)
		b.s.rows.remove(c.Table, key)
	case cdc.OpTruncate:
		if err = b.index.write(b.ctx); err == nil {
			_, err = b.truncate.ExecContext(b.ctx, ov.version, seq, ov.origin, c.Table)
		}
		b.s.rows.clear()
	}
	if err == nil && b.index.full() {
		err = b.index.write(b.ctx)
	}
	if err != nil {
		return fmt.Errorf("update row index: %w", err)
	}
	if b.n >= b.s.cfg.ChunkChanges || len(b.buf) >= b.s.cfg.ChunkBytes {
		return b.flush()
	}
	return nil
}

// writePending writes every buffered row.
func (b *sqliteBatch) writePending() error {
	for _, g := range []*groupedInsert{b.index, b.chunks, b.chunks1, b.versions, b.versions1, b.bentries} {
		if err := g.write(b.ctx); err != nil {
			return err
		}
	}
	return nil
}

// flush stores the current chunk.
func (b *sqliteBatch) flush() error {
	if b.n == 0 {
		return nil
	}
	ov := &b.ws.open
	if ov.nextSeq > maxChunkSeq {
		return fmt.Errorf("version %d has more than %d chunks; raise chunk_changes or chunk_bytes", ov.version, maxChunkSeq)
	}
	b.buf = append(b.buf, ']')
	id := chunkID(ov.version, ov.nextSeq)
	if len(b.buf) >= groupedChunkBytes {
		if err := b.chunks.writeOne(b.ctx, id, int64(b.n), b.buf); err != nil {
			return fmt.Errorf("store chunk %d.%d: %w", ov.version, ov.nextSeq, err)
		}
	} else {
		g := b.chunks
		if b.n == 1 {
			g = b.chunks1
			g.add(id, bytes.Clone(b.buf))
		} else {
			g.add(id, int64(b.n), bytes.Clone(b.buf))
		}
		if g.full() {
			if err := g.write(b.ctx); err != nil {
				return err
			}
		}
	}
	size := int64(len(b.buf))
	b.ws.entries += int64(b.n)
	b.ws.bytes += size
	ov.changes += int64(b.n)
	ov.bytes += size
	ov.chunks++
	ov.lastSeq = ov.nextSeq
	ov.nextSeq++
	b.buf = b.buf[:1]
	b.n = 0
	return nil
}

// complete writes the final part's version row and moves head and position.
func (b *sqliteBatch) complete(tx *cdc.Tx) error {
	if err := b.flush(); err != nil {
		return err
	}
	ov := b.ws.open
	err := b.s.bw.writeVersion(ov.version, func(id, version int64, n int, ords, data []byte) error {
		b.bentries.add(id, version, int64(n), ords, data)
		if b.bentries.full() {
			return b.bentries.write(b.ctx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	commitUS := time.Now().UnixMicro()
	if !tx.CommitTime.IsZero() {
		commitUS = tx.CommitTime.UnixMicro()
	}
	g := b.versions
	if ov.chunks == 1 && ov.lastSeq == 0 {
		g = b.versions1
		g.add(ov.origin, b.ws.schemaVersion, ov.version, commitUS, ov.changes, ov.bytes)
	} else {
		g.add(ov.version, ov.origin, commitUS, b.ws.schemaVersion, ov.changes, ov.bytes, int64(ov.chunks), int64(ov.lastSeq))
	}
	if g.full() {
		if err := g.write(b.ctx); err != nil {
			return fmt.Errorf("complete version %d: %w", ov.version, err)
		}
	}
	if ov.batch != "" {
		if _, err := b.s.wconn.ExecContext(b.ctx, `INSERT OR REPLACE INTO batch_versions (batch, version) VALUES (?, ?)`, ov.batch, ov.version); err != nil {
			return fmt.Errorf("complete version %d: record push batch %s: %w", ov.version, ov.batch, err)
		}
	}
	b.ws.head = ov.version
	b.ws.headUS = commitUS
	if tx.Pos != nil && !tx.Pos.IsZero() {
		b.lastPos = tx.Pos
	}
	b.ws.open = openVersion{}
	return nil
}

// fillUnchanged returns after with its unchanged columns taken from the row's latest
// stored image (the row identified by key). Columns with no stored value stay marked
// Unchanged, so they are left out of the stored row, and a warning is logged.
func (b *sqliteBatch) fillUnchanged(tbl *cdc.Table, after cdc.Row, key string) (cdc.Row, error) {
	b.s.rows.enable(tbl.Name)
	img, ok := b.s.rows.get(tbl.Name, key)
	if !ok {
		var err error
		if img, ok, err = b.loadImage(tbl, key); err != nil {
			return nil, fmt.Errorf("read latest image of %s %s: %w", tbl.Name, key, err)
		}
	}
	out := b.fill[:0]
	var missing []string
	for _, f := range after {
		if !f.Unchanged {
			out = append(out, f)
			continue
		}
		if ok {
			if col, found := tbl.Column(f.Name); found {
				b.scratch = cdc.AppendJSONString(b.scratch[:0], f.Name)
				if raw, found := field(img, b.scratch); found {
					if v, err := cdc.ParseJSONValue(col.Kind, raw); err == nil {
						out = append(out, cdc.Field{Name: f.Name, Value: v})
						continue
					}
				}
			}
		}
		missing = append(missing, f.Name)
		out = append(out, f)
	}
	if len(missing) > 0 {
		b.s.log.Warn("unchanged columns have no stored value; the update is stored without them",
			"table", tbl.Name, "key", key, "columns", missing, "version", b.ws.open.version)
	}
	b.fill = out
	return out, nil
}

// loadImage finds the row's latest image through the row index: the last change
// with a row for that key in the chunk the index points at.
func (b *sqliteBatch) loadImage(tbl *cdc.Table, key string) ([]byte, bool, error) {
	var (
		version int64
		seq     int
		deleted bool
	)
	if err := b.writePending(); err != nil {
		return nil, false, err
	}
	err := b.getRow.QueryRowContext(b.ctx, tbl.Name, key).Scan(&version, &seq, &deleted)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && deleted) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if version == b.ws.open.version && seq == b.ws.open.nextSeq {
		rows, err := chunkImages(append(slices.Clip(b.buf), ']'), tbl)
		if err != nil {
			return nil, false, fmt.Errorf("scan current chunk: %w", err)
		}
		row, ok := rows[key]
		return row, ok, nil
	}
	id := chunkID(version, seq)
	rows, ok := b.s.chunkRows.get(id, tbl.Name)
	if !ok {
		var data []byte
		if err := b.getChunk.QueryRowContext(b.ctx, id).Scan(&data); err != nil {
			return nil, false, fmt.Errorf("read chunk %d.%d: %w", version, seq, err)
		}
		if rows, err = chunkImages(data, tbl); err != nil {
			return nil, false, fmt.Errorf("scan chunk %d.%d: %w", version, seq, err)
		}
		b.s.chunkRows.put(id, tbl.Name, rows)
	}
	row, ok := rows[key]
	return row, ok, nil
}

// chunkImages indexes the last row image of every row of tbl in a stored chunk.
func chunkImages(data []byte, tbl *cdc.Table) (map[string][]byte, error) {
	qtable := cdc.AppendJSONString(nil, tbl.Name)
	qkeys := quotedNames(tbl.PrimaryKey)
	rows := map[string][]byte{}
	var kb []byte
	err := eachElem(data, func(elem []byte) error {
		c, err := parseRawChange(elem)
		if err != nil {
			return err
		}
		if c.row == nil || string(c.table) != string(qtable) {
			return nil
		}
		kb = appendKeyFromRow(kb[:0], c.row, qkeys)
		rows[string(kb)] = c.row
		return nil
	})
	return rows, err
}

func quotedNames(names []string) [][]byte {
	out := make([][]byte, len(names))
	for i, n := range names {
		out[i] = cdc.AppendJSONString(nil, n)
	}
	return out
}

// Reset drops every entry and the row index; versions keep counting up and the
// tombstone horizon moves past the head, so every watermark an edge holds is too old.
func (b *sqliteBatch) Reset(ctx context.Context, sourceKind string) error {
	if err := b.usable(); err != nil {
		return err
	}
	for _, q := range []string{`DELETE FROM chunks`, `DELETE FROM versions`, `DELETE FROM rows`, `DELETE FROM bentries`} {
		if _, err := b.s.wconn.ExecContext(ctx, q); err != nil {
			return b.fail(fmt.Errorf("reset change log: %w", err))
		}
	}
	b.ws.open = openVersion{}
	b.s.bw.reset()
	b.s.bw.broken = 0
	b.buf, b.n = b.buf[:1], 0
	for _, g := range []*groupedInsert{b.index, b.chunks, b.chunks1, b.versions, b.versions1, b.bentries} {
		g.discard()
	}
	b.ws.entries, b.ws.bytes = 0, 0
	b.ws.position = ""
	b.lastPos = nil
	b.ws.sourceKind = sourceKind
	b.ws.tombstoneHorizon = b.ws.head + 1
	b.s.rows.clear()
	b.s.chunkRows.clear()
	b.s.log.Warn("change log reset; every edge must re-bootstrap", "head", b.ws.head, "source", sourceKind)
	return nil
}

// Commit stores the current chunk and the state, and publishes the new head.
func (b *sqliteBatch) Commit(ctx context.Context) (State, error) {
	if err := b.usable(); err != nil {
		if !b.done {
			_ = b.Rollback()
		}
		return State{}, fmt.Errorf("commit change log batch: %w", err)
	}
	if err := ctx.Err(); err != nil {
		_ = b.Rollback()
		return State{}, fmt.Errorf("commit change log batch: %w", err)
	}
	if err := b.flush(); err != nil {
		_ = b.Rollback()
		return State{}, fmt.Errorf("commit change log batch: %w", err)
	}
	if err := b.writePending(); err != nil {
		_ = b.Rollback()
		return State{}, fmt.Errorf("commit change log batch: %w", err)
	}
	if b.lastPos != nil {
		b.ws.position = b.lastPos.String()
		b.lastPos = nil
	}
	w := &b.ws
	if _, err := b.s.prepared[saveStateSQL].ExecContext(b.ctx, w.head, w.position, w.sourceKind, w.schemaVersion,
		w.compactedThrough, w.compactSeal, w.tombstoneHorizon, w.entries, w.bytes, w.headUS); err != nil {
		_ = b.Rollback()
		return State{}, fmt.Errorf("commit change log batch: save state: %w", err)
	}
	if _, err := b.s.wconn.ExecContext(b.ctx, `COMMIT`); err != nil {
		// A failed COMMIT may have ended the transaction already; roll back what
		// may remain, without reporting that there was nothing left.
		b.inTx = false
		_, _ = b.s.wconn.ExecContext(b.ctx, `ROLLBACK`)
		_ = b.Rollback()
		return State{}, fmt.Errorf("commit change log batch: %w", err)
	}
	b.inTx = false
	b.done = true
	s := b.s
	s.mu.Lock()
	moved := s.committed.head != w.head
	s.committed = *w
	s.batchOpen = false
	if moved {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
	b.release()
	return w.state(), nil
}

// Rollback discards the batch; it is a no-op after Commit or a previous Rollback.
func (b *sqliteBatch) Rollback() error {
	if b.done {
		return nil
	}
	b.done = true
	var err error
	if b.inTx {
		b.inTx = false
		_, err = b.s.wconn.ExecContext(b.ctx, `ROLLBACK`)
	}
	s := b.s
	s.rows.clear()
	s.chunkRows.clear()
	s.bw.reset()
	clear(s.bw.ids)
	s.mu.Lock()
	if v := s.committed.open.version; v != 0 && s.bw.set != nil {
		// Parts of v committed earlier had bucket entries pending in memory only.
		s.bw.broken = v
	}
	s.batchOpen = false
	s.mu.Unlock()
	b.release()
	if err != nil {
		return fmt.Errorf("roll back change log batch: %w", err)
	}
	return nil
}

// release hands the batch's buffers to the next batch and frees the writer.
func (b *sqliteBatch) release() {
	sp := &b.s.spare
	if cap(b.buf) <= 2*b.s.cfg.ChunkBytes {
		sp.buf = b.buf[:0]
	}
	for i, g := range []*groupedInsert{b.index, b.chunks, b.chunks1, b.versions, b.versions1, b.bentries} {
		if g != nil {
			g.discard()
			sp.args[i] = g.args
		}
	}
	b.s.unlockWriter()
}
