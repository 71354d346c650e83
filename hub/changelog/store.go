// Package changelog is the hub's versioned change log: one gap-free version per source
// transaction, stored with the source position it reached, a per-row index for conflict
// detection, schema versions, compaction and, with sync rules, a bucket index that lets a
// pull read only one edge's rows (SQLiteStore.SetRules). Store is the contract;
// SQLiteStore is the embedded default.
package changelog

import (
	"context"
	"errors"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// ErrTooOld is returned by ReadPage when the requested watermark is older than the
// tombstone horizon: deletes the edge has not seen are gone, so it must re-bootstrap.
var ErrTooOld = errors.New("watermark is older than the change log's horizon")

// ErrAhead is returned by ReadPage when the requested watermark is beyond the head:
// the edge's data did not come from this change log (it was replaced or restored from
// an older backup), so the edge must re-bootstrap.
var ErrAhead = errors.New("watermark is ahead of the change log's head")

// ErrBadCursor is returned by ReadPage for a cursor that does not continue the
// requested watermark.
var ErrBadCursor = errors.New("cursor does not continue the watermark")

// State is the change log's persisted state.
type State struct {
	Head             int64  // last complete version (0: empty)
	Position         string // source position text committed with Head ("" if none)
	SourceKind       string // kind of the source that wrote Position
	SchemaVersion    int64
	CompactedThrough int64     // versions ≤ this may have lost superseded changes
	TombstoneHorizon int64     // deletes ≤ this are gone; watermarks 0 < w < this get 410
	Entries          int64     // changes stored
	Bytes            int64     // bytes of stored change data
	HeadTime         time.Time // source commit time of Head
}

// PageRequest asks for the changes after Since (and after Cursor inside a version).
type PageRequest struct {
	Since  int64
	Cursor syncproto.Cursor
	Limit  int // maximum changes; a page holds at least one chunk even if larger
	// Scoped limits the page to the changes stored under Buckets by the sync rules
	// (see SQLiteStore.SetRules), encoded with their group's column allow-list. The page
	// format and versions are the same; a version with no change in the buckets is
	// passed over (the watermark still moves past it), and each version arrives whole
	// in one entry. With no buckets the page holds no changes.
	Scoped  bool
	Buckets []string
}

// Page is one encoded /v1/changes body, ready to send as it is.
type Page struct {
	Body    []byte
	Next    int64
	Cursor  syncproto.Cursor
	Commit  bool
	Changes int // changes in the page; 0 means the edge is caught up
	Head    int64
}

// RowInfo is the per-row index entry: the latest version that touched a row.
type RowInfo struct {
	Version int64
	Origin  string
	Deleted bool
	// CommitTime is the source commit time of Version (zero if the store no longer
	// knows it). Last-writer-wins conflict resolution compares edge writes with it.
	CommitTime time.Time
}

// RowsReader is implemented by stores that look up many rows of one table at once;
// RowsOf returns the entries found, by key, with the meaning of Store.Row.
type RowsReader interface {
	RowsOf(ctx context.Context, table string, keys []string) (map[string]RowInfo, error)
}

// BatchVersioner is implemented by stores that record, with each version, the push
// batch whose write-back it holds (cdc.Tx.Batch); BatchVersion returns that version.
// DropBatchVersions forgets the batches of versions up to through.
type BatchVersioner interface {
	BatchVersion(ctx context.Context, batch string) (version int64, found bool, err error)
	DropBatchVersions(ctx context.Context, through int64) error
}

// CompactOptions says what compaction may remove.
type CompactOptions struct {
	// Retention: superseded changes of versions committed longer ago than this are removed.
	Retention time.Duration
	// TombstoneRetention: deletes committed longer ago than this are removed, and edges
	// whose watermark is older must re-bootstrap. Must be ≥ Retention.
	TombstoneRetention time.Duration
	Now                time.Time // zero: time.Now()
}

// CompactStats reports what a compaction did.
type CompactStats struct {
	CompactedThrough int64
	TombstoneHorizon int64
	ChangesRemoved   int64
	ChunksRewritten  int64
}

// Store is the change log.
//
// There is one writer: Begin may be called again only after the previous Batch was
// committed or rolled back. Readers (State, ReadPage, Schema, Row, Changed) are safe for
// concurrent use with each other and with the writer, and see only committed data.
// Versions are assigned by the store, start at 1, and have no gaps.
type Store interface {
	State(ctx context.Context) (State, error)
	Begin(ctx context.Context) (Batch, error)
	ReadPage(ctx context.Context, req PageRequest) (*Page, error)
	// Schema returns the latest schema and its JSON encoding (a syncproto.SchemaResponse).
	Schema(ctx context.Context) (*cdc.Schema, []byte, error)
	// Row returns the index entry for one row (key as syncproto.KeyText); ok is false if
	// the log has never seen the row.
	Row(ctx context.Context, table, key string) (info RowInfo, ok bool, err error)
	// Changed returns a channel that is closed at the next commit that moves Head.
	Changed() <-chan struct{}
	Compact(ctx context.Context, opts CompactOptions) (CompactStats, error)
	Close() error
}

// Batch is one store transaction, used by the ingest loop to group many source
// transactions into one commit.
//
// AppendTx appends a transaction or one part of it (see cdc.Tx.More): the first part
// opens a new version, the last completes it. Unchanged columns (unchanged TOAST) are
// filled from the row's latest image in the log, so stored rows are always whole. A
// Commit while a version is still open persists its chunks but does not move Head; if
// the process dies before the version is completed, the next Open discards them.
// Head and Position move together, in the same store transaction.
type Batch interface {
	// DiscardUnfinished drops the version earlier batches left open (a transaction whose
	// last part never came), including the parts they committed, and restores the row
	// index. A source sends an unfinished transaction again from its start after a
	// reconnect, so the ingest loop calls this at the start of every source session,
	// before any AppendTx of the batch.
	DiscardUnfinished(ctx context.Context) error
	// SetTables records the captured tables; if they differ from the latest schema a new
	// schema version is written.
	SetTables(tables []cdc.Table) error
	AppendTx(ctx context.Context, tx *cdc.Tx) error
	// Reset invalidates everything edges hold (the source lost its position and will
	// re-snapshot): existing entries and the row index are dropped, versions keep
	// counting up, and the tombstone horizon moves just past the head (head+1) so every
	// edge with a watermark re-bootstraps. sourceKind is recorded beside positions.
	Reset(ctx context.Context, sourceKind string) error
	// Pending reports how many changes the batch holds uncommitted.
	Pending() int
	Commit(ctx context.Context) (State, error)
	Rollback() error
}
