package changelog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/rules"
)

// The bucket index. With sync rules set (SetRules), every change of a table some
// group's rules include is also stored, encoded for that group (column allow-list
// applied), under each bucket its before and after row images belong to: one
// bentries row per (bucket, version) holding the version's changes in that bucket and
// their ordinals in the version. A row that moves between buckets is a delete (key
// only) in the old bucket and an insert (whole row) in the new one. A pull scoped to
// an edge's buckets reads only those rows and serves their bytes as they are.
var bucketDDL = []string{
	`CREATE TABLE buckets (
		id INTEGER PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		grp TEXT NOT NULL,
		tbl TEXT NOT NULL)`,
	`CREATE INDEX buckets_tbl ON buckets (grp, tbl)`,
	// ords lists the changes' ordinals in their version (comma-separated), so that
	// several buckets' changes of one version are sent in commit order.
	`CREATE TABLE bentries (
		bucket INTEGER NOT NULL,
		version INTEGER NOT NULL,
		n INTEGER NOT NULL,
		ords TEXT NOT NULL,
		data BLOB NOT NULL,
		PRIMARY KEY (bucket, version)) WITHOUT ROWID`,
	`CREATE INDEX bentries_version ON bentries (version)`,
	// fingerprint identifies the rules the index was built with (rules.Set.Fingerprint).
	`CREATE TABLE bucket_state (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		fingerprint TEXT NOT NULL)`,
	`INSERT INTO bucket_state VALUES (1, '')`,
}

// bentriesSpec writes bucket entries in groups (see groupedInsert).
var bentriesSpec = groupedSpec{"bucket entries", `INSERT INTO bentries (bucket, version, n, ords, data) VALUES `, "(?,?,?,?,?)", "", []int{32, 1}, 0}

const (
	getBucketSQL      = `SELECT id FROM buckets WHERE name = ?`
	insertBucketSQL   = `INSERT INTO buckets (name, grp, tbl) VALUES (?, ?, ?)`
	bucketsOfTableSQL = `SELECT id FROM buckets WHERE grp = ? AND tbl = ? ORDER BY id`
	insertBEntrySQL   = `INSERT INTO bentries (bucket, version, n, ords, data) VALUES (?, ?, ?, ?, ?)`
)

// bucketQueries lists the bucket statements the writer prepares at open.
func bucketQueries() []string {
	return []string{getBucketSQL, insertBucketSQL, bucketsOfTableSQL, insertBEntrySQL}
}

// bucketWriter is the writer's bucket state; used only by the writer holding wsem.
type bucketWriter struct {
	set *rules.Set
	// ids caches bucket ids by name; cleared when a batch rolls back (ids it created
	// are gone).
	ids map[string]int64
	// pending holds the open version's changes per bucket id, in first-touched order.
	pending map[int64]*bucketBuf
	order   []int64
	// broken is an open version whose pending changes were lost by a rollback; it
	// must be discarded (DiscardUnfinished) before it can complete.
	broken int64
	// routes caches each table's rules with their column kinds, for schemaVersion.
	routes        map[string][]*route
	schemaVersion int64
}

type bucketBuf struct {
	data []byte // JSON array without its closing ]
	n    int
	ords []byte
}

// route is one rule applied to one table.
type route struct {
	rule    *rules.TableRule
	table   string
	qtable  []byte
	qcol    []byte // filter column, quoted; nil for filter all
	kind    cdc.Kind
	qkeys   [][]byte
	allowed map[string]bool // quoted allowed column names; nil: all
}

func (bw *bucketWriter) reset() {
	clear(bw.pending)
	bw.order = bw.order[:0]
}

// SetRules sets the sync rules the bucket index follows (nil: none) and checks them
// against the latest schema. If they differ from the rules the index was built with,
// the index is rebuilt from the stored changes before SetRules returns. Call it
// before the first Begin; it waits for the writer.
func (s *SQLiteStore) SetRules(ctx context.Context, set *rules.Set) error {
	if err := s.lockWriter(ctx); err != nil {
		return fmt.Errorf("set sync rules: %w", err)
	}
	defer s.unlockWriter()
	s.mu.Lock()
	ws := s.committed
	s.mu.Unlock()
	if len(ws.tables) > 0 {
		if err := set.Check(ws.tables); err != nil {
			return err
		}
	}
	var fp string
	if err := s.wconn.QueryRowContext(ctx, `SELECT fingerprint FROM bucket_state WHERE id = 1`).Scan(&fp); err != nil {
		return fmt.Errorf("set sync rules: read bucket index state: %w", err)
	}
	s.bw = bucketWriter{set: set, ids: map[string]int64{}, pending: map[int64]*bucketBuf{}}
	if fp == set.Fingerprint() {
		return nil
	}
	if err := s.rebuildBuckets(ctx, set); err != nil {
		s.bw = bucketWriter{set: set, ids: map[string]int64{}, pending: map[int64]*bucketBuf{}}
		return err
	}
	return nil
}

// routesFor returns the routes of table under the batch's schema.
func (b *sqliteBatch) routesFor(tbl *cdc.Table) []*route {
	bw := &b.s.bw
	if bw.set == nil {
		return nil
	}
	if bw.routes == nil || bw.schemaVersion != b.ws.schemaVersion {
		bw.routes = map[string][]*route{}
		bw.schemaVersion = b.ws.schemaVersion
	}
	rs, ok := bw.routes[tbl.Name]
	if !ok {
		rs = makeRoutes(bw.set, tbl)
		bw.routes[tbl.Name] = rs
	}
	return rs
}

func makeRoutes(set *rules.Set, tbl *cdc.Table) []*route {
	var rs []*route
	for _, r := range set.Tables(tbl.Name) {
		rt := &route{rule: r, table: tbl.Name, qtable: cdc.AppendJSONString(nil, tbl.Name), qkeys: quotedNames(tbl.PrimaryKey)}
		if r.Filter.Op != rules.OpAll {
			rt.qcol = cdc.AppendJSONString(nil, r.Filter.Column)
			if col, ok := tbl.Column(r.Filter.Column); ok {
				rt.kind = col.Kind
			}
		}
		if r.Columns != nil {
			rt.allowed = map[string]bool{}
			for _, c := range r.Columns {
				rt.allowed[string(cdc.AppendJSONString(nil, c))] = true
			}
		}
		rs = append(rs, rt)
	}
	return rs
}

// bucketOf returns the bucket of a raw row image, "" when it is in none.
func (rt *route) bucketOf(row []byte) string {
	if rt.qcol == nil {
		return rt.rule.TableBucket()
	}
	if row == nil {
		return ""
	}
	raw, ok := field(row, rt.qcol)
	if !ok {
		return ""
	}
	v, err := cdc.ParseJSONValue(rt.kind, raw)
	if err != nil {
		return ""
	}
	text, ok := rules.ValueText(v)
	if !ok {
		return ""
	}
	return rt.rule.ValueBucket(text)
}

// bucketOfValue returns the bucket of a filter column value.
func (rt *route) bucketOfValue(v cdc.Value) string {
	text, ok := rules.ValueText(v)
	if !ok {
		return ""
	}
	return rt.rule.ValueBucket(text)
}

// appendRow appends a raw row object limited to the route's allowed columns.
func (rt *route) appendRow(b, row []byte) []byte {
	if rt.allowed == nil {
		return append(b, row...)
	}
	b = append(b, '{')
	first := true
	_ = eachField(row, func(name, val []byte) bool {
		if !rt.allowed[string(name)] {
			return true
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, name...)
		b = append(b, ':')
		b = append(b, val...)
		return true
	})
	return append(b, '}')
}

// appendKeyObject appends the key object of a raw row, in key order.
func (rt *route) appendKeyObject(b, row []byte) []byte {
	b = append(b, '{')
	for i, qk := range rt.qkeys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, qk...)
		b = append(b, ':')
		if v, ok := field(row, qk); ok {
			b = append(b, v...)
		} else {
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}

// emit routes one stored change to the buckets of one route. oldB is the bucket of
// the row's image before the change ("" for none); rc is the change as stored.
func (bw *bucketWriter) emit(ctx context.Context, q bucketQuerier, rt *route, rc rawChange, oldB string, ord int64) error {
	add := func(bucket string, enc func(b []byte) []byte) error {
		id, err := bw.bucketID(ctx, q, rt, bucket)
		if err != nil {
			return err
		}
		bb := bw.pending[id]
		if bb == nil {
			bb = &bucketBuf{data: []byte{'['}}
			bw.pending[id] = bb
			bw.order = append(bw.order, id)
		} else {
			bb.data = append(bb.data, ',')
			bb.ords = append(bb.ords, ',')
		}
		bb.data = enc(bb.data)
		bb.ords = strconv.AppendInt(bb.ords, ord, 10)
		bb.n++
		return nil
	}
	head := func(b []byte, op string) []byte {
		b = append(b, `{"t":`...)
		b = append(b, rt.qtable...)
		return append(b, `,"op":"`+op+`"`...)
	}
	insert := func(b []byte) []byte {
		b = head(b, "i")
		b = append(b, `,"row":`...)
		return append(rt.appendRow(b, rc.row), '}')
	}
	switch rc.op {
	case 'i':
		if nb := rt.bucketOf(rc.row); nb != "" {
			return add(nb, insert)
		}
	case 'u':
		nb := rt.bucketOf(rc.row)
		if nb != "" && nb == oldB {
			return add(nb, func(b []byte) []byte {
				b = head(b, "u")
				b = append(b, `,"row":`...)
				b = rt.appendRow(b, rc.row)
				if rc.key != nil {
					b = append(b, `,"key":`...)
					b = append(b, rc.key...)
				}
				return append(b, '}')
			})
		}
		if oldB != "" {
			err := add(oldB, func(b []byte) []byte {
				b = head(b, "d")
				b = append(b, `,"key":`...)
				if rc.key != nil {
					b = append(b, rc.key...)
				} else {
					b = rt.appendKeyObject(b, rc.row)
				}
				return append(b, '}')
			})
			if err != nil {
				return err
			}
		}
		if nb != "" {
			return add(nb, insert)
		}
	case 'd':
		if oldB != "" {
			return add(oldB, func(b []byte) []byte {
				b = head(b, "d")
				b = append(b, `,"key":`...)
				b = append(b, rc.key...)
				return append(b, '}')
			})
		}
	case 't':
		ids, err := bw.tableBuckets(ctx, q, rt)
		if err != nil {
			return err
		}
		for _, name := range ids {
			if err := add(name, func(b []byte) []byte { return append(head(b, "t"), '}') }); err != nil {
				return err
			}
		}
	}
	return nil
}

// bucketQuerier runs the writer's bucket statements.
type bucketQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// bucketID returns the id of a bucket, creating it.
func (bw *bucketWriter) bucketID(ctx context.Context, q bucketQuerier, rt *route, name string) (int64, error) {
	if id, ok := bw.ids[name]; ok {
		return id, nil
	}
	var id int64
	err := q.QueryRowContext(ctx, getBucketSQL, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		var res sql.Result
		if res, err = q.ExecContext(ctx, insertBucketSQL, name, rt.rule.Group, rt.table); err == nil {
			id, err = res.LastInsertId()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("bucket %s: %w", name, err)
	}
	bw.ids[name] = id
	return id, nil
}

// tableBuckets returns the names of every bucket of a route's group and table (a
// truncate empties them all).
func (bw *bucketWriter) tableBuckets(ctx context.Context, q bucketQuerier, rt *route) ([]string, error) {
	if rt.qcol == nil {
		return []string{rt.rule.TableBucket()}, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT name FROM buckets WHERE grp = ? AND tbl = ? ORDER BY id`, rt.rule.Group, rt.table)
	if err != nil {
		return nil, fmt.Errorf("buckets of %s: %w", rt.table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("buckets of %s: %w", rt.table, err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// writeVersion stores the open version's bucket entries with insert and clears them.
func (bw *bucketWriter) writeVersion(version int64, insert func(id, version int64, n int, ords, data []byte) error) error {
	if bw.broken != 0 && bw.broken == version {
		return fmt.Errorf("version %d: its bucket entries were lost when an earlier batch rolled back; discard the unfinished version (the source sends it again)", version)
	}
	for _, id := range bw.order {
		bb := bw.pending[id]
		bb.data = append(bb.data, ']')
		if err := insert(id, version, bb.n, bb.ords, bb.data); err != nil {
			return fmt.Errorf("store bucket entry of version %d: %w", version, err)
		}
	}
	bw.reset()
	return nil
}

// routeChange adds one change, already encoded at b.buf[start:], to the buckets of
// every rule of its table. olds holds, per route, the bucket of the row's previous
// image (see oldBuckets).
func (b *sqliteBatch) routeChange(rts []*route, olds []string, start int, ord int64) error {
	rc, err := parseRawChange(b.buf[start:])
	if err != nil {
		return err
	}
	for i, rt := range rts {
		if err := b.s.bw.emit(b.ctx, b.s.wconn, rt, rc, olds[i], ord); err != nil {
			return err
		}
	}
	return nil
}

// oldBuckets returns, per route, the bucket of the row's image before change c: from
// c.Before when it holds the filter column, else from the row's latest image in the
// log (key is the row's key text before the change).
func (b *sqliteBatch) oldBuckets(rts []*route, tbl *cdc.Table, c *cdc.Change, key string) ([]string, error) {
	olds := make([]string, len(rts))
	if c.Op == cdc.OpInsert || c.Op == cdc.OpTruncate {
		return olds, nil
	}
	var (
		img    []byte
		loaded bool
	)
	for i, rt := range rts {
		if rt.qcol == nil {
			olds[i] = rt.rule.TableBucket()
			continue
		}
		if f := fieldOf(c.Before, rt.rule.Filter.Column); f != nil && !f.Unchanged {
			olds[i] = rt.bucketOfValue(f.Value)
			continue
		}
		if !loaded {
			loaded = true
			b.s.rows.enable(tbl.Name)
			var ok bool
			if img, ok = b.s.rows.get(tbl.Name, key); !ok {
				var err error
				if img, _, err = b.loadImage(tbl, key); err != nil {
					return nil, fmt.Errorf("read latest image of %s %s: %w", tbl.Name, key, err)
				}
			}
		}
		olds[i] = rt.bucketOf(img)
	}
	return olds, nil
}

func fieldOf(r cdc.Row, name string) *cdc.Field {
	for i := range r {
		if r[i].Name == name {
			return &r[i]
		}
	}
	return nil
}

// rebuildBuckets replaces the bucket index with one built by set from the stored
// changes, in one write transaction. Rows' buckets are tracked in memory while the
// log is replayed in version order.
func (s *SQLiteStore) rebuildBuckets(ctx context.Context, set *rules.Set) error {
	tx, err := s.wconn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rebuild bucket index: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{`DELETE FROM bentries`, `DELETE FROM buckets`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("rebuild bucket index: %w", err)
		}
	}
	bw := &s.bw
	var versions, entries int64
	if set != nil {
		schemas, err := s.loadSchemaTables(ctx, tx)
		if err != nil {
			return err
		}
		s.mu.Lock()
		head := s.committed.head
		s.mu.Unlock()
		r := &rebuilder{bw: bw, set: set, schemas: schemas, where: map[string]string{}, routes: map[int64]map[string][]*route{},
			insert: tx.StmtContext(ctx, s.prepared[insertBEntrySQL])}
		if versions, entries, err = r.run(ctx, tx, head); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE bucket_state SET fingerprint = ? WHERE id = 1`, set.Fingerprint()); err != nil {
		return fmt.Errorf("rebuild bucket index: %w", err)
	}
	// What edges hold was chosen by the previous rules (or by none), so every
	// watermark must become too old: an empty version is added after the head and the
	// tombstone horizon moved onto it, so each edge re-bootstraps into its new scope
	// and keeps no row outside it (and a re-bootstrapped edge is past the horizon).
	// The empty version keeps the head's commit time and position.
	s.mu.Lock()
	w := s.committed
	s.mu.Unlock()
	marked := w.head > 0
	if marked {
		if w.open.version != 0 {
			return fmt.Errorf("rebuild bucket index: version %d is open; set the rules before ingest starts", w.open.version)
		}
		v := w.head + 1
		if _, err := tx.ExecContext(ctx, `INSERT INTO versions (version, origin, commit_us, schema_version, changes, bytes, chunks, last_seq)
			VALUES (?, '', ?, ?, 0, 0, 0, -1)`, v, w.headUS, w.schemaVersion); err != nil {
			return fmt.Errorf("rebuild bucket index: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE state SET head = ?, tombstone_horizon = ? WHERE id = 1`, v, max(w.tombstoneHorizon, v)); err != nil {
			return fmt.Errorf("rebuild bucket index: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rebuild bucket index: %w", err)
	}
	if marked {
		s.mu.Lock()
		s.committed.head++
		s.committed.tombstoneHorizon = max(s.committed.tombstoneHorizon, s.committed.head)
		close(s.changed)
		s.changed = make(chan struct{})
		h := s.committed.head
		s.mu.Unlock()
		s.log.Warn("sync rules changed: every edge re-bootstraps into its new scope", "head", h, "tombstone_horizon", h)
	}
	s.log.Info("bucket index rebuilt for the configured sync rules", "groups", len(set.Groups()), "versions", versions, "bucket_entries", entries)
	return nil
}

// loadSchemaTables returns every schema version's tables by name.
func (s *SQLiteStore) loadSchemaTables(ctx context.Context, q bucketQuerier) (map[int64]map[string]*cdc.Table, error) {
	rows, err := q.QueryContext(ctx, `SELECT version, body FROM schemas`)
	if err != nil {
		return nil, fmt.Errorf("rebuild bucket index: load schemas: %w", err)
	}
	defer rows.Close()
	out := map[int64]map[string]*cdc.Table{}
	for rows.Next() {
		var (
			v    int64
			body []byte
		)
		if err := rows.Scan(&v, &body); err != nil {
			return nil, fmt.Errorf("rebuild bucket index: load schemas: %w", err)
		}
		tables, err := decodeSchemaTables(body)
		if err != nil {
			return nil, fmt.Errorf("rebuild bucket index: schema version %d: %w", v, err)
		}
		out[v] = tables
	}
	return out, rows.Err()
}

// rebuilder replays the log into the bucket index.
type rebuilder struct {
	bw      *bucketWriter
	set     *rules.Set
	schemas map[int64]map[string]*cdc.Table
	routes  map[int64]map[string][]*route
	// where maps group, table and key text to the row's current bucket.
	where  map[string]string
	kb     []byte
	insert *sql.Stmt
}

func (r *rebuilder) routesFor(schema int64, qtable []byte) ([]*route, *cdc.Table) {
	name, err := cdc.UnquoteJSONString(qtable)
	if err != nil {
		return nil, nil
	}
	tbl := r.schemas[schema][name]
	if tbl == nil {
		return nil, nil
	}
	m := r.routes[schema]
	if m == nil {
		m = map[string][]*route{}
		r.routes[schema] = m
	}
	rs, ok := m[name]
	if !ok {
		rs = makeRoutes(r.set, tbl)
		m[name] = rs
	}
	return rs, tbl
}

func (r *rebuilder) run(ctx context.Context, tx *sql.Tx, head int64) (versions, entries int64, err error) {
	rows, err := tx.QueryContext(ctx, `SELECT c.id, c.data, v.schema_version FROM chunks c JOIN versions v ON v.version = c.id >> 20
		WHERE c.id < ? ORDER BY c.id`, chunkID(head+1, 0))
	if err != nil {
		return 0, 0, fmt.Errorf("rebuild bucket index: read chunks: %w", err)
	}
	type chunk struct {
		id, schema int64
		data       []byte
	}
	var chunks []chunk
	for rows.Next() {
		var c chunk
		if err := rows.Scan(&c.id, &c.data, &c.schema); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("rebuild bucket index: read chunks: %w", err)
		}
		chunks = append(chunks, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("rebuild bucket index: read chunks: %w", err)
	}
	r.bw.reset()
	var curV, ord int64
	flush := func() error {
		if curV == 0 {
			return nil
		}
		entries += int64(len(r.bw.order))
		versions++
		return r.bw.writeVersion(curV, func(id, version int64, n int, ords, data []byte) error {
			_, err := r.insert.ExecContext(ctx, id, version, n, ords, data)
			return err
		})
	}
	for _, c := range chunks {
		v, _ := splitChunkID(c.id)
		if v != curV {
			if err := flush(); err != nil {
				return 0, 0, err
			}
			curV, ord = v, 0
		}
		err := eachElem(c.data, func(elem []byte) error {
			rc, err := parseRawChange(elem)
			if err != nil {
				return err
			}
			defer func() { ord++ }()
			rts, tbl := r.routesFor(c.schema, rc.table)
			for _, rt := range rts {
				if err := r.replay(ctx, tx, rt, tbl, rc, ord); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, 0, fmt.Errorf("rebuild bucket index: chunk %d: %w", c.id, err)
		}
	}
	if err := flush(); err != nil {
		return 0, 0, err
	}
	return versions, entries, nil
}

func (r *rebuilder) replay(ctx context.Context, tx *sql.Tx, rt *route, tbl *cdc.Table, rc rawChange, ord int64) error {
	prefix := rt.rule.Group + "\x00" + rt.table + "\x00"
	var oldKey, newKey string
	if rc.key != nil {
		oldKey = prefix + string(appendKeyFromKey(r.kb[:0], rc.key))
	}
	if rc.row != nil {
		newKey = prefix + string(appendKeyFromRow(r.kb[:0], rc.row, rt.qkeys))
		if oldKey == "" {
			oldKey = newKey
		}
	}
	var oldB string
	switch {
	case rc.op == 't':
		for k := range r.where {
			if len(k) > len(prefix) && k[:len(prefix)] == prefix {
				delete(r.where, k)
			}
		}
	case rt.qcol == nil && rc.op != 'i':
		oldB = rt.rule.TableBucket()
	case rc.op != 'i':
		oldB = r.where[oldKey]
	}
	if err := r.bw.emit(ctx, tx, rt, rc, oldB, ord); err != nil {
		return err
	}
	switch rc.op {
	case 'd':
		delete(r.where, oldKey)
	case 'i', 'u':
		if oldKey != newKey {
			delete(r.where, oldKey)
		}
		if nb := rt.bucketOf(rc.row); nb != "" {
			r.where[newKey] = nb
		} else {
			delete(r.where, newKey)
		}
	}
	return nil
}

// parseOrds parses comma-separated ordinals.
func parseOrds(b []byte) ([]int64, error) {
	var out []int64
	start := 0
	for i := 0; i <= len(b); i++ {
		if i < len(b) && b[i] != ',' {
			continue
		}
		n, err := strconv.ParseInt(string(b[start:i]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bucket entry ordinals %q: %w", b, err)
		}
		out = append(out, n)
		start = i + 1
	}
	return out, nil
}

// decodeSchemaTables decodes a stored schema version's tables by name.
func decodeSchemaTables(body []byte) (map[string]*cdc.Table, error) {
	var sr struct {
		Tables []cdc.Table `json:"tables"`
	}
	if err := json.Unmarshal(body, &sr); err != nil {
		return nil, err
	}
	out := make(map[string]*cdc.Table, len(sr.Tables))
	for i := range sr.Tables {
		out[sr.Tables[i].Name] = &sr.Tables[i]
	}
	return out, nil
}
