package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/synchub/synchub/cdc"
)

// kindsTable has a column of most kinds, a two-column key and a name outside ASCII,
// for comparing the object decoder with the map-based reference.
var kindsTable = cdc.Table{
	Name: "public.kinds",
	Columns: []cdc.Column{
		{Name: "id", Kind: cdc.KindInt},
		{Name: "code", Kind: cdc.KindText},
		{Name: "ok", Kind: cdc.KindBool, Nullable: true},
		{Name: "ratio", Kind: cdc.KindFloat, Nullable: true},
		{Name: "price", Kind: cdc.KindDecimal, Nullable: true},
		{Name: "blob", Kind: cdc.KindBytes, Nullable: true},
		{Name: "ref", Kind: cdc.KindUUID, Nullable: true},
		{Name: "doc", Kind: cdc.KindJSON, Nullable: true},
		{Name: "día", Kind: cdc.KindDate, Nullable: true},
		{Name: "", Kind: cdc.KindText, Nullable: true},
	},
	PrimaryKey: []string{"id", "code"},
}

// decodeObjectRef is the map-based decoder the one-pass decoder replaced; it defines
// the behaviour decodeObject keeps.
func decodeObjectRef(tbl *cdc.Table, raw json.RawMessage, what string, keyOnly bool) (cdc.Row, error) {
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("%s is missing", what)
	}
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%s is not a JSON object of column values", what)
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		col, ok := tbl.Column(name)
		if !ok {
			return nil, fmt.Errorf("%s: column %q is not a column of %s", what, name, tbl.Name)
		}
		if keyOnly && !isKeyColumn(tbl, col.Name) {
			return nil, fmt.Errorf("%s: column %s is not a key column; the key of %s is (%s)", what, name, tbl.Name, strings.Join(tbl.PrimaryKey, ", "))
		}
	}
	return rowFromMapRef(tbl, m, what, false)
}

// decodeBaseRef is the map-based reference for decodeBase.
func decodeBaseRef(tbl *cdc.Table, raw json.RawMessage) (cdc.Row, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("base is not a JSON object of column values")
	}
	return rowFromMapRef(tbl, m, "base", true)
}

func rowFromMapRef(tbl *cdc.Table, m map[string]json.RawMessage, what string, lenient bool) (cdc.Row, error) {
	row := make(cdc.Row, 0, len(m))
	for i := range tbl.Columns {
		col := &tbl.Columns[i]
		raw, ok := m[col.Name]
		if !ok {
			continue
		}
		v, ok, err := columnValue(col, raw, what, lenient)
		if err != nil {
			return nil, err
		}
		if ok {
			row = append(row, cdc.Field{Name: col.Name, Value: v})
		}
	}
	return row, nil
}

// sameDecodedRow reports whether two decoded rows are the same, nil and empty apart.
func sameDecodedRow(a, b cdc.Row) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !a[i].Value.Equal(b[i].Value) {
			return false
		}
	}
	return true
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// checkDecodersAgree decodes raw with the one-pass decoders and with the map-based
// references, as a key, a row, a client row and a base image, and fails on any
// difference in the row or the error.
func checkDecodersAgree(t testing.TB, tbl *cdc.Table, raw []byte) {
	t.Helper()
	for _, mode := range []struct {
		what    string
		keyOnly bool
	}{{"key", true}, {"row", false}, {"client row", false}} {
		got, err := decodeObject(tbl, raw, mode.what, mode.keyOnly)
		want, wantErr := decodeObjectRef(tbl, raw, mode.what, mode.keyOnly)
		if errText(err) != errText(wantErr) || !sameDecodedRow(got, want) {
			t.Fatalf("decodeObject(%s, %q, %s, keyOnly %v)\ngot  %#v, %v\nwant %#v, %v", tbl.Name, raw, mode.what, mode.keyOnly, got, err, want, wantErr)
		}
	}
	got, err := decodeBase(tbl, raw)
	want, wantErr := decodeBaseRef(tbl, raw)
	if errText(err) != errText(wantErr) || !sameDecodedRow(got, want) {
		t.Fatalf("decodeBase(%s, %q)\ngot  %#v, %v\nwant %#v, %v", tbl.Name, raw, got, err, want, wantErr)
	}
}

// decodeSeeds are objects, near-objects and broken objects for the comparison test
// and the fuzz corpus.
var decodeSeeds = []string{
	``, ` `, "\v", `null`, " null\n", `nul`, `nullx`, `{}`, ` { } `, `{`, `}`, `[]`, `"x"`, `7`, `true`,
	`{}{}`, `{} x`, `{},`, `{"id":1}`, `{"id":1} `, `{"id":1}x`, `{"id":1},`, "\t{\r\n\"id\"\t:\n1\r}\n",
	`{"id":1,"note":"a","total":"1.00","qty":2}`,
	`{"qty":2,"total":"1.00","note":"a","id":1}`,
	`{"id":1,"note":null,"total":null,"qty":null}`,
	`{"id":null}`, `{"id":"1"}`, `{"id":1.0}`, `{"id":1e3}`, `{"id":-0}`, `{"id":01}`, `{"id":-}`, `{"id":1.}`,
	`{"id":.5}`, `{"id":1e}`, `{"id":1e+}`, `{"id":+1}`, `{"id":0x10}`, `{"id":9223372036854775808}`,
	`{"id":1,}`, `{,"id":1}`, `{"id" 1}`, `{"id":}`, `{"id"}`, `{id:1}`, `{'id':1}`, `{"id":1 "qty":2}`,
	`{"id":1,"id":2}`, `{"id":1,"qty":"x","qty":3}`, `{"id":1,"qty":3,"qty":"x"}`,
	`{"id":1,"\u0069d":2}`, `{"\u0069d":1}`, `{"i\u0064":1,"n\u006fte":"\u00e9"}`,
	`{"zeta":1,"alpha":2,"id":1}`, `{"id":1,"note":"a","Zed":1,"beta":2}`, `{"ID":1}`, `{"id ":1}`,
	`{"id":1,"note":"x"}`, `{"note":"x","id":1}`, `{"note":"x","colour":"red","id":1}`, `{"b":1,"a":1,"note":1}`,
	`{"id":1,"note":"tab\there"}`, "{\"id\":1,\"note\":\"raw\ttab\"}", "{\"id\":1,\"note\":\"nl\nx\"}",
	`{"id":1,"note":"\"\\\/\b\f\n\r\t"}`, `{"id":1,"note":"\x"}`, `{"id":1,"note":"\u12"}`, `{"id":1,"note":"\u12g4"}`,
	`{"id":1,"note":"\ud83d\ude00"}`, `{"id":1,"note":"\ud83d"}`, `{"id":1,"note":"\ude00x"}`, `{"id":1,"note":"\ud83dx"}`,
	`{"id":1,"note":"unterminated}`, `{"id":1,"note":"ends in escape\`, `{"id":1,"note":"\`, `{"id":1,"note`,
	"{\"id\":1,\"note\":\"bad \xff utf8\"}", "{\"id\":1,\"\xff\":1}", "{\"\xffa\":1,\"\xfe\":2}", "{\"id\xc3\":1}",
	"{\"id\":1,\"\xed\xa0\x80\":1}", `{"\ud800":1}`, `{"\ud83d\ude00":1}`, `{"a\u0000b":1}`, "\xef\xbb\xbf{\"id\":1}",
	`{"id":1,"note":["a"]}`, `{"id":1,"note":{"a":[1,{"b":null}]}}`, `{"id":1,"x":[1,2,]}`, `{"id":1,"x":[,]}`,
	`{"id":1,"x":{"a":1,}}`, `{"id":1,"x":{"a"}}`, `{"id":1,"x":[}`, `{"id":1,"x":{]}`, `{"id":1,"x":[[[]]]}`,
	`{"id":1,"x":tru}`, `{"id":1,"x":true}`, `{"id":1,"x":fals}`, `{"id":1,"x":falsey}`, `{"id":1,"x":nan}`,
	`{"id":1,"total":"12.50"}`, `{"id":1,"total":"1e5"}`, `{"id":1,"total":"abc"}`, `{"id":1,"total":12.5}`,
	`{"id":1,"qty":"lots"}`, `{"id":1,"note":"` + strings.Repeat("long ", 40) + `","qty":"` + strings.Repeat("é", 50) + `"}`,
	`{"id":1,"code":"a"}`, `{"code":"a","id":1,"ok":true,"ratio":"NaN","price":"-1.5e3","blob":"AAE=","ref":"123e4567-e89b-12d3-a456-426614174000","doc":"{\"a\":1}","día":"2024-01-02","":"empty name"}`,
	`{"id":1,"code":"a","ok":1}`, `{"id":1,"code":"a","ratio":"Infinity"}`, `{"id":1,"code":"a","ratio":1e400}`,
	`{"id":1,"code":"a","blob":"!!"}`, `{"id":1,"code":"a","ref":"not-a-uuid"}`, `{"id":1,"code":"a","doc":"{bad"}`,
	`{"id":1,"code":"a","price":"1.2.3"}`, `{"d\u00eda":"x","id":1,"code":"a"}`, "{\"di\xcc\x81a\":1}",
	`{"":1}`, `{"":1,"id":1,"code":"a"}`, `{"id":1,"code":"a","ok":null,"ratio":null,"blob":null}`,
}

func deepValue(depth int) string {
	return `{"id":1,"x":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
}

// decodeInputs returns the seeds, every prefix of each, and each with single bytes
// replaced by JSON's structural characters, so that breakage at every position is
// compared.
func decodeInputs() [][]byte {
	var out [][]byte
	for _, s := range decodeSeeds {
		out = append(out, []byte(s))
		for i := 0; i < len(s); i++ {
			out = append(out, []byte(s[:i]))
			for _, c := range []byte{'"', '\\', ',', ':', '}', '{', ']', ' ', 0x01, 0xff} {
				b := []byte(s)
				b[i] = c
				out = append(out, b)
			}
		}
	}
	// encoding/json allows 10000 nested objects and arrays, the outer object included.
	return append(out, []byte(deepValue(maxNestingDepth-1)), []byte(deepValue(maxNestingDepth)), []byte(deepValue(maxNestingDepth+5)))
}

func TestDecodeObject_MatchesMapDecoder(t *testing.T) {
	inputs := decodeInputs()
	for _, tbl := range []*cdc.Table{&ordersTable, &kindsTable} {
		for _, raw := range inputs {
			checkDecodersAgree(t, tbl, raw)
		}
	}
	t.Logf("%d inputs agree", len(inputs))
}

func TestDecodeObject_Messages(t *testing.T) {
	cases := []struct {
		raw     string
		keyOnly bool
		want    string
	}{
		{`{"zeta":1,"id":1,"beta":2,"qty":3}`, false, `row: column "beta" is not a column of public.orders`},
		{`{"qty":3,"note":"x","id":1}`, true, `row: column note is not a key column; the key of public.orders is (id)`},
		{`{"qty":3,"id":1,"colour":1}`, true, `row: column "colour" is not a column of public.orders`},
		{`{"id":1,"colour":1,"x":`, false, `row is not a JSON object of column values`},
		{`{"id":1,"note":"\q"}`, false, `row is not a JSON object of column values`},
		{`null`, false, `row is not a JSON object of column values`},
		{" \n", false, `row is missing`},
		{`{"id":1,"qty":"lots","total":"x"}`, false, `row: column total (decimal): value "x": not a decimal number (want digits with an optional sign, point and exponent)`},
		{deepValue(maxNestingDepth), false, `row is not a JSON object of column values`},
	}
	for _, tc := range cases {
		_, err := decodeObject(&ordersTable, json.RawMessage(tc.raw), "row", tc.keyOnly)
		if errText(err) != tc.want {
			t.Errorf("decodeObject(%q, keyOnly %v): %v\nwant %s", tc.raw, tc.keyOnly, err, tc.want)
		}
	}
}

func TestDecodeObject_LastDuplicateWins(t *testing.T) {
	row, err := decodeObject(&ordersTable, json.RawMessage(`{"id":1,"qty":"lots","\u0071ty":3,"note":"a","note":null}`), "row", false)
	if err != nil {
		t.Fatal(err)
	}
	want := cdc.Row{{Name: "id", Value: cdc.Int(1)}, {Name: "note", Value: cdc.Value{}}, {Name: "qty", Value: cdc.Int(3)}}
	if !sameDecodedRow(row, want) {
		t.Fatalf("got %#v, want %#v", row, want)
	}
	base, err := decodeBase(&ordersTable, json.RawMessage(`{"qty":3,"gone":[1],"id":1,"qty":"x"}`))
	if err != nil || !sameDecodedRow(base, cdc.Row{{Name: "id", Value: cdc.Int(1)}}) {
		t.Fatalf("base: %#v, %v", base, err)
	}
}

// TestDecodeObject_WideTable checks members in any order on a table wider than the
// decoder's stack buffer.
func TestDecodeObject_WideTable(t *testing.T) {
	tbl := cdc.Table{Name: "public.wide", PrimaryKey: []string{"c0"}}
	for i := range 40 {
		tbl.Columns = append(tbl.Columns, cdc.Column{Name: fmt.Sprintf("c%d", i), Kind: cdc.KindInt, Nullable: true})
	}
	var fwd, rev []string
	for i := range 40 {
		fwd = append(fwd, fmt.Sprintf(`"c%d":%d`, i, i))
		rev = append([]string{fmt.Sprintf(`"c%d":%d`, i, i)}, rev...)
	}
	for _, raw := range []string{"{" + strings.Join(fwd, ",") + "}", "{" + strings.Join(rev, ",") + "}", `{"c39":1,"c0":2,"c20":3,"c40":4}`, `{"c7":1}`} {
		checkDecodersAgree(t, &tbl, []byte(raw))
	}
	row, err := decodeObject(&tbl, json.RawMessage("{"+strings.Join(rev, ",")+"}"), "row", false)
	if err != nil || len(row) != 40 || row[39].Name != "c39" {
		t.Fatalf("reversed wide row: %v, %v", row, err)
	}
}
