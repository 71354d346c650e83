package postgres

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/synchub/synchub/cdc"
)

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
