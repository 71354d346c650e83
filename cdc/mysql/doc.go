// Package mysql captures changes from MySQL 8 and MariaDB 10.5+ through the row-based
// binary log (github.com/go-mysql-org/go-mysql) and writes edge changes back.
//
// The Source snapshots the configured tables and then reads the binlog as a replica
// does (COM_BINLOG_DUMP, or COM_BINLOG_DUMP_GTID when the position has a GTID set),
// delivering each committed transaction whole, in commit order. The server's flavour
// (MySQL or MariaDB) is read from its version string, not configured.
//
// # Server settings
//
// In the server's configuration file (each is also checked by Start, whose error names
// the setting and the fix):
//
//	log_bin             = binlog     # any base name; the binary log must be on
//	server_id           = 1          # any id, unique among the server and its replicas
//	binlog_format       = ROW
//	binlog_row_image    = FULL       # updates carry the whole old and new row
//	binlog_row_metadata = FULL       # table maps carry column names, keys, ENUM/SET labels
//
// binlog_row_metadata needs MariaDB 10.5+ or MySQL 8.0.1+. With FULL row metadata every
// row event is decoded with the columns it was written with, even when the stream is
// behind a later ALTER TABLE. GTIDs are optional: with gtid_mode=ON (MySQL) or MariaDB's
// always-on GTIDs the position carries the GTID set and streaming resumes by it. Keep
// binlogs long enough to cover an outage of the hub (binlog_expire_logs_seconds, or
// expire_logs_days); a position whose binlog was purged is lost (see below).
// Columns must use a UTF-8 character set (utf8mb4, utf8mb3, ascii) or binary: the
// binlog carries other character sets' bytes unconverted, and Start refuses them.
//
// # Grants
//
//	CREATE USER 'synchub'@'%' IDENTIFIED BY '...';
//	GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'synchub'@'%';  -- MariaDB 10.5+: REPLICATION SLAVE, BINLOG MONITOR
//	GRANT SELECT ON shop.* TO 'synchub'@'%';
//	GRANT RELOAD ON *.* TO 'synchub'@'%';  -- MySQL only: the snapshot's brief FLUSH TABLES WITH READ LOCK
//
// The Applier additionally needs INSERT, UPDATE, DELETE on the tables and CREATE on the
// origin database (for the origin table).
//
// # Configuration
//
// Config.DSN is "mysql://user:password@host:port/database" (user and password
// URL-escaped; port 3306 by default; the database is optional) or go-mysql's
// "user:password@host:port/database". Config.Tables lists "database.table" names. The
// replication client registers with Config.ServerID, by default a stable id in
// 0x5e000000–0x5effffff derived from the address, user and tables; it must differ
// from the server's and every other replica's (Start flips its lowest bit if it
// equals the server's).
//
// # Snapshot
//
// On MariaDB the snapshot is START TRANSACTION WITH CONSISTENT SNAPSHOT; the server
// reports the binlog file and offset that snapshot corresponds to
// (binlog_snapshot_file, binlog_snapshot_position) and BINLOG_GTID_POS turns them into
// a GTID position, without any lock. On MySQL, FLUSH TABLES WITH READ LOCK is held for
// the moment it takes to start the consistent snapshot and read SHOW MASTER STATUS
// (file, offset, Executed_Gtid_Set). Tables are then read in pages of
// Config.SnapshotPageRows ordered by primary key (keyset pagination), logging
// progress. The consistent snapshot covers transactional (InnoDB) tables only.
//
// # Positions
//
// A position is the binlog file and the offset just after a transaction's commit event,
// plus the GTID set including that transaction when the server writes GTIDs. Its text
// form is FLAVOUR:FILE:OFFSET[@GTIDSET]:
//
//	mariadb:binlog.000003:1234@0-1-42,1-2-7                         (domain-server-sequence per domain)
//	mysql:binlog.000012:157@3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5 (uuid:intervals per server)
//	mysql:binlog.000012:157                                         (GTIDs off)
//
// Start with a position checks that it can still be streamed: the flavour matches, its
// binlog file is still listed by SHOW BINARY LOGS (MariaDB, or without GTIDs), the
// GTID set contains gtid_purged (MySQL), and the offset is not beyond the end of the
// binlog. Otherwise it reports PositionLost and logs why; the hub then resets its change
// log, takes a new snapshot and edges re-bootstrap. A purge the stream itself meets
// (the server's error 1236) ends Stream with an error wrapping cdc.ErrPositionLost.
// Ack only records the position: a MySQL server does not keep binlogs for its
// replicas. LagBytes (cdc.Lagger) is the number of binlog bytes after the acknowledged
// position, summed over SHOW BINARY LOGS.
//
// # Transactions
//
// A transaction is what lies between a GTID event (or BEGIN) and its XID event (or
// COMMIT); its position is the offset after that event and its commit time the event's
// timestamp (whole seconds). A statement outside BEGIN … COMMIT (DDL) is a transaction
// of its own. A transaction with more than Config.MaxTxChanges changes arrives in parts
// (Tx.More). Transactions touching no captured table are not delivered. After a
// delivery, Stream calls Handler.Idle when no event arrives for Config.IdleWait, or,
// when other tables' transactions keep arriving, once IdleWait has passed since the
// delivery. Heartbeats (Config.HeartbeatPeriod) keep an idle connection alive; when no
// event at all arrives for Config.ReadTimeout while the stream waits, the connection
// is taken for dead and Stream returns a retryable error.
//
// DDL on a captured table is recognised in the binlog's query events: after ALTER,
// CREATE or RENAME TABLE the table's definition is read again from information_schema
// and, when its columns changed, announced in that transaction's Tx.Tables; TRUNCATE
// and DROP TABLE become a truncate change. Rows are decoded with the columns their
// table map carries: when a table map differs from the known definition (the stream is
// behind a later DDL), the definition is rebuilt from it (columns that kept their name
// and type keep what the catalog said about them) and announced in Tx.Tables. A
// catch-up past several ALTERs can therefore announce more definitions than there were
// statements; each is right for the rows after it.
//
// # Origin table
//
// A transaction written by the Applier starts with a row in OriginTable
// ("synchub_origin" in Config.OriginDatabase, by default the first table's database):
//
//	REPLACE INTO synchub_origin (conn_id, origin, batch) VALUES (CONNECTION_ID(), ?, ?)
//
// The stream reads Tx.Origin and Tx.Batch from that row's new image and never
// delivers the row itself. Write it first: a transaction delivered in parts carries
// the origin only on parts after the row. A write-back whose row writes all left their
// rows as they were has no other row event (MySQL logs none for such an UPDATE); it is
// delivered as an empty transaction with its batch, so the push learns it committed.
//
// # Type mapping
//
// The snapshot (binary protocol, session time zone UTC) and the binlog decoder produce
// the same canonical values.
//
//	MySQL type                               Kind         Value
//	TINYINT … BIGINT, signed or UNSIGNED     int          int64 (BIGINT UNSIGNED: see decimal)
//	BIGINT UNSIGNED                          decimal      exact text, "0" … "18446744073709551615"
//	DECIMAL, NUMERIC                         decimal      exact text with the column's scale ("12.50")
//	FLOAT                                    float        float32's shortest decimal (1.1 stays 1.1)
//	DOUBLE                                   float
//	DATE                                     date         "2006-01-02" ("0000-00-00" kept as text)
//	DATETIME(p)                              timestamp    "2006-01-02T15:04:05.999999", zeros trimmed
//	TIMESTAMP(p)                             timestamptz  UTC, "2006-01-02T15:04:05.999999Z"
//	TIME(p)                                  time         "15:04:05.999999"; values outside a day
//	                                                      keep MySQL's form ("-838:59:59", "100:00:00")
//	YEAR                                     int          e.g. 2024
//	BIT(n)                                   int          the bits as an integer; BIT(64) with the top
//	                                                      bit set is negative (same 64 bits)
//	CHAR, VARCHAR, TEXT (UTF-8)              text         as stored (CHAR without trailing spaces)
//	BINARY(n), VARBINARY, BLOB               bytes        raw bytes (BINARY padded to n)
//	JSON (MySQL binary JSON)                 json         the document, compact
//	JSON (MariaDB: LONGTEXT + json_valid)    json         the text as stored
//	ENUM                                     enum         the label
//	SET                                      text         labels in declaration order, comma-separated
//	GEOMETRY types                           bytes        MySQL's internal form (SRID + WKB)
//	NULL                                     null
//
// SQLite types follow the kind (cdc.Kind.SQLiteType): INTEGER for int, REAL for float,
// BLOB for bytes, TEXT for the rest. Other types (MariaDB's UUID, INET4/6) are refused
// by Start with an error naming the column.
//
// # Limits
//
//   - MySQL 8 is covered by unit tests on binlog event fixtures only; the test
//     machines run MariaDB 10.11.
//   - MySQL's binary JSON is compacted (no insignificant spaces) in the snapshot and the
//     stream alike; numbers the server and go-mysql print differently (1e30 vs 1e+30)
//     may still differ in text while equal in value.
//   - Partial JSON updates (binlog_row_value_options=PARTIAL_JSON) are refused.
//   - A prepared XA transaction is held in memory from XA PREPARE and delivered at its
//     XA COMMIT (dropped at XA ROLLBACK); a stream resumed from a position between the
//     two misses it (logged as a warning). Statement-based events are not decoded.
//   - TLS connections are not configurable yet.
package mysql
