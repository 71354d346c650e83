package cdc

// Position is a source's point in its change stream: a PostgreSQL LSN, a MySQL GTID set
// or binlog file:pos, a SQL Server change-tracking version, an Oracle SCN. Each adapter
// has its own concrete type with a canonical text form, a parser that never panics and
// a total order; the hub stores String() beside the change log and hands it back to the
// adapter's ParsePosition on restart. The hub orders its log by its own versions, never
// by positions, and edges never see them.
type Position interface {
	// String is the canonical text form; ParsePosition(p.String()) equals p.
	String() string
	// IsZero reports whether this is the "no position yet" value.
	IsZero() bool
}
