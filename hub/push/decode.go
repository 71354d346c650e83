package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

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
//
// The object is read in one pass over its bytes, with encoding/json's syntax: any
// syntax error refuses the whole object, a name given twice keeps its last value, and
// when several names are not allowed the alphabetically first one is reported.
func decodeObject(tbl *cdc.Table, raw json.RawMessage, what string, keyOnly bool) (cdc.Row, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("%s is missing", what)
	}
	var buf [spanBufLen]valueSpan
	spans := spanSlice(&buf, len(tbl.Columns))
	s := objectScan{tbl: tbl, strict: true, keyOnly: keyOnly}
	if !s.scan(raw, spans) {
		return nil, fmt.Errorf("%s is not a JSON object of column values", what)
	}
	if s.bad.set {
		if s.bad.unknown {
			return nil, fmt.Errorf("%s: column %q is not a column of %s", what, s.bad.name, tbl.Name)
		}
		return nil, fmt.Errorf("%s: column %s is not a key column; the key of %s is (%s)", what, s.bad.name, tbl.Name, strings.Join(tbl.PrimaryKey, ", "))
	}
	return s.row(raw, spans, what, false)
}

// decodeBase decodes a base image, ignoring columns the table no longer has and
// values that do not parse.
func decodeBase(tbl *cdc.Table, raw json.RawMessage) (cdc.Row, error) {
	var buf [spanBufLen]valueSpan
	spans := spanSlice(&buf, len(tbl.Columns))
	s := objectScan{tbl: tbl}
	if !s.scan(raw, spans) {
		if isJSONNull(raw) {
			return cdc.Row{}, nil // no columns, as encoding/json decodes null into a map
		}
		return nil, fmt.Errorf("base is not a JSON object of column values")
	}
	return s.row(raw, spans, "base", true)
}

// valueSpan is where a member's value lies in the object's bytes; end 0 means the
// column is absent.
type valueSpan struct{ start, end int }

// spanBufLen covers most tables without allocating.
const spanBufLen = 16

func spanSlice(buf *[spanBufLen]valueSpan, n int) []valueSpan {
	if n <= len(buf) {
		return buf[:n]
	}
	return make([]valueSpan, n)
}

// objectScan walks one JSON object of column values and records in spans, indexed
// like the table's columns, where each column's value is. (spans is passed to its
// methods rather than kept in it so that a caller's stack buffer stays on the stack.)
type objectScan struct {
	tbl     *cdc.Table
	strict  bool // note names that are not columns (with keyOnly: not key columns)
	keyOnly bool
	present int // columns with a value
	next    int // column index to try first: members usually come in column order
	bad     struct {
		set, unknown bool
		name         string // the alphabetically first name not allowed
	}
}

// scan walks the object in b, checking its syntax as encoding/json does. It reports
// false if b is not exactly one JSON object, with optional white space around it.
func (s *objectScan) scan(b []byte, spans []valueSpan) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end, plain := scanString(b, i)
		if end < 0 {
			return false
		}
		name := b[i:end]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		vend := scanValue(b, i, 2)
		if vend < 0 {
			return false
		}
		if plain {
			name = name[1 : len(name)-1]
		} else {
			// Escapes or invalid UTF-8: decode exactly as encoding/json does (invalid
			// UTF-8 and lone surrogates become U+FFFD). Rare, so not worth a copy here.
			var n string
			if json.Unmarshal(name, &n) != nil {
				return false
			}
			name = []byte(n)
		}
		s.member(spans, name, i, vend)
		i = skipSpace(b, vend)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return skipSpace(b, i+1) == len(b)
		}
		return false
	}
}

// member records the value of the member called name; a later member of the same
// name replaces it.
func (s *objectScan) member(spans []valueSpan, name []byte, start, end int) {
	idx := s.column(name)
	if idx < 0 || s.keyOnly && !isKeyColumn(s.tbl, s.tbl.Columns[idx].Name) {
		if s.strict && (!s.bad.set || string(name) < s.bad.name) {
			s.bad.set, s.bad.unknown, s.bad.name = true, idx < 0, string(name)
		}
		return
	}
	if spans[idx].end == 0 {
		s.present++
	}
	spans[idx] = valueSpan{start, end}
}

// column returns the index of the column called name, or -1.
func (s *objectScan) column(name []byte) int {
	cols := s.tbl.Columns
	j := s.next
	for range cols {
		if j >= len(cols) {
			j = 0
		}
		if cols[j].Name == string(name) {
			s.next = j + 1
			return j
		}
		j++
	}
	return -1
}

// row parses the recorded values in the table's column order. Lenient skips values
// that do not parse and does not check their text.
func (s *objectScan) row(b []byte, spans []valueSpan, what string, lenient bool) (cdc.Row, error) {
	row := make(cdc.Row, 0, s.present)
	for i, sp := range spans {
		if sp.end == 0 {
			continue
		}
		col := &s.tbl.Columns[i]
		v, ok, err := columnValue(col, b[sp.start:sp.end], what, lenient)
		if err != nil {
			return nil, err
		}
		if ok {
			row = append(row, cdc.Field{Name: col.Name, Value: v})
		}
	}
	return row, nil
}

// columnValue parses one column's JSON value. Lenient (a base image) skips a value
// that does not parse (ok false); otherwise it is an error naming the column, as is
// text the central database cannot store.
func columnValue(col *cdc.Column, raw []byte, what string, lenient bool) (v cdc.Value, ok bool, err error) {
	v, err = cdc.ParseJSONValue(col.Kind, raw)
	if err != nil {
		if lenient {
			return v, false, nil
		}
		return v, false, fmt.Errorf("%s: column %s (%s): value %s: %v", what, col.Name, col.Kind, truncate(string(raw), 80), err)
	}
	if !lenient {
		if err := checkText(v); err != nil {
			return v, false, fmt.Errorf("%s: column %s (%s): value %s: %v", what, col.Name, col.Kind, truncate(string(raw), 80), err)
		}
	}
	return v, true, nil
}

func isKeyColumn(tbl *cdc.Table, name string) bool {
	for _, k := range tbl.PrimaryKey {
		if k == name {
			return true
		}
	}
	return false
}

// maxNestingDepth is encoding/json's limit on nested objects and arrays.
const maxNestingDepth = 10000

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// isJSONNull reports whether b is the JSON literal null with optional white space.
func isJSONNull(b []byte) bool {
	i := skipSpace(b, 0)
	return bytes.HasPrefix(b[i:], []byte("null")) && skipSpace(b, i+4) == len(b)
}

// scanString returns the index just past the JSON string starting at b[i] == '"', or
// -1 if it is not a valid string. Plain means it has no escapes and is valid UTF-8, so
// its bytes between the quotes are its value.
func scanString(b []byte, i int) (end int, plain bool) {
	plain = true
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			if plain && !ascii {
				plain = utf8.Valid(b[i+1 : j])
			}
			return j + 1, plain
		case c == '\\':
			plain = false
			j++
			if j >= len(b) {
				return -1, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) || !isHex(b[j+1]) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) {
					return -1, false
				}
				j += 4
			default:
				return -1, false
			}
		case c < 0x20:
			return -1, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return -1, false
}

// scanValue returns the index just past the JSON value starting at b[i], or -1 if
// there is no valid value there. depth is the nesting depth a container at b[i] has.
func scanValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		end, _ := scanString(b, i)
		return end
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	case c == '{':
		if depth > maxNestingDepth {
			return -1
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return -1
			}
			if i, _ = scanString(b, i); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return -1
			}
			if i = scanValue(b, skipSpace(b, i+1), depth+1); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				return i + 1
			}
			return -1
		}
	case c == '[':
		if depth > maxNestingDepth {
			return -1
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = scanValue(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == ']' {
				return i + 1
			}
			return -1
		}
	}
	return -1
}

// scanNumber returns the index just past the JSON number starting at b[i], or -1.
func scanNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = skipDigits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = skipDigits(b, i)
	}
	return i
}

func scanLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
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
