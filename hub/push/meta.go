package push

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// MetaFileName is the meta database's file name next to the change log.
const MetaFileName = "hub-meta.db"

// DefaultMetaPath returns the meta database's default path: MetaFileName in the folder
// of the change log at storePath.
func DefaultMetaPath(storePath string) string {
	return filepath.Join(filepath.Dir(storePath), MetaFileName)
}

// metaSchema creates the hub's push state. Row images and keys are stored as their
// wire JSON; times are Unix microseconds.
//
//   - push_batches: one row per batch id. state 'applying' is written before the
//     central-database write, 'done' together with the stored answer (see recoverBatch);
//     the plan is dropped then, and the answer after push.answer_retention (Prune).
//   - landed_batches: batch ids whose write-back transaction the ingest loop committed
//     to the change log, and the version that holds it, for stores that do not record
//     that themselves (changelog.BatchVersioner; the SQLite change log does).
//   - conflicts: the manual queue.
//   - rejected: changes the hub did not write, for an admin to retry or discard.
var metaSchema = []string{
	`CREATE TABLE IF NOT EXISTS push_batches (
		batch_id TEXT PRIMARY KEY,
		edge TEXT NOT NULL,
		state TEXT NOT NULL CHECK (state IN ('applying', 'done')),
		head INTEGER NOT NULL,
		plan TEXT NOT NULL,
		response TEXT,
		created INTEGER NOT NULL,
		updated INTEGER NOT NULL)`,
	// Answers still kept, by age, for Prune.
	`CREATE INDEX IF NOT EXISTS push_batches_answered ON push_batches (updated) WHERE state = 'done' AND response <> ''`,
	`CREATE TABLE IF NOT EXISTS landed_batches (
		batch_id TEXT PRIMARY KEY,
		version INTEGER NOT NULL,
		landed INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS conflicts (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		edge TEXT NOT NULL,
		batch_id TEXT NOT NULL,
		tbl TEXT NOT NULL,
		key TEXT NOT NULL,
		key_json TEXT NOT NULL,
		op TEXT NOT NULL,
		kind TEXT NOT NULL,
		base_version INTEGER NOT NULL,
		base TEXT,
		client TEXT,
		server TEXT,
		created INTEGER NOT NULL,
		status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
		resolution TEXT NOT NULL DEFAULT '',
		resolved_by TEXT NOT NULL DEFAULT '',
		resolved_at INTEGER NOT NULL DEFAULT 0,
		result TEXT)`,
	`CREATE INDEX IF NOT EXISTS conflicts_status ON conflicts (status, id)`,
	`CREATE TABLE IF NOT EXISTS rejected (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		edge TEXT NOT NULL,
		batch_id TEXT NOT NULL,
		tbl TEXT NOT NULL,
		key TEXT NOT NULL,
		op TEXT NOT NULL,
		change TEXT NOT NULL,
		reason TEXT NOT NULL,
		code TEXT NOT NULL,
		created INTEGER NOT NULL,
		status TEXT NOT NULL CHECK (status IN ('open', 'retried', 'discarded')),
		handled_by TEXT NOT NULL DEFAULT '',
		handled_at INTEGER NOT NULL DEFAULT 0,
		result TEXT)`,
	`CREATE INDEX IF NOT EXISTS rejected_status ON rejected (status, id)`,
}

// openMeta opens (creating if needed) the meta database at path, in WAL mode with
// synchronous=FULL: a recorded batch must survive a power loss, or a re-send could be
// applied twice. One connection serialises writers.
func openMeta(ctx context.Context, path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("push meta database: path is empty; set push.meta_path (default: hub-meta.db next to the change log)")
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open push meta database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	for _, q := range metaSchema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			return nil, fmt.Errorf("create push meta database %s: %w (is it a synchub meta file, and writable?)", path, err)
		}
	}
	return db, nil
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func nullText(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
