package cdc

import "context"

// Source captures committed transactions from a central database.
//
// Lifecycle, driven by one goroutine (the hub's ingest loop):
//
//  1. Start(ctx, from) connects and checks prerequisites (returning an *Error with Fix
//     set when the database is misconfigured). from is the position the change log
//     last committed, or nil when the log is empty. Start returns the captured tables.
//     If from is nil the source prepares a fresh consistent snapshot and NeedSnapshot
//     is true. If the source cannot resume from a non-nil from (slot dropped, WAL or
//     binlog purged), Start sets PositionLost, prepares nothing and returns; the
//     consumer makes the loss durable first (it forgets the position and tells edges
//     to re-bootstrap), then calls Close and Start(ctx, nil). Preparing a new stream
//     before that would let a consumer that dies in between resume from it and miss
//     everything committed since the old position.
//  2. If NeedSnapshot, Snapshot(ctx, emit) reads every captured row at one consistent
//     point and calls emit with batches of inserts, in table order, then returns the
//     position the stream continues from. Nothing committed after that point is in the
//     snapshot and nothing before it will be streamed: snapshot + stream is exactly the
//     database's state.
//  3. Stream(ctx, h) delivers every transaction committed after that position, whole
//     and in commit order, through h.Tx; a large transaction may arrive in parts (see
//     Tx.More). When the source has delivered everything it has received and would
//     have to wait, it calls h.Idle so the consumer can commit a group. Stream returns
//     when ctx is cancelled (ctx.Err()) or the connection fails (a retryable error);
//     the consumer then calls Close and starts over from step 1 with the last position
//     it committed.
//  4. Ack(pos) may be called from any goroutine, at any time during Stream, with the
//     position of a transaction the consumer has durably committed. The source tells
//     the database it may release everything up to pos (PostgreSQL: standby status
//     flush LSN). It never releases a position that was not acked. Ack does not block.
//  5. Close releases connections; it is safe to call more than once and after errors.
//
// A Source is single-use per Start/Close cycle and is not safe for concurrent calls
// other than Ack.
type Source interface {
	Start(ctx context.Context, from Position) (*StartInfo, error)
	Snapshot(ctx context.Context, emit func(ctx context.Context, changes []Change) error) (Position, error)
	Stream(ctx context.Context, h Handler) error
	Ack(pos Position)
	ParsePosition(s string) (Position, error)
	Close() error
}

// StartInfo is what Start learned.
type StartInfo struct {
	Tables       []Table
	NeedSnapshot bool
	// PositionLost is set when the requested position could not be resumed from; the
	// source prepared nothing (see Source step 1). The hub must invalidate everything
	// edges hold, durably, before it starts again without a position.
	PositionLost bool
	// Describe is a one-line description for logs, e.g. "PostgreSQL 15.4, slot synchub".
	Describe string
}

// Handler consumes a Source's stream. Its methods are called from the Stream goroutine
// only; an error returned from either stops Stream, which returns that error.
type Handler interface {
	Tx(ctx context.Context, tx *Tx) error
	Idle(ctx context.Context) error
}

// Lagger is implemented by sources that can measure how far the stream is behind the
// database (PostgreSQL: WAL bytes between the server's current LSN and the last acked
// one). It may be called from any goroutine.
type Lagger interface {
	LagBytes(ctx context.Context) (int64, error)
}

// ApplyResult is the outcome of one change handed to an Applier.
type ApplyResult struct {
	// Err is nil when the change was written; otherwise the database's reason, and the
	// rest of the batch was still attempted.
	Err error
}

// Tag says who wrote a transaction applied through an Applier: Origin is the edge id,
// Batch the push batch id. Both reach the source's stream as Tx.Origin and Tx.Batch, so
// the hub can attribute the captured transaction and tell the waiting push it landed.
// Edge ids and batch ids are short and contain no whitespace.
type Tag struct {
	Origin string
	Batch  string
}

// Applier writes changes from edges to the central database.
//
// Apply writes the batch in one database transaction tagged with tag, so that when the
// source captures the transaction it reports Tx.Origin == tag.Origin and Tx.Batch ==
// tag.Batch. Each change is attempted in its own savepoint: a change the database
// refuses (constraint, type, trigger) gets its reason in the result while the others
// are still written. Apply returns an error only when the transaction as a whole
// failed, and then nothing was written. Identifiers are validated against the captured
// schema and quoted by the dialect; values are always bound as parameters. Changes use
// the source-neutral model: inserts and updates carry the full new row in After,
// updates and deletes carry at least the key in Before (the old key when it changed).
// Apply is safe for concurrent use.
type Applier interface {
	Apply(ctx context.Context, tag Tag, changes []Change) ([]ApplyResult, error)
	// ReadRow reads the current row with the key columns of key from the central
	// database; found is false when there is none.
	ReadRow(ctx context.Context, table string, key Row) (row Row, found bool, err error)
}
