package mysql

// OriginTable is the table, in the origin database (Config.OriginDatabase, by default
// the database of the first captured table), through which a transaction written by
// the Applier is attributed to an edge. The Applier's first statement in every
// transaction is
//
//	REPLACE INTO synchub_origin (conn_id, origin, batch) VALUES (CONNECTION_ID(), ?, ?)
//
// so the transaction's binlog events hold a row event on this table; the Source reads
// Tx.Origin and Tx.Batch from that row's new image and drops the event from the
// transaction's changes. Keying the row by connection id keeps concurrent appliers
// from waiting on each other's row lock.
const OriginTable = "synchub_origin"

// originTableDDL creates OriginTable; the Applier runs it when it starts.
const originTableDDL = "CREATE TABLE IF NOT EXISTS `" + OriginTable + "` (" +
	"conn_id BIGINT UNSIGNED NOT NULL PRIMARY KEY, " +
	"origin VARCHAR(255) NOT NULL, " +
	"batch VARCHAR(255) NOT NULL, " +
	"at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)" +
	") ENGINE=InnoDB"
