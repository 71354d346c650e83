package rules

import (
	"errors"
	"fmt"
	"strings"
)

// Op is the comparison a filter makes between a row's column and an edge's claim.
type Op uint8

// The filter operators.
const (
	OpAll Op = iota // every row of the table
	OpEq            // column = {edge.claim}
	OpIn            // column IN {edge.claim}
)

// String returns the operator as written in a filter.
func (o Op) String() string {
	switch o {
	case OpAll:
		return "all"
	case OpEq:
		return "="
	case OpIn:
		return "IN"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Filter is a parsed table filter:
//
//	all
//	<column> = {edge.<claim>}
//	<column> IN {edge.<claim>}
//
// Keywords are case-insensitive. A column is a bare identifier (letters, digits, _ and
// $, not starting with a digit) or a double-quoted name ("" for a quote inside). A claim
// name is made of letters, digits, _ and -.
type Filter struct {
	Op     Op
	Column string // empty for OpAll
	Claim  string // empty for OpAll
}

// String returns the filter in its canonical written form; ParseFilter reads it back.
func (f Filter) String() string {
	if f.Op == OpAll {
		return "all"
	}
	return quoteColumn(f.Column) + " " + f.Op.String() + " {edge." + f.Claim + "}"
}

// maxFilterLen bounds a filter's text; filters are short expressions.
const maxFilterLen = 4096

// ParseFilter parses a filter expression. It never panics; a malformed filter returns
// an error saying what was expected where.
func ParseFilter(s string) (Filter, error) {
	if len(s) > maxFilterLen {
		return Filter{}, fmt.Errorf("filter is %d bytes long; a filter is at most %d", len(s), maxFilterLen)
	}
	p := &parser{s: s}
	p.space()
	if p.eof() {
		return Filter{}, errors.New(`filter is empty; write "all", "column = {edge.claim}" or "column IN {edge.claim}"`)
	}
	if p.keyword("all") {
		p.space()
		if !p.eof() {
			return Filter{}, p.errorf(`nothing may follow "all"`)
		}
		return Filter{Op: OpAll}, nil
	}
	col, err := p.column()
	if err != nil {
		return Filter{}, err
	}
	p.space()
	var op Op
	switch {
	case p.consume("="):
		op = OpEq
	case p.keyword("in"):
		op = OpIn
	default:
		return Filter{}, p.errorf(`want "=" or "IN" after column %s`, quoteColumn(col))
	}
	p.space()
	claim, err := p.claim()
	if err != nil {
		return Filter{}, err
	}
	p.space()
	if !p.eof() {
		return Filter{}, p.errorf("unexpected text after {edge.%s}", claim)
	}
	return Filter{Op: op, Column: col, Claim: claim}, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) eof() bool { return p.i >= len(p.s) }

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("filter %q at offset %d: %s", p.s, p.i, fmt.Sprintf(format, args...))
}

func (p *parser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *parser) consume(tok string) bool {
	if strings.HasPrefix(p.s[p.i:], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

// keyword consumes kw (case-insensitive) when it is followed by a non-identifier byte.
func (p *parser) keyword(kw string) bool {
	end := p.i + len(kw)
	if end > len(p.s) || !strings.EqualFold(p.s[p.i:end], kw) {
		return false
	}
	if end < len(p.s) && isIdent(p.s[end]) {
		return false
	}
	p.i = end
	return true
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || c == '$' || (c >= '0' && c <= '9') }

func isClaim(c byte) bool { return isIdent(c) && c != '$' || c == '-' }

func (p *parser) column() (string, error) {
	if p.eof() {
		return "", p.errorf("want a column name")
	}
	if p.s[p.i] == '"' {
		var sb strings.Builder
		for j := p.i + 1; j < len(p.s); j++ {
			if p.s[j] != '"' {
				sb.WriteByte(p.s[j])
				continue
			}
			if j+1 < len(p.s) && p.s[j+1] == '"' {
				sb.WriteByte('"')
				j++
				continue
			}
			if sb.Len() == 0 {
				return "", p.errorf("quoted column name is empty")
			}
			p.i = j + 1
			return sb.String(), nil
		}
		return "", p.errorf("quoted column name has no closing \"")
	}
	if !isIdentStart(p.s[p.i]) {
		return "", p.errorf("want a column name, found %q", p.s[p.i])
	}
	start := p.i
	for p.i < len(p.s) && isIdent(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i], nil
}

func (p *parser) claim() (string, error) {
	if !p.consume("{") {
		return "", p.errorf("want {edge.<claim>}")
	}
	p.space()
	if !p.keyword("edge") {
		return "", p.errorf(`want "edge." inside {}, e.g. {edge.store_id}`)
	}
	if !p.consume(".") {
		return "", p.errorf(`want "." after "edge"`)
	}
	start := p.i
	for p.i < len(p.s) && isClaim(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", p.errorf("want a claim name after {edge.")
	}
	claim := p.s[start:p.i]
	p.space()
	if !p.consume("}") {
		return "", p.errorf("want } after {edge.%s", claim)
	}
	return claim, nil
}

// quoteColumn writes a column as a bare identifier when it is one, else double-quoted.
func quoteColumn(c string) string {
	bare := c != "" && isIdentStart(c[0]) && !strings.EqualFold(c, "all") && !strings.EqualFold(c, "in")
	for i := 0; bare && i < len(c); i++ {
		bare = isIdent(c[i])
	}
	if bare {
		return c
	}
	return `"` + strings.ReplaceAll(c, `"`, `""`) + `"`
}
