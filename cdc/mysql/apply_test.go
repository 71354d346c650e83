package mysql

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/synchub/synchub/cdc"
)

func testApplierTable() *applyTable {
	def := &tableDef{db: "shop", name: "orders", table: cdc.Table{Name: "shop.orders", PrimaryKey: []string{"id"}, Columns: []cdc.Column{
		{Name: "id", Kind: cdc.KindInt, SourceType: "int"},
		{Name: "note", Kind: cdc.KindText, SourceType: "text"},
		{Name: "odd`name", Kind: cdc.KindInt, SourceType: "int"},
	}}, cols: []colInfo{{dataType: "int"}, {dataType: "text"}, {dataType: "int"}}}
	return &applyTable{def: def, cols: map[string]int{"id": 0, "note": 1, "odd`name": 2}, key: []int{0}}
}

func TestBuildStmt(t *testing.T) {
	tb := testApplierTable()
	row := cdc.Row{{Name: "id", Value: cdc.Int(7)}, {Name: "note", Value: cdc.Text(cdc.KindText, "hi")}, {Name: "odd`name", Value: cdc.Null()}}
	cases := []struct {
		ch   cdc.Change
		sql  string
		args string
	}{
		{cdc.Change{Table: "shop.orders", Op: cdc.OpInsert, After: row},
			"INSERT INTO `shop`.`orders` (`id`, `note`, `odd``name`) VALUES (?, ?, ?)", "[7 hi <nil>]"},
		{cdc.Change{Table: "shop.orders", Op: cdc.OpUpdate, Before: cdc.Row{{Name: "id", Value: cdc.Int(3)}}, After: row[:2]},
			"UPDATE `shop`.`orders` SET `id` = ?, `note` = ? WHERE `id` = ?", "[7 hi 3]"},
		{cdc.Change{Table: "shop.orders", Op: cdc.OpUpdate, After: cdc.Row{{Name: "note", Unchanged: true}, row[0]}},
			"UPDATE `shop`.`orders` SET `id` = ? WHERE `id` = ?", "[7 7]"},
		{cdc.Change{Table: "shop.orders", Op: cdc.OpDelete, Before: row},
			"DELETE FROM `shop`.`orders` WHERE `id` = ?", "[7]"},
	}
	for _, c := range cases {
		st, err := buildStmt(tb, &c.ch)
		if err != nil {
			t.Errorf("%s: %v", c.ch.Op, err)
			continue
		}
		if st.sql != c.sql || fmt.Sprint(st.args) != c.args {
			t.Errorf("%s: %s %v, want %s %s", c.ch.Op, st.sql, st.args, c.sql, c.args)
		}
	}
}

func TestBuildStmtRefuses(t *testing.T) {
	tb := testApplierTable()
	evil := "x`; DROP TABLE orders; --"
	cases := []struct {
		name string
		ch   cdc.Change
		want string
	}{
		{"unknown column", cdc.Change{Table: "shop.orders", Op: cdc.OpInsert, After: cdc.Row{{Name: evil, Value: cdc.Int(1)}}}, "no column"},
		{"update without key", cdc.Change{Table: "shop.orders", Op: cdc.OpUpdate, After: cdc.Row{{Name: "note", Value: cdc.Int(1)}}}, "key"},
		{"null key", cdc.Change{Table: "shop.orders", Op: cdc.OpDelete, Before: cdc.Row{{Name: "id"}}}, "NULL"},
		{"truncate", cdc.Change{Table: "shop.orders", Op: cdc.OpTruncate}, "cannot write"},
		{"empty insert", cdc.Change{Table: "shop.orders", Op: cdc.OpInsert}, "no column values"},
		{"NaN", cdc.Change{Table: "shop.orders", Op: cdc.OpInsert, After: cdc.Row{{Name: "id", Value: cdc.Float(math.NaN())}}}, "NaN"},
	}
	for _, c := range cases {
		_, err := buildStmt(tb, &c.ch)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	_, err := buildStmt(tb, &cases[0].ch)
	var uc *cdc.UnknownColumnError
	if !errors.As(err, &uc) || uc.Column != evil {
		t.Errorf("unknown column error %v is not a cdc.UnknownColumnError naming the column", err)
	}
}

func TestArgFor(t *testing.T) {
	cases := []struct {
		info colInfo
		kind cdc.Kind
		v    cdc.Value
		want any
	}{
		{colInfo{dataType: "int"}, cdc.KindInt, cdc.Int(-5), int64(-5)},
		{colInfo{dataType: "bit"}, cdc.KindInt, cdc.Int(-1), uint64(math.MaxUint64)},
		{colInfo{dataType: "bigint", unsigned: true}, cdc.KindDecimal, cdc.Text(cdc.KindDecimal, "18446744073709551615"), uint64(math.MaxUint64)},
		{colInfo{dataType: "decimal"}, cdc.KindDecimal, cdc.Text(cdc.KindDecimal, "-12.3400"), "-12.3400"},
		{colInfo{dataType: "tinyint"}, cdc.KindInt, cdc.Bool(true), int64(1)},
		{colInfo{dataType: "double"}, cdc.KindFloat, cdc.Float(1.5), 1.5},
		{colInfo{dataType: "datetime"}, cdc.KindTimestamp, cdc.Text(cdc.KindTimestamp, "2024-01-02T03:04:05.5"), "2024-01-02 03:04:05.5"},
		{colInfo{dataType: "timestamp"}, cdc.KindTimestampTZ, cdc.Text(cdc.KindTimestampTZ, "2024-01-02T03:04:05Z"), "2024-01-02 03:04:05"},
		{colInfo{dataType: "json"}, cdc.KindJSON, cdc.Text(cdc.KindJSON, `{"a":1}`), `{"a":1}`},
		{colInfo{dataType: "varchar"}, cdc.KindText, cdc.Null(), nil},
	}
	for _, c := range cases {
		col := cdc.Column{Name: "c", Kind: c.kind}
		got, err := argFor(&col, &c.info, c.v)
		if err != nil || fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", c.want, c.want) {
			t.Errorf("argFor(%s, %v) = %T %v, %v; want %T %v", c.info.dataType, c.v, got, got, err, c.want, c.want)
		}
	}
	b, err := argFor(&cdc.Column{Kind: cdc.KindBytes}, &colInfo{dataType: "blob"}, cdc.Bytes(nil))
	if bs, ok := b.([]byte); err != nil || !ok || bs == nil {
		t.Errorf("empty bytes become %#v, %v; want a non-nil empty []byte (NULL is a different value)", b, err)
	}
}

func TestIsRefusal(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&gomysql.MyError{Code: 1062, Message: "Duplicate entry"}, true},
		{&gomysql.MyError{Code: 1452, Message: "foreign key"}, true},
		{fmt.Errorf("wrapped: %w", &gomysql.MyError{Code: 4025}), true},
		{&gomysql.MyError{Code: errDeadlock}, false},
		{&gomysql.MyError{Code: errLockWaitTimeout}, false},
		{&gomysql.MyError{Code: 2013}, false},
		{errors.New("connection reset"), false},
	}
	for _, c := range cases {
		if got := isRefusal(c.err); got != c.want {
			t.Errorf("isRefusal(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestApplierConfigValidate(t *testing.T) {
	good := ApplierConfig{DSN: "root@127.0.0.1:3306/shop", Tables: []string{"shop.orders"}}
	if err := good.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	if got := good.originDatabase(); got != "shop" {
		t.Errorf("origin database %q, want shop", got)
	}
	bad := ApplierConfig{Tables: []string{"orders", "shop.x", "shop.x"}, MaxConns: -1}
	err := bad.Validate()
	for _, want := range []string{"DSN is empty", "not database-qualified", "listed twice", "MaxConns"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
