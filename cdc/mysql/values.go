package mysql

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/synchub/synchub/cdc"
)

// Both decoders below end in the same canonical forms, so a row read by the snapshot
// and the same row read from the binlog are equal Values.

// binlogValue converts a value decoded by go-mysql from a row event.
func binlogValue(col *cdc.Column, info *colInfo, v any) (cdc.Value, error) {
	if v == nil {
		return cdc.Null(), nil
	}
	switch col.Kind {
	case cdc.KindInt:
		if n, ok := toInt64(v); ok {
			return cdc.Int(n), nil
		}
	case cdc.KindDecimal:
		switch x := v.(type) {
		case uint64:
			return cdc.Text(cdc.KindDecimal, strconv.FormatUint(x, 10)), nil
		case int64:
			return cdc.Text(cdc.KindDecimal, strconv.FormatInt(x, 10)), nil
		case string:
			return cdc.Text(cdc.KindDecimal, x), nil
		}
	case cdc.KindFloat:
		switch x := v.(type) {
		case float32:
			return cdc.Float(float32Value(x)), nil
		case float64:
			if info.isFloat {
				return cdc.Float(float32Value(float32(x))), nil
			}
			return cdc.Float(x), nil
		}
	case cdc.KindDate:
		if s, ok := v.(string); ok {
			return cdc.Text(cdc.KindDate, s), nil
		}
	case cdc.KindTimestamp, cdc.KindTimestampTZ:
		if s, ok := v.(string); ok {
			return cdc.Text(col.Kind, canonDateTime(s, col.Kind == cdc.KindTimestampTZ)), nil
		}
	case cdc.KindTime:
		if s, ok := v.(string); ok {
			return cdc.Text(cdc.KindTime, trimFraction(s)), nil
		}
	case cdc.KindEnum:
		if n, ok := toInt64(v); ok {
			return cdc.Text(cdc.KindEnum, enumLabel(info.labels, n)), nil
		}
	case cdc.KindText:
		if info.dataType == "set" {
			if n, ok := toInt64(v); ok {
				return cdc.Text(cdc.KindText, setLabels(info.labels, uint64(n))), nil
			}
		}
		switch x := v.(type) {
		case string:
			return cdc.Text(cdc.KindText, x), nil
		case []byte:
			return cdc.Text(cdc.KindText, string(x)), nil
		}
	case cdc.KindJSON:
		switch x := v.(type) {
		case string:
			if x == "" {
				x = "null"
			}
			return cdc.Text(cdc.KindJSON, jsonText(info, x)), nil
		case []byte:
			if len(x) == 0 {
				return cdc.Text(cdc.KindJSON, "null"), nil
			}
			return cdc.Text(cdc.KindJSON, jsonText(info, string(x))), nil
		case *replication.JsonDiff:
			return cdc.Value{}, fmt.Errorf("column %s: partial JSON update in the binlog; set binlog_row_value_options='' so full JSON values are logged", col.Name)
		}
	case cdc.KindBytes:
		var b []byte
		switch x := v.(type) {
		case string:
			b = []byte(x)
		case []byte:
			b = append([]byte(nil), x...)
		default:
			return cdc.Value{}, fmt.Errorf("column %s (%s): unexpected binlog value of type %T", col.Name, col.SourceType, v)
		}
		if info.fixedLen > len(b) {
			// The binlog drops a BINARY(n) value's trailing zero bytes.
			b = append(b, make([]byte, info.fixedLen-len(b))...)
		}
		return cdc.Bytes(b), nil
	}
	return cdc.Value{}, fmt.Errorf("column %s (%s, kind %s): unexpected binlog value of type %T", col.Name, col.SourceType, col.Kind, v)
}

// snapshotValue converts a value read by a prepared statement (binary protocol).
func snapshotValue(col *cdc.Column, info *colInfo, fv *gomysql.FieldValue) (cdc.Value, error) {
	if fv.Type == gomysql.FieldValueTypeNull {
		return cdc.Null(), nil
	}
	switch col.Kind {
	case cdc.KindInt:
		switch fv.Type {
		case gomysql.FieldValueTypeSigned:
			return cdc.Int(fv.AsInt64()), nil
		case gomysql.FieldValueTypeUnsigned:
			return cdc.Int(int64(fv.AsUint64())), nil
		case gomysql.FieldValueTypeString:
			if info.dataType == "bit" {
				return cdc.Int(bitValue(fv.AsString())), nil
			}
			n, err := strconv.ParseInt(string(fv.AsString()), 10, 64)
			if err != nil {
				return cdc.Value{}, fmt.Errorf("column %s: %q is not an integer", col.Name, truncateText(string(fv.AsString())))
			}
			return cdc.Int(n), nil
		}
	case cdc.KindDecimal:
		switch fv.Type {
		case gomysql.FieldValueTypeUnsigned:
			return cdc.Text(cdc.KindDecimal, strconv.FormatUint(fv.AsUint64(), 10)), nil
		case gomysql.FieldValueTypeSigned:
			return cdc.Text(cdc.KindDecimal, strconv.FormatInt(fv.AsInt64(), 10)), nil
		case gomysql.FieldValueTypeString:
			return cdc.Text(cdc.KindDecimal, string(fv.AsString())), nil
		}
	case cdc.KindFloat:
		if fv.Type == gomysql.FieldValueTypeFloat {
			if info.isFloat {
				return cdc.Float(float32Value(float32(fv.AsFloat64()))), nil
			}
			return cdc.Float(fv.AsFloat64()), nil
		}
	case cdc.KindDate:
		if fv.Type == gomysql.FieldValueTypeString {
			return cdc.Text(cdc.KindDate, string(fv.AsString())), nil
		}
	case cdc.KindTimestamp, cdc.KindTimestampTZ:
		if fv.Type == gomysql.FieldValueTypeString {
			return cdc.Text(col.Kind, canonDateTime(string(fv.AsString()), col.Kind == cdc.KindTimestampTZ)), nil
		}
	case cdc.KindTime:
		if fv.Type == gomysql.FieldValueTypeString {
			return cdc.Text(cdc.KindTime, trimFraction(string(fv.AsString()))), nil
		}
	case cdc.KindEnum, cdc.KindText:
		if fv.Type == gomysql.FieldValueTypeString {
			return cdc.Text(col.Kind, string(fv.AsString())), nil
		}
	case cdc.KindJSON:
		if fv.Type == gomysql.FieldValueTypeString {
			return cdc.Text(cdc.KindJSON, jsonText(info, string(fv.AsString()))), nil
		}
	case cdc.KindBytes:
		if fv.Type == gomysql.FieldValueTypeString {
			return cdc.Bytes(append([]byte{}, fv.AsString()...)), nil
		}
	}
	return cdc.Value{}, fmt.Errorf("column %s (%s, kind %s): unexpected value %s", col.Name, col.SourceType, col.Kind, truncateText(fv.String()))
}

// jsonText is the canonical text of a JSON value. MySQL's binary JSON is rendered by
// the server in the snapshot and by go-mysql in the binlog, with different spacing, so
// it is compacted; MariaDB's JSON is text and stays exactly as stored.
func jsonText(info *colInfo, s string) string {
	if info.dataType != "json" {
		return s
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		return s
	}
	return b.String()
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	}
	return 0, false
}

// float32Value widens a FLOAT column's value by its shortest decimal text, so 1.1
// stays 1.1 instead of becoming 1.100000023841858.
func float32Value(f float32) float64 {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return float64(f)
	}
	v, err := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	if err != nil {
		return float64(f)
	}
	return v
}

// bitValue reads a BIT(n) value sent as big-endian bytes.
func bitValue(b []byte) int64 {
	if len(b) > 8 {
		b = b[len(b)-8:]
	}
	var buf [8]byte
	copy(buf[8-len(b):], b)
	return int64(binary.BigEndian.Uint64(buf[:]))
}

// enumLabel is the label of a 1-based ENUM index; 0 is MySQL's empty error value.
func enumLabel(labels []string, n int64) string {
	if n >= 1 && int(n) <= len(labels) {
		return labels[n-1]
	}
	return ""
}

// setLabels is the comma-separated labels of a SET bitmask, in declaration order.
func setLabels(labels []string, bits uint64) string {
	var b strings.Builder
	for i, l := range labels {
		if i < 64 && bits&(1<<uint(i)) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l)
		}
	}
	return b.String()
}

// canonDateTime turns "2006-01-02 15:04:05.123000" into "2006-01-02T15:04:05.123",
// with a trailing "Z" for TIMESTAMP columns (read in UTC).
func canonDateTime(s string, utc bool) string {
	s = trimFraction(s)
	i := strings.IndexByte(s, ' ')
	if i < 0 && !utc {
		return s
	}
	b := make([]byte, 0, len(s)+1)
	b = append(b, s...)
	if i >= 0 {
		b[i] = 'T'
	}
	if utc {
		b = append(b, 'Z')
	}
	return string(b)
}

// trimFraction drops trailing zeros of a fractional second, and the dot when nothing
// is left.
func trimFraction(s string) string {
	dot := strings.LastIndexByte(s, '.')
	if dot < 0 || strings.ContainsAny(s[dot:], " -:") {
		return s
	}
	t := strings.TrimRight(s, "0")
	if len(t) == dot+1 {
		return s[:dot]
	}
	return t
}
