// Package conflict detects and resolves conflicts between an edge's change and the
// central database's current row.
//
// A change conflicts when the row's latest change-log version is newer than the
// version the edge based its change on and was written by someone else (the central
// database itself or another edge); see Detect. Each table has a policy (TablePolicy):
//
//   - lww: last writer wins. The edge's write time is its HLC wall clock corrected by the
//     edge's measured clock skew (ClientTime) and never later than the hub's clock; it is
//     compared with the source commit time of the row's latest version. A tie goes to the
//     server.
//   - server-wins, client-wins: the named side always wins.
//   - merge: a field-level three-way merge of the edge's base image, the edge's new row
//     and the server's current row. A field changed on one side only takes that side's
//     value; a field changed on both sides to different values goes to the table's
//     tiebreak ("server", "client" or "manual"). Conflicts that are not two rows (a
//     delete on either side) go to the tiebreak as a whole.
//   - manual: queued for an admin; the row stays at the server's state.
//   - custom:<name>: the Resolver registered under name in Rules.Resolvers decides.
//
// The package is pure: it reads no database and keeps no state. The push service
// (package hub/push) gathers the rows, calls Detect and Resolve, and writes the result.
package conflict
