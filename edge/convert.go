package edge

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/synchub/synchub/cdc"
)

// The capture triggers store rows as SQLite sees them: json_object of the raw column
// values, with BLOB columns as hex. encodeObject turns such an object into the hub's
// schema-driven JSON form (see package cdc): bool columns' 0/1 become false/true,
// BLOBs base64, the text 'NaN' of a float column "NaN", and so on. Doing it in Go keeps
// the triggers short and works when another process (the application) writes the file.

// encodeObject converts the raw JSON object of captured values into the hub's form,
// keeping the columns of t listed in idx (all columns when idx is nil) in that order.
// Columns missing from raw are left out. A value that does not fit its column's kind
// is an error naming the column.
func encodeObject(t *table, raw []byte, idx []int) ([]byte, error) {
	// One pass over the object, without a map: a batch encodes thousands of them.
	vals := make([][]byte, len(t.cols))
	if _, err := eachMember(raw, 0, func(key, b []byte, i int) (int, error) {
		end, err := scanValue(b, i)
		if err != nil {
			return 0, err
		}
		if ci, ok := t.byName[string(key)]; ok {
			vals[ci] = b[i:end] // as with a map, the last of repeated names counts
		}
		return end, nil
	}); err != nil {
		return nil, fmt.Errorf("%s: captured row is not a JSON object: %w", t.source, err)
	}
	if idx == nil {
		idx = make([]int, len(t.cols))
		for i := range idx {
			idx[i] = i
		}
	}
	b := make([]byte, 0, len(raw)+16)
	b = append(b, '{')
	first := true
	for _, ci := range idx {
		c := &t.cols[ci]
		v := vals[ci]
		if v == nil {
			continue
		}
		val, err := capturedValue(c.kind, v)
		if err != nil {
			return nil, fmt.Errorf("%s column %s: %w", t.source, c.name, err)
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = cdc.AppendJSONString(b, c.name)
		b = append(b, ':')
		b = val.AppendJSON(b)
	}
	return append(b, '}'), nil
}

// capturedValue reads one value stored by a capture trigger for a column of kind k.
func capturedValue(k cdc.Kind, raw json.RawMessage) (cdc.Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return cdc.Value{}, errors.New("empty value")
	}
	if string(raw) == "null" {
		return cdc.Null(), nil
	}
	isStr := raw[0] == '"'
	var text string
	if isStr {
		s, err := cdc.UnquoteJSONString(raw)
		if err != nil {
			return cdc.Value{}, err
		}
		text = s
	} else if raw[0] == '{' || raw[0] == '[' || string(raw) == "true" || string(raw) == "false" {
		return cdc.Value{}, fmt.Errorf("unexpected JSON %.40s", raw)
	} else {
		text = string(raw) // a number as SQLite wrote it
	}
	switch k {
	case cdc.KindBool:
		switch strings.ToLower(strings.TrimSpace(text)) {
		case "1", "true", "t":
			return cdc.Bool(true), nil
		case "0", "false", "f":
			return cdc.Bool(false), nil
		}
		if f, err := strconv.ParseFloat(text, 64); err == nil && !isStr {
			return cdc.Bool(f != 0), nil
		}
		return cdc.Value{}, fmt.Errorf("%q is not a boolean (store 0 or 1)", text)
	case cdc.KindInt:
		s := strings.TrimSpace(text)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return cdc.Int(n), nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
			return cdc.Int(int64(f)), nil
		}
		return cdc.Value{}, fmt.Errorf("%q is not a 64-bit integer", text)
	case cdc.KindFloat:
		switch strings.TrimSpace(text) {
		case "NaN", "nan":
			return cdc.Float(math.NaN()), nil
		case "Infinity", "Inf", "inf", "+Infinity":
			return cdc.Float(math.Inf(1)), nil
		case "-Infinity", "-Inf", "-inf":
			return cdc.Float(math.Inf(-1)), nil
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			// SQLite writes infinities as 9.0e+999, which ParseFloat reports out of range
			// with the infinity as result.
			return cdc.Value{}, fmt.Errorf("%q is not a number", text)
		}
		return cdc.Float(f), nil
	case cdc.KindBytes:
		if !isStr {
			return cdc.Value{}, fmt.Errorf("%.40s is not hex-encoded bytes", raw)
		}
		d, err := hex.DecodeString(text)
		if err != nil {
			return cdc.Value{}, fmt.Errorf("captured bytes are not hex: %w", err)
		}
		return cdc.Bytes(d), nil
	case cdc.KindNull:
		return cdc.Value{}, errors.New("a column cannot have kind null")
	}
	if strings.HasPrefix(k.String(), "kind(") {
		return cdc.Value{}, fmt.Errorf("unknown column kind %d", k)
	}
	return cdc.Text(k, text), nil
}
