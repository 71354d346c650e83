package mysql

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/synchub/synchub/cdc"
)

const typesTable = `CREATE TABLE types (
	id INT PRIMARY KEY,
	ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
	bi BIGINT, biu BIGINT UNSIGNED,
	dec38 DECIMAL(38,10), dec5 DECIMAL(5,2), f FLOAT, d DOUBLE,
	dt DATE, dtm DATETIME(6), dtm0 DATETIME, ts TIMESTAMP(6) NULL, tm TIME(6), tmneg TIME, yr YEAR,
	c CHAR(10), vc VARCHAR(100), tx TEXT, bin BINARY(4), vb VARBINARY(10), bl BLOB,
	j JSON, e ENUM('small','medium','large'), s SET('a','b','c'), b BIT(10), b64 BIT(64)
) CHARACTER SET utf8mb4`

const typesColumns = "ti, tiu, si, mi, i, iu, bi, biu, dec38, dec5, f, d, dt, dtm, dtm0, ts, tm, tmneg, yr, c, vc, tx, bin, vb, bl, j, e, s, b, b64"

// typesRows are the values of typesColumns for ids 1, 2 and 3.
var typesRows = []string{
	`-128, 255, -32768, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
	-1234567890123456789012345678.0123456789, 999.99, 1.1, 3.141592653589793,
	'2024-02-29', '2024-02-29 13:14:15.123456', '9999-12-31 23:59:59', '2024-02-29 13:14:15.500000', '12:34:56.789', '-838:59:59', 2024,
	'abc', 'héllo 🎉 emoji', 'multi\nline ''quoted''', x'01020000', x'00ff00', x'00010203ff',
	'{"a": [1, 2, {"b": null}], "u": "\\u00e9"}', 'medium', 'c,a', b'1010101010', x'FFFFFFFFFFFFFFFF'`,
	`NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL`,
	`0, 0, 0, 0, 0, 0, 9223372036854775807, 0, 0, -0.5, 0, -0.0000001,
	'1000-01-01', '1000-01-01 00:00:00', '1970-01-01 00:00:00', '1970-01-01 00:00:01', '00:00:00', '838:59:59', 1901,
	'', '', '', x'00000000', x'', x'',
	'[]', 'small', '', b'0', b'0'`,
}

func text(k cdc.Kind, s string) cdc.Value { return cdc.Text(k, s) }

// typesWant are the expected values, per row, per column of typesColumns.
var typesWant = [][]cdc.Value{
	{
		cdc.Int(-128), cdc.Int(255), cdc.Int(-32768), cdc.Int(16777215), cdc.Int(-2147483648), cdc.Int(4294967295),
		cdc.Int(math.MinInt64), text(cdc.KindDecimal, "18446744073709551615"),
		text(cdc.KindDecimal, "-1234567890123456789012345678.0123456789"), text(cdc.KindDecimal, "999.99"), cdc.Float(1.1), cdc.Float(3.141592653589793),
		text(cdc.KindDate, "2024-02-29"), text(cdc.KindTimestamp, "2024-02-29T13:14:15.123456"), text(cdc.KindTimestamp, "9999-12-31T23:59:59"),
		text(cdc.KindTimestampTZ, "2024-02-29T13:14:15.5Z"), text(cdc.KindTime, "12:34:56.789"), text(cdc.KindTime, "-838:59:59"), cdc.Int(2024),
		text(cdc.KindText, "abc"), text(cdc.KindText, "héllo 🎉 emoji"), text(cdc.KindText, "multi\nline 'quoted'"),
		cdc.Bytes([]byte{1, 2, 0, 0}), cdc.Bytes([]byte{0, 0xff, 0}), cdc.Bytes([]byte{0, 1, 2, 3, 0xff}),
		text(cdc.KindJSON, `{"a": [1, 2, {"b": null}], "u": "\u00e9"}`), text(cdc.KindEnum, "medium"), text(cdc.KindText, "a,c"),
		cdc.Int(0b1010101010), cdc.Int(-1),
	},
	nil, // all NULL
	{
		cdc.Int(0), cdc.Int(0), cdc.Int(0), cdc.Int(0), cdc.Int(0), cdc.Int(0), cdc.Int(math.MaxInt64), text(cdc.KindDecimal, "0"),
		text(cdc.KindDecimal, "0.0000000000"), text(cdc.KindDecimal, "-0.50"), cdc.Float(0), cdc.Float(-0.0000001),
		text(cdc.KindDate, "1000-01-01"), text(cdc.KindTimestamp, "1000-01-01T00:00:00"), text(cdc.KindTimestamp, "1970-01-01T00:00:00"),
		text(cdc.KindTimestampTZ, "1970-01-01T00:00:01Z"), text(cdc.KindTime, "00:00:00"), text(cdc.KindTime, "838:59:59"), cdc.Int(1901),
		text(cdc.KindText, ""), text(cdc.KindText, ""), text(cdc.KindText, ""),
		cdc.Bytes([]byte{0, 0, 0, 0}), cdc.Bytes([]byte{}), cdc.Bytes([]byte{}),
		text(cdc.KindJSON, "[]"), text(cdc.KindEnum, "small"), text(cdc.KindText, ""),
		cdc.Int(0), cdc.Int(0),
	},
}

func (e *env) insertTypes(idBase int) {
	e.t.Helper()
	for i, vals := range typesRows {
		e.tx("SET time_zone = '+00:00'",
			"INSERT INTO types (id, "+typesColumns+") VALUES ("+itoa(idBase+i+1)+", "+vals+")")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func checkTypesRow(t *testing.T, where string, row cdc.Row, want []cdc.Value) {
	t.Helper()
	cols := strings.Split(typesColumns, ", ")
	for i, name := range cols {
		got, ok := row.Get(name)
		if !ok {
			t.Fatalf("%s: no column %s", where, name)
		}
		w := cdc.Null()
		if want != nil {
			w = want[i]
		}
		if !got.Equal(w) {
			t.Errorf("%s: column %s = %s %q, want %s %q", where, name, got.Kind(), got.String(), w.Kind(), w.String())
		}
		// The value must survive the change log's JSON form.
		if !got.IsNull() {
			back, err := cdc.ParseJSONValue(got.Kind(), got.AppendJSON(nil))
			if err != nil || !back.Equal(got) {
				t.Errorf("%s: column %s does not round-trip through JSON: %v %v", where, name, back, err)
			}
		}
	}
}

// TestIntegration_TypesRoundTrip reads every supported type through the snapshot and
// through the binlog and expects the same exact values from both.
func TestIntegration_TypesRoundTrip(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(typesTable)
	e.insertTypes(0)
	src := newSource(t, e.config("types"))
	snap, _, info := snapshotAll(t, src)
	if len(snap) != 3 {
		t.Fatalf("snapshot has %d rows, want 3", len(snap))
	}
	table := info.Tables[0]
	kinds := map[string]cdc.Kind{"biu": cdc.KindDecimal, "j": cdc.KindJSON, "e": cdc.KindEnum, "s": cdc.KindText, "bin": cdc.KindBytes, "ts": cdc.KindTimestampTZ, "dtm": cdc.KindTimestamp, "tm": cdc.KindTime, "b": cdc.KindInt, "yr": cdc.KindInt, "f": cdc.KindFloat}
	for name, k := range kinds {
		c, ok := table.Column(name)
		if !ok || c.Kind != k || c.SQLiteType != k.SQLiteType() {
			t.Errorf("column %s = %+v, want kind %s", name, c, k)
		}
	}
	if c, _ := table.Column("j"); c.SourceType != "json" {
		t.Errorf("MariaDB JSON column has source type %q, want json", c.SourceType)
	}
	for i, ch := range snap {
		checkTypesRow(t, "snapshot row "+itoa(i+1), ch.After, typesWant[i])
	}

	h := &collector{}
	startStream(t, src, h)
	e.insertTypes(10)
	e.exec("UPDATE types SET vc = 'changed' WHERE id = 11")
	waitFor(t, "4 transactions", func() bool { return len(h.whole()) == 4 })
	txs := h.whole()
	for i := range 3 {
		checkTypesRow(t, "streamed row "+itoa(11+i), txs[i].Changes[0].After, typesWant[i])
	}
	upd := txs[3].Changes[0]
	checkTypesRow(t, "update before image", upd.Before, typesWant[0])
	if v, _ := upd.After.Get("vc"); v.AsString() != "changed" {
		t.Errorf("update after image vc = %v", v)
	}
}
