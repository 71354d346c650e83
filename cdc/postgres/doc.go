// Package postgres is the PostgreSQL cdc.Source: it snapshots the configured tables
// and streams their committed transactions through logical replication with the
// built-in pgoutput plugin (protocol version 1, so a transaction is sent only after
// it commits, and whole).
//
// # Prerequisites
//
//   - PostgreSQL 14 or newer with wal_level = logical (ALTER SYSTEM SET wal_level =
//     logical; then restart), and free max_replication_slots and max_wal_senders.
//   - A role with the REPLICATION attribute (ALTER ROLE synchub REPLICATION), SELECT on
//     the captured tables and the right to create a publication for them (CREATE on
//     the database, or ownership of the tables); pg_hba.conf must let it connect to the
//     database with a replication connection (which matches the database's own name).
//   - Every captured table has a primary key: edges identify rows by it. REPLICA
//     IDENTITY may stay DEFAULT (old rows then carry the key) or be FULL (old rows
//     carry every column); NOTHING is refused.
//
// The source owns one publication (Config.Publication, created or altered to hold
// exactly the configured tables) and one logical slot (Config.Slot). Start without a
// position creates the slot with an exported snapshot; Snapshot reads the tables in
// that snapshot (one sequential scan per table, text format); Stream continues at the
// slot's consistent point. The position of a transaction is the LSN at the end of its
// commit record. The slot's confirmed position moves to positions passed to Ack and,
// once every delivered transaction has been acknowledged, to the WAL end the server
// reports in a keepalive between transactions (everything before it was already
// sent), as PostgreSQL's own subscribers do: an idle slot then does not pin WAL, and a
// fast shutdown of the server does not wait for wal_sender_timeout. Nothing the
// consumer has not acknowledged is ever confirmed.
//
// A transaction is attributed to an edge (Tx.Origin) and a push batch (Tx.Batch) by a
// transactional logical message with prefix "synchub.origin" written inside the
// transaction. Its content is the edge id, a space and the batch id; without a space
// it is the edge id alone (no batch), and an empty edge id before the space (" b1")
// is a batch written on no edge's behalf, such as an admin's resolution:
//
//	SELECT pg_logical_emit_message(true, 'synchub.origin', 'edge-a b1');
//
// The Applier emits it as the first statement of every transaction it writes. Emit it
// before the transaction's writes: a large transaction is delivered in parts, and only
// parts delivered after the message carry the origin and batch (the final part always
// does). A transaction replayed under a replication origin named "synchub.<edge id>"
// is attributed the same way.
//
// # Writing back
//
// The Applier writes edges' changes through a pool of ordinary connections (the role
// needs INSERT, UPDATE and DELETE on the tables). Each Apply is one transaction that
// starts with the origin message above. Table and column names must be in the
// catalog's definition of a configured table (re-read once when a column is unknown)
// and are quoted; values are text-format parameters (bytea binary) of prepared
// statements whose types PostgreSQL infers from the columns, so the server's own input
// functions parse them; canonical forms it would not read back (astronomical BC years,
// JSON arrays) are rewritten to its literals first. The batch goes out as one pipeline;
// when a statement is refused, the transaction is rolled back and the batch is sent
// again with a savepoint around each change and deferred constraints checked at once,
// so that each refused change gets PostgreSQL's message, detail and constraint name
// and the others are written. An update or delete that matches no row is reported as
// "row not found".
//
// Tables removed from the configuration are dropped from the publication; their
// changes still in the stream are skipped. A captured table renamed while streaming
// stops the stream with a configuration error. Adding a table, a dropped slot, WAL the
// slot lost (max_slot_wal_keep_size) or a position ahead of the server's WAL make
// Start report PositionLost without changing the publication or creating a slot; the
// hub resets its change log, then starts again without a position, which adds the
// table, creates the slot and takes a new snapshot.
//
// # Type mapping
//
// Values are decoded from PostgreSQL's text output, which both the snapshot and the
// stream produce; the connections use TimeZone UTC, DateStyle ISO, IntervalStyle
// iso_8601, extra_float_digits 3 and bytea_output hex so the forms are fixed.
//
//	PostgreSQL type                      Kind          Value
//	int2, int4, int8, oid                int           full int64 range
//	numeric                              decimal       exact text, "NaN", "Infinity"
//	float4, float8                       float         NaN and ±Infinity kept
//	bool                                 bool
//	text, varchar, bpchar, name, char,   text          as stored (bpchar keeps its padding)
//	citext and other extension types
//	bytea                                bytes         raw bytes
//	uuid                                 uuid          lower-case canonical text
//	json, jsonb                          json          the JSON text PostgreSQL prints
//	date                                 date          "2006-01-02", "infinity"; BC as "-0043-03-15"
//	time, timetz                         time          "15:04:05.999999", timetz keeps its offset
//	timestamp                            timestamp     "2006-01-02T15:04:05.999999", "infinity", "-infinity"
//	timestamptz                          timestamptz   UTC "2006-01-02T15:04:05.999999Z", "infinity", "-infinity"
//	interval                             interval      ISO 8601 "P1Y2M3DT4H5M6.5S"
//	any array                            array         JSON array text, nested per dimension; NULL is null;
//	                                                   numbers stay numbers (NaN/Infinity as strings),
//	                                                   booleans true/false, everything else strings in
//	                                                   the element's canonical form
//	enums (pg_type.typtype 'e')          enum          the label
//	domains                              the base type's kind
//	anything else (inet, cidr, money,    text          PostgreSQL's text form
//	xml, geometric, ranges, composites)
//
// Generated columns are not replicated by pgoutput and are left out of the captured
// table definitions. When a Relation message shows that a captured table's columns
// changed (ALTER TABLE ADD/DROP COLUMN, a type change), the new definition is re-read
// and delivered in Tx.Tables of the transaction that first carries rows in it.
package postgres
