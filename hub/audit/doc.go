// Package audit is the hub's append-only audit log: every push, conflict, resolution,
// rejection, authentication failure, API-key change and admin action is recorded as an
// Event with the row images involved, so an admin can later answer who changed what,
// when, and why the hub decided as it did.
//
// The default store is one SQLite file (modernc.org/sqlite, WAL mode) opened with
// OpenSQLite. History cannot be rewritten through SQL: triggers refuse every UPDATE of
// an event and every DELETE except the retention pruning done by (*SQLite).Prune, which
// can only remove events older than its cutoff. (Anyone who can write the file can of
// course drop the triggers; they guard against mistakes and against other code in the
// hub, not against an attacker with file access.)
//
// Query returns events newest first (ID descending) and pages backwards with
// Filter.BeforeID; with Filter.AfterID it returns events oldest first instead, which
// suits tailing the log and exporting it in order. WriteCSV writes events as RFC 4180
// CSV for download.
package audit
