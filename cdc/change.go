package cdc

import (
	"fmt"
	"time"
)

// Op is what a change did to a row.
type Op uint8

// The operations a change can carry.
const (
	OpInsert Op = iota + 1
	OpUpdate
	OpDelete
	OpTruncate
)

// String returns the operation's name.
func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpTruncate:
		return "truncate"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Code is the one-letter form used in the change log's JSON ("i", "u", "d", "t").
func (o Op) Code() string {
	switch o {
	case OpInsert:
		return "i"
	case OpUpdate:
		return "u"
	case OpDelete:
		return "d"
	case OpTruncate:
		return "t"
	}
	return "?"
}

// ParseOpCode is the inverse of Op.Code.
func ParseOpCode(s string) (Op, error) {
	switch s {
	case "i":
		return OpInsert, nil
	case "u":
		return OpUpdate, nil
	case "d":
		return OpDelete, nil
	case "t":
		return OpTruncate, nil
	}
	return 0, fmt.Errorf("unknown change op %q (want i, u, d or t)", s)
}

// Field is one named column value of a Row.
type Field struct {
	Name  string
	Value Value
	// Unchanged marks a column the source did not send because it did not change
	// (PostgreSQL's unchanged TOAST value). Value is NULL then and must not be used:
	// the consumer keeps the value it already has.
	Unchanged bool
}

// Row is a row image: its columns in the source table's order.
type Row []Field

// Get returns the value of the named column.
func (r Row) Get(name string) (Value, bool) {
	for i := range r {
		if r[i].Name == name {
			return r[i].Value, true
		}
	}
	return Value{}, false
}

// HasUnchanged reports whether any column is marked Unchanged.
func (r Row) HasUnchanged() bool {
	for i := range r {
		if r[i].Unchanged {
			return true
		}
	}
	return false
}

// Change is one row-level change in a source transaction.
//
// Insert: After is the new row. Update: After is the new row (columns may be marked
// Unchanged); Before holds at least the old key when the key changed, or the whole old
// row when the source sends it. Delete: Before holds at least the key columns.
// Truncate: only Table is set.
type Change struct {
	Table  string // schema-qualified, e.g. "public.orders"
	Op     Op
	Before Row
	After  Row
}

// Tx is one committed source transaction, or one part of it.
//
// A source may deliver a large transaction in several parts that share one
// transaction: every part but the last has More set, and only the last carries Pos
// and CommitTime. Consumers must treat the parts as one unit.
type Tx struct {
	Pos        Position  // commit position; set on the final part
	CommitTime time.Time // source commit time; set on the final part
	Origin     string    // who wrote it: "" for the central database itself, else an edge id
	Batch      string    // the push batch an Applier wrote it for (Tag.Batch), else ""
	// Tables lists tables whose definition changed at or before this transaction's
	// rows (a column added or dropped); the change log records a new schema version.
	Tables  []Table
	Changes []Change
	More    bool
}
