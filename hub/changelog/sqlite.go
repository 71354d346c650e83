package changelog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// SQLiteConfig configures a SQLiteStore.
type SQLiteConfig struct {
	// Path is the database file; it is created when missing. Its folder must exist.
	Path string
	// ChunkChanges is the most changes stored in one chunk (one page entry).
	ChunkChanges int
	// ChunkBytes closes a chunk early once its encoded changes reach this size.
	ChunkBytes int
	// PageLimit is the change limit used when a PageRequest has none.
	PageLimit int
	// MaxPageBytes stops a page once its body reaches this size (a page still holds at
	// least one chunk).
	MaxPageBytes int
	// ReadConns is the size of the read pool that serves pages, so that long reads
	// never wait for the writer.
	ReadConns int
	// Synchronous is SQLite's synchronous setting for the writer: "NORMAL" or "FULL".
	// In WAL mode NORMAL loses nothing when the hub process dies (kill -9): a commit
	// is in the WAL file before Commit returns and the source is acknowledged only
	// after that. Only an operating-system crash or power loss can drop the last
	// commits; FULL syncs the WAL on every commit to survive that too, at a cost in
	// commit latency.
	Synchronous string
	// BusyTimeout is how long a connection waits for a lock held by another process
	// (a backup tool, the sqlite3 CLI) before failing.
	BusyTimeout time.Duration
	// CacheKiB is the writer connection's page cache size; readers get a quarter each.
	CacheKiB int
	// RowCacheEntries and RowCacheBytes bound the in-memory cache of recent row images
	// used to fill unchanged (TOAST) columns without reading stored chunks. 0 entries
	// disables it.
	RowCacheEntries int
	RowCacheBytes   int
	// CompactStepChanges bounds the changes one compaction write transaction
	// examines, so ingest is never held up for long.
	CompactStepChanges int
}

// DefaultSQLiteConfig returns the defaults; only Path must be set.
func DefaultSQLiteConfig() SQLiteConfig {
	return SQLiteConfig{
		ChunkChanges:       500,
		ChunkBytes:         1 << 20,
		PageLimit:          1000,
		MaxPageBytes:       16 << 20,
		ReadConns:          4,
		Synchronous:        "NORMAL",
		BusyTimeout:        5 * time.Second,
		CacheKiB:           64 << 10,
		RowCacheEntries:    8192,
		RowCacheBytes:      16 << 20,
		CompactStepChanges: 20000,
	}
}

// maxChunkSeq is the number of chunks one version can hold: chunk ids are
// version<<chunkSeqBits | seq, so ordering by id is ordering by (version, seq).
const (
	chunkSeqBits = 20
	maxChunkSeq  = 1<<chunkSeqBits - 1
	maxVersion   = 1<<(63-chunkSeqBits) - 1
)

func chunkID(version int64, seq int) int64 { return version<<chunkSeqBits | int64(seq) }

func splitChunkID(id int64) (version int64, seq int) {
	return id >> chunkSeqBits, int(id & maxChunkSeq)
}

// Validate reports the first invalid setting and how to fix it.
func (c SQLiteConfig) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("changelog sqlite path: missing; set a file path such as ./data/changelog.db")
	case c.Path == ":memory:" || strings.HasPrefix(c.Path, "file:") || strings.ContainsAny(c.Path, "?#"):
		return fmt.Errorf("changelog sqlite path %q: must be a plain file path without ?, # or a file: prefix (readers and the writer open it separately)", c.Path)
	case c.ChunkChanges < 1 || c.ChunkChanges > 1<<16:
		return fmt.Errorf("changelog sqlite chunk_changes %d: must be between 1 and 65536", c.ChunkChanges)
	case c.ChunkBytes < 1024:
		return fmt.Errorf("changelog sqlite chunk_bytes %d: must be at least 1024", c.ChunkBytes)
	case c.PageLimit < 1:
		return fmt.Errorf("changelog sqlite page_limit %d: must be at least 1", c.PageLimit)
	case c.MaxPageBytes < c.ChunkBytes:
		return fmt.Errorf("changelog sqlite max_page_bytes %d: must be at least chunk_bytes (%d)", c.MaxPageBytes, c.ChunkBytes)
	case c.ReadConns < 1:
		return fmt.Errorf("changelog sqlite read_conns %d: must be at least 1", c.ReadConns)
	case c.BusyTimeout < 0:
		return fmt.Errorf("changelog sqlite busy_timeout %v: must not be negative", c.BusyTimeout)
	case c.CacheKiB < 0:
		return fmt.Errorf("changelog sqlite cache_kib %d: must not be negative", c.CacheKiB)
	case c.RowCacheEntries < 0 || c.RowCacheBytes < 0:
		return fmt.Errorf("changelog sqlite row cache (%d entries, %d bytes): must not be negative", c.RowCacheEntries, c.RowCacheBytes)
	case c.CompactStepChanges < 1:
		return fmt.Errorf("changelog sqlite compact_step_changes %d: must be at least 1", c.CompactStepChanges)
	}
	switch strings.ToUpper(c.Synchronous) {
	case "NORMAL", "FULL":
	default:
		return fmt.Errorf("changelog sqlite synchronous %q: must be NORMAL (survives a hub crash) or FULL (also survives power loss)", c.Synchronous)
	}
	return nil
}

// SQLiteStore is the embedded change log in one SQLite file (WAL mode). One writer
// connection serves batches and compaction in turn; a separate read-only pool serves
// pages, rows and state, so long reads never block ingest.
type SQLiteStore struct {
	cfg SQLiteConfig
	log *slog.Logger
	wdb *sql.DB // exactly one connection
	// wconn is wdb's connection, held from open to Close: batches run their
	// transaction on it with BEGIN/COMMIT and the grouped inserts on its driver
	// connection. Used only by the writer holding wsem.
	wconn *sql.Conn
	rdb   *sql.DB // read-only pool
	wsem  chan struct{}

	// batchOpen is set while a Batch holds the writer; guarded by mu.
	mu        sync.Mutex
	batchOpen bool
	closed    bool
	committed writerState
	changed   chan struct{}
	schemaC   *schemaCache

	rows      *rowCache // used only by the writer holding wsem
	chunkRows chunkRows // used only by the writer holding wsem
	spare     struct {  // buffers a finished batch leaves to the next; writer only
		buf  []byte
		args [6][]driver.NamedValue
	}
	// prepared holds statements prepared once on the writer connection, by query;
	// used only by the writer holding wsem.
	prepared map[string]*sql.Stmt
	// driverStmts holds the grouped inserts, prepared once on wconn's driver
	// connection, by query; used only by the writer holding wsem, through wconn.Raw.
	driverStmts map[string]driver.StmtExecContext

	compactMu sync.Mutex

	bw bucketWriter // used only by the writer holding wsem
}

var _ Store = (*SQLiteStore)(nil)

type schemaCache struct {
	schema *cdc.Schema
	body   []byte
}

// writerState is the committed state the writer continues from; a batch works on a
// copy and publishes it on Commit.
type writerState struct {
	head             int64
	position         string
	sourceKind       string
	schemaVersion    int64
	compactedThrough int64
	compactSeal      int64 // head when compaction last dropped changes; see Compact
	tombstoneHorizon int64
	entries          int64
	bytes            int64
	headUS           int64
	tables           []cdc.Table
	byName           map[string]*cdc.Table
	open             openVersion
}

// openVersion is a version whose final part has not been appended yet.
type openVersion struct {
	version int64 // 0: none
	nextSeq int
	changes int64
	bytes   int64
	chunks  int
	lastSeq int
	origin  string
	batch   string // the push batch of a write-back (any part may carry it)
}

func (w *writerState) state() State {
	return State{
		Head:             w.head,
		Position:         w.position,
		SourceKind:       w.sourceKind,
		SchemaVersion:    w.schemaVersion,
		CompactedThrough: w.compactedThrough,
		TombstoneHorizon: w.tombstoneHorizon,
		Entries:          w.entries,
		Bytes:            w.bytes,
		HeadTime:         usTime(w.headUS),
	}
}

func usTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// batchVersionsDDL records which version holds each push batch's write-back, in the
// transaction that appends it (created on open, in files of any format).
const batchVersionsDDL = `CREATE TABLE IF NOT EXISTS batch_versions (batch TEXT PRIMARY KEY, version INTEGER NOT NULL)`

// BatchVersion returns the version that holds the write-back of push batch (see
// cdc.Tx.Batch), if the change log has it: recorded in the same transaction as the
// version, so it is known exactly once the version is committed. The push service
// drops records it no longer needs (DropBatchVersions).
func (s *SQLiteStore) BatchVersion(ctx context.Context, batch string) (int64, bool, error) {
	var v int64
	err := s.rdb.QueryRowContext(ctx, `SELECT version FROM batch_versions WHERE batch = ?`, batch).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the version of push batch %s: %w", batch, err)
	}
	return v, true, nil
}

// DropBatchVersions forgets the push batches of versions up to through.
func (s *SQLiteStore) DropBatchVersions(ctx context.Context, through int64) error {
	if err := s.lockWriter(ctx); err != nil {
		return fmt.Errorf("drop push batch records: %w", err)
	}
	defer s.unlockWriter()
	if _, err := s.wconn.ExecContext(ctx, `DELETE FROM batch_versions WHERE version <= ?`, through); err != nil {
		return fmt.Errorf("drop push batch records: %w", err)
	}
	return nil
}

// formatVersion is the file format, kept in PRAGMA user_version.
const formatVersion = 2

var schemaDDL = []string{
	`CREATE TABLE state (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		head INTEGER NOT NULL,
		position TEXT NOT NULL,
		source_kind TEXT NOT NULL,
		schema_version INTEGER NOT NULL,
		compacted_through INTEGER NOT NULL,
		compact_seal INTEGER NOT NULL,
		tombstone_horizon INTEGER NOT NULL,
		entries INTEGER NOT NULL,
		bytes INTEGER NOT NULL,
		head_us INTEGER NOT NULL)`,
	`INSERT INTO state VALUES (1, 0, '', '', 0, 0, 0, 0, 0, 0, 0)`,
	`CREATE TABLE versions (
		version INTEGER PRIMARY KEY,
		origin TEXT NOT NULL,
		commit_us INTEGER NOT NULL,
		schema_version INTEGER NOT NULL,
		changes INTEGER NOT NULL,
		bytes INTEGER NOT NULL,
		chunks INTEGER NOT NULL,
		last_seq INTEGER NOT NULL)`,
	// id is version<<20 | seq (see chunkID): a rowid table keeps the large data
	// blobs out of an index b-tree and orders chunks by (version, seq).
	`CREATE TABLE chunks (
		id INTEGER PRIMARY KEY,
		n INTEGER NOT NULL,
		data BLOB NOT NULL)`,
	// rows is the per-row index: the latest version (and chunk) that touched a row.
	// pv/ps/po/pd hold the entry as it was before the current version for rows
	// touched by a version that may be committed unfinished, so that Open can undo
	// a version a crash left incomplete.
	`CREATE TABLE rows (
		tbl TEXT NOT NULL,
		key TEXT NOT NULL,
		version INTEGER NOT NULL,
		seq INTEGER NOT NULL,
		origin TEXT NOT NULL,
		deleted INTEGER NOT NULL,
		pv INTEGER, ps INTEGER, po TEXT, pd INTEGER,
		PRIMARY KEY (tbl, key)) WITHOUT ROWID`,
	`CREATE TABLE schemas (
		version INTEGER PRIMARY KEY,
		body BLOB NOT NULL)`,
}

var userVersionSQL = `PRAGMA user_version = ` + strconv.Itoa(formatVersion)

// migrateBuckets upgrades a format 1 change log: it adds the bucket index, empty (a
// change log written without sync rules has none).
func (s *SQLiteStore) migrateBuckets(ctx context.Context) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("upgrade change log format 1 to %d: %w", formatVersion, err)
	}
	defer tx.Rollback()
	for _, q := range append(slices.Clone(bucketDDL), userVersionSQL) {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("upgrade change log format 1 to %d: %w", formatVersion, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("upgrade change log format 1 to %d: %w", formatVersion, err)
	}
	s.log.Info("change log format upgraded", "from", 1, "to", formatVersion)
	return nil
}

func (c SQLiteConfig) dsn(write bool) string {
	q := []string{
		"_pragma=busy_timeout(" + strconv.FormatInt(c.BusyTimeout.Milliseconds(), 10) + ")",
		"_pragma=foreign_keys(0)",
	}
	if write {
		q = append(q,
			"_pragma=journal_mode(WAL)",
			"_pragma=synchronous("+strings.ToUpper(c.Synchronous)+")",
			"_pragma=cache_size(-"+strconv.Itoa(c.CacheKiB)+")",
			"_pragma=wal_autocheckpoint(10000)",
			// Statement journals (multi-row inserts into the bucket index touch pages
			// all over its b-tree) stay in memory instead of a temporary file.
			"_pragma=temp_store(2)",
			"_txlock=immediate")
	} else {
		q = append(q,
			"_pragma=query_only(1)",
			"_pragma=cache_size(-"+strconv.Itoa(max(c.CacheKiB/4, 2048))+")")
	}
	return c.Path + "?" + strings.Join(q, "&")
}

// OpenSQLite opens (creating if needed) the change log at cfg.Path, upgrades its file
// format, and discards a version a crash left incomplete.
func OpenSQLite(ctx context.Context, cfg SQLiteConfig, log *slog.Logger) (*SQLiteStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wdb, err := sql.Open("sqlite", cfg.dsn(true))
	if err != nil {
		return nil, fmt.Errorf("open change log %s: %w", cfg.Path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	s := &SQLiteStore{
		cfg:         cfg,
		log:         log,
		wdb:         wdb,
		wsem:        make(chan struct{}, 1),
		changed:     make(chan struct{}),
		rows:        newRowCache(cfg.RowCacheEntries, cfg.RowCacheBytes),
		prepared:    map[string]*sql.Stmt{},
		driverStmts: map[string]driver.StmtExecContext{},
	}
	if err := s.migrate(ctx); err != nil {
		wdb.Close()
		return nil, err
	}
	if _, err := s.wdb.ExecContext(ctx, batchVersionsDDL); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("create change log tables: %w", err)
	}
	if err := s.recover(ctx); err != nil {
		wdb.Close()
		return nil, err
	}
	if err := s.prepareWriter(ctx); err != nil {
		s.Close()
		return nil, err
	}
	rdb, err := sql.Open("sqlite", cfg.dsn(false))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open change log %s for reading: %w", cfg.Path, err)
	}
	rdb.SetMaxOpenConns(cfg.ReadConns)
	rdb.SetMaxIdleConns(cfg.ReadConns)
	s.rdb = rdb
	if err := rdb.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open change log %s for reading: %w", cfg.Path, err)
	}
	st := s.committed.state()
	log.Info("change log opened", "path", cfg.Path, "head", st.Head, "schema_version", st.SchemaVersion,
		"entries", st.Entries, "bytes", st.Bytes, "synchronous", strings.ToUpper(cfg.Synchronous))
	return s, nil
}

func (s *SQLiteStore) migrate(ctx context.Context) error {
	var mode string
	if err := s.wdb.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("open change log %s: %w (is it a SQLite file?)", s.cfg.Path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("open change log %s: journal mode is %s, not WAL; the file system may not support WAL (use a local disk)", s.cfg.Path, mode)
	}
	var uv int
	if err := s.wdb.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&uv); err != nil {
		return fmt.Errorf("read change log format: %w", err)
	}
	switch {
	case uv == formatVersion:
		return nil
	case uv == 1:
		return s.migrateBuckets(ctx)
	case uv > formatVersion:
		return fmt.Errorf("change log %s has format %d, newer than this synchub understands (%d): upgrade synchub or point store.path at another file", s.cfg.Path, uv, formatVersion)
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create change log tables: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil {
		return fmt.Errorf("create change log tables: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("change log %s already holds tables that synchub did not create: point store.path at a new file", s.cfg.Path)
	}
	for _, q := range append(append(slices.Clone(schemaDDL), bucketDDL...), userVersionSQL) {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create change log tables: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create change log tables: %w", err)
	}
	return nil
}

// recover loads the committed state and discards what a crash left of an unfinished
// version: its chunks, and its row-index entries (restored from their previous values).
func (s *SQLiteStore) recover(ctx context.Context) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("load change log state: %w", err)
	}
	defer tx.Rollback()
	w := &s.committed
	err = tx.QueryRowContext(ctx, `SELECT head, position, source_kind, schema_version, compacted_through, compact_seal,
		tombstone_horizon, entries, bytes, head_us FROM state WHERE id = 1`).Scan(&w.head, &w.position,
		&w.sourceKind, &w.schemaVersion, &w.compactedThrough, &w.compactSeal, &w.tombstoneHorizon, &w.entries, &w.bytes, &w.headUS)
	if err != nil {
		return fmt.Errorf("load change log state: %w", err)
	}
	if w.schemaVersion > 0 {
		var body []byte
		if err := tx.QueryRowContext(ctx, `SELECT body FROM schemas WHERE version = ?`, w.schemaVersion).Scan(&body); err != nil {
			return fmt.Errorf("load schema version %d: %w", w.schemaVersion, err)
		}
		var sr syncproto.SchemaResponse
		if err := json.Unmarshal(body, &sr); err != nil {
			return fmt.Errorf("decode schema version %d: %w", w.schemaVersion, err)
		}
		w.setTables(sr.Tables)
	}
	from := chunkID(w.head+1, 0)
	var n, changes, bytes int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(n), 0), coalesce(sum(length(data)), 0) FROM chunks WHERE id >= ?`,
		from).Scan(&n, &changes, &bytes); err != nil {
		return fmt.Errorf("find unfinished version: %w", err)
	}
	if n == 0 {
		return nil
	}
	s.log.Warn("discarding a version left unfinished by a crash; the source will send it again",
		"version", w.head+1, "chunks", n, "changes", changes)
	if err := discardAfter(ctx, tx, w.head); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE state SET entries = entries - ?, bytes = bytes - ? WHERE id = 1`, changes, bytes); err != nil {
		return fmt.Errorf("discard unfinished version %d: %w", w.head+1, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("discard unfinished version %d: %w", w.head+1, err)
	}
	w.entries -= changes
	w.bytes -= bytes
	return nil
}

// discardAfter removes every trace of versions after head — chunks, version rows and
// row-index entries, which get their previous values back — inside tx.
func discardAfter(ctx context.Context, tx execer, head int64) error {
	stmts := []struct {
		q    string
		args []any
	}{
		{`UPDATE rows SET version = pv, seq = ps, origin = po, deleted = pd WHERE version > ? AND pv IS NOT NULL`, []any{head}},
		{`DELETE FROM rows WHERE version > ?`, []any{head}},
		{`DELETE FROM chunks WHERE id >= ?`, []any{chunkID(head+1, 0)}},
		{`DELETE FROM versions WHERE version > ?`, []any{head}},
		{`DELETE FROM bentries WHERE version > ?`, []any{head}},
		{`DELETE FROM batch_versions WHERE version > ?`, []any{head}},
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
			return fmt.Errorf("discard unfinished version %d: %w", head+1, err)
		}
	}
	return nil
}

// execer is a writer transaction: a *sql.Tx, or the writer connection inside BEGIN.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (w *writerState) setTables(tables []cdc.Table) {
	w.tables = tables
	w.byName = make(map[string]*cdc.Table, len(tables))
	for i := range tables {
		w.byName[tables[i].Name] = &tables[i]
	}
}

// lockWriter waits for the writer connection. A channel send hands the lock to a
// waiting goroutine in FIFO order when it is released, so compaction steps and
// batches interleave fairly.
func (s *SQLiteStore) lockWriter(ctx context.Context) error {
	select {
	case s.wsem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *SQLiteStore) unlockWriter() { <-s.wsem }

// prepareWriter takes the writer connection and prepares the writer's statements
// once, while it is idle: preparing the large grouped inserts for every batch costs
// more than a small batch's work.
func (s *SQLiteStore) prepareWriter(ctx context.Context) error {
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("prepare change log statements: %w", err)
	}
	s.wconn = conn
	for _, q := range writerQueries() {
		st, err := conn.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare change log statements: %w", err)
		}
		s.prepared[q] = st
	}
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("prepare change log statements: the sqlite driver connection (%T) cannot prepare with a context", dc)
		}
		for _, q := range groupedQueries() {
			st, err := pc.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("prepare change log statements: %w", err)
			}
			se, ok := st.(driver.StmtExecContext)
			if !ok {
				st.Close()
				return fmt.Errorf("prepare change log statements: the sqlite driver statement (%T) cannot execute with a context", st)
			}
			s.driverStmts[q] = se
		}
		return nil
	})
}

// txStmt returns query for use in tx, a writer transaction: the statement prepared
// at open, or one prepared for tx alone.
func (s *SQLiteStore) txStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st := s.prepared[query]; st != nil {
		return tx.StmtContext(ctx, st), nil
	}
	return tx.PrepareContext(ctx, query)
}

// State returns the committed state.
func (s *SQLiteStore) State(ctx context.Context) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return State{}, errClosed
	}
	return s.committed.state(), nil
}

var errClosed = errors.New("change log is closed")

// Changed returns a channel closed at the next commit that moves Head.
func (s *SQLiteStore) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Schema returns the latest committed schema and its encoded SchemaResponse. Both are
// shared with other callers and must not be modified.
func (s *SQLiteStore) Schema(ctx context.Context) (*cdc.Schema, []byte, error) {
	s.mu.Lock()
	version := s.committed.schemaVersion
	c := s.schemaC
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, nil, errClosed
	}
	if c != nil && c.schema.Version == version {
		return c.schema, c.body, nil
	}
	var body []byte
	if version == 0 {
		var err error
		if body, err = json.Marshal(syncproto.SchemaResponse{Tables: []cdc.Table{}}); err != nil {
			return nil, nil, fmt.Errorf("encode empty schema: %w", err)
		}
	} else if err := s.rdb.QueryRowContext(ctx, `SELECT body FROM schemas WHERE version = ?`, version).Scan(&body); err != nil {
		return nil, nil, fmt.Errorf("read schema version %d: %w", version, err)
	}
	var sr syncproto.SchemaResponse
	if err := json.Unmarshal(body, &sr); err != nil {
		return nil, nil, fmt.Errorf("decode schema version %d: %w", version, err)
	}
	c = &schemaCache{schema: &cdc.Schema{Version: sr.Version, Tables: sr.Tables}, body: body}
	s.mu.Lock()
	s.schemaC = c
	s.mu.Unlock()
	return c.schema, c.body, nil
}

// Row returns the committed index entry of one row.
func (s *SQLiteStore) Row(ctx context.Context, table, key string) (RowInfo, bool, error) {
	found, err := s.RowsOf(ctx, table, []string{key})
	if err != nil {
		return RowInfo{}, false, err
	}
	info, ok := found[key]
	return info, ok, nil
}

// rowsChunk bounds the keys of one row-index query (SQLite's variable limit is far
// above it).
const rowsChunk = 250

// RowsOf is Row for many keys of one table, in one query per 250 keys; keys without
// an entry are absent from the map. Pushes look up a whole batch's rows with it.
func (s *SQLiteStore) RowsOf(ctx context.Context, table string, keys []string) (map[string]RowInfo, error) {
	out := make(map[string]RowInfo, len(keys))
	for lo := 0; lo < len(keys); lo += rowsChunk {
		chunk := keys[lo:min(lo+rowsChunk, len(keys))]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, table)
		for _, k := range chunk {
			args = append(args, k)
		}
		// The commit times come with the entries: one query, not one per row.
		rows, err := s.rdb.QueryContext(ctx, `SELECT r.key, r.version, r.origin, r.deleted, r.pv, r.po, r.pd, s.head, v.commit_us, pvv.commit_us
			FROM rows r JOIN state s ON s.id = 1
			LEFT JOIN versions v ON v.version = r.version
			LEFT JOIN versions pvv ON pvv.version = r.pv
			WHERE r.tbl = ? AND r.key IN (?`+strings.Repeat(",?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read row index of %s: %w", table, err)
		}
		for rows.Next() {
			var (
				key           string
				version, head int64
				origin        string
				deleted       bool
				pv, vUS, pvUS sql.NullInt64
				po            sql.NullString
				pd            sql.NullBool
			)
			if err := rows.Scan(&key, &version, &origin, &deleted, &pv, &po, &pd, &head, &vUS, &pvUS); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read row index of %s: %w", table, err)
			}
			info := RowInfo{Version: version, Origin: origin, Deleted: deleted}
			commit := vUS
			if version > head {
				// The entry belongs to a version not yet complete; report the one before it.
				if !pv.Valid {
					continue
				}
				info = RowInfo{Version: pv.Int64, Origin: po.String, Deleted: pd.Bool}
				commit = pvUS
			}
			if commit.Valid {
				info.CommitTime = time.UnixMicro(commit.Int64)
			}
			out[key] = info
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read row index of %s: %w", table, err)
		}
	}
	return out, nil
}

// Close closes the store; it is safe to call more than once.
func (s *SQLiteStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	var errs []error
	for _, st := range s.prepared {
		errs = append(errs, st.Close())
	}
	if s.wconn != nil {
		errs = append(errs, s.wconn.Raw(func(any) error {
			var errs []error
			for _, st := range s.driverStmts {
				errs = append(errs, st.(driver.Stmt).Close())
			}
			return errors.Join(errs...)
		}))
		errs = append(errs, s.wconn.Close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	errs = append(errs, s.wdb.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close change log: %w", err)
	}
	return nil
}
