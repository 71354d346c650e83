package postgres

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/synchub/synchub/cdc"
)

// The Applier's values: cdc.Values turned into parameters PostgreSQL's input functions
// read back exactly.

// encodeParam turns a Value into a parameter for a column of type typ: bytes in binary
// format, everything else in the text form the type's input function reads (NULL is
// nil). Canonical forms that PostgreSQL does not read back as they are (astronomical
// BC years, JSON arrays) are rewritten.
func encodeParam(typ *pgType, v cdc.Value) ([]byte, int16, error) {
	switch v.Kind() {
	case cdc.KindNull:
		return nil, pgx.TextFormatCode, nil
	case cdc.KindBool:
		if v.AsBool() {
			return []byte("t"), pgx.TextFormatCode, nil
		}
		return []byte("f"), pgx.TextFormatCode, nil
	case cdc.KindInt:
		return strconv.AppendInt(nil, v.AsInt(), 10), pgx.TextFormatCode, nil
	case cdc.KindFloat:
		return appendFloat(nil, v.AsFloat()), pgx.TextFormatCode, nil
	case cdc.KindBytes:
		if typ.kind != cdc.KindBytes {
			return nil, 0, fmt.Errorf("got bytes for a %s column", typ.kind)
		}
		b := v.AsBytes()
		if b == nil {
			b = []byte{}
		}
		return b, pgx.BinaryFormatCode, nil
	case cdc.KindDate, cdc.KindTimestamp, cdc.KindTimestampTZ:
		return []byte(dateInput(v.AsString())), pgx.TextFormatCode, nil
	case cdc.KindArray:
		if typ.kind != cdc.KindArray {
			return []byte(v.AsString()), pgx.TextFormatCode, nil
		}
		b, err := appendArrayLiteral(nil, v.AsString(), typ.elem, typ.delim)
		if err != nil {
			return nil, 0, err
		}
		return b, pgx.TextFormatCode, nil
	}
	return []byte(v.AsString()), pgx.TextFormatCode, nil
}

func appendFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

// dateInput rewrites a canonical date or timestamp with an astronomical year of 0 or
// less ("-0043-03-15", "0000-01-01T00:00:00Z") as PostgreSQL's BC form ("0044-03-15
// BC"); other values are returned as they are.
func dateInput(s string) string {
	neg := strings.HasPrefix(s, "-")
	rest := s
	if neg {
		rest = s[1:]
	}
	dash := strings.IndexByte(rest, '-')
	if dash < 4 || (!neg && strings.Trim(rest[:dash], "0") != "") {
		return s
	}
	y, err := strconv.Atoi(rest[:dash])
	if err != nil {
		return s
	}
	if neg {
		y = -y
	}
	tail := rest[dash:]
	tail = strings.Replace(tail, "T", " ", 1)
	if strings.HasSuffix(tail, "Z") {
		tail = tail[:len(tail)-1] + "+00"
	}
	year := strconv.Itoa(1 - y)
	if len(year) < 4 {
		year = strings.Repeat("0", 4-len(year)) + year
	}
	return year + tail + " BC"
}

// appendArrayLiteral turns an array's canonical JSON text (see doc.go) into a
// PostgreSQL array literal: nested arrays become dimensions, null NULL, true and false
// t and f, numbers stay as written and strings become quoted elements.
func appendArrayLiteral(dst []byte, js string, elem *pgType, delim byte) ([]byte, error) {
	if elem == nil {
		elem = textType
	}
	if delim == 0 {
		delim = ','
	}
	p := jsonArrayReader{s: js, elem: elem, delim: delim}
	p.space()
	dst, err := p.array(dst, 0)
	if err != nil {
		return nil, fmt.Errorf("array value is not a JSON array: %w", err)
	}
	p.space()
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("array value is not a JSON array: trailing text at byte %d", p.pos)
	}
	return dst, nil
}

type jsonArrayReader struct {
	s     string
	pos   int
	elem  *pgType
	delim byte
}

func (p *jsonArrayReader) space() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n' || p.s[p.pos] == '\r') {
		p.pos++
	}
}

func (p *jsonArrayReader) array(dst []byte, depth int) ([]byte, error) {
	if depth >= maxArrayDims {
		return dst, fmt.Errorf("nests deeper than %d dimensions", maxArrayDims)
	}
	if p.pos >= len(p.s) || p.s[p.pos] != '[' {
		return dst, fmt.Errorf("want [ at byte %d", p.pos)
	}
	p.pos++
	dst = append(dst, '{')
	p.space()
	if p.pos < len(p.s) && p.s[p.pos] == ']' {
		p.pos++
		return append(dst, '}'), nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			dst = append(dst, p.delim)
		}
		p.space()
		var err error
		if dst, err = p.element(dst, depth); err != nil {
			return dst, err
		}
		p.space()
		if p.pos >= len(p.s) {
			return dst, errors.New("array is not closed")
		}
		c := p.s[p.pos]
		p.pos++
		switch c {
		case ']':
			return append(dst, '}'), nil
		case ',':
		default:
			return dst, fmt.Errorf("unexpected %q at byte %d", c, p.pos-1)
		}
	}
}

func (p *jsonArrayReader) element(dst []byte, depth int) ([]byte, error) {
	if p.pos >= len(p.s) {
		return dst, errors.New("array ends inside an element")
	}
	switch c := p.s[p.pos]; {
	case c == '[':
		return p.array(dst, depth+1)
	case c == '"':
		end := p.pos + 1
		for end < len(p.s) && p.s[end] != '"' {
			if p.s[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(p.s) {
			return dst, errors.New("string element is not closed")
		}
		text, err := cdc.UnquoteJSONString([]byte(p.s[p.pos : end+1]))
		if err != nil {
			return dst, err
		}
		p.pos = end + 1
		switch p.elem.kind {
		case cdc.KindDate, cdc.KindTimestamp, cdc.KindTimestampTZ:
			text = dateInput(text)
		}
		return appendQuotedElement(dst, text), nil
	default:
		start := p.pos
		for p.pos < len(p.s) && !strings.ContainsRune(",] \t\r\n", rune(p.s[p.pos])) {
			p.pos++
		}
		tok := p.s[start:p.pos]
		switch {
		case tok == "null":
			return append(dst, "NULL"...), nil
		case tok == "true":
			return append(dst, 't'), nil
		case tok == "false":
			return append(dst, 'f'), nil
		case isJSONNumber([]byte(tok)):
			return append(dst, tok...), nil
		}
		return dst, fmt.Errorf("unexpected %q at byte %d", tok, start)
	}
}

// appendQuotedElement writes an array element in double quotes, escaping " and \.
func appendQuotedElement(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}
