package edge

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

func TestScanString(t *testing.T) {
	cases := []struct {
		in      string
		end     int
		escaped bool
	}{
		{`"abc",`, 5, false},
		{`"",`, 2, false},
		{`"a\"b",`, 6, true},
		{`"a\\",`, 5, true},
		{`"a\\\"",`, 7, true},
		{`"\\\\"x`, 6, true},
		{`"\u0022"`, 8, true},
	}
	for _, tc := range cases {
		end, esc, err := scanString([]byte(tc.in), 0)
		if err != nil || end != tc.end || esc != tc.escaped {
			t.Errorf("scanString(%s) = %d, %v, %v; want %d, %v", tc.in, end, esc, err, tc.end, tc.escaped)
		}
	}
	for _, bad := range []string{`"abc`, `"a\"`, `"\\\"`} {
		if _, _, err := scanString([]byte(bad), 0); err == nil {
			t.Errorf("scanString(%s) accepted an unterminated string", bad)
		}
	}
}

func TestDecodePage(t *testing.T) {
	tbl := itemsTable()
	var body []byte
	body = append(body, `{"since":11,"next":12,"cursor":"12.3","commit":false,"head":40,"schema_version":3,"extra":{"a":[1,"]"]},"entries":[`...)
	body = append(body, `{"v":12,"seq":2,"last":false,"origin":"edge-\"x\"","ts":17,"schema":3,"changes":[`...)
	c1 := ins(1, `quote " brace } bracket ]`)
	body = syncproto.AppendChange(body, &c1, &tbl)
	body = append(body, ',')
	c2 := del(2)
	body = syncproto.AppendChange(body, &c2, &tbl)
	body = append(body, `,{"t":"public.it\u0065ms","op":"t"}]}]}`...)

	var p page
	if err := decodePage(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Since != 11 || p.Next != 12 || p.Cursor != "12.3" || p.Commit || p.Head != 40 || p.SchemaVersion != 3 {
		t.Fatalf("envelope = %+v", p)
	}
	if len(p.Entries) != 1 || p.Entries[0].Version != 12 || p.Entries[0].Seq != 2 || p.Entries[0].Last || len(p.Entries[0].Changes) != 3 {
		t.Fatalf("entries = %+v", p.Entries)
	}
	ch := p.Entries[0].Changes
	if string(ch[0].Table) != "public.items" || ch[0].Op != cdc.OpInsert || !json.Valid(ch[0].Row) || ch[0].Key != nil {
		t.Fatalf("change 0 = %+v", ch[0])
	}
	if ch[1].Op != cdc.OpDelete || string(ch[1].Key) != `{"id":2}` || ch[1].Row != nil {
		t.Fatalf("change 1 = t %s op %s row %s key %s", ch[1].Table, ch[1].Op, ch[1].Row, ch[1].Key)
	}
	if string(ch[2].Table) != "public.items" || ch[2].Op != cdc.OpTruncate {
		t.Fatalf("escaped table name decoded as %q", ch[2].Table)
	}

	for _, bad := range []string{
		``, `[]`, `{"since":1}`, `{"since":"1","next":1,"commit":true,"entries":[]}`,
		`{"since":1,"next":1,"commit":1,"entries":[]}`,
		`{"since":1,"next":1,"commit":true,"entries":[{"changes":[{"t":"x","op":"z"}]}]}`,
		`{"since":1,"next":1,"commit":true,"entries":[{"changes":[{"op":"i"}]}]}`,
		`{"since":1,"next":1,"commit":true,"entries":[}`,
	} {
		if err := decodePage([]byte(bad), &p); err == nil {
			t.Errorf("decodePage(%s) accepted it", bad)
		}
	}
}

func scannerTable(t *testing.T) *table {
	t.Helper()
	tbl, err := newTable(&cdc.Table{Name: "public.k", Columns: []cdc.Column{
		{Name: "id", Kind: cdc.KindInt}, {Name: "f", Kind: cdc.KindFloat}, {Name: "b", Kind: cdc.KindBytes}, {Name: "s", Kind: cdc.KindText},
	}, PrimaryKey: []string{"id"}}, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestRowScanner(t *testing.T) {
	tbl := scannerTable(t)
	var s rowScanner
	if err := s.scan(tbl, []byte(` { "s" : "x\"y" , "gone":{"a":[1,2]}, "id":9223372036854775807,"b":"AAE=","f":"NaN" } `)); err != nil {
		t.Fatal(err)
	}
	if len(s.cols) != 4 || s.cols[0] != 3 || s.args[0] != `x"y` || s.args[1] != int64(math.MaxInt64) ||
		!bytes.Equal(s.args[2].([]byte), []byte{0, 1}) || !sameArg(s.args[3], cdc.Float(math.NaN()).SQLiteArg()) {
		t.Fatalf("scanned cols %v args %#v", s.cols, s.args)
	}
	for _, bad := range []string{`{"id":1,"id":2}`, `{"id":"x"}`, `{"id":1`, `{"id":1}x`, `[1]`, `{"id" 1}`, `{"f":1e999}`} {
		if err := s.scan(tbl, []byte(bad)); err == nil {
			t.Errorf("scan(%s) accepted it", bad)
		}
	}
}

// FuzzDecodePage checks that the page decoder never panics and agrees with
// encoding/json on every page encoding/json accepts.
func FuzzDecodePage(f *testing.F) {
	tbl := itemsTable()
	seed := []byte(`{"since":1,"next":2,"cursor":"","commit":true,"head":2,"schema_version":1,"entries":[{"v":2,"seq":0,"last":true,"origin":"","ts":1,"schema":1,"changes":[`)
	c := ins(5, "five \u2028 \"q\"")
	seed = syncproto.AppendChange(seed, &c, &tbl)
	seed = append(seed, "]}]}"...)
	f.Add(seed)
	f.Add([]byte(`{"since":0,"next":0,"commit":true,"entries":[]}`))
	f.Add([]byte(`{"since":0,"next":0,"commit":false,"cursor":"3.1","entries":[{"v":3,"changes":[{"t":"a\\b","op":"d","key":{"id":[1,{"x":"]"}]}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var p page
		err := decodePage(body, &p)
		var want syncproto.Page
		if json.Unmarshal(body, &want) != nil || !hasRequired(body) || err != nil {
			return
		}
		if p.Since != want.Since || p.Next != want.Next || p.Commit != want.Commit || p.Cursor != want.Cursor || len(p.Entries) != len(want.Entries) {
			t.Fatalf("envelope differs from encoding/json: %+v vs %+v", p, want)
		}
		for i := range want.Entries {
			if len(p.Entries[i].Changes) != len(want.Entries[i].Changes) {
				t.Fatalf("entry %d: %d changes, encoding/json %d", i, len(p.Entries[i].Changes), len(want.Entries[i].Changes))
			}
			for j, wc := range want.Entries[i].Changes {
				gc := p.Entries[i].Changes[j]
				if string(gc.Table) != wc.Table || gc.Op.Code() != wc.Op || !bytes.Equal(gc.Row, wc.Row) || !bytes.Equal(gc.Key, wc.Key) {
					t.Fatalf("entry %d change %d differs: %q %s %s %s vs %+v", i, j, gc.Table, gc.Op, gc.Row, gc.Key, wc)
				}
			}
		}
	})
}

func hasRequired(body []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	for _, k := range []string{"since", "next", "commit", "entries"} {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}

// FuzzScanRow checks that the row scanner never panics and reads back every row
// syncproto encodes.
func FuzzScanRow(f *testing.F) {
	tbl := kindsTable()
	lt, err := newTable(&tbl, "kinds", nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(int64(1), "text \x00 ✓", []byte{0, 255}, 1.5, `{"a":1}`)
	f.Add(int64(math.MinInt64), "", []byte{}, math.Inf(1), ``)
	f.Fuzz(func(t *testing.T, id int64, txt string, raw []byte, fl float64, js string) {
		row := cdc.Row{
			{Name: "id", Value: cdc.Int(id)}, {Name: "txt", Value: cdc.Text(cdc.KindText, txt)},
			{Name: "raw", Value: cdc.Bytes(raw)}, {Name: "f", Value: cdc.Float(fl)}, {Name: "j", Value: cdc.Text(cdc.KindJSON, js)},
		}
		enc := syncproto.AppendRow(nil, row)
		var s rowScanner
		if err := s.scan(lt, enc); err != nil {
			t.Fatalf("scan(%s): %v", enc, err)
		}
		if len(s.args) != 5 || s.args[0] != id || !bytes.Equal(s.args[2].([]byte), raw) {
			t.Fatalf("scan(%s) = %#v", enc, s.args)
		}
		if want, _ := cdc.ParseJSONValue(cdc.KindText, cdc.AppendJSONString(nil, txt)); s.args[1] != want.AsString() {
			t.Fatalf("text %q read back as %q", txt, s.args[1])
		}
		_ = s.scan(lt, []byte(txt))
		_ = s.scan(lt, raw)
	})
}

func sameArg(a, b any) bool {
	if x, ok := a.(float64); ok {
		y, ok := b.(float64)
		return ok && (x == y || math.IsNaN(x) && math.IsNaN(y))
	}
	return a == b
}

// TestRowScanner_OldKind: a value written before its column's type changed (a numeric
// column turned double precision) is stored by its JSON type instead of stopping the
// edge; a key column stays strict.
func TestRowScanner_OldKind(t *testing.T) {
	tbl := scannerTable(t)
	var s rowScanner
	if err := s.scan(tbl, []byte(`{"id":1,"f":"2.50"}`)); err != nil {
		t.Fatalf("old-kind value refused: %v", err)
	}
	if len(s.args) != 2 || s.args[1] != "2.50" {
		t.Fatalf("args %#v, want the text 2.50 for SQLite's affinity to convert", s.args)
	}
	if err := s.scan(tbl, []byte(`{"id":"1"}`)); err == nil {
		t.Fatal("a key column accepted a value of another kind")
	}
}
