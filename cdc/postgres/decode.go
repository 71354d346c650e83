package postgres

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/synchub/synchub/cdc"
)

// pgType says how the text form of one PostgreSQL type becomes a cdc.Value.
type pgType struct {
	oid   uint32
	name  string
	kind  cdc.Kind
	elem  *pgType // element type of an array
	delim byte    // array element delimiter (the element type's typdelim)
}

// typeTable maps the OIDs of PostgreSQL's built-in scalar types to their Kind. It is
// the mapping documented in doc.go. A type not listed here is resolved through
// pg_type: enums become KindEnum, domains take their base type's kind, arrays become
// KindArray, and anything else (extensions such as citext, composites, ranges) KindText
// holding PostgreSQL's text form.
var typeTable = []struct {
	oid  uint32
	name string
	kind cdc.Kind
}{
	{16, "bool", cdc.KindBool},
	{17, "bytea", cdc.KindBytes},
	{18, "char", cdc.KindText},
	{19, "name", cdc.KindText},
	{20, "int8", cdc.KindInt},
	{21, "int2", cdc.KindInt},
	{23, "int4", cdc.KindInt},
	{25, "text", cdc.KindText},
	{26, "oid", cdc.KindInt},
	{114, "json", cdc.KindJSON},
	{142, "xml", cdc.KindText},
	{600, "point", cdc.KindText},
	{601, "lseg", cdc.KindText},
	{602, "path", cdc.KindText},
	{603, "box", cdc.KindText},
	{604, "polygon", cdc.KindText},
	{628, "line", cdc.KindText},
	{650, "cidr", cdc.KindText},
	{700, "float4", cdc.KindFloat},
	{701, "float8", cdc.KindFloat},
	{718, "circle", cdc.KindText},
	{774, "macaddr8", cdc.KindText},
	{790, "money", cdc.KindText},
	{829, "macaddr", cdc.KindText},
	{869, "inet", cdc.KindText},
	{1042, "bpchar", cdc.KindText},
	{1043, "varchar", cdc.KindText},
	{1082, "date", cdc.KindDate},
	{1083, "time", cdc.KindTime},
	{1114, "timestamp", cdc.KindTimestamp},
	{1184, "timestamptz", cdc.KindTimestampTZ},
	{1186, "interval", cdc.KindInterval},
	{1266, "timetz", cdc.KindTime},
	{1560, "bit", cdc.KindText},
	{1562, "varbit", cdc.KindText},
	{1700, "numeric", cdc.KindDecimal},
	{2950, "uuid", cdc.KindUUID},
	{3220, "pg_lsn", cdc.KindText},
	{3614, "tsvector", cdc.KindText},
	{3615, "tsquery", cdc.KindText},
	{3802, "jsonb", cdc.KindJSON},
	{4072, "jsonpath", cdc.KindText},
	{5069, "xid8", cdc.KindText},
}

// arrayTable maps the OIDs of the built-in array types to their element types.
var arrayTable = []struct {
	oid  uint32
	name string
	elem uint32
}{
	{143, "_xml", 142},
	{199, "_json", 114},
	{629, "_line", 628},
	{651, "_cidr", 650},
	{719, "_circle", 718},
	{775, "_macaddr8", 774},
	{791, "_money", 790},
	{1000, "_bool", 16},
	{1001, "_bytea", 17},
	{1002, "_char", 18},
	{1003, "_name", 19},
	{1005, "_int2", 21},
	{1007, "_int4", 23},
	{1009, "_text", 25},
	{1014, "_bpchar", 1042},
	{1015, "_varchar", 1043},
	{1016, "_int8", 20},
	{1017, "_point", 600},
	{1018, "_lseg", 601},
	{1019, "_path", 602},
	{1020, "_box", 603},
	{1021, "_float4", 700},
	{1022, "_float8", 701},
	{1027, "_polygon", 604},
	{1028, "_oid", 26},
	{1040, "_macaddr", 829},
	{1041, "_inet", 869},
	{1115, "_timestamp", 1114},
	{1182, "_date", 1082},
	{1183, "_time", 1083},
	{1185, "_timestamptz", 1184},
	{1187, "_interval", 1186},
	{1231, "_numeric", 1700},
	{1270, "_timetz", 1266},
	{1561, "_bit", 1560},
	{1563, "_varbit", 1562},
	{2951, "_uuid", 2950},
	{3221, "_pg_lsn", 3220},
	{3643, "_tsvector", 3614},
	{3645, "_tsquery", 3615},
	{3807, "_jsonb", 3802},
	{4073, "_jsonpath", 4072},
}

// builtinTypes returns a fresh map of every type in typeTable and arrayTable.
func builtinTypes() map[uint32]*pgType {
	m := make(map[uint32]*pgType, len(typeTable)+len(arrayTable))
	for _, t := range typeTable {
		delim := byte(',')
		if t.oid == 603 {
			delim = ';'
		}
		m[t.oid] = &pgType{oid: t.oid, name: t.name, kind: t.kind, delim: delim}
	}
	for _, a := range arrayTable {
		elem := m[a.elem]
		m[a.oid] = &pgType{oid: a.oid, name: a.name, kind: cdc.KindArray, elem: elem, delim: elem.delim}
	}
	return m
}

// textType is the fallback for values of unknown type.
var textType = &pgType{name: "text", kind: cdc.KindText, delim: ','}

// decode turns the text form of one value (as pgoutput and text-format queries send
// it) into a Value, taking the Value's text from a (nil allocates it normally). It
// never panics; malformed text returns an error.
func (t *pgType) decode(b []byte, a *textArena) (cdc.Value, error) {
	var err error
	switch t.kind {
	case cdc.KindBool:
		if len(b) == 1 {
			switch b[0] {
			case 't':
				return cdc.Bool(true), nil
			case 'f':
				return cdc.Bool(false), nil
			}
		}
		return cdc.Value{}, fmt.Errorf("decode %s: %q is not t or f", t.name, truncate(b))
	case cdc.KindInt:
		n, err := parseInt64(b)
		if err != nil {
			return cdc.Value{}, fmt.Errorf("decode %s: %w", t.name, err)
		}
		return cdc.Int(n), nil
	case cdc.KindFloat:
		f, err := parseFloat(b)
		if err != nil {
			return cdc.Value{}, fmt.Errorf("decode %s: %w", t.name, err)
		}
		return cdc.Float(f), nil
	case cdc.KindBytes:
		d, err := decodeBytea(b)
		if err != nil {
			return cdc.Value{}, fmt.Errorf("decode %s: %w", t.name, err)
		}
		return cdc.Bytes(d), nil
	case cdc.KindNull:
		return cdc.Value{}, fmt.Errorf("decode %s: type has no kind", t.name)
	case cdc.KindDate, cdc.KindTimestamp, cdc.KindTimestampTZ, cdc.KindArray:
		var scratch []byte
		if a != nil {
			scratch = a.scratch[:0]
		}
		switch t.kind {
		case cdc.KindDate:
			scratch, err = appendDate(scratch, b)
		case cdc.KindTimestamp:
			scratch, err = appendTimestamp(scratch, b)
		case cdc.KindTimestampTZ:
			scratch, err = appendTimestampTZ(scratch, b)
		default:
			var p *arrayParser
			if a != nil {
				p = &a.arrays
			}
			scratch, err = p.toJSON(scratch, b, t.elem, t.delim)
		}
		if a != nil {
			a.scratch = scratch
		}
		if err != nil {
			return cdc.Value{}, fmt.Errorf("decode %s: %w", t.name, err)
		}
		return cdc.Text(t.kind, a.str(scratch)), nil
	}
	return cdc.Text(t.kind, a.str(b)), nil
}

// rowDecoder builds Rows with few allocations: Fields are cut from shared slabs and
// text from a textArena. Rows it returns stay valid after later calls.
type rowDecoder struct {
	fields []cdc.Field // unused rest of the current slab
	text   textArena
}

const fieldSlab = 1024

// row returns an empty Row of n fields with def's column names.
func (d *rowDecoder) row(def *tableDef, n int) cdc.Row {
	if len(d.fields) < n {
		d.fields = make([]cdc.Field, max(n, fieldSlab))
	}
	r := d.fields[:n:n]
	d.fields = d.fields[n:]
	for i := range r {
		r[i].Name = def.table.Columns[i].Name
	}
	return r
}

// values decodes a row of text values (nil is NULL), as a text-format query returns it.
func (d *rowDecoder) values(def *tableDef, vals [][]byte) (cdc.Row, error) {
	if len(vals) != len(def.cols) {
		return nil, fmt.Errorf("table %s: got %d columns, want %d", def.table.Name, len(vals), len(def.cols))
	}
	row := d.row(def, len(vals))
	for i, v := range vals {
		if v == nil {
			continue
		}
		val, err := def.cols[i].typ.decode(v, &d.text)
		if err != nil {
			return nil, fmt.Errorf("table %s column %s: %w", def.table.Name, row[i].Name, err)
		}
		row[i].Value = val
	}
	return row, nil
}

// textArena hands out strings cut from shared chunks, so decoding a row costs one
// allocation per chunk instead of one per value. Bytes once handed out are never
// written again, which is what makes the strings immutable.
type textArena struct {
	chunk   []byte      // the current chunk; only its unused capacity is ever written
	scratch []byte      // reused buffer for values that are rewritten while decoding
	arrays  arrayParser // reused for array values
}

const (
	arenaChunk = 32 << 10
	arenaMax   = arenaChunk / 8 // longer values get a string of their own
)

// str returns b as a string; a nil arena allocates it normally.
func (a *textArena) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if a == nil || len(b) > arenaMax {
		return string(b)
	}
	if cap(a.chunk)-len(a.chunk) < len(b) {
		a.chunk = make([]byte, 0, arenaChunk)
	}
	start := len(a.chunk)
	a.chunk = append(a.chunk, b...)
	return unsafe.String(&a.chunk[start], len(b))
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// parseInt64 parses a decimal integer without allocating.
func parseInt64(b []byte) (int64, error) {
	s := b
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 19 {
		return 0, fmt.Errorf("%q is not a 64-bit integer", truncate(b))
	}
	var u uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a 64-bit integer", truncate(b))
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, fmt.Errorf("%q is out of the 64-bit range", truncate(b))
		}
		return -int64(u), nil
	}
	if u > math.MaxInt64 {
		return 0, fmt.Errorf("%q is out of the 64-bit range", truncate(b))
	}
	return int64(u), nil
}

func parseFloat(b []byte) (float64, error) {
	switch string(b) {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%q is not a number", truncate(b))
	}
	return f, nil
}

// decodeBytea reads bytea text in the hex format (\x0102…) or the older escape format.
func decodeBytea(b []byte) ([]byte, error) {
	if len(b) >= 2 && b[0] == '\\' && b[1] == 'x' {
		h := b[2:]
		if len(h)%2 != 0 {
			return nil, fmt.Errorf("bytea hex text has an odd number of digits")
		}
		out := make([]byte, len(h)/2)
		if _, err := hex.Decode(out, h); err != nil {
			return nil, fmt.Errorf("bytea hex text: %w", err)
		}
		return out, nil
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 < len(b) && b[i+1] == '\\' {
			out = append(out, '\\')
			i++
			continue
		}
		if i+3 < len(b) && isOctal(b[i+1]) && isOctal(b[i+2]) && isOctal(b[i+3]) && b[i+1] <= '3' {
			out = append(out, (b[i+1]-'0')<<6|(b[i+2]-'0')<<3|(b[i+3]-'0'))
			i += 3
			continue
		}
		return nil, fmt.Errorf("bytea escape text has a bad backslash sequence")
	}
	return out, nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
