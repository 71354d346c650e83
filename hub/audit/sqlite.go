package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// formatVersion is the file format, kept in PRAGMA user_version.
const formatVersion = 1

// busyTimeout is how long a connection waits for a lock held by another process (a
// backup tool, the sqlite3 CLI) before failing.
const busyTimeout = 5 * time.Second

// pruneStep bounds the events one Prune write transaction deletes, so appends are never
// held up for long.
const pruneStep = 10000

// schemaDDL creates the audit tables. audit_retention holds the cutoff of a running
// Prune: the delete trigger refuses to remove any event at or after it, and it is NULL
// (nothing may be deleted) outside Prune's transactions.
var schemaDDL = []string{
	`CREATE TABLE audit_events (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		time_us INTEGER NOT NULL,
		actor TEXT NOT NULL,
		action TEXT NOT NULL,
		edge TEXT NOT NULL,
		tbl TEXT NOT NULL,
		key TEXT NOT NULL,
		outcome TEXT NOT NULL,
		detail TEXT NOT NULL,
		before TEXT,
		after TEXT)`,
	`CREATE INDEX audit_events_time ON audit_events (time_us)`,
	`CREATE INDEX audit_events_edge ON audit_events (edge)`,
	`CREATE INDEX audit_events_tbl_key ON audit_events (tbl, key)`,
	`CREATE INDEX audit_events_actor ON audit_events (actor)`,
	`CREATE INDEX audit_events_action ON audit_events (action)`,
	`CREATE TABLE audit_retention (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		prune_before_us INTEGER)`,
	`INSERT INTO audit_retention (id, prune_before_us) VALUES (1, NULL)`,
	`CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
	BEGIN
		SELECT RAISE(ABORT, 'audit log is append-only: events cannot be updated');
	END`,
	// INSERT OR REPLACE deletes the row it replaces without firing delete triggers.
	`CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
	WHEN EXISTS (SELECT 1 FROM audit_events WHERE id = NEW.id)
	BEGIN
		SELECT RAISE(ABORT, 'audit log is append-only: events cannot be replaced');
	END`,
	`CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
	WHEN OLD.time_us >= coalesce((SELECT prune_before_us FROM audit_retention WHERE id = 1), -9223372036854775808)
	BEGIN
		SELECT RAISE(ABORT, 'audit log is append-only: events are removed only by retention pruning of events older than its cutoff');
	END`,
	`PRAGMA user_version = ` + strconv.Itoa(formatVersion),
}

// SQLite is the audit log in one SQLite file (WAL mode). One writer connection serves
// Append and Prune in turn; a separate read-only pool serves Query, so reads never wait
// for the writer.
type SQLite struct {
	path string
	log  *slog.Logger
	wdb  *sql.DB // exactly one connection
	rdb  *sql.DB // read-only pool
}

var _ Log = (*SQLite)(nil)

// readConns is the size of the read pool.
const readConns = 4

func dsn(path string, write bool) string {
	q := []string{
		"_pragma=busy_timeout(" + strconv.FormatInt(busyTimeout.Milliseconds(), 10) + ")",
	}
	if write {
		// synchronous NORMAL in WAL mode loses nothing when the hub process dies; only an
		// operating-system crash or power loss can drop the last commits.
		q = append(q,
			"_pragma=journal_mode(WAL)",
			"_pragma=synchronous(NORMAL)",
			"_txlock=immediate")
	} else {
		q = append(q, "_pragma=query_only(1)")
	}
	return path + "?" + strings.Join(q, "&")
}

// OpenSQLite opens (creating if needed) the audit log at path, a plain file path whose
// folder must exist. A nil log discards the log lines.
func OpenSQLite(ctx context.Context, path string, log *slog.Logger) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("audit sqlite path: missing; set a file path such as ./data/audit.db")
	}
	if path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("audit sqlite path %q: must be a plain file path without ?, # or a file: prefix (readers and the writer open it separately)", path)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wdb, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	s := &SQLite{path: path, log: log, wdb: wdb}
	if err := s.migrate(ctx); err != nil {
		wdb.Close()
		return nil, err
	}
	rdb, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open audit log %s for reading: %w", path, err)
	}
	rdb.SetMaxOpenConns(readConns)
	rdb.SetMaxIdleConns(readConns)
	s.rdb = rdb
	if err := rdb.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open audit log %s for reading: %w", path, err)
	}
	log.Info("audit log opened", "path", path)
	return s, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	var mode string
	if err := s.wdb.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("open audit log %s: %w (is it a SQLite file?)", s.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("open audit log %s: journal mode is %s, not WAL; the file system may not support WAL (use a local disk)", s.path, mode)
	}
	var uv int
	if err := s.wdb.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&uv); err != nil {
		return fmt.Errorf("read audit log format: %w", err)
	}
	switch {
	case uv == formatVersion:
		return nil
	case uv > formatVersion:
		return fmt.Errorf("audit log %s has format %d, newer than this synchub understands (%d): upgrade synchub or point the audit path at another file", s.path, uv, formatVersion)
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create audit tables: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil {
		return fmt.Errorf("create audit tables: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("audit log %s already holds tables that synchub did not create: point the audit path at a new file", s.path)
	}
	for _, q := range schemaDDL {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create audit tables: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create audit tables: %w", err)
	}
	return nil
}

// Close closes the database. Calls after Close fail.
func (s *SQLite) Close() error {
	var errs []error
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	errs = append(errs, s.wdb.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close audit log %s: %w", s.path, err)
	}
	return nil
}

const insertSQL = `INSERT INTO audit_events (time_us, actor, action, edge, tbl, key, outcome, detail, before, after)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// Append stores events in one transaction; see Log.
func (s *SQLite) Append(ctx context.Context, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	for i := range events {
		if err := events[i].validate(); err != nil {
			return fmt.Errorf("append audit event %d of %d: %w", i+1, len(events), err)
		}
	}
	now := time.Now()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, insertSQL)
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	defer stmt.Close()
	for i := range events {
		e := &events[i]
		t := e.Time
		if t.IsZero() {
			t = now
		}
		_, err := stmt.ExecContext(ctx, t.UnixMicro(), e.Actor, e.Action, e.Edge, e.Table, e.Key,
			e.Outcome, e.Detail, rowImage(e.Before), rowImage(e.After))
		if err != nil {
			return fmt.Errorf("append audit event %d of %d: %w", i+1, len(events), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	return nil
}

// rowImage is the stored form of a row image: its JSON text, or NULL when absent.
func rowImage(m json.RawMessage) any {
	if len(m) == 0 {
		return nil
	}
	return string(m)
}

// Query returns the events matching f; see Filter for order and paging.
func (s *SQLite) Query(ctx context.Context, f Filter) ([]Event, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	q, args := querySQL(f)
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query audit log: %w", err)
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var (
			e             Event
			us            int64
			before, after sql.NullString
		)
		if err := rows.Scan(&e.ID, &us, &e.Actor, &e.Action, &e.Edge, &e.Table, &e.Key,
			&e.Outcome, &e.Detail, &before, &after); err != nil {
			return nil, fmt.Errorf("query audit log: %w", err)
		}
		e.Time = time.UnixMicro(us).UTC()
		if before.Valid {
			e.Before = json.RawMessage(before.String)
		}
		if after.Valid {
			e.After = json.RawMessage(after.String)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query audit log: %w", err)
	}
	return out, nil
}

// querySQL builds the statement for a valid filter. Column names are fixed here; every
// value is a parameter.
func querySQL(f Filter) (string, []any) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if !f.From.IsZero() {
		add("time_us >= ?", f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		add("time_us < ?", f.To.UnixMicro())
	}
	for _, c := range [...]struct{ col, v string }{{"actor", f.Actor}, {"edge", f.Edge},
		{"tbl", f.Table}, {"key", f.Key}, {"action", f.Action}} {
		if c.v != "" {
			add(c.col+" = ?", c.v)
		}
	}
	if f.AfterID > 0 {
		add("id > ?", f.AfterID)
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	var b strings.Builder
	b.WriteString(`SELECT id, time_us, actor, action, edge, tbl, key, outcome, detail, before, after FROM audit_events`)
	if len(where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(where, " AND "))
	}
	if f.ascending() {
		b.WriteString(" ORDER BY id ASC")
	} else {
		b.WriteString(" ORDER BY id DESC")
	}
	b.WriteString(" LIMIT ?")
	args = append(args, f.limit())
	return b.String(), args
}

// Prune deletes the events whose Time is before the cutoff and returns how many it
// deleted. It is the only way events leave the log: it opens the delete trigger for
// events older than before within its own transactions only, in steps of at most
// pruneStep events so appends are not held up. A cancelled Prune keeps the steps it
// committed and reports them with the error.
func (s *SQLite) Prune(ctx context.Context, before time.Time) (int64, error) {
	if before.IsZero() || before.Year() < 1 || before.Year() > 9999 {
		return 0, fmt.Errorf("prune audit log before %v: the cutoff must be a time between years 1 and 9999", before)
	}
	cutoff := before.UnixMicro()
	var total int64
	for {
		n, err := s.pruneStep(ctx, cutoff)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune audit log before %s: %w", before.UTC().Format(time.RFC3339), err)
		}
		if n < pruneStep {
			break
		}
	}
	s.log.Info("audit log pruned", "before", before.UTC(), "events", total)
	return total, nil
}

// pruneStep deletes up to pruneStep events older than cutoff in one transaction.
func (s *SQLite) pruneStep(ctx context.Context, cutoff int64) (int64, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_retention (id, prune_before_us) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET prune_before_us = excluded.prune_before_us`, cutoff); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE id IN
		(SELECT id FROM audit_events WHERE time_us < ? ORDER BY id LIMIT ?)`, cutoff, pruneStep)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE audit_retention SET prune_before_us = NULL WHERE id = 1`); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return n, nil
}
