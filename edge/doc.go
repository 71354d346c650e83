// Package edge is the synchub edge agent as a library: it keeps a local SQLite copy of
// the tables a hub captures and pulls the hub's change log into it.
//
//	agent, err := edge.Open(ctx, edge.Config{HubURL: "http://hub:8080", DBPath: "edge.db", ...}, log)
//	defer agent.Close()
//	go agent.Run(ctx)          // long-poll the hub until ctx ends
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
package edge
