package syncproto

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/synchub/synchub/cdc"
)

func TestParseCursor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Cursor
		ok   bool
	}{
		{"", Cursor{}, true},
		{"12.0", Cursor{Version: 12}, true},
		{"7.3", Cursor{Version: 7, Seq: 3}, true},
		{"9223372036854775807.2147483647", Cursor{Version: math.MaxInt64, Seq: math.MaxInt32}, true},
		{"0.1", Cursor{}, false},
		{"-1.1", Cursor{}, false},
		{"1.-1", Cursor{}, false},
		{"1", Cursor{}, false},
		{"1.", Cursor{}, false},
		{".1", Cursor{}, false},
		{"1.2.3", Cursor{}, false},
		{"a.b", Cursor{}, false},
		{"9223372036854775808.0", Cursor{}, false},
	} {
		got, err := ParseCursor(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseCursor(%q) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err == nil && got.String() != tc.in && tc.in != "" {
			t.Errorf("Cursor %+v prints as %q, parsed from %q", got, got.String(), tc.in)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "1.0", "12.34", "0.0", "-1.2", "1.2.3", "x", "9223372036854775807.9", "1.99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			if c != (Cursor{}) {
				t.Fatalf("ParseCursor(%q) failed but returned %+v", s, c)
			}
			return
		}
		if s != "" && (c.Version <= 0 || c.Seq < 0) {
			t.Fatalf("ParseCursor(%q) = %+v: out of range", s, c)
		}
		again, err := ParseCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("cursor %+v does not round-trip through %q: %+v %v", c, c.String(), again, err)
		}
	})
}

var orders = cdc.Table{
	Name: "public.orders",
	Columns: []cdc.Column{
		{Name: "id", Kind: cdc.KindInt},
		{Name: "region", Kind: cdc.KindText},
		{Name: "total", Kind: cdc.KindDecimal},
		{Name: "blob", Kind: cdc.KindBytes},
	},
	PrimaryKey: []string{"region", "id"},
}

func TestAppendChange(t *testing.T) {
	row := cdc.Row{
		{Name: "id", Value: cdc.Int(math.MaxInt64)},
		{Name: "region", Value: cdc.Text(cdc.KindText, "eu \"west\"")},
		{Name: "total", Value: cdc.Text(cdc.KindDecimal, "9.90")},
		{Name: "blob", Unchanged: true},
	}
	for _, tc := range []struct {
		c    cdc.Change
		want string
	}{
		{cdc.Change{Table: orders.Name, Op: cdc.OpInsert, After: row},
			`{"t":"public.orders","op":"i","row":{"id":9223372036854775807,"region":"eu \"west\"","total":"9.90"}}`},
		{cdc.Change{Table: orders.Name, Op: cdc.OpUpdate, After: row, Before: row},
			`{"t":"public.orders","op":"u","row":{"id":9223372036854775807,"region":"eu \"west\"","total":"9.90"}}`},
		{cdc.Change{Table: orders.Name, Op: cdc.OpUpdate, After: row, Before: cdc.Row{{Name: "id", Value: cdc.Int(1)}, {Name: "region", Value: cdc.Text(cdc.KindText, "us")}}},
			`{"t":"public.orders","op":"u","row":{"id":9223372036854775807,"region":"eu \"west\"","total":"9.90"},"key":{"region":"us","id":1}}`},
		{cdc.Change{Table: orders.Name, Op: cdc.OpDelete, Before: row},
			`{"t":"public.orders","op":"d","key":{"region":"eu \"west\"","id":9223372036854775807}}`},
		{cdc.Change{Table: orders.Name, Op: cdc.OpTruncate},
			`{"t":"public.orders","op":"t"}`},
	} {
		got := string(AppendChange(nil, &tc.c, &orders))
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.c.Op, got, tc.want)
		}
		var wc WireChange
		if err := json.Unmarshal([]byte(got), &wc); err != nil || wc.Op != tc.c.Op.Code() || wc.Table != orders.Name {
			t.Errorf("%s does not decode as a WireChange: %+v %v", got, wc, err)
		}
	}
	if k := KeyText(&orders, row); k != `["eu \"west\"",9223372036854775807]` {
		t.Errorf("KeyText = %s", k)
	}
}

func TestHLCRoundTripAndOrder(t *testing.T) {
	a := HLC{Wall: 1700000000123456, Logical: 3, Node: "till-1"}
	got, err := ParseHLC(a.String())
	if err != nil || got != a {
		t.Fatalf("ParseHLC(%q) = %+v, %v; want %+v", a.String(), got, err, a)
	}
	ordered := []HLC{
		{Wall: 9, Logical: 0, Node: "b"},
		{Wall: 9, Logical: 1, Node: "a"},
		{Wall: 10, Logical: 0, Node: "a"},
		{Wall: 10, Logical: 0, Node: "b"},
		{Wall: 1700000000123456, Logical: 0, Node: "a"},
	}
	for i := 1; i < len(ordered); i++ {
		x, y := ordered[i-1], ordered[i]
		if x.Compare(y) >= 0 || y.Compare(x) <= 0 {
			t.Errorf("Compare(%v, %v): want x < y", x, y)
		}
		if x.String() >= y.String() {
			t.Errorf("text forms %q and %q do not sort like Compare", x, y)
		}
	}
	for _, bad := range []string{"", "1-2-x", "0000000000000000001-00001-", "000000000000000000x-00001-a", "0000000000000000001-99999-a"} {
		if _, err := ParseHLC(bad); err == nil {
			t.Errorf("ParseHLC(%q): want an error", bad)
		}
	}
}
