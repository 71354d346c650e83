package mysql

import (
	"strings"
)

// ddlKind is what a DDL statement does to the tables it names.
type ddlKind uint8

const (
	ddlNone     ddlKind = iota
	ddlAlter            // ALTER TABLE: columns or keys may have changed
	ddlCreate           // CREATE TABLE: a table (re)appears
	ddlDrop             // DROP TABLE: the tables are gone
	ddlRename           // RENAME TABLE a TO b: both names change meaning
	ddlTruncate         // TRUNCATE [TABLE]: every row is gone
)

// ddlStatement is a parsed DDL statement: its kind and the tables it names, each as
// "db.table" (the statement's default database fills in unqualified names).
type ddlStatement struct {
	kind   ddlKind
	tables []string
}

// parseDDL recognises the table DDL the stream must react to. Anything else, or
// anything it cannot read, is ddlNone. It never panics.
func parseDDL(query, defaultDB string) ddlStatement {
	lx := lexer{s: query}
	w := strings.ToUpper(lx.word())
	switch w {
	case "ALTER":
		if !lx.skipTo("TABLE", 3) {
			return ddlStatement{}
		}
		lx.optional("IF", "EXISTS")
		if t, ok := lx.tableName(defaultDB); ok {
			st := ddlStatement{kind: ddlAlter, tables: []string{t}}
			// ALTER TABLE a RENAME [TO|AS] b
			for {
				tok := strings.ToUpper(lx.word())
				if tok == "" {
					break
				}
				if tok == "RENAME" {
					save := lx.pos
					next := strings.ToUpper(lx.word())
					if next == "COLUMN" || next == "INDEX" || next == "KEY" {
						continue
					}
					if next != "TO" && next != "AS" {
						lx.pos = save
					}
					if t2, ok := lx.tableName(defaultDB); ok {
						st.tables = append(st.tables, t2)
					}
				}
			}
			return st
		}
	case "CREATE":
		if !lx.skipTo("TABLE", 3) {
			return ddlStatement{}
		}
		lx.optional("IF", "NOT", "EXISTS")
		if t, ok := lx.tableName(defaultDB); ok {
			return ddlStatement{kind: ddlCreate, tables: []string{t}}
		}
	case "DROP":
		if !lx.skipTo("TABLE", 1) {
			return ddlStatement{}
		}
		lx.optional("IF", "EXISTS")
		st := ddlStatement{kind: ddlDrop}
		for {
			t, ok := lx.tableName(defaultDB)
			if !ok {
				break
			}
			st.tables = append(st.tables, t)
			if !lx.punct(',') {
				break
			}
		}
		if len(st.tables) > 0 {
			return st
		}
	case "RENAME":
		if strings.ToUpper(lx.word()) != "TABLE" {
			return ddlStatement{}
		}
		st := ddlStatement{kind: ddlRename}
		for {
			a, ok := lx.tableName(defaultDB)
			if !ok || strings.ToUpper(lx.word()) != "TO" {
				break
			}
			b, ok := lx.tableName(defaultDB)
			if !ok {
				break
			}
			st.tables = append(st.tables, a, b)
			if !lx.punct(',') {
				break
			}
		}
		if len(st.tables) > 0 {
			return st
		}
	case "TRUNCATE":
		save := lx.pos
		if strings.ToUpper(lx.word()) != "TABLE" {
			lx.pos = save
		}
		if t, ok := lx.tableName(defaultDB); ok {
			return ddlStatement{kind: ddlTruncate, tables: []string{t}}
		}
	}
	return ddlStatement{}
}

// lexer reads the few tokens parseDDL needs, skipping spaces and comments.
type lexer struct {
	s   string
	pos int
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			l.pos++
		case c == '#' || (c == '-' && strings.HasPrefix(l.s[l.pos:], "-- ")):
			if i := strings.IndexByte(l.s[l.pos:], '\n'); i >= 0 {
				l.pos += i + 1
			} else {
				l.pos = len(l.s)
			}
		case c == '/' && strings.HasPrefix(l.s[l.pos:], "/*"):
			if strings.HasPrefix(l.s[l.pos:], "/*!") || strings.HasPrefix(l.s[l.pos:], "/*M!") {
				// Versioned comment: its content is SQL. Skip the marker and version.
				l.pos += 3
				if l.pos < len(l.s) && l.s[l.pos-1] == 'M' {
					l.pos++
				}
				for l.pos < len(l.s) && l.s[l.pos] >= '0' && l.s[l.pos] <= '9' {
					l.pos++
				}
				continue
			}
			if i := strings.Index(l.s[l.pos+2:], "*/"); i >= 0 {
				l.pos += i + 4
			} else {
				l.pos = len(l.s)
			}
		case c == '*' && strings.HasPrefix(l.s[l.pos:], "*/"):
			l.pos += 2
		default:
			return
		}
	}
}

// word reads a bare word (letters, digits, _ and $); "" at anything else.
func (l *lexer) word() string {
	l.skipSpace()
	start := l.pos
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		if c == '_' || c == '$' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80 {
			l.pos++
			continue
		}
		break
	}
	if l.pos == start && l.pos < len(l.s) {
		// Step over one other character so loops over words always end.
		c := l.s[l.pos]
		if c == '`' || c == '\'' || c == '"' {
			l.quoted(c)
		} else {
			l.pos++
		}
		return string(c)
	}
	return l.s[start:l.pos]
}

// quoted reads a quoted token starting at the quote q.
func (l *lexer) quoted(q byte) (string, bool) {
	if l.pos >= len(l.s) || l.s[l.pos] != q {
		return "", false
	}
	var b strings.Builder
	i := l.pos + 1
	for i < len(l.s) {
		if l.s[i] == q {
			if i+1 < len(l.s) && l.s[i+1] == q {
				b.WriteByte(q)
				i += 2
				continue
			}
			l.pos = i + 1
			return b.String(), true
		}
		b.WriteByte(l.s[i])
		i++
	}
	l.pos = len(l.s)
	return "", false
}

// ident reads a bare or backquoted identifier.
func (l *lexer) ident() (string, bool) {
	l.skipSpace()
	if l.pos < len(l.s) && l.s[l.pos] == '`' {
		return l.quoted('`')
	}
	save := l.pos
	w := l.word()
	if w == "" || !isIdentStart(w[0]) {
		l.pos = save
		return "", false
	}
	return w, true
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

// tableName reads [db.]table.
func (l *lexer) tableName(defaultDB string) (string, bool) {
	a, ok := l.ident()
	if !ok {
		return "", false
	}
	l.skipSpace()
	if l.pos < len(l.s) && l.s[l.pos] == '.' {
		l.pos++
		b, ok := l.ident()
		if !ok {
			return "", false
		}
		return a + "." + b, true
	}
	if defaultDB == "" {
		return "", false
	}
	return defaultDB + "." + a, true
}

// punct consumes c if it is next.
func (l *lexer) punct(c byte) bool {
	l.skipSpace()
	if l.pos < len(l.s) && l.s[l.pos] == c {
		l.pos++
		return true
	}
	return false
}

// skipTo reads up to n words looking for kw (e.g. CREATE [OR REPLACE] [TEMPORARY] TABLE).
func (l *lexer) skipTo(kw string, n int) bool {
	for range n + 1 {
		w := strings.ToUpper(l.word())
		if w == kw {
			return true
		}
		if w == "" || w == "VIEW" || w == "INDEX" || w == "DATABASE" || w == "SCHEMA" || w == "TEMPORARY" ||
			w == "TRIGGER" || w == "PROCEDURE" || w == "FUNCTION" || w == "EVENT" || w == "USER" || w == "SEQUENCE" {
			return false
		}
	}
	return false
}

// optional consumes the words if they all come next.
func (l *lexer) optional(words ...string) {
	save := l.pos
	for _, w := range words {
		if strings.ToUpper(l.word()) != w {
			l.pos = save
			return
		}
	}
}
