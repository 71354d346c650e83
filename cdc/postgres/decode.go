package postgres

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
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

func isInfinity(b []byte) bool {
	return string(b) == "infinity" || string(b) == "-infinity"
}

// appendDate keeps ISO dates as they are and writes BC dates with ISO 8601's
// astronomical year ("0044-03-15 BC" → "-0043-03-15").
func appendDate(dst, b []byte) ([]byte, error) {
	if isInfinity(b) || !bytes.HasSuffix(b, []byte(" BC")) {
		return append(dst, b...), nil
	}
	y, m, d, err := parseDate(b[:len(b)-3])
	if err != nil {
		return dst, err
	}
	return appendYMD(dst, 1-y, m, d), nil
}

// appendTimestamp turns "2006-01-02 15:04:05.999999" (DateStyle ISO) into
// "2006-01-02T15:04:05.999999"; PostgreSQL already trims trailing zeros of the fraction.
func appendTimestamp(dst, b []byte) ([]byte, error) {
	if isInfinity(b) {
		return append(dst, b...), nil
	}
	bc := bytes.HasSuffix(b, []byte(" BC"))
	if bc {
		b = b[:len(b)-3]
	}
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return dst, fmt.Errorf("%q is not an ISO timestamp", truncate(b))
	}
	if !bc {
		dst = append(dst, b[:sp]...)
		dst = append(dst, 'T')
		return append(dst, b[sp+1:]...), nil
	}
	y, m, d, err := parseDate(b[:sp])
	if err != nil {
		return dst, err
	}
	dst = appendYMD(dst, 1-y, m, d)
	dst = append(dst, 'T')
	return append(dst, b[sp+1:]...), nil
}

// appendTimestampTZ turns "2006-01-02 15:04:05.999999+05:30" in any offset into the
// same instant in UTC, "2006-01-02T09:34:05.999999Z".
func appendTimestampTZ(dst, b []byte) ([]byte, error) {
	if isInfinity(b) {
		return append(dst, b...), nil
	}
	orig := b
	bc := bytes.HasSuffix(b, []byte(" BC"))
	if bc {
		b = b[:len(b)-3]
	}
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return dst, fmt.Errorf("%q is not an ISO timestamp with time zone", truncate(orig))
	}
	date, rest := b[:sp], b[sp+1:]
	signAt := bytes.IndexAny(rest, "+-")
	if signAt < 0 {
		return dst, fmt.Errorf("%q has no UTC offset", truncate(orig))
	}
	clock, off := rest[:signAt], rest[signAt:]
	offSecs, err := parseOffset(off)
	if err != nil {
		return dst, fmt.Errorf("%q: %w", truncate(orig), err)
	}
	if offSecs == 0 && !bc {
		dst = append(dst, date...)
		dst = append(dst, 'T')
		dst = append(dst, clock...)
		return append(dst, 'Z'), nil
	}
	y, m, d, err := parseDate(date)
	if err != nil {
		return dst, err
	}
	hh, mm, ss, frac, err := parseClock(clock)
	if err != nil {
		return dst, fmt.Errorf("%q: %w", truncate(orig), err)
	}
	if bc {
		y = 1 - y
	}
	t := time.Date(y, time.Month(m), d, hh, mm, ss, 0, time.UTC).Add(-time.Duration(offSecs) * time.Second)
	dst = appendYMD(dst, t.Year(), int(t.Month()), t.Day())
	dst = append(dst, 'T')
	dst = appendPadded(dst, t.Hour(), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, t.Minute(), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, t.Second(), 2)
	dst = append(dst, frac...)
	return append(dst, 'Z'), nil
}

// appendYMD writes an ISO 8601 date: a year of at least four digits, negative before
// year 1.
func appendYMD(dst []byte, y, m, d int) []byte {
	if y < 0 {
		dst = append(dst, '-')
		y = -y
	}
	dst = appendPadded(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, m, 2)
	dst = append(dst, '-')
	return appendPadded(dst, d, 2)
}

func appendPadded(dst []byte, v, width int) []byte {
	var buf [20]byte
	digits := strconv.AppendInt(buf[:0], int64(v), 10)
	for i := len(digits); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, digits...)
}

func parseDate(b []byte) (y, m, d int, err error) {
	parts := bytes.Split(b, []byte("-"))
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("%q is not an ISO date", truncate(b))
	}
	var v [3]int
	for i, p := range parts {
		n, perr := parseInt64(p)
		if perr != nil || n < 0 || n > 1e7 || len(p) == 0 || p[0] == '-' || p[0] == '+' {
			return 0, 0, 0, fmt.Errorf("%q is not an ISO date", truncate(b))
		}
		v[i] = int(n)
	}
	if v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 {
		return 0, 0, 0, fmt.Errorf("%q is not an ISO date", truncate(b))
	}
	return v[0], v[1], v[2], nil
}

// parseClock reads "15:04:05[.ffffff]" and returns the fraction with its dot.
func parseClock(b []byte) (hh, mm, ss int, frac []byte, err error) {
	if dot := bytes.IndexByte(b, '.'); dot >= 0 {
		b, frac = b[:dot], b[dot:]
		for _, c := range frac[1:] {
			if c < '0' || c > '9' {
				return 0, 0, 0, nil, fmt.Errorf("bad fraction of a second")
			}
		}
	}
	if len(b) != 8 || b[2] != ':' || b[5] != ':' {
		return 0, 0, 0, nil, fmt.Errorf("time of day is not HH:MM:SS")
	}
	var v [3]int
	for i := range v {
		p := b[i*3 : i*3+2]
		if p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9' {
			return 0, 0, 0, nil, fmt.Errorf("time of day is not HH:MM:SS")
		}
		v[i] = int(p[0]-'0')*10 + int(p[1]-'0')
	}
	return v[0], v[1], v[2], frac, nil
}

// parseOffset reads a UTC offset "+HH", "+HH:MM" or "+HH:MM:SS" into seconds.
func parseOffset(b []byte) (int, error) {
	if len(b) < 3 || (b[0] != '+' && b[0] != '-') {
		return 0, fmt.Errorf("bad UTC offset")
	}
	sign := 1
	if b[0] == '-' {
		sign = -1
	}
	secs := 0
	mult := 3600
	for i := 1; i < len(b); i += 3 {
		if i+2 > len(b) || b[i] < '0' || b[i] > '9' || b[i+1] < '0' || b[i+1] > '9' || mult == 0 {
			return 0, fmt.Errorf("bad UTC offset")
		}
		secs += (int(b[i]-'0')*10 + int(b[i+1]-'0')) * mult
		mult /= 60
		if i+2 < len(b) && b[i+2] != ':' {
			return 0, fmt.Errorf("bad UTC offset")
		}
	}
	return sign * secs, nil
}

// maxArrayDims is PostgreSQL's MAXDIM.
const maxArrayDims = 6

// arrayToJSON appends the JSON array for a PostgreSQL array literal: nested
// dimensions become nested arrays, NULL becomes null, elements of numeric types stay
// JSON numbers (NaN and infinities become strings), booleans become true/false and
// every other element is a string holding the element's canonical text. Bounds
// decoration ("[0:2]={…}") is dropped.
func arrayToJSON(dst, src []byte, elem *pgType, delim byte) ([]byte, error) {
	var p *arrayParser
	return p.toJSON(dst, src, elem, delim)
}

// toJSON is arrayToJSON reusing p's buffers; a nil p uses fresh ones.
func (p *arrayParser) toJSON(dst, src []byte, elem *pgType, delim byte) ([]byte, error) {
	if p == nil {
		p = &arrayParser{}
	}
	if elem == nil {
		elem = textType
	}
	if delim == 0 {
		delim = ','
	}
	p.src, p.pos, p.elem, p.delim = src, 0, elem, delim
	defer func() { p.src = nil }()
	if len(src) > 0 && src[0] == '[' {
		eq := bytes.IndexByte(src, '=')
		if eq < 0 {
			return dst, errors.New("array bounds are not followed by =")
		}
		p.pos = eq + 1
	}
	p.skipSpace()
	dst, err := p.parseArray(dst, 0)
	if err != nil {
		return dst, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return dst, fmt.Errorf("array literal has trailing text at byte %d", p.pos)
	}
	return dst, nil
}

type arrayParser struct {
	src   []byte
	pos   int
	elem  *pgType
	delim byte
	buf   []byte // the current element, unescaped
	norm  []byte // the current element rewritten in its canonical form
}

func (p *arrayParser) skipSpace() {
	for p.pos < len(p.src) && isArraySpace(p.src[p.pos]) {
		p.pos++
	}
}

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (p *arrayParser) parseArray(dst []byte, depth int) ([]byte, error) {
	if depth >= maxArrayDims {
		return dst, fmt.Errorf("array literal nests deeper than %d dimensions", maxArrayDims)
	}
	if p.pos >= len(p.src) || p.src[p.pos] != '{' {
		return dst, fmt.Errorf("array literal: want { at byte %d", p.pos)
	}
	p.pos++
	dst = append(dst, '[')
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return append(dst, ']'), nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			dst = append(dst, ',')
		}
		p.skipSpace()
		var err error
		if p.pos < len(p.src) && p.src[p.pos] == '{' {
			dst, err = p.parseArray(dst, depth+1)
		} else {
			dst, err = p.parseElement(dst)
		}
		if err != nil {
			return dst, err
		}
		p.skipSpace()
		if p.pos >= len(p.src) {
			return dst, errors.New("array literal is not closed")
		}
		c := p.src[p.pos]
		p.pos++
		switch c {
		case '}':
			return append(dst, ']'), nil
		case p.delim:
		default:
			return dst, fmt.Errorf("array literal: unexpected %q at byte %d", c, p.pos-1)
		}
	}
}

func (p *arrayParser) parseElement(dst []byte) ([]byte, error) {
	p.buf = p.buf[:0]
	if p.pos < len(p.src) && p.src[p.pos] == '"' {
		p.pos++
		for {
			if p.pos >= len(p.src) {
				return dst, errors.New("array literal: quoted element is not closed")
			}
			c := p.src[p.pos]
			p.pos++
			if c == '\\' {
				if p.pos >= len(p.src) {
					return dst, errors.New("array literal ends inside an escape")
				}
				c = p.src[p.pos]
				p.pos++
			} else if c == '"' {
				break
			}
			p.buf = append(p.buf, c)
		}
		return p.appendElement(dst, p.buf, true)
	}
	trimTo := 0
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c == p.delim || c == '}' {
			break
		}
		if c == '{' || c == '"' {
			return dst, fmt.Errorf("array literal: unexpected %q at byte %d", c, p.pos)
		}
		p.pos++
		if c == '\\' {
			if p.pos >= len(p.src) {
				return dst, errors.New("array literal ends inside an escape")
			}
			p.buf = append(p.buf, p.src[p.pos])
			p.pos++
			trimTo = len(p.buf)
			continue
		}
		p.buf = append(p.buf, c)
		if !isArraySpace(c) {
			trimTo = len(p.buf)
		}
	}
	p.buf = p.buf[:trimTo]
	if len(p.buf) == 0 {
		return dst, fmt.Errorf("array literal: empty element at byte %d", p.pos)
	}
	if len(p.buf) == 4 && strings.EqualFold(string(p.buf), "NULL") {
		return append(dst, "null"...), nil
	}
	return p.appendElement(dst, p.buf, false)
}

func (p *arrayParser) appendElement(dst, text []byte, quoted bool) ([]byte, error) {
	switch p.elem.kind {
	case cdc.KindInt, cdc.KindFloat, cdc.KindDecimal:
		if isJSONNumber(text) {
			return append(dst, text...), nil
		}
	case cdc.KindBool:
		switch string(text) {
		case "t":
			return append(dst, "true"...), nil
		case "f":
			return append(dst, "false"...), nil
		}
	case cdc.KindDate, cdc.KindTimestamp, cdc.KindTimestampTZ:
		var err error
		p.norm = p.norm[:0]
		switch p.elem.kind {
		case cdc.KindDate:
			p.norm, err = appendDate(p.norm, text)
		case cdc.KindTimestamp:
			p.norm, err = appendTimestamp(p.norm, text)
		default:
			p.norm, err = appendTimestampTZ(p.norm, text)
		}
		if err == nil {
			return appendJSONBytes(dst, p.norm), nil
		}
	}
	return appendJSONBytes(dst, text), nil
}

// appendJSONBytes appends b as a JSON string; plain ASCII is copied as it is, anything
// else goes through cdc.AppendJSONString.
func appendJSONBytes(dst, b []byte) []byte {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return cdc.AppendJSONString(dst, string(b))
		}
	}
	dst = append(dst, '"')
	dst = append(dst, b...)
	return append(dst, '"')
}

// isJSONNumber reports whether b matches JSON's number grammar.
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return false
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(b)
}
