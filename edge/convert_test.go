package edge

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/synchub/synchub/cdc"
)

func TestCapturedValue(t *testing.T) {
	cases := []struct {
		kind cdc.Kind
		raw  string
		want cdc.Value
		bad  bool
	}{
		{cdc.KindBool, `1`, cdc.Bool(true), false},
		{cdc.KindBool, `0`, cdc.Bool(false), false},
		{cdc.KindBool, `"true"`, cdc.Bool(true), false},
		{cdc.KindBool, `"maybe"`, cdc.Value{}, true},
		{cdc.KindInt, `9223372036854775807`, cdc.Int(math.MaxInt64), false},
		{cdc.KindInt, `-9223372036854775808`, cdc.Int(math.MinInt64), false},
		{cdc.KindInt, `3.0`, cdc.Int(3), false},
		{cdc.KindInt, `3.5`, cdc.Value{}, true},
		{cdc.KindInt, `"12"`, cdc.Int(12), false},
		{cdc.KindFloat, `0.30000000000000004`, cdc.Float(0.30000000000000004), false},
		{cdc.KindFloat, `9.0e+999`, cdc.Float(math.Inf(1)), false},
		{cdc.KindFloat, `-9.0e+999`, cdc.Float(math.Inf(-1)), false},
		{cdc.KindFloat, `"NaN"`, cdc.Float(math.NaN()), false},
		{cdc.KindFloat, `"abc"`, cdc.Value{}, true},
		{cdc.KindDecimal, `"12.3400"`, cdc.Text(cdc.KindDecimal, "12.3400"), false},
		{cdc.KindDecimal, `12.5`, cdc.Text(cdc.KindDecimal, "12.5"), false},
		{cdc.KindBytes, `"00FF10"`, cdc.Bytes([]byte{0, 0xff, 0x10}), false},
		{cdc.KindBytes, `""`, cdc.Bytes([]byte{}), false},
		{cdc.KindBytes, `"zz"`, cdc.Value{}, true},
		{cdc.KindText, `"a\"b"`, cdc.Text(cdc.KindText, `a"b`), false},
		{cdc.KindText, `42`, cdc.Text(cdc.KindText, "42"), false},
		{cdc.KindJSON, `"{\"a\":1}"`, cdc.Text(cdc.KindJSON, `{"a":1}`), false},
		{cdc.KindText, `{"a":1}`, cdc.Value{}, true},
		{cdc.KindUUID, `null`, cdc.Null(), false},
	}
	for _, c := range cases {
		got, err := capturedValue(c.kind, json.RawMessage(c.raw))
		if c.bad {
			if err == nil {
				t.Errorf("%s %s: want an error, got %v", c.kind, c.raw, got)
			}
			continue
		}
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%s %s = %v (%s), %v; want %v", c.kind, c.raw, got, got.Kind(), err, c.want)
		}
	}
}

// FuzzEncodeObject checks that whatever a capture trigger stored either fails with an
// error or encodes to JSON every column of which cdc.ParseJSONValue reads back.
func FuzzEncodeObject(f *testing.F) {
	f.Add([]byte(`{"id":1,"b":1,"f":"NaN","dec":"1.5","txt":"x","raw":"00FF","u":"a","j":"{}","d":"2024-01-01","tm":"t","ts":"t","tz":"t","iv":"i","arr":"[]","en":"e","n":null}`))
	f.Add([]byte(`{"id":-9223372036854775808,"f":9.0e+999,"b":"t"}`))
	f.Add([]byte(`{"id":"x"}`))
	f.Add([]byte(`[1]`))
	src := kindsTable()
	tbl, err := newTable(&src, "app_kinds", nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := encodeObject(tbl, raw, nil)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("encoded %s to invalid JSON %s: %v", raw, out, err)
		}
		for _, c := range tbl.cols {
			v, ok := m[c.name]
			if !ok {
				continue
			}
			if _, err := cdc.ParseJSONValue(c.kind, v); err != nil {
				t.Fatalf("column %s: encoded %s from %s does not parse: %v", c.name, v, raw, err)
			}
		}
	})
}
