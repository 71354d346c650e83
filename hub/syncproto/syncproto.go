// Package syncproto holds the wire types of the sync API, shared by the hub and the edge
// agent. It imports only the cdc model so that an edge never links the hub.
//
// A page of the change log (GET /v1/changes) is JSON:
//
//	{"since":11,"next":12,"cursor":"","commit":true,"head":40,"schema_version":3,
//	 "entries":[{"v":12,"seq":0,"last":true,"origin":"","ts":1700000000123456,"schema":3,
//	             "changes":[{"t":"public.orders","op":"i","row":{"id":1,"total":"9.90"}}]}]}
//
// Each entry is one chunk of one change-log version (one source transaction); a large
// transaction has several chunks (seq 0, 1, …) and only its last has "last":true.
// The edge applies a page's entries in order inside one local transaction and commits it
// with watermark "next" only when "commit" is true; otherwise the page ended inside a
// transaction (or inside a compacted prefix that must be applied whole) and the edge asks
// for more with the same since and the returned cursor, keeping its transaction open.
//
// A change is {"t":table,"op":"i"|"u"|"d"|"t","row":{…},"key":{…}}: inserts and updates
// carry the full new row in "row"; deletes carry the key columns in "key"; an update whose
// key changed carries the old key in "key"; truncates carry neither. Values use the
// schema-driven JSON form of package cdc, so the edge decodes them with the column kinds
// from GET /v1/schema.
package syncproto

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/synchub/synchub/cdc"
)

// Page is a decoded /v1/changes response.
type Page struct {
	Since         int64   `json:"since"`
	Next          int64   `json:"next"`
	Cursor        string  `json:"cursor,omitempty"`
	Commit        bool    `json:"commit"`
	Head          int64   `json:"head"`
	SchemaVersion int64   `json:"schema_version"`
	Entries       []Entry `json:"entries"`
}

// Entry is one chunk of one change-log version.
type Entry struct {
	Version int64        `json:"v"`
	Seq     int          `json:"seq"`
	Last    bool         `json:"last"`
	Origin  string       `json:"origin"`
	TS      int64        `json:"ts"` // source commit time, Unix microseconds
	Schema  int64        `json:"schema"`
	Changes []WireChange `json:"changes"`
}

// WireChange is one change as sent; Row and Key stay raw so the edge can decode them
// with the column kinds of its schema.
type WireChange struct {
	Table string          `json:"t"`
	Op    string          `json:"op"`
	Row   json.RawMessage `json:"row,omitempty"`
	Key   json.RawMessage `json:"key,omitempty"`
}

// SchemaResponse is the body of GET /v1/schema.
type SchemaResponse struct {
	Version int64       `json:"version"`
	Tables  []cdc.Table `json:"tables"`
}

// Error is the JSON body of every error response.
type Error struct {
	Code    string `json:"error"`   // stable machine-readable code, e.g. "bad_parameter"
	Message string `json:"message"` // what was wrong and how to fix it
	// Horizon is set on 410 responses: the oldest watermark the hub can still serve.
	Horizon int64 `json:"horizon,omitempty"`
}

// Status is the body of GET /v1/status.
type Status struct {
	Head          int64   `json:"head"`
	SchemaVersion int64   `json:"schema_version"`
	Source        string  `json:"source"`
	SourceState   string  `json:"source_state"`
	LagSeconds    float64 `json:"lag_seconds"`
	LagBytes      int64   `json:"lag_bytes"`
}

// Cursor is a position inside a version: the edge has received chunks 0..Seq of Version.
type Cursor struct {
	Version int64
	Seq     int
}

// String is the wire form "version.seq".
func (c Cursor) String() string {
	if c.Version == 0 {
		return ""
	}
	return strconv.FormatInt(c.Version, 10) + "." + strconv.Itoa(c.Seq)
}

// ParseCursor parses "version.seq"; the empty string is the zero Cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	v, seq, ok := strings.Cut(s, ".")
	if !ok {
		return Cursor{}, fmt.Errorf("cursor %q: want version.seq as returned in the previous page", s)
	}
	version, err := strconv.ParseInt(v, 10, 64)
	if err != nil || version <= 0 {
		return Cursor{}, fmt.Errorf("cursor %q: version is not a positive integer", s)
	}
	n, err := strconv.Atoi(seq)
	if err != nil || n < 0 {
		return Cursor{}, fmt.Errorf("cursor %q: seq is not a non-negative integer", s)
	}
	return Cursor{Version: version, Seq: n}, nil
}

// AppendChange appends the wire JSON of one change. tbl is the change's table at the
// time of the change; it supplies the primary key for deletes and key changes.
func AppendChange(b []byte, c *cdc.Change, tbl *cdc.Table) []byte {
	b = append(b, `{"t":`...)
	b = cdc.AppendJSONString(b, c.Table)
	b = append(b, `,"op":"`...)
	b = append(b, c.Op.Code()...)
	b = append(b, '"')
	switch c.Op {
	case cdc.OpInsert:
		b = append(b, `,"row":`...)
		b = AppendRow(b, c.After)
	case cdc.OpUpdate:
		b = append(b, `,"row":`...)
		b = AppendRow(b, c.After)
		if len(c.Before) > 0 && tbl != nil && KeyChanged(tbl, c.Before, c.After) {
			b = append(b, `,"key":`...)
			b = AppendKey(b, tbl, c.Before)
		}
	case cdc.OpDelete:
		b = append(b, `,"key":`...)
		if tbl != nil {
			b = AppendKey(b, tbl, c.Before)
		} else {
			b = AppendRow(b, c.Before)
		}
	}
	return append(b, '}')
}

// AppendRow appends a row as a JSON object. Columns marked Unchanged are left out.
func AppendRow(b []byte, r cdc.Row) []byte {
	b = append(b, '{')
	first := true
	for i := range r {
		if r[i].Unchanged {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = cdc.AppendJSONString(b, r[i].Name)
		b = append(b, ':')
		b = r[i].Value.AppendJSON(b)
	}
	return append(b, '}')
}

// AppendKey appends the primary-key columns of r as a JSON object, in key order.
func AppendKey(b []byte, tbl *cdc.Table, r cdc.Row) []byte {
	b = append(b, '{')
	for i, k := range tbl.PrimaryKey {
		if i > 0 {
			b = append(b, ',')
		}
		b = cdc.AppendJSONString(b, k)
		b = append(b, ':')
		v, _ := r.Get(k)
		b = v.AppendJSON(b)
	}
	return append(b, '}')
}

// KeyText is the canonical text of a row's key: a JSON array of the key values in key
// order. The change log's per-row index and the edge both identify rows by it.
func KeyText(tbl *cdc.Table, r cdc.Row) string {
	b := make([]byte, 0, 32)
	b = append(b, '[')
	for i, k := range tbl.PrimaryKey {
		if i > 0 {
			b = append(b, ',')
		}
		v, _ := r.Get(k)
		b = v.AppendJSON(b)
	}
	return string(append(b, ']'))
}

// KeyChanged reports whether any primary-key column differs between two row images.
// Columns missing from before are treated as unchanged.
func KeyChanged(tbl *cdc.Table, before, after cdc.Row) bool {
	for _, k := range tbl.PrimaryKey {
		bv, ok := before.Get(k)
		if !ok {
			continue
		}
		av, _ := after.Get(k)
		if !bv.Equal(av) {
			return true
		}
	}
	return false
}
