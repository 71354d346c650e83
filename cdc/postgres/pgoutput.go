package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/synchub/synchub/cdc"
)

// rowMessage is a pgoutput Insert, Update or Delete message split into its parts,
// read without copying: the tuples point into the received buffer.
type rowMessage struct {
	op       cdc.Op
	relID    uint32
	oldKind  byte // 0, 'K' (key columns only) or 'O' (whole old row)
	oldTuple []byte
	newTuple []byte
}

var errShortMessage = errors.New("pgoutput message is truncated")

// parseRowMessage reads an 'I', 'U' or 'D' message (data starts with the type byte).
func parseRowMessage(data []byte) (rowMessage, error) {
	var m rowMessage
	if len(data) < 6 {
		return m, errShortMessage
	}
	m.relID = binary.BigEndian.Uint32(data[1:5])
	rest := data[5:]
	switch data[0] {
	case 'I':
		m.op = cdc.OpInsert
		if rest[0] != 'N' {
			return m, fmt.Errorf("insert message: unexpected tuple marker %q", rest[0])
		}
		m.newTuple = rest[1:]
		return m, nil
	case 'U':
		m.op = cdc.OpUpdate
		if rest[0] == 'K' || rest[0] == 'O' {
			m.oldKind = rest[0]
			n, err := tupleLen(rest[1:])
			if err != nil {
				return m, err
			}
			m.oldTuple = rest[1 : 1+n]
			rest = rest[1+n:]
		}
		if len(rest) == 0 || rest[0] != 'N' {
			return m, errors.New("update message has no new tuple")
		}
		m.newTuple = rest[1:]
		return m, nil
	case 'D':
		m.op = cdc.OpDelete
		if rest[0] != 'K' && rest[0] != 'O' {
			return m, fmt.Errorf("delete message: unexpected tuple marker %q", rest[0])
		}
		m.oldKind = rest[0]
		m.oldTuple = rest[1:]
		return m, nil
	}
	return m, fmt.Errorf("not a row message: %q", data[0])
}

// tupleLen returns the length in bytes of the TupleData at the start of b.
func tupleLen(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, errShortMessage
	}
	n := int(binary.BigEndian.Uint16(b))
	p := 2
	for i := 0; i < n; i++ {
		if p >= len(b) {
			return 0, errShortMessage
		}
		kind := b[p]
		p++
		switch kind {
		case 'n', 'u':
		case 't', 'b':
			if p+4 > len(b) {
				return 0, errShortMessage
			}
			l := int(binary.BigEndian.Uint32(b[p:]))
			p += 4
			if l < 0 || l > len(b)-p {
				return 0, errShortMessage
			}
			p += l
		default:
			return 0, fmt.Errorf("tuple column has unknown kind %q", kind)
		}
	}
	return p, nil
}

// tuple turns a TupleData into a Row of def's columns: 'n' is NULL, 'u' (an unchanged
// TOASTed value that was not sent) is marked Unchanged, 't' is decoded from its text
// form.
func (d *rowDecoder) tuple(def *tableDef, b []byte) (cdc.Row, error) {
	if len(b) < 2 {
		return nil, errShortMessage
	}
	n := int(binary.BigEndian.Uint16(b))
	if n != len(def.cols) {
		return nil, fmt.Errorf("table %s: tuple has %d columns, the relation %d", def.table.Name, n, len(def.cols))
	}
	row := d.row(def, n)
	p := 2
	for i := 0; i < n; i++ {
		if p >= len(b) {
			return nil, errShortMessage
		}
		kind := b[p]
		p++
		switch kind {
		case 'n':
		case 'u':
			row[i].Unchanged = true
		case 't':
			if p+4 > len(b) {
				return nil, errShortMessage
			}
			l := int(binary.BigEndian.Uint32(b[p:]))
			p += 4
			if l < 0 || l > len(b)-p {
				return nil, errShortMessage
			}
			v, err := def.cols[i].typ.decode(b[p:p+l], &d.text)
			if err != nil {
				return nil, fmt.Errorf("table %s column %s: %w", def.table.Name, row[i].Name, err)
			}
			row[i].Value = v
			p += l
		case 'b':
			return nil, fmt.Errorf("table %s column %s: binary tuple data was not requested", def.table.Name, row[i].Name)
		default:
			return nil, fmt.Errorf("tuple column has unknown kind %q", kind)
		}
	}
	return row, nil
}
