package edge

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/synchub/synchub/cdc"
)

// page is a decoded /v1/changes body (see package syncproto for the format). Table
// names, rows and keys alias the body, which must stay unchanged while the page is used.
type page struct {
	Since         int64
	Next          int64
	Cursor        string
	Commit        bool
	Head          int64
	SchemaVersion int64
	Entries       []entry
}

// entry is one chunk of one change-log version.
type entry struct {
	Version int64
	Seq     int
	Last    bool
	Origin  []byte // the edge whose push wrote this version, or empty
	TS      int64  // source commit time, Unix microseconds
	Changes []change
}

// change is one change as sent; Row and Key are raw JSON objects.
type change struct {
	Table []byte
	Op    cdc.Op
	Row   []byte
	Key   []byte
}

// decodePage decodes body into p, reusing p's slices. It walks the JSON once and copies
// nothing but escaped strings; encoding/json with RawMessage rows spends more time than
// the SQLite inserts that follow.
func decodePage(body []byte, p *page) error {
	entries := p.Entries[:0]
	*p = page{}
	var have struct{ since, next, commit, entries bool }
	_, err := eachMember(body, 0, func(key []byte, b []byte, i int) (int, error) {
		if string(key) == "entries" {
			var end int
			var err error
			entries, end, err = decodeEntries(b, i, entries)
			have.entries = true
			if err != nil {
				return 0, fmt.Errorf("entries: %w", err)
			}
			return end, nil
		}
		end, err := scanValue(b, i)
		if err != nil {
			return 0, err
		}
		v := b[i:end]
		switch string(key) {
		case "since":
			p.Since, err = parseInt(v)
			have.since = true
		case "next":
			p.Next, err = parseInt(v)
			have.next = true
		case "cursor":
			var s []byte
			if s, err = parseString(v); err == nil {
				p.Cursor = string(s)
			}
		case "commit":
			p.Commit, err = parseBool(v)
			have.commit = true
		case "head":
			p.Head, err = parseInt(v)
		case "schema_version":
			p.SchemaVersion, err = parseInt(v)
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", key, err)
		}
		return end, nil
	})
	p.Entries = entries
	if err != nil {
		return fmt.Errorf("decode page: %w", err)
	}
	if !have.since || !have.next || !have.commit || !have.entries {
		return fmt.Errorf("decode page: since, next, commit and entries are required")
	}
	return nil
}

func decodeEntries(b []byte, i int, out []entry) ([]entry, int, error) {
	end, err := eachElement(b, i, func(b []byte, i int) (int, error) {
		var e *entry
		if len(out) < cap(out) {
			out = out[:len(out)+1]
			e = &out[len(out)-1]
			*e = entry{Changes: e.Changes[:0]}
		} else {
			out = append(out, entry{})
			e = &out[len(out)-1]
		}
		end, err := eachMember(b, i, func(key []byte, b []byte, i int) (int, error) {
			if string(key) == "changes" {
				var end int
				var err error
				e.Changes, end, err = decodeChanges(b, i, e.Changes)
				return end, err
			}
			end, err := scanValue(b, i)
			if err != nil {
				return 0, err
			}
			v := b[i:end]
			switch string(key) {
			case "v":
				e.Version, err = parseInt(v)
			case "seq":
				var n int64
				n, err = parseInt(v)
				e.Seq = int(n)
			case "last":
				e.Last, err = parseBool(v)
			case "origin":
				e.Origin, err = parseString(v)
			case "ts":
				e.TS, err = parseInt(v)
			}
			if err != nil {
				return 0, fmt.Errorf("%s: %w", key, err)
			}
			return end, nil
		})
		if err != nil {
			return 0, fmt.Errorf("entry %d: %w", len(out)-1, err)
		}
		return end, nil
	})
	return out, end, err
}

func decodeChanges(b []byte, i int, out []change) ([]change, int, error) {
	end, err := eachElement(b, i, func(b []byte, i int) (int, error) {
		var c change
		end, err := eachMember(b, i, func(key []byte, b []byte, i int) (int, error) {
			end, err := scanValue(b, i)
			if err != nil {
				return 0, err
			}
			v := b[i:end]
			switch string(key) {
			case "t":
				c.Table, err = parseString(v)
			case "op":
				var op []byte
				if op, err = parseString(v); err == nil {
					c.Op, err = cdc.ParseOpCode(string(op))
				}
			case "row":
				c.Row = v
			case "key":
				c.Key = v
			}
			return end, err
		})
		if err != nil {
			return 0, fmt.Errorf("change %d: %w", len(out), err)
		}
		if c.Op == 0 || len(c.Table) == 0 {
			return 0, fmt.Errorf("change %d: t and op are required", len(out))
		}
		out = append(out, c)
		return end, nil
	})
	return out, end, err
}

// eachMember calls f with the name of each member of the JSON object starting at b[i]
// (after spaces) and the index of its value; f returns the index past the value.
// eachMember returns the index past the object.
func eachMember(b []byte, i int, f func(key []byte, b []byte, i int) (int, error)) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		return 0, fmt.Errorf("want a JSON object at byte %d", i)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, fmt.Errorf("want a member name at byte %d", i)
		}
		end, escaped, err := scanString(b, i)
		if err != nil {
			return 0, err
		}
		key := b[i+1 : end-1]
		if escaped {
			s, err := cdc.UnquoteJSONString(b[i:end])
			if err != nil {
				return 0, err
			}
			key = []byte(s)
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return 0, fmt.Errorf("want ':' at byte %d", i)
		}
		i = skipSpace(b, i+1)
		vend, err := f(key, b, i)
		if err != nil {
			return 0, err
		}
		i = skipSpace(b, vend)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		return 0, fmt.Errorf("want ',' or '}' at byte %d", i)
	}
}

// eachElement calls f with the index of each element of the JSON array starting at
// b[i]; f returns the index past the element. eachElement returns the index past the
// array.
func eachElement(b []byte, i int, f func(b []byte, i int) (int, error)) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '[' {
		return 0, fmt.Errorf("want a JSON array at byte %d", i)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		vend, err := f(b, i)
		if err != nil {
			return 0, err
		}
		i = skipSpace(b, vend)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		return 0, fmt.Errorf("want ',' or ']' at byte %d", i)
	}
}

func parseInt(v []byte) (int64, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%.30q is not an integer", v)
	}
	return n, nil
}

func parseBool(v []byte) (bool, error) {
	switch string(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%.30q is not true or false", v)
}

// parseString returns a JSON string's content, aliasing v when it has no escapes.
func parseString(v []byte) ([]byte, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, fmt.Errorf("%.30q is not a string", v)
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], nil
	}
	s, err := cdc.UnquoteJSONString(v)
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}
