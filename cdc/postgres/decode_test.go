package postgres

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/synchub/synchub/cdc"
)

func typeByName(t testing.TB, name string) *pgType {
	t.Helper()
	for _, typ := range builtinTypes() {
		if typ.name == name {
			return typ
		}
	}
	t.Fatalf("no built-in type %q", name)
	return nil
}

func TestDecode_Scalars(t *testing.T) {
	cases := []struct {
		typ  string
		in   string
		want cdc.Value
	}{
		{"int8", "9223372036854775807", cdc.Int(math.MaxInt64)},
		{"int8", "-9223372036854775808", cdc.Int(math.MinInt64)},
		{"int8", "0", cdc.Int(0)},
		{"int4", "-2147483648", cdc.Int(math.MinInt32)},
		{"int2", "32767", cdc.Int(32767)},
		{"oid", "4294967295", cdc.Int(4294967295)},
		{"numeric", "1234567890123456789012345678901234567890", cdc.Text(cdc.KindDecimal, "1234567890123456789012345678901234567890")},
		{"numeric", "-0.000000000000000000000000000000000000000001", cdc.Text(cdc.KindDecimal, "-0.000000000000000000000000000000000000000001")},
		{"numeric", "12.3400", cdc.Text(cdc.KindDecimal, "12.3400")},
		{"numeric", "NaN", cdc.Text(cdc.KindDecimal, "NaN")},
		{"float8", "1.5", cdc.Float(1.5)},
		{"float8", "1e+100", cdc.Float(1e100)},
		{"float8", "-Infinity", cdc.Float(math.Inf(-1))},
		{"float8", "Infinity", cdc.Float(math.Inf(1))},
		{"float8", "NaN", cdc.Float(math.NaN())},
		{"float8", "4.9406564584124654e-324", cdc.Float(4.9406564584124654e-324)},
		{"float4", "1.1", cdc.Float(1.1)},
		{"bool", "t", cdc.Bool(true)},
		{"bool", "f", cdc.Bool(false)},
		{"text", "héllo 🎉 世界", cdc.Text(cdc.KindText, "héllo 🎉 世界")},
		{"text", "", cdc.Text(cdc.KindText, "")},
		{"varchar", "tab\there\nnewline", cdc.Text(cdc.KindText, "tab\there\nnewline")},
		{"bpchar", "ab   ", cdc.Text(cdc.KindText, "ab   ")},
		{"name", "pg_class", cdc.Text(cdc.KindText, "pg_class")},
		{"bytea", `\x00ff00`, cdc.Bytes([]byte{0, 0xff, 0})},
		{"bytea", `\x`, cdc.Bytes([]byte{})},
		{"bytea", `\000\377\\A`, cdc.Bytes([]byte{0, 0xff, '\\', 'A'})},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", cdc.Text(cdc.KindUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")},
		{"jsonb", `{"a": [1, 2.50, "x"]}`, cdc.Text(cdc.KindJSON, `{"a": [1, 2.50, "x"]}`)},
		{"json", `{"b":1,  "a":2}`, cdc.Text(cdc.KindJSON, `{"b":1,  "a":2}`)},
		{"date", "2024-02-29", cdc.Text(cdc.KindDate, "2024-02-29")},
		{"date", "infinity", cdc.Text(cdc.KindDate, "infinity")},
		{"date", "0044-03-15 BC", cdc.Text(cdc.KindDate, "-0043-03-15")},
		{"time", "15:04:05", cdc.Text(cdc.KindTime, "15:04:05")},
		{"time", "15:04:05.123456", cdc.Text(cdc.KindTime, "15:04:05.123456")},
		{"timetz", "10:00:00+05:30", cdc.Text(cdc.KindTime, "10:00:00+05:30")},
		{"timestamp", "2024-01-02 03:04:05", cdc.Text(cdc.KindTimestamp, "2024-01-02T03:04:05")},
		{"timestamp", "2024-01-02 03:04:05.5", cdc.Text(cdc.KindTimestamp, "2024-01-02T03:04:05.5")},
		{"timestamp", "2024-01-02 03:04:05.123456", cdc.Text(cdc.KindTimestamp, "2024-01-02T03:04:05.123456")},
		{"timestamp", "infinity", cdc.Text(cdc.KindTimestamp, "infinity")},
		{"timestamp", "-infinity", cdc.Text(cdc.KindTimestamp, "-infinity")},
		{"timestamp", "0044-03-15 10:00:00 BC", cdc.Text(cdc.KindTimestamp, "-0043-03-15T10:00:00")},
		{"timestamp", "10000-01-01 00:00:00", cdc.Text(cdc.KindTimestamp, "10000-01-01T00:00:00")},
		{"timestamptz", "2024-01-01 04:06:32.5+00", cdc.Text(cdc.KindTimestampTZ, "2024-01-01T04:06:32.5Z")},
		{"timestamptz", "2024-01-01 15:30:00.5+05:30", cdc.Text(cdc.KindTimestampTZ, "2024-01-01T10:00:00.5Z")},
		{"timestamptz", "2024-01-01 00:30:00-03", cdc.Text(cdc.KindTimestampTZ, "2024-01-01T03:30:00Z")},
		{"timestamptz", "2024-03-01 01:00:00.000001+02", cdc.Text(cdc.KindTimestampTZ, "2024-02-29T23:00:00.000001Z")},
		{"timestamptz", "2023-12-31 22:00:00-09:30", cdc.Text(cdc.KindTimestampTZ, "2024-01-01T07:30:00Z")},
		{"timestamptz", "1900-01-01 05:21:10+05:21:10", cdc.Text(cdc.KindTimestampTZ, "1900-01-01T00:00:00Z")},
		{"timestamptz", "1900-01-01 00:19:32+00:19:32", cdc.Text(cdc.KindTimestampTZ, "1900-01-01T00:00:00Z")},
		{"timestamptz", "0044-03-15 04:30:00+00 BC", cdc.Text(cdc.KindTimestampTZ, "-0043-03-15T04:30:00Z")},
		{"timestamptz", "infinity", cdc.Text(cdc.KindTimestampTZ, "infinity")},
		{"timestamptz", "-infinity", cdc.Text(cdc.KindTimestampTZ, "-infinity")},
		{"interval", "P1Y2M3DT4H5M6.5S", cdc.Text(cdc.KindInterval, "P1Y2M3DT4H5M6.5S")},
		{"interval", "P-1D", cdc.Text(cdc.KindInterval, "P-1D")},
		{"inet", "192.168.0.1/24", cdc.Text(cdc.KindText, "192.168.0.1/24")},
		{"money", "$1,234.56", cdc.Text(cdc.KindText, "$1,234.56")},
	}
	for _, c := range cases {
		got, err := typeByName(t, c.typ).decode([]byte(c.in), nil)
		if err != nil {
			t.Errorf("decode %s %q: %v", c.typ, c.in, err)
			continue
		}
		if !got.Equal(c.want) {
			t.Errorf("decode %s %q = %s %q, want %s %q", c.typ, c.in, got.Kind(), got.String(), c.want.Kind(), c.want.String())
		}
	}
}

func TestDecode_Rejects(t *testing.T) {
	cases := []struct{ typ, in string }{
		{"int8", "9223372036854775808"},
		{"int8", "-9223372036854775809"},
		{"int8", "12a"},
		{"int8", ""},
		{"int4", "-"},
		{"float8", "one"},
		{"bool", "true"},
		{"bytea", `\x0`},
		{"bytea", `\xzz`},
		{"bytea", `\9`},
		{"timestamp", "2024-01-02"},
		{"timestamptz", "2024-01-02 03:04:05"},
		{"timestamptz", "2024-01-02 03:04:05+5"},
		{"timestamptz", "2024-13-02 03:04:05+05"},
		{"timestamptz", "2024-01-02 3:04:05+05"},
		{"_int4", "{1,2"},
		{"_int4", "1,2}"},
		{"_int4", "{1,,2}"},
		{"_text", `{"a}`},
		{"_text", `{a"b}`},
		{"_int4", "{{{{{{{1}}}}}}}"},
		{"_int4", "[0:1]{1,2}"},
		{"_int4", "{1} x"},
	}
	for _, c := range cases {
		if v, err := typeByName(t, c.typ).decode([]byte(c.in), nil); err == nil {
			t.Errorf("decode %s %q = %v, want an error", c.typ, c.in, v)
		}
	}
}

func TestDecode_Arrays(t *testing.T) {
	cases := []struct {
		typ  string
		in   string
		want string
	}{
		{"_int4", "{}", `[]`},
		{"_int4", "{1,2,3}", `[1,2,3]`},
		{"_int8", "{9223372036854775807,-9223372036854775808,NULL}", `[9223372036854775807,-9223372036854775808,null]`},
		{"_int4", "[0:1]={1,2}", `[1,2]`},
		{"_int4", "{{1,2},{3,4}}", `[[1,2],[3,4]]`},
		{"_int4", "{{{1},{2}},{{3},{4}}}", `[[[1],[2]],[[3],[4]]]`},
		{"_int4", "[1:2][1:1]={{1},{2}}", `[[1],[2]]`},
		{"_numeric", "{1234567890123456789012345678901234567890.5,NaN,-0.001}", `[1234567890123456789012345678901234567890.5,"NaN",-0.001]`},
		{"_float8", "{1.5,NaN,Infinity,-Infinity,1e+100}", `[1.5,"NaN","Infinity","-Infinity",1e+100]`},
		{"_bool", "{t,f,NULL}", `[true,false,null]`},
		{"_text", `{"a\"b","c\\d",NULL,""," x ","NULL","a,b","{}"}`, `["a\"b","c\\d",null,""," x ","NULL","a,b","{}"]`},
		{"_text", `{plain,"with space",null}`, `["plain","with space",null]`},
		{"_text", `{ a , b }`, `["a","b"]`},
		{"_text", `{a\,b,c\\}`, `["a,b","c\\"]`},
		{"_text", `{🎉,"é\"}"}`, `["🎉","é\"}"]`},
		{"_text", `{{a,NULL},{"",b}}`, `[["a",null],["","b"]]`},
		{"_timestamptz", `{"2024-01-01 08:00:00+00","2024-01-01 10:00:00+02",NULL}`, `["2024-01-01T08:00:00Z","2024-01-01T08:00:00Z",null]`},
		{"_timestamp", `{"2024-01-01 08:00:00.25",infinity}`, `["2024-01-01T08:00:00.25","infinity"]`},
		{"_date", `{2024-01-01,"0044-03-15 BC"}`, `["2024-01-01","-0043-03-15"]`},
		{"_bytea", `{"\\x0001",NULL}`, `["\\x0001",null]`},
		{"_uuid", `{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}`, `["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]`},
		{"_jsonb", `{"{\"a\": 1}","[1, 2]"}`, `["{\"a\": 1}","[1, 2]"]`},
		{"_box", `{(3,4),(1,2);(1,1),(0,0)}`, `["(3,4),(1,2)","(1,1),(0,0)"]`},
		{"_interval", `{P1D,PT1H}`, `["P1D","PT1H"]`},
	}
	for _, c := range cases {
		got, err := typeByName(t, c.typ).decode([]byte(c.in), nil)
		if err != nil {
			t.Errorf("decode %s %q: %v", c.typ, c.in, err)
			continue
		}
		if got.Kind() != cdc.KindArray || got.AsString() != c.want {
			t.Errorf("decode %s %q = %s %s, want array %s", c.typ, c.in, got.Kind(), got.AsString(), c.want)
		}
		if !json.Valid([]byte(got.AsString())) {
			t.Errorf("decode %s %q produced invalid JSON %s", c.typ, c.in, got.AsString())
		}
	}
}

func TestDecode_EveryBuiltinHasAKind(t *testing.T) {
	for oid, typ := range builtinTypes() {
		if typ.kind == cdc.KindNull {
			t.Errorf("type %d %s has no kind", oid, typ.name)
		}
		if typ.kind == cdc.KindArray && typ.elem == nil {
			t.Errorf("array type %d %s has no element type", oid, typ.name)
		}
	}
}

func FuzzDecodeArray(f *testing.F) {
	seeds := []string{
		"{}", "{1,2,3}", "[0:1]={1,2}", "{{1,2},{3,4}}", `{"a\"b","c\\d",NULL,""}`,
		`{1.5,NaN,Infinity}`, `{t,f}`, `{"2024-01-01 08:00:00+00"}`, `{(3,4),(1,2);(1,1),(0,0)}`,
		"{", "}", `{"`, `{\`, "{{{{{{{1}}}}}}}", "[", "[1:2]=", "{a b}", "{ , }",
	}
	for _, s := range seeds {
		for _, elem := range []string{"int4", "text", "float8", "bool", "timestamptz", "box"} {
			f.Add(s, elem)
		}
	}
	types := builtinTypes()
	f.Fuzz(func(t *testing.T, in, elemName string) {
		var elem *pgType
		for _, typ := range types {
			if typ.name == elemName && typ.kind != cdc.KindArray {
				elem = typ
			}
		}
		if elem == nil {
			elem = textType
		}
		out, err := arrayToJSON(nil, []byte(in), elem, elem.delim)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("%q as %s[] gave invalid JSON %s", in, elem.name, out)
		}
		var v []any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("%q as %s[] gave %s, not a JSON array: %v", in, elem.name, out, err)
		}
	})
}

func FuzzDecodeTuple(f *testing.F) {
	def := &tableDef{
		table: cdc.Table{Name: "public.t", Columns: []cdc.Column{{Name: "a"}, {Name: "b"}}},
		cols:  []colDef{{typ: typeByName(f, "int8")}, {typ: typeByName(f, "text")}},
	}
	f.Add([]byte{0, 2, 't', 0, 0, 0, 1, '7', 'n'})
	f.Add([]byte{0, 2, 't', 0, 0, 0, 1, '7', 'u'})
	f.Add([]byte{0, 2, 't', 0, 0, 0, 9, '7'})
	f.Add([]byte{0, 2, 't', 0xff, 0xff, 0xff, 0xff, '7'})
	f.Add([]byte{'U', 0, 0, 0, 1, 'K', 0, 1, 'n', 'N', 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d rowDecoder
		_, _ = d.tuple(def, b)
		_, _ = tupleLen(b)
		if len(b) > 0 {
			for _, kind := range []byte{'I', 'U', 'D'} {
				msg := append([]byte{kind}, b...)
				_, _ = parseRowMessage(msg)
			}
		}
	})
}
