// Package edge is the synchub edge agent as a library: it keeps a local SQLite copy of
// the tables a hub captures, pulls the hub's change log into it, and pushes local
// writes back.
//
//	agent, err := edge.Open(ctx, edge.Config{HubURL: "http://hub:8080", DBPath: "edge.db", ...}, log)
//	defer agent.Close()
//	agent.SyncNow(ctx)         // first pull: creates the tables
//	agent.InitSyncAll(ctx)     // capture local writes of every synced table
//	go agent.Run(ctx)          // long-poll the hub and push until ctx ends
//	rows, err := agent.DB().QueryContext(ctx, `SELECT * FROM orders`)
//
// Open touches only the local database: an edge starts and serves its data offline.
//
// # Consistency
//
// Each page of the change log is applied in one SQLite transaction together with the
// new watermark. When the hub ends a page inside a source transaction (commit=false),
// the agent keeps its transaction open and fetches the following pages into it, so a
// reader never sees part of a source transaction; if the process dies meanwhile, SQLite
// rolls the transaction back and the agent resumes from the stored watermark. When the
// hub answers 410 (the watermark is older than its compaction horizon) or 409 (the
// watermark is ahead of the hub: its log was replaced), the agent re-bootstraps: it
// empties the synced tables and refills them from version 0 in that same one
// transaction, so readers see the old data until the new data is complete.
//
// # Local schema
//
// Tables are created from GET /v1/schema. A captured table "schema.name" becomes the
// local table "name" when its schema is "public" (or empty), and "schema_name" otherwise
// (see LocalTableName); two captured tables that map to the same local name are an
// error. Columns get the schema's sqlite_type (INTEGER, REAL, TEXT, BLOB or NUMERIC) and
// the table's primary key. Every identifier must be letters, digits, '_' or '$' and not
// start with a digit; names beginning with "sqlite_" or "_synchub_" are reserved. A
// schema that breaks these rules is refused with an error naming the identifier, and
// identifiers are double-quoted in every statement. When the hub's schema version moves
// on, new tables are created, new columns added (ALTER TABLE ADD COLUMN) and dropped
// columns dropped where SQLite allows it; no re-bootstrap is needed. A changed primary
// key makes the agent rebuild that table and re-bootstrap.
//
// The agent's own state lives in _synchub_meta(k, v): watermark, schema_version, schema
// (the JSON of the applied schema), hub_url, edge_id and tables (the table filter).
// Changing Config.Tables re-bootstraps, so newly selected tables are filled.
//
// # Capture and outbox
//
// InitSync(table) installs AFTER INSERT, UPDATE and DELETE triggers on a local table
// (and remembers the choice in _synchub_capture, so they are re-created after schema
// changes). Any connection's write, the application's included, then adds a row to
// _synchub_outbox in the same SQLite transaction: seq, tbl (hub name), ktext and nktext
// (the row's key before and after, as quote() of each key column joined by commas),
// key_json, op (i/u/d), row_json (the new row; NULL for deletes), base_version,
// base_json, wall (the write's time, Unix microseconds), and batch_id, set when the
// entry is put in a batch; the HLC stamps of a batch's changes are kept in
// _synchub_batch_stamps(batch_id, stamps) until its answer is applied, so a re-send
// carries the same stamps. (The outbox's hlc column is read only for batches formed
// by older versions, which stamped each entry.) An UPDATE that changes nothing is not
// recorded. The triggers store raw SQLite values as JSON (BLOBs as hex); the agent
// converts them to the hub's schema-driven JSON form (package cdc: bools true/false,
// bytes base64, NaN as "NaN", decimals as strings) when it forms a batch, so the
// triggers need no Go function and work when another process writes the file. A
// value that fits no column kind (the text 'maybe' in a bool column) is moved to
// _synchub_rejected with code bad_value rather than sent.
//
// While the agent applies pulled changes or push answers it sets
// _synchub_ctl.applying to 1 inside its transaction (and back to 0 before commit); the
// triggers stay silent then, so the hub's changes are never pushed back.
//
// # Row versions
//
// A change carries the version of the row it was based on. Rows pulled while
// bootstrapping (from version 0 until the edge first catches up) are at the version
// floor, _synchub_meta version_floor, the watermark of that bootstrap: the edge's copy
// is the hub's state as of it. Later pulled changes record their version in
// _synchub_rowver(tbl, ktext, version). A row's base version is its rowver entry or else
// the floor, 0 for a row the edge created, and its base image is the old row. When a row
// already has outbox entries, a new entry takes the first entry's base version and
// image, so the hub sees the change against the state the edge started from.
//
// # Rebase on pull
//
// A pulled change to a row with outbox entries (pending or in a batch in flight) is not
// applied: the local row stays as the edge wrote it and its entries keep their base;
// the hub decides when they are pushed. This covers a pulled update, a pulled delete of
// a row updated locally, and a pulled insert of a key the edge inserted. A truncate or a
// re-bootstrap keeps such rows too. No pull drops a local write.
//
// # Push
//
// Run pushes every Config.PushInterval while the outbox has entries; PushNow pushes at
// once, and SyncNow pulls then pushes. A batch folds each row's entries into one change:
// insert then updates is an insert of the final row, insert … delete sends nothing,
// updates are one update from the first base, update … delete is a delete, and
// delete … insert is an update. Up to Config.PushBatch changes go in one POST /v1/push
// (gzip-compressed when large). The batch id (a UUID) is stored on the entries, and the
// changes' HLC stamps in _synchub_batch_stamps, before the request is sent, so after a
// lost answer, a hub outage or a crash the same batch is sent again with the same id,
// which the hub applies once; changes written meanwhile go in the next batch.
//
// Up to Config.PushPipeline batches (3 by default) are on their way at once: the agent
// sends the next batch while the hub works on the previous ones, and applies the
// answers in sending order. Each batch names the unanswered batch sent before it
// (PushRequest.After); the hub decides and writes it only after that one's write, so the
// central database sees them in outbox order whatever order the requests arrive in.
// Older hubs ignore After, so the agent pipelines only once a push response from the hub
// carried the header X-Synchub-Push-After: 1; until then it sends one batch at a time.
// In either case, while as many batches as allowed are on their way, the agent forms
// one more and keeps it ready to send when an answer frees a place. No two unanswered
// (or ready) batches hold the same row: a batch ends before the first row that a batch
// on its way still holds, and that row's later writes go once its answer has moved
// their base. When a push fails nothing more is sent; answers to batches already sent
// are still applied (also when the push is stopped by Close), and the failed batch,
// those behind it and the ready one stay open and are sent first next time.
//
// Network errors, 5xx, 401, 403 and 404
// answers keep the batch for a retry with capped exponential backoff; any other 4xx
// answer moves the batch's changes to _synchub_rejected with the hub's message.
//
// Outbox entries are deleted only when the answer is applied, in one local transaction:
// applied changes record the row's new version; a conflict won by the server or queued
// for an admin (server_won, manual) writes the hub's row locally (or deletes the row
// when the answer has none); client_won and merged write the answer's row when it has
// one; a rejected change is copied to _synchub_rejected(seq, tbl, key_json, op,
// row_json, base_version, reason, code, batch_id, at) and the local row is restored
// only when the answer carries the hub's row. A hub row is not written over a row that
// received newer local writes while the batch was in flight: those are pushed next.
// Config.OnConflict is called for every conflict and rejection; Agent.Rejected lists
// the rejected changes.
//
// # Echoes
//
// The hub writes a pushed change to the central database tagged with the edge's id, and
// its change log shows that version with origin = the edge id. Outside a bootstrap the
// agent does not re-apply such an entry: it only records the row's version
// (Status.EchoesSkipped counts them; Status.AppliedForeign counts changes from others).
//
// A push answer can overtake the change log: the hub may have written the edge's change
// after a foreign change the edge has not pulled yet, and may answer without the
// write's version. A row written by a push answer is therefore marked pushed in
// _synchub_rowver, with the answer's version when given. A pulled change not newer than
// that version is skipped as stale (Status.Stale); and when an older foreign change did
// reach the row after the answer, the echo is applied in full, so the row ends at the
// hub's state. The mark is cleared by the echo or any later pulled change of the row.
//
// # Clock
//
// Each change carries a hybrid logical clock timestamp (syncproto.HLC, node = edge id).
// The agent stamps the entries of a batch in outbox order from their write times when
// it forms the batch: the clock's wall part is the largest of those write times and the
// commit times seen in pulls, and its logical part orders stamps within one wall value.
// The clock is stored in _synchub_meta (hlc) in the transaction that advances it, so it
// never goes back across restarts, and a local write made after pulling a change from a
// clock that runs ahead is stamped after it. Each request also carries the edge's wall
// clock (sent_at) so the hub can estimate the edge's clock skew.
//
// # Limits
//
// Rows are identified by quote() of their key columns. A key column whose declared type
// converts values (NUMERIC holding decimal text) may be matched imprecisely between
// pulled keys and captured ones. INSERT OR REPLACE removes the old row without running
// DELETE triggers (unless recursive_triggers is on) and is recorded as an insert. Column
// values of tables with more than about 500 columns exceed SQLite's function argument
// limit in the triggers. Entries of a row written while an earlier batch of it is in
// flight keep that batch's base version; the hub sees the version in between as the
// edge's own write.
package edge
