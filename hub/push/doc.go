// Package push is the hub's side of edge pushes: it validates an edge's batch of
// changes against the captured schema, detects conflicts with the change log's row
// index, resolves them by the table's policy (package hub/conflict), writes the
// winners to the central database through the source's cdc.Applier in one
// transaction tagged with the edge and batch id, and answers per change.
//
// # Idempotency and crash safety
//
// Every batch id is recorded in the meta database (a SQLite file next to the change
// log, see DefaultMetaPath). Pushes of one batch id are serialised by a per-batch lock.
// Before the central-database write the batch is recorded as "applying" together with
// its plan (the answers decided so far and the rows to be written) and the change
// log's head; after the write, the answers (with versions, conflict ids and rejection
// reasons), the manual conflicts and the rejected changes are stored in one meta
// transaction that marks the batch "done" (its plan is dropped then). A re-sent batch
// id that is done gets the stored answer and nothing is applied again. Answers older
// than Config.AnswerRetention are discarded (Prune) while the record stays: a re-send
// is then not applied again either, but answered per change rejected with code
// answer_expired and the row as the central database has it now, which the edge takes.
// A batch that has no record yet is refused as too large (KindTooLarge) when it holds
// more than MaxBatchChanges changes; a recorded one is answered whatever the limit.
//
// A batch found "applying" was interrupted (the hub stopped, or storing the answer
// failed) and its write may or may not have committed. The hub never applies it again
// while that is unknown. It decides as follows:
//
//  1. The change log records which version holds each batch's write-back in the
//     transaction that appends it (changelog.BatchVersioner; with a store that does
//     not, the landings the ingest loop reports for batches still "applying" are kept
//     in landed_batches). If the batch is there, or lands within WaitTimeout (the
//     ingest loop wakes waiting pushes), the write committed, as that version.
//  2. Otherwise, once the change log holds a source transaction committed more than
//     LandingGrace after the batch was recorded, the write cannot have committed (the
//     source delivers in commit order), so the record is dropped and the batch is
//     applied afresh, with conflict detection against the current state.
//  3. Otherwise the outcome is not known yet: the push is answered 503 (KindPending) and
//     the edge retries later. A central database with no other writes keeps such a
//     batch pending until its next write is captured.
//
// When the write committed but its per-change results were lost, a written change is
// reported applied if the row's latest version is the batch's version, and otherwise
// rejected with code "constraint" and a reason saying the database's message was lost
// (a later write to the same row, or on MySQL/MariaDB an update that changed nothing,
// can make an applied change look refused this way).
//
// # Ordering of one edge's batches
//
// An edge may send its next batch before the previous one is answered, naming that
// previous batch in syncproto.PushRequest.After. The hub then decides and writes the
// new batch only after the After batch's central-database write has completed (the
// Applier returned, or the batch had nothing to write); it does not wait for that
// batch's capture or answer. So an edge's batches are written in the order the edge
// formed them, and a batch's conflict detection sees the writes of the batches before
// it, while the capture wait of one batch overlaps the decisions and write of the next.
//
// Batches whose push is running are tracked in memory (registered under the batch's
// lock before it is recorded, removed when its push returns). For a new batch with
// After:
//
//   - After in flight: wait until its write returned. If it failed instead (the
//     transaction was refused, its outcome is unknown, or it was answered with an
//     error before writing), the batch is answered KindPending with nothing written:
//     the edge re-sends After first, then this batch unchanged.
//   - After recorded: done proceeds; "applying" (an interrupted write, outcome not
//     known) is KindPending until After is re-sent and recovered. A batch of another
//     edge is KindInvalid.
//   - After refused as a whole lately (too many changes): it is never written, so the
//     batch proceeds at once.
//   - After unknown: it may still be on its way; the batch waits for it to arrive, at
//     most Config.OrderWait, and is then answered KindPending. Once After has arrived
//     the batch waits for its write however long it takes (bounded by the request).
//
// The decision time does not count towards the edge's clock skew: the skew is
// measured when the batch arrives. While it waits a batch holds only its own batch
// lock, never the write section. Every answer to a push carries the header
// syncproto.HeaderPushAfter (refusals by middleware in front of it do not), so that
// edges pipeline only with hubs that order. A re-send of a recorded batch is answered from its record and
// ignores After; retries of rejected changes and admin resolutions have no order.
//
// # Concurrency
//
// Detection and the central-database write of different batches are serialised, and a
// row written by a batch whose transaction has not been captured yet counts as the
// latest version of that row (origin: the writing edge) for the batches after it, so
// two edges writing the same row in quick succession still see each other's write.
// Waiting for the capture happens outside that section.
package push
