package edge

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/synchub/synchub/cdc"
)

// rowScanner reads row and key objects ({"col":value,...}) into statement arguments
// using the column kinds of a table. It walks the JSON bytes once, without building
// maps, and keeps its slices between rows.
type rowScanner struct {
	cols []int // column indexes, in the object's order
	args []any
}

// scan reads a JSON object. Columns the table lacks are skipped; a column given twice
// is an error.
func (s *rowScanner) scan(t *table, raw []byte) error {
	s.cols, s.args = s.cols[:0], s.args[:0]
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return fmt.Errorf("%s: want a JSON object of column values, got %.40q", t.source, raw)
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return trailing(t, raw, i+1)
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return fmt.Errorf("%s: want a column name at byte %d of %.60q", t.source, i, raw)
		}
		end, escaped, err := scanString(raw, i)
		if err != nil {
			return fmt.Errorf("%s: %w", t.source, err)
		}
		var idx int
		var known bool
		if escaped {
			name, err := cdc.UnquoteJSONString(raw[i:end])
			if err != nil {
				return fmt.Errorf("%s: column name: %w", t.source, err)
			}
			idx, known = t.byName[name]
		} else {
			idx, known = t.byName[string(raw[i+1:end-1])]
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return fmt.Errorf("%s: want ':' after a column name at byte %d", t.source, i)
		}
		i = skipSpace(raw, i+1)
		vend, err := scanValue(raw, i)
		if err != nil {
			return fmt.Errorf("%s: %w", t.source, err)
		}
		if known {
			for _, c := range s.cols {
				if c == idx {
					return fmt.Errorf("%s: column %s appears twice in a row", t.source, t.cols[idx].name)
				}
			}
			v, err := cdc.ParseJSONValue(t.cols[idx].kind, raw[i:vend])
			var arg any
			if err == nil {
				arg = v.SQLiteArg()
			} else if t.isKey(idx) {
				return fmt.Errorf("%s key column %s: %w", t.source, t.cols[idx].name, err)
			} else if arg, err = looseArg(raw[i:vend]); err != nil {
				return fmt.Errorf("%s column %s: %w", t.source, t.cols[idx].name, err)
			}
			s.cols = append(s.cols, idx)
			s.args = append(s.args, arg)
		}
		i = skipSpace(raw, vend)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
			continue
		}
		if i < len(raw) && raw[i] == '}' {
			return trailing(t, raw, i+1)
		}
		return fmt.Errorf("%s: want ',' or '}' at byte %d of %.60q", t.source, i, raw)
	}
}

// keyArgs reorders scanned key columns into primary-key order, for a DELETE.
func (s *rowScanner) keyArgs(t *table, out []any) ([]any, error) {
	out = out[:0]
	for _, k := range t.pk {
		found := false
		for j, c := range s.cols {
			if c == k {
				out = append(out, s.args[j])
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%s: key lacks primary key column %s", t.source, t.cols[k].name)
		}
	}
	return out, nil
}

func trailing(t *table, raw []byte, i int) error {
	if skipSpace(raw, i) != len(raw) {
		return fmt.Errorf("%s: unexpected bytes after a row object", t.source)
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scanString returns the index just past the JSON string starting at b[i] == '"' and
// whether it holds escapes. It jumps from quote to quote; a quote counts as the end
// unless an odd run of backslashes precedes it.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	j := i + 1
	for {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return 0, false, fmt.Errorf("unterminated JSON string at byte %d", i)
		}
		at := j + q
		if !escaped && bytes.IndexByte(b[j:at], '\\') >= 0 {
			escaped = true
		}
		if !escaped || !escapedAt(b, i+1, at) {
			return at + 1, escaped, nil
		}
		j = at + 1
	}
}

// escapedAt reports whether b[at] is preceded by an odd number of backslashes since start.
func escapedAt(b []byte, start, at int) bool {
	n := 0
	for k := at - 1; k >= start && b[k] == '\\'; k-- {
		n++
	}
	return n%2 == 1
}

// scanValue returns the index just past the JSON value starting at b[i]. Strings are
// matched exactly; other values end at the next delimiter at the same nesting depth,
// and their content is checked by the kind's parser.
func scanValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("missing JSON value at byte %d", i)
	}
	switch b[i] {
	case '"':
		end, _, err := scanString(b, i)
		return end, err
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			case '"':
				end, _, err := scanString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			}
		}
		return 0, fmt.Errorf("unterminated JSON value at byte %d", i)
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\n', '\r', '\t':
			if j == i {
				return 0, fmt.Errorf("missing JSON value at byte %d", i)
			}
			return j, nil
		}
		j++
	}
	return j, nil
}

// isKey reports whether column idx is part of the primary key.
func (t *table) isKey(idx int) bool {
	for _, k := range t.pk {
		if k == idx {
			return true
		}
	}
	return false
}

// looseArg reads a non-key value that does not fit its column's current kind: one
// written before the column's type changed (numeric to double precision, say). It is stored by
// its JSON type and SQLite's column affinity converts it, so an old entry never stops
// an edge from applying the log.
func looseArg(raw []byte) (any, error) {
	switch {
	case len(raw) == 0:
		return nil, fmt.Errorf("empty value")
	case string(raw) == "null":
		return nil, nil
	case string(raw) == "true":
		return int64(1), nil
	case string(raw) == "false":
		return int64(0), nil
	case raw[0] == '"':
		return cdc.UnquoteJSONString(raw)
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return nil, fmt.Errorf("%.40s is not a JSON value", raw)
	}
	return f, nil
}
