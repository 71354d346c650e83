package changelog

import (
	"errors"
	"fmt"
)

// The change log keeps changes as the wire JSON written by syncproto.AppendChange.
// Filling unchanged columns and compaction read that JSON back without decoding it
// into values: they only need to find tokens, compare keys byte for byte (both sides
// were produced by the same encoder) and copy spans.

var errTruncated = errors.New("JSON ends early")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value that starts at b[i].
func skipValue(b []byte, i int) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return i, errTruncated
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				j, err := skipString(b, i)
				if err != nil {
					return j, err
				}
				i = j
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return i, errTruncated
	default:
		start := i
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if i == start {
					return i, fmt.Errorf("unexpected %q at offset %d", b[i], i)
				}
				return i, nil
			}
			i++
		}
		return i, nil
	}
}

func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return i, errTruncated
}

// eachElem calls fn with every element of the JSON array arr, in order.
func eachElem(arr []byte, fn func(elem []byte) error) error {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return errors.New("want a JSON array")
	}
	i = skipSpace(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for {
		j, err := skipValue(arr, i)
		if err != nil {
			return err
		}
		if err := fn(arr[skipSpace(arr, i):j]); err != nil {
			return err
		}
		i = skipSpace(arr, j)
		if i >= len(arr) {
			return errTruncated
		}
		switch arr[i] {
		case ',':
			i++
		case ']':
			return nil
		default:
			return fmt.Errorf("unexpected %q in array at offset %d", arr[i], i)
		}
	}
}

// eachField calls fn with the raw quoted name and the raw value of every member of
// the JSON object obj; fn returns false to stop.
func eachField(obj []byte, fn func(name, val []byte) bool) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errors.New("want a JSON object")
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return fmt.Errorf("want a member name at offset %d", i)
		}
		j, err := skipString(obj, i)
		if err != nil {
			return err
		}
		name := obj[i:j]
		i = skipSpace(obj, j)
		if i >= len(obj) || obj[i] != ':' {
			return fmt.Errorf("want ':' at offset %d", i)
		}
		vs := skipSpace(obj, i+1)
		ve, err := skipValue(obj, vs)
		if err != nil {
			return err
		}
		if !fn(name, obj[vs:ve]) {
			return nil
		}
		i = skipSpace(obj, ve)
		if i >= len(obj) {
			return errTruncated
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return nil
		default:
			return fmt.Errorf("unexpected %q in object at offset %d", obj[i], i)
		}
	}
}

// field returns the raw value of the member whose raw quoted name is qname.
func field(obj, qname []byte) ([]byte, bool) {
	var out []byte
	found := false
	_ = eachField(obj, func(name, val []byte) bool {
		if string(name) == string(qname) {
			out, found = val, true
			return false
		}
		return true
	})
	return out, found
}

// rawChange is one stored change, split into its raw parts.
type rawChange struct {
	table []byte // raw quoted table name
	op    byte   // 'i', 'u', 'd' or 't'
	row   []byte // raw object or nil
	key   []byte // raw object or nil
}

func parseRawChange(b []byte) (rawChange, error) {
	var c rawChange
	err := eachField(b, func(name, val []byte) bool {
		switch string(name) {
		case `"t"`:
			c.table = val
		case `"op"`:
			if len(val) == 3 {
				c.op = val[1]
			}
		case `"row"`:
			c.row = val
		case `"key"`:
			c.key = val
		}
		return true
	})
	if err != nil {
		return c, fmt.Errorf("stored change: %w", err)
	}
	switch {
	case c.table == nil:
		return c, errors.New("stored change has no table")
	case c.op != 'i' && c.op != 'u' && c.op != 'd' && c.op != 't':
		return c, errors.New("stored change has no valid op")
	}
	return c, nil
}

// appendKeyFromRow appends the key text (see syncproto.KeyText) of a raw row object,
// given the raw quoted names of the key columns. A missing column is null.
func appendKeyFromRow(b, row []byte, qkeys [][]byte) []byte {
	b = append(b, '[')
	for i, qk := range qkeys {
		if i > 0 {
			b = append(b, ',')
		}
		if v, ok := field(row, qk); ok {
			b = append(b, v...)
		} else {
			b = append(b, "null"...)
		}
	}
	return append(b, ']')
}

// appendKeyFromKey appends the key text of a raw key object, whose members are the
// key columns in key order (syncproto.AppendKey).
func appendKeyFromKey(b, key []byte) []byte {
	b = append(b, '[')
	first := true
	_ = eachField(key, func(_, val []byte) bool {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, val...)
		return true
	})
	return append(b, ']')
}
