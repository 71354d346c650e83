// Package cdc is the source-neutral centre of synchub: the change model (Tx, Change,
// Value, Position, Schema) and the contracts every database adapter implements
// (Source, Applier). It imports only the standard library; adapters live in the
// subpackages cdc/postgres, cdc/mysql, cdc/mssql and cdc/oracle.
//
// Values travel through the change log as JSON in a schema-driven form: the column's
// Kind says how to read the JSON token, so a value round-trips without loss.
//
//	Kind          JSON form                        SQLite type on the edge
//	null          null                             (any)
//	bool          true / false                     INTEGER (0/1)
//	int           number, full int64 range         INTEGER
//	float         number, or "NaN"/"Infinity"/"-Infinity"  REAL (NaN stored as the text 'NaN')
//	decimal       string, exact ("12.3400")        TEXT
//	text          string                           TEXT
//	bytes         string, standard base64          BLOB
//	uuid          string, canonical lower-case     TEXT
//	json          string holding the JSON text     TEXT
//	date          string "2006-01-02"              TEXT
//	time          string "15:04:05.999999"         TEXT
//	timestamp     string "2006-01-02T15:04:05.999999" TEXT
//	timestamptz   string, UTC "…Z"                 TEXT
//	interval      string, source text form         TEXT
//	array         string holding a JSON array      TEXT
//	enum          string (the label)               TEXT
package cdc
