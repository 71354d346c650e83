package syncproto

import "encoding/json"

// Push wire types (POST /v1/push).
//
// An edge sends the changes of its outbox in batches:
//
//	{"edge":"till-1","batch_id":"7c0e…","changes":[
//	  {"id":41,"t":"public.orders","op":"u","key":{"id":7},"row":{"id":7,"total":"12.00",…},
//	   "base_version":118,"base":{"id":7,"total":"9.90",…},"hlc":"0001700000000123456-0003-till-1"}]}
//
// "id" is the edge's outbox sequence number, echoed in the result. "key" holds the key
// columns of the row before the change (for an insert, of the new row). "row" is the
// full new row for inserts and updates and absent for deletes. "base_version" is the
// change-log version the row had when the edge last pulled it (0 for a row the edge
// created), "base" that row image (absent when base_version is 0). "hlc" is the edge's
// hybrid logical clock at the time of the write (see HLC). Values use the schema-driven
// JSON form of package cdc.
//
// The hub answers with one result per change, in order. Re-sending a batch_id returns
// the stored answer and applies nothing again.

// Push result statuses.
const (
	PushApplied  = "applied"  // written to the central database as sent
	PushConflict = "conflict" // a conflict was detected; Outcome says how it was resolved
	PushRejected = "rejected" // not written; Reason says why
)

// Conflict outcomes.
const (
	OutcomeClientWon = "client_won" // the edge's change was written
	OutcomeServerWon = "server_won" // the server's row stays; the edge's change is dropped
	OutcomeMerged    = "merged"     // a merged row was written
	OutcomeManual    = "manual"     // queued for an admin; the row stays at the server's state
)

// HeaderPushAfter is set ("1") on the answers of POST /v1/push by a hub that honours
// PushRequest.After (all but refusals by middleware in front of the push handler:
// authentication, rate limits, body size). An edge sends a batch before the previous
// one is answered only to a hub that has shown it: an older hub ignores After and
// could write such batches out of order.
const HeaderPushAfter = "X-Synchub-Push-After"

// PushRequest is the body of POST /v1/push.
type PushRequest struct {
	Edge    string `json:"edge"`
	BatchID string `json:"batch_id"`
	// SentAt is the edge's wall clock when it sent the batch, Unix microseconds. The hub
	// compares it with its own clock to estimate the edge's clock skew and corrects the
	// changes' HLC timestamps by it before last-writer-wins comparisons.
	SentAt int64 `json:"sent_at"`
	// After is the batch id of the same edge's previous batch when that batch was still
	// unanswered as this one was sent (empty otherwise). It lets an edge send its next
	// batch without waiting for the answer to the previous one: the hub decides and
	// writes this batch only after the After batch's write to the central database has
	// completed (it does not wait for that batch's capture or answer), so the edge's
	// batches reach the central database in the order it formed them. If the After
	// batch failed, is in an unknown state, or has not reached the hub within the hub's
	// push.order_wait, this batch is answered 503 (code "batch_pending") with nothing
	// written: re-send the After batch first, then this one unchanged. A re-send of a
	// batch the hub already holds is answered as stored, whatever After says.
	After   string       `json:"after,omitempty"`
	Changes []PushChange `json:"changes"`
}

// PushChange is one local change of an edge.
type PushChange struct {
	ID          int64           `json:"id"`
	Table       string          `json:"t"`
	Op          string          `json:"op"` // "i", "u" or "d"
	Key         json.RawMessage `json:"key"`
	Row         json.RawMessage `json:"row,omitempty"`
	BaseVersion int64           `json:"base_version"`
	Base        json.RawMessage `json:"base,omitempty"`
	HLC         string          `json:"hlc"`
}

// PushResponse is the body of a successful POST /v1/push.
type PushResponse struct {
	BatchID string       `json:"batch_id"`
	Results []PushResult `json:"results"`
}

// PushResult is the hub's answer for one change.
type PushResult struct {
	ID     int64  `json:"id"`
	Status string `json:"status"` // PushApplied, PushConflict or PushRejected
	// Version is the change-log version that holds the row's new state when the hub's
	// write was captured before the answer (0 if nothing was written or it was not yet
	// captured; the edge then learns it from its next pull).
	Version int64 `json:"version,omitempty"`
	// Conflict details.
	Policy     string `json:"policy,omitempty"`
	Outcome    string `json:"outcome,omitempty"`
	ConflictID int64  `json:"conflict_id,omitempty"`
	// Row is the row as it now is on the server (the winner), absent when deleted.
	Row json.RawMessage `json:"row,omitempty"`
	// Reason says why a change was rejected (the central database's message, or a
	// validation failure naming the table, column or value).
	Reason string `json:"reason,omitempty"`
	// Code is a stable machine-readable reason code for rejections, e.g. "constraint",
	// "forbidden", "bad_change".
	Code string `json:"code,omitempty"`
}
