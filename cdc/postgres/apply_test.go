package postgres

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/synchub/synchub/cdc"
)

func TestDateInput(t *testing.T) {
	cases := []struct{ in, want string }{
		{"2024-02-29", "2024-02-29"},
		{"infinity", "infinity"},
		{"-infinity", "-infinity"},
		{"-0043-03-15", "0044-03-15 BC"},
		{"0000-01-01", "0001-01-01 BC"},
		{"0001-01-01", "0001-01-01"},
		{"12345-06-07", "12345-06-07"},
		{"-0043-03-15T10:11:12.5", "0044-03-15 10:11:12.5 BC"},
		{"0000-12-31T23:00:00Z", "0001-12-31 23:00:00+00 BC"},
		{"2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"},
		{"-12345-01-01", "12346-01-01 BC"},
		{"garbage", "garbage"},
	}
	for _, c := range cases {
		if got := dateInput(c.in); got != c.want {
			t.Errorf("dateInput(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestAppendArrayLiteral(t *testing.T) {
	types := builtinTypes()
	cases := []struct {
		json string
		elem uint32
		want string
	}{
		{`[]`, 25, `{}`},
		{`[[1,2],[3,null]]`, 23, `{{1,2},{3,NULL}}`},
		{`["a\"b","c\\d",null,"","NULL","x,y","🎉"]`, 25, `{"a\"b","c\\d",NULL,"","NULL","x,y","🎉"}`},
		{`[1.50,"NaN",-7]`, 1700, `{1.50,"NaN",-7}`},
		{`[true,false]`, 16, `{t,f}`},
		{`["2024-02-29","-0043-03-15"]`, 1082, `{"2024-02-29","0044-03-15 BC"}`},
		{`["(3,4),(1,2)","(1,1),(0,0)"]`, 603, `{"(3,4),(1,2)";"(1,1),(0,0)"}`},
		{` [ 1 , 2 ] `, 20, `{1,2}`},
	}
	for _, c := range cases {
		elem := types[c.elem]
		got, err := appendArrayLiteral(nil, c.json, elem, elem.delim)
		if err != nil || string(got) != c.want {
			t.Errorf("appendArrayLiteral(%s) = %s, %v; want %s", c.json, got, err, c.want)
		}
	}
	for _, bad := range []string{``, `{1,2}`, `[1,2`, `[1,,2]`, `[1] x`, `["a]`, `[nul]`, `[[[[[[[1]]]]]]]`} {
		if got, err := appendArrayLiteral(nil, bad, types[23], ','); err == nil {
			t.Errorf("appendArrayLiteral(%q) = %q, want an error", bad, got)
		}
	}
}

func TestOriginMessage(t *testing.T) {
	cases := []struct {
		tag  cdc.Tag
		want string
	}{
		{cdc.Tag{Origin: "edge-a", Batch: "b1"}, "edge-a b1"},
		{cdc.Tag{Origin: "edge-a"}, "edge-a"},
		{cdc.Tag{Batch: "r1"}, " r1"},
		{cdc.Tag{}, ""},
	}
	for _, c := range cases {
		got := OriginMessage(c.tag)
		if got != c.want {
			t.Errorf("OriginMessage(%+v) = %q, want %q", c.tag, got, c.want)
		}
		if o, b := splitOriginMessage(got); o != c.tag.Origin || b != c.tag.Batch {
			t.Errorf("splitOriginMessage(%q) = %q, %q", got, o, b)
		}
	}
}

func testApplyTable() *applyTable {
	types := builtinTypes()
	def := &tableDef{
		table: cdc.Table{Name: "public.orders", PrimaryKey: []string{"id"}, Columns: []cdc.Column{
			{Name: "id", Kind: cdc.KindInt}, {Name: "note", Kind: cdc.KindText}, {Name: "data", Kind: cdc.KindBytes},
		}},
		cols: []colDef{{typ: types[23]}, {typ: types[25]}, {typ: types[17]}},
	}
	return &applyTable{def: def, quoted: ident("public.orders"), cols: map[string]int{"id": 0, "note": 1, "data": 2}, key: []int{0}}
}

func TestBuildStatements(t *testing.T) {
	tb := testApplyTable()
	row := cdc.Row{{Name: "id", Value: cdc.Int(7)}, {Name: "note", Value: cdc.Text(cdc.KindText, "hi")}, {Name: "data", Value: cdc.Bytes([]byte{1})}}
	cases := []struct {
		ch   cdc.Change
		sql  string
		vals []string
	}{
		{cdc.Change{Table: "public.orders", Op: cdc.OpInsert, After: row},
			`INSERT INTO "public"."orders" ("id", "note", "data") VALUES ($1, $2, $3)`, []string{"7", "hi", "\x01"}},
		{cdc.Change{Table: "public.orders", Op: cdc.OpUpdate, Before: cdc.Row{{Name: "id", Value: cdc.Int(3)}}, After: row[:2]},
			`UPDATE "public"."orders" SET "id" = $1, "note" = $2 WHERE "id" = $3`, []string{"7", "hi", "3"}},
		{cdc.Change{Table: "public.orders", Op: cdc.OpUpdate, After: append(cdc.Row{{Name: "note", Unchanged: true}}, row[0])},
			`UPDATE "public"."orders" SET "id" = $1 WHERE "id" = $2`, []string{"7", "7"}},
		{cdc.Change{Table: "public.orders", Op: cdc.OpDelete, Before: row},
			`DELETE FROM "public"."orders" WHERE "id" = $1`, []string{"7"}},
	}
	for _, c := range cases {
		st, err := build(tb, &c.ch)
		if err != nil {
			t.Errorf("%s: %v", c.ch.Op, err)
			continue
		}
		if st.sql != c.sql {
			t.Errorf("%s: sql %s, want %s", c.ch.Op, st.sql, c.sql)
		}
		var vals []string
		for _, v := range st.values {
			vals = append(vals, string(v))
		}
		if strings.Join(vals, "|") != strings.Join(c.vals, "|") {
			t.Errorf("%s: values %q, want %q", c.ch.Op, vals, c.vals)
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	tb := testApplyTable()
	evil := `x"; DROP TABLE orders; --`
	cases := []struct {
		name string
		ch   cdc.Change
		want string
	}{
		{"unknown column", cdc.Change{Table: "public.orders", Op: cdc.OpInsert, After: cdc.Row{{Name: evil, Value: cdc.Int(1)}}}, "no column"},
		{"update without key", cdc.Change{Table: "public.orders", Op: cdc.OpUpdate, After: cdc.Row{{Name: "note", Value: cdc.Int(1)}}}, "key"},
		{"null key", cdc.Change{Table: "public.orders", Op: cdc.OpDelete, Before: cdc.Row{{Name: "id"}}}, "NULL"},
		{"truncate", cdc.Change{Table: "public.orders", Op: cdc.OpTruncate}, "cannot write"},
		{"empty insert", cdc.Change{Table: "public.orders", Op: cdc.OpInsert}, "no row"},
		{"bytes into int", cdc.Change{Table: "public.orders", Op: cdc.OpInsert, After: cdc.Row{{Name: "id", Value: cdc.Bytes([]byte{1})}}}, "bytes"},
	}
	for _, c := range cases {
		_, err := build(tb, &c.ch)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	_, err := build(tb, &cases[0].ch)
	var uc *cdc.UnknownColumnError
	if !errors.As(err, &uc) || uc.Column != evil {
		t.Errorf("unknown column error %v is not a cdc.UnknownColumnError naming the column", err)
	}
}

func TestEncodeParam(t *testing.T) {
	types := builtinTypes()
	cases := []struct {
		typ  uint32
		v    cdc.Value
		want string
	}{
		{16, cdc.Bool(true), "t"},
		{20, cdc.Int(math.MinInt64), "-9223372036854775808"},
		{701, cdc.Float(math.NaN()), "NaN"},
		{701, cdc.Float(math.Inf(-1)), "-Infinity"},
		{701, cdc.Float(4.9406564584124654e-324), "5e-324"},
		{700, cdc.Float(1.1), "1.1"},
		{1700, cdc.Text(cdc.KindDecimal, "12.3400"), "12.3400"},
		{1082, cdc.Text(cdc.KindDate, "-0043-03-15"), "0044-03-15 BC"},
		{1007, cdc.Text(cdc.KindArray, "[1,null]"), "{1,NULL}"},
	}
	for _, c := range cases {
		b, _, err := encodeParam(types[c.typ], c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("encodeParam(%s, %v) = %q, %v; want %q", types[c.typ].name, c.v, b, err, c.want)
		}
	}
	if b, _, err := encodeParam(types[25], cdc.Null()); err != nil || b != nil {
		t.Errorf("NULL encodes as %q, %v", b, err)
	}
}

func TestApplierConfigValidate(t *testing.T) {
	good := ApplierConfig{DSN: "postgres://u@localhost/db", Tables: []string{"public.orders"}}
	if err := good.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	bad := ApplierConfig{Tables: []string{"orders", "public.x", "public.x"}, MaxConns: -1}
	err := bad.Validate()
	for _, want := range []string{"DSN is empty", "not schema-qualified", "listed twice", "MaxConns"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
