package cdc

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Kind is the source-neutral type of a column and of the Values it holds.
type Kind uint8

// The kinds a column can have. KindNull is only the kind of a NULL Value, never a column's.
const (
	KindNull Kind = iota
	KindBool
	KindInt
	KindFloat
	KindDecimal
	KindText
	KindBytes
	KindUUID
	KindJSON
	KindDate
	KindTime
	KindTimestamp
	KindTimestampTZ
	KindInterval
	KindArray
	KindEnum
)

var kindNames = [...]string{
	KindNull: "null", KindBool: "bool", KindInt: "int", KindFloat: "float", KindDecimal: "decimal",
	KindText: "text", KindBytes: "bytes", KindUUID: "uuid", KindJSON: "json", KindDate: "date",
	KindTime: "time", KindTimestamp: "timestamp", KindTimestampTZ: "timestamptz",
	KindInterval: "interval", KindArray: "array", KindEnum: "enum",
}

// String returns the kind's stable name, as used in /v1/schema.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for k, n := range kindNames {
		if n == s {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("unknown value kind %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// SQLiteType is the declared type an edge gives a column of this kind.
func (k Kind) SQLiteType() string {
	switch k {
	case KindBool, KindInt:
		return "INTEGER"
	case KindFloat:
		return "REAL"
	case KindBytes:
		return "BLOB"
	default:
		return "TEXT"
	}
}

// Value is one typed column value. The zero Value is NULL. Integers keep the full
// int64 range and decimals are exact strings; every other kind keeps the canonical
// text documented in the package comment, so nothing is lost on the way to an edge.
type Value struct {
	kind Kind
	i    int64   // bool (0/1) and int
	f    float64 // float
	s    string  // all text-like kinds
	b    []byte  // bytes
}

// Null returns the NULL value.
func Null() Value { return Value{} }

// Bool returns a boolean value.
func Bool(v bool) Value {
	if v {
		return Value{kind: KindBool, i: 1}
	}
	return Value{kind: KindBool}
}

// Int returns an integer value.
func Int(v int64) Value { return Value{kind: KindInt, i: v} }

// Float returns a floating-point value.
func Float(v float64) Value { return Value{kind: KindFloat, f: v} }

// Bytes returns a binary value; the slice is not copied.
func Bytes(v []byte) Value { return Value{kind: KindBytes, b: v} }

// Text returns a value of a text-like kind (text, decimal, uuid, json, date, time,
// timestamp, timestamptz, interval, array, enum) holding s in that kind's canonical form.
func Text(k Kind, s string) Value {
	switch k {
	case KindNull, KindBool, KindInt, KindFloat, KindBytes:
		panic("cdc.Text: kind " + k.String() + " is not text-like")
	}
	return Value{kind: k, s: s}
}

// Kind reports the value's kind; KindNull for NULL.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is NULL.
func (v Value) IsNull() bool { return v.kind == KindNull }

// AsBool returns the boolean held by a bool value.
func (v Value) AsBool() bool { return v.i != 0 }

// AsInt returns the integer held by an int value.
func (v Value) AsInt() int64 { return v.i }

// AsFloat returns the float held by a float value.
func (v Value) AsFloat() float64 { return v.f }

// AsBytes returns the bytes held by a bytes value.
func (v Value) AsBytes() []byte { return v.b }

// AsString returns the canonical text of a text-like value.
func (v Value) AsString() string { return v.s }

// Equal reports whether two values have the same kind and content.
func (v Value) Equal(o Value) bool {
	if v.kind != o.kind {
		return false
	}
	switch v.kind {
	case KindNull:
		return true
	case KindBool, KindInt:
		return v.i == o.i
	case KindFloat:
		return v.f == o.f || (math.IsNaN(v.f) && math.IsNaN(o.f))
	case KindBytes:
		return bytes.Equal(v.b, o.b)
	default:
		return v.s == o.s
	}
}

// SQLiteArg returns the value as an argument for a SQLite statement on an edge.
func (v Value) SQLiteArg() any {
	switch v.kind {
	case KindNull:
		return nil
	case KindBool, KindInt:
		return v.i
	case KindFloat:
		if math.IsNaN(v.f) {
			// SQLite turns a NaN REAL into NULL; the text keeps it distinct.
			return "NaN"
		}
		return v.f
	case KindBytes:
		if v.b == nil {
			return []byte{}
		}
		return v.b
	default:
		return v.s
	}
}

// String returns a human-readable form for logs and errors.
func (v Value) String() string {
	switch v.kind {
	case KindNull:
		return "NULL"
	case KindBool:
		return strconv.FormatBool(v.i != 0)
	case KindInt:
		return strconv.FormatInt(v.i, 10)
	case KindFloat:
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	case KindBytes:
		return "\\x" + fmt.Sprintf("%x", v.b)
	default:
		return v.s
	}
}

// AppendJSON appends v's JSON form (see the package comment) to b.
func (v Value) AppendJSON(b []byte) []byte {
	switch v.kind {
	case KindNull:
		return append(b, "null"...)
	case KindBool:
		if v.i != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case KindInt:
		return strconv.AppendInt(b, v.i, 10)
	case KindFloat:
		switch {
		case math.IsNaN(v.f):
			return append(b, `"NaN"`...)
		case math.IsInf(v.f, 1):
			return append(b, `"Infinity"`...)
		case math.IsInf(v.f, -1):
			return append(b, `"-Infinity"`...)
		}
		return strconv.AppendFloat(b, v.f, 'g', -1, 64)
	case KindBytes:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.b)
		return append(b, '"')
	default:
		return AppendJSONString(b, v.s)
	}
}

// ParseJSONValue reads one JSON token written by AppendJSON for a column of kind k.
// It never panics; malformed input returns an error naming the problem.
func ParseJSONValue(k Kind, raw []byte) (Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return Value{}, fmt.Errorf("empty JSON value for a %s column", k)
	}
	if string(raw) == "null" {
		return Value{}, nil
	}
	switch k {
	case KindBool:
		switch string(raw) {
		case "true":
			return Bool(true), nil
		case "false":
			return Bool(false), nil
		}
		return Value{}, fmt.Errorf("bool column: want true or false, got %.40s", raw)
	case KindInt:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("int column: %.40s is not a 64-bit integer", raw)
		}
		return Int(n), nil
	case KindFloat:
		if raw[0] == '"' {
			s, err := UnquoteJSONString(raw)
			if err != nil {
				return Value{}, fmt.Errorf("float column: %w", err)
			}
			switch s {
			case "NaN":
				return Float(math.NaN()), nil
			case "Infinity":
				return Float(math.Inf(1)), nil
			case "-Infinity":
				return Float(math.Inf(-1)), nil
			}
			return Value{}, fmt.Errorf("float column: unexpected string %q", s)
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return Value{}, fmt.Errorf("float column: %.40s is not a number", raw)
		}
		return Float(f), nil
	case KindBytes:
		s, err := UnquoteJSONString(raw)
		if err != nil {
			return Value{}, fmt.Errorf("bytes column: %w", err)
		}
		d, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Value{}, fmt.Errorf("bytes column: invalid base64: %w", err)
		}
		return Bytes(d), nil
	case KindNull:
		return Value{}, fmt.Errorf("a column cannot have kind null")
	default:
		if int(k) >= len(kindNames) {
			return Value{}, fmt.Errorf("unknown column kind %d", k)
		}
		s, err := UnquoteJSONString(raw)
		if err != nil {
			return Value{}, fmt.Errorf("%s column: %w", k, err)
		}
		return Text(k, s), nil
	}
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal. Invalid UTF-8 is replaced by
// U+FFFD, as encoding/json does.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// UnquoteJSONString decodes one JSON string literal.
func UnquoteJSONString(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", fmt.Errorf("want a JSON string, got %.40s", raw)
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		if !utf8.Valid(inner) {
			return "", fmt.Errorf("JSON string is not valid UTF-8")
		}
		return string(inner), nil
	}
	return unquoteSlow(inner)
}

func unquoteSlow(in []byte) (string, error) {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(in) {
			return "", fmt.Errorf("JSON string ends inside an escape")
		}
		switch in[i] {
		case '"', '\\', '/':
			out = append(out, in[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(in, i+1)
			if !ok {
				return "", fmt.Errorf("JSON string has a bad \\u escape")
			}
			i += 4
			if r >= 0xD800 && r < 0xDC00 {
				// A surrogate pair encodes one rune above the BMP.
				if i+6 < len(in) && in[i+1] == '\\' && in[i+2] == 'u' {
					if r2, ok := hex4(in, i+3); ok && r2 >= 0xDC00 && r2 < 0xE000 {
						r = (r-0xD800)<<10 + (r2 - 0xDC00) + 0x10000
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			} else if r >= 0xDC00 && r < 0xE000 {
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", fmt.Errorf("JSON string has an unknown escape \\%c", in[i])
		}
	}
	if !utf8.Valid(out) {
		return "", fmt.Errorf("JSON string is not valid UTF-8")
	}
	return string(out), nil
}

func hex4(in []byte, at int) (rune, bool) {
	if at+4 > len(in) {
		return 0, false
	}
	var r rune
	for _, c := range in[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}
