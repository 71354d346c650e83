package edge

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Keys of _synchub_meta.
const (
	metaWatermark     = "watermark"
	metaSchemaVersion = "schema_version"
	metaSchema        = "schema"
	metaHubURL        = "hub_url"
	metaEdgeID        = "edge_id"
	metaTables        = "tables"
	metaVersionFloor  = "version_floor" // the version every row without a _synchub_rowver entry is at
	metaBootstrapping = "bootstrapping" // "1" from a pull at since=0 until the edge has caught up
	metaHLC           = "hlc"           // the edge's hybrid logical clock, in syncproto.HLC text form
	metaScope         = "scope"         // the hub's fingerprint of the rows this edge may see (sync rules)
)

// localDB is the edge's SQLite database. The agent writes only through conn, one
// dedicated connection whose prepared statements survive across transactions; the
// application shares db.
type localDB struct {
	path string
	db   *sql.DB
	conn *sql.Conn
	inTx bool
}

func openLocal(ctx context.Context, path string, busy time.Duration) (*localDB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open local database %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open local database %s: %w", abs, err)
	}
	l := &localDB{path: abs, db: db}
	if err := l.init(ctx); err != nil {
		_ = l.close()
		return nil, fmt.Errorf("open local database %s: %w (is it a SQLite database this process can write?)", abs, err)
	}
	return l, nil
}

func (l *localDB) init(ctx context.Context) error {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return err
	}
	l.conn = conn
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, not WAL", mode)
	}
	for _, q := range localDDL {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create the agent's tables: %w", err)
		}
	}
	return nil
}

// localDDL creates the agent's own tables. See the package documentation for their
// meaning.
var localDDL = []string{
	`CREATE TABLE IF NOT EXISTS _synchub_meta (k TEXT PRIMARY KEY, v)`,
	`CREATE TABLE IF NOT EXISTS _synchub_ctl (id INTEGER PRIMARY KEY CHECK (id = 1), applying INTEGER NOT NULL)`,
	`INSERT OR IGNORE INTO _synchub_ctl (id, applying) VALUES (1, 0)`,
	`CREATE TABLE IF NOT EXISTS _synchub_outbox (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		tbl TEXT NOT NULL,
		ktext TEXT NOT NULL,
		nktext TEXT NOT NULL,
		key_json TEXT NOT NULL,
		op TEXT NOT NULL CHECK (op IN ('i', 'u', 'd')),
		row_json TEXT,
		base_version INTEGER NOT NULL,
		base_json TEXT,
		wall INTEGER NOT NULL,
		hlc TEXT,
		batch_id TEXT)`,
	// Rows are found by their current key (nktext). The old key is indexed only where it
	// differs (updates that changed the key), and batch ids only where set: each index
	// costs every captured write.
	`CREATE INDEX IF NOT EXISTS _synchub_outbox_nkey ON _synchub_outbox (tbl, nktext)`,
	`CREATE INDEX IF NOT EXISTS _synchub_outbox_rekeyed ON _synchub_outbox (tbl, ktext) WHERE ktext <> nktext`,
	`CREATE INDEX IF NOT EXISTS _synchub_outbox_batched ON _synchub_outbox (batch_id) WHERE batch_id IS NOT NULL`,
	// The HLC stamps of a formed batch's changes, kept until its answer so that a
	// re-send is the same batch: a JSON object from change id to stamp.
	`CREATE TABLE IF NOT EXISTS _synchub_batch_stamps (batch_id TEXT PRIMARY KEY, stamps TEXT NOT NULL)`,
	`DROP INDEX IF EXISTS _synchub_outbox_key`,
	`DROP INDEX IF EXISTS _synchub_outbox_batch`,
	// pushed is 1 while a row's local data comes from the edge's own push (its answer)
	// and the change log has not yet shown that write: see applyChange.
	`CREATE TABLE IF NOT EXISTS _synchub_rowver (
		tbl TEXT NOT NULL,
		ktext TEXT NOT NULL,
		version INTEGER NOT NULL,
		pushed INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (tbl, ktext)) WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS _synchub_rowver_pushed ON _synchub_rowver (tbl) WHERE pushed = 1`,
	`CREATE TABLE IF NOT EXISTS _synchub_rejected (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		seq INTEGER NOT NULL,
		tbl TEXT NOT NULL,
		key_json TEXT,
		op TEXT NOT NULL,
		row_json TEXT,
		base_version INTEGER NOT NULL,
		reason TEXT NOT NULL,
		code TEXT NOT NULL,
		batch_id TEXT,
		at INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS _synchub_capture (tbl TEXT PRIMARY KEY)`,
}

func (l *localDB) close() error {
	var errs []error
	if l.conn != nil {
		if l.inTx {
			_, _ = l.conn.ExecContext(context.Background(), "ROLLBACK")
			l.inTx = false
		}
		errs = append(errs, l.conn.Close())
	}
	errs = append(errs, l.db.Close())
	return errors.Join(errs...)
}

// begin starts the agent's write transaction. IMMEDIATE takes the write lock now, so a
// concurrent writer cannot make a later statement fail with SQLITE_BUSY mid-page.
func (l *localDB) begin(ctx context.Context) error {
	if l.inTx {
		return errors.New("begin local transaction: one is already open")
	}
	if err := beginApplying(ctx, l.conn); err != nil {
		return err
	}
	l.inTx = true
	return nil
}

func (l *localDB) commit(ctx context.Context) error {
	if !l.inTx {
		return errors.New("commit local transaction: none is open")
	}
	if err := commitApplying(ctx, l.conn); err != nil {
		return err
	}
	l.inTx = false
	return nil
}

// beginApplying starts a write transaction on conn in which the capture triggers stay
// silent: changes the agent applies (pulled changes, push answers) are not local writes.
// IMMEDIATE takes the write lock now, so a concurrent writer cannot make a later
// statement fail with SQLITE_BUSY midway.
func beginApplying(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		// A BEGIN whose context ends while it runs may have begun the transaction all
		// the same; left open, it would fail every later BEGIN on this connection.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("begin local transaction: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `UPDATE _synchub_ctl SET applying = 1 WHERE id = 1`); err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("begin local transaction: set the applying flag: %w", err)
	}
	return nil
}

// inApplying runs fn in a transaction begun with beginApplying and commits it; when fn
// or the commit fails (or fn panics) the transaction is rolled back.
func inApplying(ctx context.Context, conn *sql.Conn, fn func() error) error {
	if err := beginApplying(ctx, conn); err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if err := fn(); err != nil {
		return err
	}
	if err := commitApplying(ctx, conn); err != nil {
		return err
	}
	committed = true
	return nil
}

// commitApplying clears the applying flag and commits, so the flag is never seen set
// by another connection.
func commitApplying(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `UPDATE _synchub_ctl SET applying = 0 WHERE id = 1`); err != nil {
		return fmt.Errorf("commit local transaction: clear the applying flag: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit local transaction: %w", err)
	}
	return nil
}

// rollback ends the open transaction, if any, discarding its writes. It does not take
// a context: it must run even when the pull was cancelled.
func (l *localDB) rollback() error {
	if !l.inTx {
		return nil
	}
	l.inTx = false
	if _, err := l.conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		if strings.Contains(err.Error(), "no transaction is active") {
			return nil
		}
		return fmt.Errorf("roll back local transaction: %w", err)
	}
	return nil
}

func (l *localDB) getMeta(ctx context.Context, k string) (string, bool, error) {
	var v sql.NullString
	err := l.conn.QueryRowContext(ctx, `SELECT v FROM _synchub_meta WHERE k = ?`, k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s from _synchub_meta: %w", k, err)
	}
	return v.String, true, nil
}

func (l *localDB) getMetaInt(ctx context.Context, k string) (int64, error) {
	s, ok, err := l.getMeta(ctx, k)
	if err != nil || !ok {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("_synchub_meta %s is %q, not an integer: the local database is damaged; delete it to re-bootstrap", k, s)
	}
	return n, nil
}

func (l *localDB) setMeta(ctx context.Context, k, v string) error {
	_, err := l.conn.ExecContext(ctx, `INSERT INTO _synchub_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, k, v)
	if err != nil {
		return fmt.Errorf("write %s to _synchub_meta: %w", k, err)
	}
	return nil
}

// localColumn is a column as SQLite reports it.
type localColumn struct {
	name string
	typ  string
	pk   int // 1-based position in the primary key; 0 when not a key column
}

// tableInfo lists a local table's columns; none when the table does not exist.
func (l *localDB) tableInfo(ctx context.Context, name string) ([]localColumn, error) {
	rows, err := l.conn.QueryContext(ctx, `SELECT name, type, pk FROM pragma_table_info(?)`, name)
	if err != nil {
		return nil, fmt.Errorf("inspect local table %s: %w", name, err)
	}
	defer rows.Close()
	var cols []localColumn
	for rows.Next() {
		var c localColumn
		if err := rows.Scan(&c.name, &c.typ, &c.pk); err != nil {
			return nil, fmt.Errorf("inspect local table %s: %w", name, err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inspect local table %s: %w", name, err)
	}
	return cols, nil
}

// replaceConn discards the agent's connection (after a failed rollback left it in an
// unknown state) and takes a fresh one.
func (l *localDB) replaceConn(ctx context.Context) error {
	if l.conn != nil {
		_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
		_ = l.conn.Close()
		l.conn = nil
	}
	l.inTx = false
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("reconnect to local database: %w", err)
	}
	l.conn = conn
	return nil
}
