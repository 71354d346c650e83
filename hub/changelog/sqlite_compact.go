package changelog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// Compact removes superseded changes and old tombstones.
//
// The compaction horizon H is the last version committed before now-Retention and
// the tombstone horizon T the last before now-TombstoneRetention (never beyond H).
// In versions ≤ H a change is dropped when the row index shows a later change to its
// row in a version no newer than the head when compaction started (the seal), or when
// a later change in the same chunk touches the same row. In versions ≤ T deletes and
// truncates are dropped too, and their rows leave the index. CompactedThrough becomes
// H and the seal is stored beside it: ReadPage lets an edge reading from a watermark
// below H commit no earlier than the seal, by which point every dropped change has
// been replaced by the one that superseded it. Horizons and seal only increase and are
// stored before anything is dropped.
//
// The work runs in write transactions of about CompactStepChanges changes that take
// turns with ingest batches for the writer. Only one Compact runs at a time.
func (s *SQLiteStore) Compact(ctx context.Context, opts CompactOptions) (CompactStats, error) {
	var stats CompactStats
	if opts.Retention < 0 || opts.TombstoneRetention < opts.Retention {
		return stats, fmt.Errorf("compact: retention %v and tombstone retention %v: both must be non-negative and tombstone retention at least the retention",
			opts.Retention, opts.TombstoneRetention)
	}
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	start := time.Now()

	bounds, err := s.compactBounds(ctx, now.Add(-opts.Retention), now.Add(-opts.TombstoneRetention))
	if err != nil {
		return stats, err
	}
	stats.CompactedThrough, stats.TombstoneHorizon = bounds.compacted, bounds.horizon
	if bounds.h == 0 {
		return stats, nil
	}
	tables, err := s.loadSchemas(ctx)
	if err != nil {
		return stats, err
	}
	c := &compactor{s: s, b: bounds, tables: tables, stats: &stats, seen: map[string]bool{}, truncated: map[string]bool{}}
	from, end := int64(0), chunkID(bounds.h+1, 0)
	for from < end {
		next, err := c.step(ctx, from, end)
		if err != nil {
			return stats, err
		}
		from = next
	}
	s.log.Info("change log compacted", "compacted_through", stats.CompactedThrough, "tombstone_horizon", stats.TombstoneHorizon,
		"horizon_version", bounds.h, "changes_removed", stats.ChangesRemoved, "chunks_rewritten", stats.ChunksRewritten,
		"seconds", time.Since(start).Seconds())
	return stats, nil
}

const (
	dropRowSQL       = `DELETE FROM rows WHERE tbl = ? AND key = ? AND version = ? AND seq = ? AND deleted = 1`
	dropTruncatedSQL = `DELETE FROM rows WHERE tbl = ? AND version = ? AND seq = ? AND deleted = 1`
)

type compactBounds struct {
	h, drop, seal      int64 // compact ≤ h, drop tombstones ≤ drop, supersede only by ≤ seal
	compacted, horizon int64 // the stored CompactedThrough and TombstoneHorizon
	storedSeal         int64 // the stored compact seal
}

// compactBounds fixes the horizons under the writer lock and stores them before any
// change is dropped, so a page read meanwhile already sees them.
func (s *SQLiteStore) compactBounds(ctx context.Context, cutH, cutT time.Time) (compactBounds, error) {
	var b compactBounds
	if err := s.lockWriter(ctx); err != nil {
		return b, fmt.Errorf("compact: %w", err)
	}
	defer s.unlockWriter()
	s.mu.Lock()
	cur := s.committed
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return b, errClosed
	}
	b.compacted, b.horizon, b.storedSeal = cur.compactedThrough, cur.tombstoneHorizon, cur.compactSeal
	last := func(cut time.Time, upTo int64) (int64, error) {
		var v int64
		err := s.wconn.QueryRowContext(ctx, `SELECT version FROM versions WHERE version <= ? AND commit_us < ? ORDER BY version DESC LIMIT 1`,
			upTo, cut.UnixMicro()).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return v, err
	}
	h, err := last(cutH, cur.head)
	if err != nil {
		return b, fmt.Errorf("compact: find horizon: %w", err)
	}
	t, err := last(cutT, h)
	if err != nil {
		return b, fmt.Errorf("compact: find tombstone horizon: %w", err)
	}
	if h == 0 {
		return b, nil
	}
	b.h, b.seal = h, cur.head
	b.compacted = max(cur.compactedThrough, h)
	b.storedSeal = max(cur.compactSeal, cur.head)
	b.horizon = max(cur.tombstoneHorizon, t)
	b.drop = min(b.horizon, h)
	if b.compacted != cur.compactedThrough || b.horizon != cur.tombstoneHorizon || b.storedSeal != cur.compactSeal {
		if _, err := s.wconn.ExecContext(ctx, `UPDATE state SET compacted_through = ?, compact_seal = ?, tombstone_horizon = ? WHERE id = 1`,
			b.compacted, b.storedSeal, b.horizon); err != nil {
			return b, fmt.Errorf("compact: store horizons: %w", err)
		}
		s.mu.Lock()
		s.committed.compactedThrough, s.committed.compactSeal, s.committed.tombstoneHorizon = b.compacted, b.storedSeal, b.horizon
		s.mu.Unlock()
	}
	return b, nil
}

// compactTable is what compaction needs of a table: its quoted name and key columns.
type compactTable struct {
	name  string
	qkeys [][]byte
}

// loadSchemas returns every schema version's tables, keyed by quoted table name.
func (s *SQLiteStore) loadSchemas(ctx context.Context) (map[int64]map[string]*compactTable, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT version, body FROM schemas`)
	if err != nil {
		return nil, fmt.Errorf("compact: load schemas: %w", err)
	}
	defer rows.Close()
	out := map[int64]map[string]*compactTable{}
	for rows.Next() {
		var (
			v    int64
			body []byte
			sr   syncproto.SchemaResponse
		)
		if err := rows.Scan(&v, &body); err != nil {
			return nil, fmt.Errorf("compact: load schemas: %w", err)
		}
		if err := json.Unmarshal(body, &sr); err != nil {
			return nil, fmt.Errorf("compact: decode schema version %d: %w", v, err)
		}
		m := make(map[string]*compactTable, len(sr.Tables))
		for _, t := range sr.Tables {
			m[string(cdc.AppendJSONString(nil, t.Name))] = &compactTable{name: t.Name, qkeys: quotedNames(t.PrimaryKey)}
		}
		out[v] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compact: load schemas: %w", err)
	}
	return out, nil
}

type compactor struct {
	s      *SQLiteStore
	b      compactBounds
	tables map[int64]map[string]*compactTable
	stats  *CompactStats

	getRow, dropRow, dropTruncated *sql.Stmt

	seen      map[string]bool // rows changed later in the current chunk
	truncated map[string]bool // tables truncated later in the current chunk
	kb        []byte

	// fates are the last chunk's decisions, one per change.
	fates []fate
	// bucketMode is set while bucket entries are compacted (see compactBuckets).
	bucketMode bool
	// bucketsDone is the last version whose bucket entries were compacted.
	bucketsDone int64
}

// fate is what compaction does with one stored change.
type fate uint8

const (
	keep  fate = iota
	drop       // remove it
	strip      // keep it without its old key (the old key's tombstone is gone)
)

type storedChunk struct {
	id     int64
	n      int64
	data   []byte
	schema int64
}

type versionDelta struct {
	changes, bytes, chunks int64
}

// step compacts the chunks from id from (up to end) in one write transaction and
// returns where the next step starts.
func (c *compactor) step(ctx context.Context, from, end int64) (int64, error) {
	s := c.s
	if err := s.lockWriter(ctx); err != nil {
		return 0, fmt.Errorf("compact: %w", err)
	}
	defer s.unlockWriter()
	tx, err := s.wconn.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("compact: %w", err)
	}
	defer tx.Rollback()

	chunks, next, err := c.load(ctx, tx, from, end)
	if err != nil {
		return 0, err
	}
	upTo := c.b.h
	if next < end && len(chunks) > 0 {
		upTo, _ = splitChunkID(chunks[len(chunks)-1].id)
	}
	for _, p := range []struct {
		st **sql.Stmt
		q  string
	}{
		{&c.getRow, getRowSQL},
		{&c.dropRow, dropRowSQL},
		{&c.dropTruncated, dropTruncatedSQL},
	} {
		if *p.st, err = s.txStmt(ctx, tx, p.q); err != nil {
			return 0, fmt.Errorf("compact: prepare: %w", err)
		}
	}
	s.chunkRows.clear()
	// Bucket entries go first: compacting a chunk may drop index entries of its own
	// version, which decide for earlier bucket entries.
	if err := c.compactBuckets(ctx, tx, upTo); err != nil {
		return 0, err
	}
	deltas := map[int64]*versionDelta{}
	var order []int64
	var removed, removedBytes int64
	for _, ch := range chunks {
		data, kept, err := c.chunk(ctx, tx, ch)
		if err != nil {
			v, seq := splitChunkID(ch.id)
			return 0, fmt.Errorf("compact chunk %d.%d: %w", v, seq, err)
		}
		if kept == ch.n {
			continue
		}
		v, _ := splitChunkID(ch.id)
		d := deltas[v]
		if d == nil {
			d = &versionDelta{}
			deltas[v] = d
			order = append(order, v)
		}
		d.changes += ch.n - kept
		d.bytes += int64(len(ch.data) - len(data))
		if kept == 0 {
			d.chunks++
			_, err = tx.ExecContext(ctx, `DELETE FROM chunks WHERE id = ?`, ch.id)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE chunks SET n = ?, data = ? WHERE id = ?`, kept, data, ch.id)
		}
		if err != nil {
			return 0, fmt.Errorf("compact: rewrite chunk: %w", err)
		}
		c.stats.ChunksRewritten++
	}
	for _, v := range order {
		d := deltas[v]
		lo, hi := chunkID(v, 0), chunkID(v, maxChunkSeq)
		if _, err := tx.ExecContext(ctx, `UPDATE versions SET changes = changes - ?, bytes = bytes - ?, chunks = chunks - ?,
			last_seq = coalesce((SELECT max(id) FROM chunks WHERE id BETWEEN ? AND ?) - ?, -1) WHERE version = ?`,
			d.changes, d.bytes, d.chunks, lo, hi, lo, v); err != nil {
			return 0, fmt.Errorf("compact: update version %d: %w", v, err)
		}
		removed += d.changes
		removedBytes += d.bytes
	}
	if removed > 0 || removedBytes > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE state SET entries = entries - ?, bytes = bytes - ? WHERE id = 1`, removed, removedBytes); err != nil {
			return 0, fmt.Errorf("compact: update counters: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("compact: commit: %w", err)
	}
	s.mu.Lock()
	s.committed.entries -= removed
	s.committed.bytes -= removedBytes
	s.mu.Unlock()
	c.stats.ChangesRemoved += removed
	return next, nil
}

// load reads the next chunks to examine, about CompactStepChanges changes' worth.
func (c *compactor) load(ctx context.Context, tx *sql.Tx, from, end int64) ([]storedChunk, int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT c.id, c.n, c.data, v.schema_version FROM chunks c JOIN versions v ON v.version = c.id >> 20
		WHERE c.id >= ? AND c.id < ? ORDER BY c.id`, from, end)
	if err != nil {
		return nil, 0, fmt.Errorf("compact: read chunks: %w", err)
	}
	defer rows.Close()
	var (
		out   []storedChunk
		total int64
	)
	next := end
	for rows.Next() {
		var ch storedChunk
		if err := rows.Scan(&ch.id, &ch.n, &ch.data, &ch.schema); err != nil {
			return nil, 0, fmt.Errorf("compact: read chunks: %w", err)
		}
		out = append(out, ch)
		total += ch.n
		if total >= int64(c.s.cfg.CompactStepChanges) {
			next = ch.id + 1
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("compact: read chunks: %w", err)
	}
	return out, next, nil
}

// chunk decides the fate of every change of one chunk, newest first, and returns the
// rewritten data and how many changes it keeps.
func (c *compactor) chunk(ctx context.Context, tx *sql.Tx, ch storedChunk) ([]byte, int64, error) {
	v, seq := splitChunkID(ch.id)
	if c.bucketMode {
		// Past every chunk of v: the row index never counts as a later change within
		// v, and its entries are never dropped for a bucket entry.
		seq = maxChunkSeq + 1
	}
	var elems [][]byte
	if err := eachElem(ch.data, func(e []byte) error { elems = append(elems, e); return nil }); err != nil {
		return nil, 0, err
	}
	fates := make([]fate, len(elems))
	c.fates = fates
	parsed := make([]rawChange, len(elems))
	clear(c.seen)
	clear(c.truncated)
	tables := c.tables[ch.schema]
	for i := len(elems) - 1; i >= 0; i-- {
		rc, err := parseRawChange(elems[i])
		if err != nil {
			return nil, 0, err
		}
		parsed[i] = rc
		qt := string(rc.table)
		if c.truncated[qt] {
			fates[i] = drop
			continue
		}
		tbl := tables[qt]
		if tbl == nil {
			continue // a table unknown to its schema version is kept as it is
		}
		switch rc.op {
		case 't':
			c.truncated[qt] = true
			if v <= c.b.drop {
				fates[i] = drop
				if _, err := c.dropTruncated.ExecContext(ctx, tbl.name, v, seq); err != nil {
					return nil, 0, fmt.Errorf("drop truncated rows of %s: %w", tbl.name, err)
				}
			}
		case 'd':
			key := string(appendKeyFromKey(c.kb[:0], rc.key))
			sup, err := c.superseded(ctx, qt, tbl.name, key, v, seq, true)
			if err != nil {
				return nil, 0, err
			}
			switch {
			case sup:
				fates[i] = drop
			case v <= c.b.drop:
				fates[i] = drop
				if _, err := c.dropRow.ExecContext(ctx, tbl.name, key, v, seq); err != nil {
					return nil, 0, fmt.Errorf("drop tombstone of %s %s: %w", tbl.name, key, err)
				}
			}
		case 'i', 'u':
			key := string(appendKeyFromRow(c.kb[:0], rc.row, tbl.qkeys))
			newSup, err := c.superseded(ctx, qt, tbl.name, key, v, seq, false)
			if err != nil {
				return nil, 0, err
			}
			oldSup, oldGone := true, false
			if rc.key != nil {
				old := string(appendKeyFromKey(c.kb[:0], rc.key))
				if oldSup, err = c.superseded(ctx, qt, tbl.name, old, v, seq, true); err != nil {
					return nil, 0, err
				}
				if !oldSup && v <= c.b.drop {
					oldGone = true
					if _, err := c.dropRow.ExecContext(ctx, tbl.name, old, v, seq); err != nil {
						return nil, 0, fmt.Errorf("drop tombstone of %s %s: %w", tbl.name, old, err)
					}
				}
			}
			switch {
			case newSup && (oldSup || oldGone):
				fates[i] = drop
			case oldGone:
				fates[i] = strip
			}
		}
	}
	var kept int64
	for _, f := range fates {
		if f != drop {
			kept++
		}
	}
	if kept == int64(len(elems)) {
		return ch.data, kept, nil
	}
	out := make([]byte, 0, len(ch.data))
	out = append(out, '[')
	for i, e := range elems {
		switch fates[i] {
		case drop:
			continue
		case strip:
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, `{"t":`...)
			out = append(out, parsed[i].table...)
			out = append(out, `,"op":"u","row":`...)
			out = append(out, parsed[i].row...)
			out = append(out, '}')
		default:
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, e...)
		}
	}
	out = append(out, ']')
	if kept == 0 {
		out = out[:0]
	}
	return out, kept, nil
}

// superseded reports whether the row (qt, key) changes again after chunk (v, seq):
// later in the same chunk, or — by the row index — in a later chunk of a version no
// newer than the seal. It also records the row as seen for earlier changes.
func (c *compactor) superseded(ctx context.Context, qt, table, key string, v int64, seq int, tombstone bool) (bool, error) {
	sk := qt + "\x00" + key
	if c.seen[sk] {
		return true, nil
	}
	c.seen[sk] = true
	if c.bucketMode && tombstone {
		// A later change of the row may be in another bucket (it moved out), so in
		// a bucket only a later change in the same entry supersedes a delete.
		return false, nil
	}
	var (
		rv      int64
		rs      int
		deleted bool
	)
	err := c.getRow.QueryRowContext(ctx, table, key).Scan(&rv, &rs, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read row index %s %s: %w", table, key, err)
	}
	later := rv > v || (rv == v && rs > seq)
	return later && rv <= c.b.seal, nil
}

// compactBuckets compacts the bucket entries of versions after bucketsDone up to upTo
// by the rules chunks follow, except that a delete is dropped only with the
// tombstones (see superseded), and records upTo as done.
func (c *compactor) compactBuckets(ctx context.Context, tx *sql.Tx, upTo int64) error {
	if upTo <= c.bucketsDone {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT e.bucket, e.version, e.n, e.ords, e.data, v.schema_version
		FROM bentries e JOIN versions v ON v.version = e.version
		WHERE e.version > ? AND e.version <= ? ORDER BY e.version, e.bucket`, c.bucketsDone, upTo)
	if err != nil {
		return fmt.Errorf("compact: read bucket entries: %w", err)
	}
	type entry struct {
		bucket int64
		storedChunk
		ords []byte
	}
	var es []entry
	for rows.Next() {
		var (
			e entry
			v int64
		)
		if err := rows.Scan(&e.bucket, &v, &e.n, &e.ords, &e.data, &e.schema); err != nil {
			rows.Close()
			return fmt.Errorf("compact: read bucket entries: %w", err)
		}
		e.id = chunkID(v, 0)
		es = append(es, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("compact: read bucket entries: %w", err)
	}
	c.bucketMode = true
	defer func() { c.bucketMode = false }()
	for _, e := range es {
		v, _ := splitChunkID(e.id)
		data, kept, err := c.chunk(ctx, tx, e.storedChunk)
		if err != nil {
			return fmt.Errorf("compact bucket entry %d of version %d: %w", e.bucket, v, err)
		}
		if kept == e.n {
			continue
		}
		if kept == 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM bentries WHERE bucket = ? AND version = ?`, e.bucket, v)
		} else {
			ords, perr := parseOrds(e.ords)
			if perr != nil || len(ords) != len(c.fates) {
				return fmt.Errorf("compact bucket entry %d of version %d: ordinals %q do not match its %d changes", e.bucket, v, e.ords, len(c.fates))
			}
			var kb []byte
			for i, f := range c.fates {
				if f == drop {
					continue
				}
				if len(kb) > 0 {
					kb = append(kb, ',')
				}
				kb = strconv.AppendInt(kb, ords[i], 10)
			}
			_, err = tx.ExecContext(ctx, `UPDATE bentries SET n = ?, ords = ?, data = ? WHERE bucket = ? AND version = ?`, kept, kb, data, e.bucket, v)
		}
		if err != nil {
			return fmt.Errorf("compact: rewrite bucket entry: %w", err)
		}
	}
	c.bucketsDone = upTo
	return nil
}
