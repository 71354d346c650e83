package postgres

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/synchub/synchub/cdc"
)

type typeCase struct {
	col, decl, literal string
	kind               cdc.Kind
	want               cdc.Value
}

func typeCases() []typeCase {
	return []typeCase{
		{"i2", "smallint", "-32768", cdc.KindInt, cdc.Int(-32768)},
		{"i4", "integer", "2147483647", cdc.KindInt, cdc.Int(2147483647)},
		{"i8", "bigint", "9223372036854775807", cdc.KindInt, cdc.Int(math.MaxInt64)},
		{"i8min", "bigint", "-9223372036854775808", cdc.KindInt, cdc.Int(math.MinInt64)},
		{"num", "numeric", "'1234567890123456789012345678901234567890.0123456789'", cdc.KindDecimal, cdc.Text(cdc.KindDecimal, "1234567890123456789012345678901234567890.0123456789")},
		{"numnan", "numeric", "'NaN'", cdc.KindDecimal, cdc.Text(cdc.KindDecimal, "NaN")},
		{"num2", "numeric(12,4)", "12.34", cdc.KindDecimal, cdc.Text(cdc.KindDecimal, "12.3400")},
		{"f4", "real", "1.5", cdc.KindFloat, cdc.Float(1.5)},
		{"f8nan", "double precision", "'NaN'", cdc.KindFloat, cdc.Float(math.NaN())},
		{"f8inf", "double precision", "'-Infinity'", cdc.KindFloat, cdc.Float(math.Inf(-1))},
		{"f8pi", "double precision", "pi()", cdc.KindFloat, cdc.Float(math.Pi)},
		{"f8tiny", "double precision", "4.9406564584124654e-324", cdc.KindFloat, cdc.Float(4.9406564584124654e-324)},
		{"b", "boolean", "true", cdc.KindBool, cdc.Bool(true)},
		{"t", "text", `E'h\u00e9llo \U0001F389 "q" \\ back\ttab'`, cdc.KindText, cdc.Text(cdc.KindText, "héllo 🎉 \"q\" \\ back\ttab")},
		{"vc", "varchar(10)", "'abc'", cdc.KindText, cdc.Text(cdc.KindText, "abc")},
		{"bp", "char(5)", "'ab'", cdc.KindText, cdc.Text(cdc.KindText, "ab   ")},
		{"by", "bytea", `'\x00ff0001'`, cdc.KindBytes, cdc.Bytes([]byte{0, 0xff, 0, 1})},
		{"u", "uuid", "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", cdc.KindUUID, cdc.Text(cdc.KindUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")},
		{"j", "json", `'{"b":1,  "a":2}'`, cdc.KindJSON, cdc.Text(cdc.KindJSON, `{"b":1,  "a":2}`)},
		{"jb", "jsonb", `'{"b":1,  "a":[2, 3.50]}'`, cdc.KindJSON, cdc.Text(cdc.KindJSON, `{"a": [2, 3.50], "b": 1}`)},
		{"d", "date", "'2024-02-29'", cdc.KindDate, cdc.Text(cdc.KindDate, "2024-02-29")},
		{"dbc", "date", "'0044-03-15 BC'", cdc.KindDate, cdc.Text(cdc.KindDate, "-0043-03-15")},
		{"tm", "time", "'13:14:15.123456'", cdc.KindTime, cdc.Text(cdc.KindTime, "13:14:15.123456")},
		{"ttz", "timetz", "'13:14:15+05:30'", cdc.KindTime, cdc.Text(cdc.KindTime, "13:14:15+05:30")},
		{"ts", "timestamp", "'2024-01-02 03:04:05.5'", cdc.KindTimestamp, cdc.Text(cdc.KindTimestamp, "2024-01-02T03:04:05.5")},
		{"ts0", "timestamp", "'2024-01-02 03:04:05'", cdc.KindTimestamp, cdc.Text(cdc.KindTimestamp, "2024-01-02T03:04:05")},
		{"tsinf", "timestamp", "'infinity'", cdc.KindTimestamp, cdc.Text(cdc.KindTimestamp, "infinity")},
		{"tstz", "timestamptz", "'2024-01-02 03:04:05.123+05:30'", cdc.KindTimestampTZ, cdc.Text(cdc.KindTimestampTZ, "2024-01-01T21:34:05.123Z")},
		{"tstzneg", "timestamptz", "'2024-01-02 23:00:00-03'", cdc.KindTimestampTZ, cdc.Text(cdc.KindTimestampTZ, "2024-01-03T02:00:00Z")},
		{"tstzinf", "timestamptz", "'-infinity'", cdc.KindTimestampTZ, cdc.Text(cdc.KindTimestampTZ, "-infinity")},
		{"iv", "interval", "'1 year 2 months 3 days 04:05:06.5'", cdc.KindInterval, cdc.Text(cdc.KindInterval, "P1Y2M3DT4H5M6.5S")},
		{"ai", "int[]", "'{{1,2},{3,NULL}}'", cdc.KindArray, cdc.Text(cdc.KindArray, "[[1,2],[3,null]]")},
		{"at", "text[]", `ARRAY['a"b', E'c\\d', NULL, '', 'NULL', 'x,y', '🎉']`, cdc.KindArray, cdc.Text(cdc.KindArray, `["a\"b","c\\d",null,"","NULL","x,y","🎉"]`)},
		{"aempty", "text[]", "'{}'", cdc.KindArray, cdc.Text(cdc.KindArray, "[]")},
		{"atz", "timestamptz[]", "ARRAY['2024-01-01 10:00+02'::timestamptz]", cdc.KindArray, cdc.Text(cdc.KindArray, `["2024-01-01T08:00:00Z"]`)},
		{"an", "numeric[]", "'{1.50,NaN,-7}'", cdc.KindArray, cdc.Text(cdc.KindArray, `[1.50,"NaN",-7]`)},
		{"ab", "boolean[]", "'{t,f}'", cdc.KindArray, cdc.Text(cdc.KindArray, `[true,false]`)},
		{"e", "mood", "'happy'", cdc.KindEnum, cdc.Text(cdc.KindEnum, "happy")},
		{"ae", "mood[]", "'{sad,happy}'", cdc.KindArray, cdc.Text(cdc.KindArray, `["sad","happy"]`)},
		{"dom", "posint", "5", cdc.KindInt, cdc.Int(5)},
		{"adom", "posint[]", "'{1,2}'", cdc.KindArray, cdc.Text(cdc.KindArray, `[1,2]`)},
		{"ip", "inet", "'10.1.2.3/8'", cdc.KindText, cdc.Text(cdc.KindText, "10.1.2.3/8")},
		{"mon", "money", "12.5", cdc.KindText, cdc.Text(cdc.KindText, "$12.50")},
		{"rng", "int4range", "'[1,5)'", cdc.KindText, cdc.Text(cdc.KindText, "[1,5)")},
	}
}

// Every supported type goes through a real table, read once by the snapshot and once
// by the stream, and must decode to the same exact Value both ways, whatever the
// writing session's time zone and styles.
func TestIntegration_TypesRoundTrip(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TYPE mood AS ENUM ('sad', 'happy')`)
	e.exec(`CREATE DOMAIN posint AS integer CHECK (VALUE > 0)`)
	cases := typeCases()
	if _, err := e.srv.Exec(context.Background(), e.db, "CREATE EXTENSION citext"); err == nil {
		cases = append(cases, typeCase{"ci", "citext", "'MiXeD'", cdc.KindText, cdc.Text(cdc.KindText, "MiXeD")})
	} else {
		t.Logf("citext not installed, leaving it out: %v", err)
	}
	var decls, cols, lits []string
	for _, c := range cases {
		decls = append(decls, c.col+" "+c.decl)
		cols = append(cols, c.col)
		lits = append(lits, c.literal)
	}
	e.exec(`CREATE TABLE types (id int PRIMARY KEY, ` + strings.Join(decls, ", ") + `)`)
	e.exec(`SET TimeZone = 'Asia/Kolkata'; SET IntervalStyle = 'postgres_verbose'; SET DateStyle = 'SQL, DMY'; SET extra_float_digits = 0`)
	insert := func(id string) {
		e.exec(`INSERT INTO types (id, ` + strings.Join(cols, ", ") + `) VALUES (` + id + `, ` + strings.Join(lits, ", ") + `)`)
	}
	insert("1")
	src := e.newSource(e.config("public.types"))
	info := start(t, src, nil)
	for i, c := range cases {
		col := info.Tables[0].Columns[i+1]
		if col.Name != c.col || col.Kind != c.kind || col.SQLiteType != c.kind.SQLiteType() {
			t.Errorf("column %s = %+v, want kind %s", c.col, col, c.kind)
		}
	}
	snap, _ := snapshot(t, src)
	if len(snap) != 1 {
		t.Fatalf("snapshot has %d rows", len(snap))
	}
	rec := &recorder{}
	stream(t, src, rec)
	insert("2")
	e.exec(`INSERT INTO types (id) VALUES (3)`)
	txs := rec.waitFinal(t, 2)

	check := func(how string, row cdc.Row) {
		t.Helper()
		for _, c := range cases {
			got, ok := row.Get(c.col)
			if !ok {
				t.Errorf("%s: no column %s", how, c.col)
				continue
			}
			if !got.Equal(c.want) {
				t.Errorf("%s: %s %s = %s %q, want %s %q", how, c.decl, c.literal, got.Kind(), got.String(), c.want.Kind(), c.want.String())
			}
		}
	}
	check("snapshot", snap[0].After)
	check("stream", txs[0].Changes[0].After)
	for _, f := range txs[1].Changes[0].After[1:] {
		if !f.Value.IsNull() || f.Unchanged {
			t.Errorf("NULL row: %s = %v", f.Name, f.Value)
		}
	}
}

// The built-in OIDs in typeTable and arrayTable must be the server's.
func TestIntegration_BuiltinTypeOIDs(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	for oid, typ := range builtinTypes() {
		var name string
		var elem uint32
		if err := e.conn.QueryRow(context.Background(), `SELECT typname::text, typelem FROM pg_type WHERE oid = $1`, oid).Scan(&name, &elem); err != nil {
			t.Errorf("type %d (%s): %v", oid, typ.name, err)
			continue
		}
		if name != typ.name {
			t.Errorf("type %d is %s on the server, %s in the table", oid, name, typ.name)
		}
		if typ.kind == cdc.KindArray && elem != typ.elem.oid {
			t.Errorf("array type %s has element %d on the server, %d in the table", name, elem, typ.elem.oid)
		}
	}
}
