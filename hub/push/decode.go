package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/syncproto"
)

// maxIDLen bounds edge and batch ids, which are stored and sent to the central
// database as the write's origin tag.
const maxIDLen = 200

// checkID reports whether an edge or batch id is usable as an origin tag.
func checkID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s is empty", what)
	case len(id) > maxIDLen:
		return fmt.Errorf("%s is %d bytes; at most %d allowed", what, len(id), maxIDLen)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%s %q contains whitespace, a control character or invalid UTF-8", what, id)
		}
	}
	return nil
}

// change is one validated push change in the source-neutral model.
type change struct {
	tbl     *cdc.Table
	op      cdc.Op
	key     cdc.Row // key columns of the row before the change
	keyText string  // syncproto.KeyText of key
	row     cdc.Row // new row (insert, update)
	base    cdc.Row // base image, may be nil
	hlc     syncproto.HLC
	hasHLC  bool
	// known is the row's change-log entry when it was looked up with the batch's other
	// rows (known set; found says whether there was one).
	known struct {
		set, found bool
		info       changelog.RowInfo
	}
}

// badChange is a validation failure of one change; its text names the table, column
// or value.
type badChange struct{ msg string }

func (e *badChange) Error() string { return e.msg }

func bad(format string, args ...any) error { return &badChange{msg: fmt.Sprintf(format, args...)} }

// decodeChange validates pc against the schema and converts it.
func decodeChange(sch *cdc.Schema, pc *syncproto.PushChange) (*change, error) {
	if pc.Table == "" {
		return nil, bad("change %d: table (\"t\") is empty", pc.ID)
	}
	tbl, ok := sch.Table(pc.Table)
	if !ok {
		return nil, bad("change %d: table %s is not synchronised by this hub (see GET /v1/schema)", pc.ID, pc.Table)
	}
	c := &change{tbl: tbl}
	switch pc.Op {
	case "i":
		c.op = cdc.OpInsert
	case "u":
		c.op = cdc.OpUpdate
	case "d":
		c.op = cdc.OpDelete
	default:
		return nil, bad("change %d on %s: op %q is not i, u or d", pc.ID, tbl.Name, pc.Op)
	}
	var err error
	if c.key, err = decodeObject(tbl, pc.Key, "key", true); err != nil {
		return nil, bad("change %d on %s: %v", pc.ID, tbl.Name, err)
	}
	for _, k := range tbl.PrimaryKey {
		if v, ok := c.key.Get(k); !ok || v.IsNull() {
			return nil, bad("change %d on %s: key column %s is missing or null; \"key\" must hold exactly the key columns %s",
				pc.ID, tbl.Name, k, strings.Join(tbl.PrimaryKey, ", "))
		}
	}
	c.keyText = syncproto.KeyText(tbl, c.key)
	if c.op != cdc.OpDelete {
		if len(bytes.TrimSpace(pc.Row)) == 0 || string(bytes.TrimSpace(pc.Row)) == "null" {
			return nil, bad("change %d on %s: %s without a row; inserts and updates carry the full new row in \"row\"", pc.ID, tbl.Name, c.op)
		}
		if c.row, err = decodeObject(tbl, pc.Row, "row", false); err != nil {
			return nil, bad("change %d on %s: %v", pc.ID, tbl.Name, err)
		}
		for _, k := range tbl.PrimaryKey {
			v, ok := c.row.Get(k)
			if !ok || v.IsNull() {
				return nil, bad("change %d on %s: row lacks key column %s", pc.ID, tbl.Name, k)
			}
			if kv, _ := c.key.Get(k); c.op == cdc.OpInsert && !kv.Equal(v) {
				return nil, bad("change %d on %s: insert's key column %s is %s but the row has %s", pc.ID, tbl.Name, k, kv, v)
			}
		}
	} else if len(bytes.TrimSpace(pc.Row)) > 0 && string(bytes.TrimSpace(pc.Row)) != "null" {
		return nil, bad("change %d on %s: a delete carries no row, only the key", pc.ID, tbl.Name)
	}
	if pc.BaseVersion < 0 {
		return nil, bad("change %d on %s: base_version %d is negative", pc.ID, tbl.Name, pc.BaseVersion)
	}
	if len(bytes.TrimSpace(pc.Base)) > 0 && string(bytes.TrimSpace(pc.Base)) != "null" {
		// The base image may hold columns dropped since the edge pulled it; only the
		// known ones matter for a merge.
		if c.base, err = decodeBase(tbl, pc.Base); err != nil {
			return nil, bad("change %d on %s: %v", pc.ID, tbl.Name, err)
		}
	}
	if pc.HLC != "" {
		if c.hlc, err = syncproto.ParseHLC(pc.HLC); err != nil {
			return nil, bad("change %d on %s: %v", pc.ID, tbl.Name, err)
		}
		c.hasHLC = true
	}
	return c, nil
}

// decodeObject decodes a JSON object of column values into a row in the table's
// column order. With keyOnly, exactly the key columns are allowed.
func decodeObject(tbl *cdc.Table, raw json.RawMessage, what string, keyOnly bool) (cdc.Row, error) {
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("%s is missing", what)
	}
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%s is not a JSON object of column values", what)
	}
	for name := range sortedNames(m) {
		col, ok := tbl.Column(name)
		if !ok {
			return nil, fmt.Errorf("%s: column %q is not a column of %s", what, name, tbl.Name)
		}
		if keyOnly && !isKeyColumn(tbl, col.Name) {
			return nil, fmt.Errorf("%s: column %s is not a key column; the key of %s is (%s)", what, name, tbl.Name, strings.Join(tbl.PrimaryKey, ", "))
		}
	}
	return rowFromMap(tbl, m, what, false)
}

// decodeBase decodes a base image, ignoring columns the table no longer has.
func decodeBase(tbl *cdc.Table, raw json.RawMessage) (cdc.Row, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("base is not a JSON object of column values")
	}
	return rowFromMap(tbl, m, "base", true)
}

func rowFromMap(tbl *cdc.Table, m map[string]json.RawMessage, what string, lenient bool) (cdc.Row, error) {
	row := make(cdc.Row, 0, len(m))
	for _, col := range tbl.Columns {
		raw, ok := m[col.Name]
		if !ok {
			continue
		}
		v, err := cdc.ParseJSONValue(col.Kind, raw)
		if err != nil {
			if lenient {
				continue
			}
			return nil, fmt.Errorf("%s: column %s (%s): value %s: %v", what, col.Name, col.Kind, truncate(string(raw), 80), err)
		}
		if !lenient {
			if err := checkText(v); err != nil {
				return nil, fmt.Errorf("%s: column %s (%s): value %s: %v", what, col.Name, col.Kind, truncate(string(raw), 80), err)
			}
		}
		row = append(row, cdc.Field{Name: col.Name, Value: v})
	}
	return row, nil
}

func isKeyColumn(tbl *cdc.Table, name string) bool {
	for _, k := range tbl.PrimaryKey {
		if k == name {
			return true
		}
	}
	return false
}

// sortedNames yields the map's keys in order, so the first error is deterministic.
func sortedNames(m map[string]json.RawMessage) func(func(string) bool) {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return func(yield func(string) bool) {
		for _, n := range names {
			if !yield(n) {
				return
			}
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// rowJSON encodes a row in the wire form; nil stays nil.
func rowJSON(r cdc.Row) json.RawMessage {
	if r == nil {
		return nil
	}
	return syncproto.AppendRow(nil, r)
}

// keyRow returns the key columns of r.
func keyRow(tbl *cdc.Table, r cdc.Row) cdc.Row {
	k := make(cdc.Row, 0, len(tbl.PrimaryKey))
	for _, name := range tbl.PrimaryKey {
		v, _ := r.Get(name)
		k = append(k, cdc.Field{Name: name, Value: v})
	}
	return k
}

// checkText checks the text of the kinds whose form is fixed, beyond what
// cdc.ParseJSONValue checks: decimals, UUIDs and JSON. Other text kinds (dates, times,
// intervals, arrays) have source-specific forms the central database judges.
func checkText(v cdc.Value) error {
	s := v.AsString()
	switch v.Kind() {
	case cdc.KindDecimal:
		if !isDecimal(s) {
			return fmt.Errorf("not a decimal number (want digits with an optional sign, point and exponent)")
		}
	case cdc.KindUUID:
		if !isUUID(s) {
			return fmt.Errorf("not a UUID (want 8-4-4-4-12 hexadecimal digits)")
		}
	case cdc.KindJSON:
		if !json.Valid([]byte(s)) {
			return fmt.Errorf("not valid JSON text")
		}
	}
	return nil
}

func isDecimal(s string) bool {
	switch s {
	case "NaN", "Infinity", "-Infinity", "+Infinity":
		return true
	}
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
