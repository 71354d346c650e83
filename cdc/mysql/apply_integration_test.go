package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/mysql/myserver"
	"github.com/synchub/synchub/cdc/mysql/mytest"
)

// newTestApplier starts an Applier for tables of e's database.
func newTestApplier(e *env, tables ...string) *Applier {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := make([]string, len(tables))
	for i, tb := range tables {
		full[i] = e.table(tb)
	}
	a, err := NewApplier(ctx, ApplierConfig{DSN: e.srv.URL(e.db), Tables: full}, testLogger(e.t))
	if err != nil {
		e.t.Fatalf("NewApplier: %v", err)
	}
	e.t.Cleanup(a.Close)
	return a
}

// queryInt runs a query returning one integer.
func queryInt(e *env, query string) int64 {
	e.t.Helper()
	var n int64
	if err := e.sql.QueryRow(query).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func apApply(t *testing.T, a *Applier, tag cdc.Tag, changes ...cdc.Change) []cdc.ApplyResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := a.Apply(ctx, tag, changes)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(res) != len(changes) {
		t.Fatalf("Apply returned %d results for %d changes", len(res), len(changes))
	}
	return res
}

func apRead(t *testing.T, a *Applier, table string, id int64) (cdc.Row, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	row, found, err := a.ReadRow(ctx, table, cdc.Row{{Name: "id", Value: cdc.Int(id)}})
	if err != nil {
		t.Fatalf("ReadRow: %v", err)
	}
	return row, found
}

func apField(name string, v cdc.Value) cdc.Field { return cdc.Field{Name: name, Value: v} }

func apInsert(table string, fields ...cdc.Field) cdc.Change {
	return cdc.Change{Table: table, Op: cdc.OpInsert, After: fields}
}

func apNoErrors(t *testing.T, res []cdc.ApplyResult) {
	t.Helper()
	for i, r := range res {
		if r.Err != nil {
			t.Errorf("change %d: %v", i, r.Err)
		}
	}
}

// TestIntegration_MySQLApplier runs the applier's cases on one throwaway MariaDB.
func TestIntegration_MySQLApplier(t *testing.T) {
	srv := mytest.Start(t, myserver.Options{})
	t.Run("TypesRoundTrip", func(t *testing.T) { testApplierTypes(t, srv) })
	t.Run("OriginInSameTransaction", func(t *testing.T) { testApplierOrigin(t, srv) })
	t.Run("StreamedWithOrigin", func(t *testing.T) { testApplierStreamed(t, srv) })
	t.Run("RefusedChanges", func(t *testing.T) { testApplierRefusals(t, srv) })
	t.Run("UnknownNames", func(t *testing.T) { testApplierUnknownNames(t, srv) })
	t.Run("KeyChangeAndNotFound", func(t *testing.T) { testApplierKeyChange(t, srv) })
	t.Run("ColumnAdded", func(t *testing.T) { testApplierColumnAdded(t, srv) })
	t.Run("Concurrent", func(t *testing.T) { testApplierConcurrent(t, srv) })
}

type apTypeCase struct {
	col, decl string
	v         cdc.Value
}

func apTypeCases() []apTypeCase {
	return []apTypeCase{
		{"ti", "tinyint", cdc.Int(-128)},
		{"si", "smallint unsigned", cdc.Int(65535)},
		{"mi", "mediumint", cdc.Int(-8388608)},
		{"i", "int unsigned", cdc.Int(4294967295)},
		{"bi", "bigint", cdc.Int(math.MinInt64)},
		{"bimax", "bigint", cdc.Int(math.MaxInt64)},
		{"bu", "bigint unsigned", cdc.Text(cdc.KindDecimal, "18446744073709551615")},
		{"de", "decimal(30,10)", cdc.Text(cdc.KindDecimal, "12345678901234567890.0123456789")},
		{"de2", "decimal(12,4)", cdc.Text(cdc.KindDecimal, "-12.3400")},
		{"fl", "float", cdc.Float(1.1)},
		{"db", "double", cdc.Float(math.Pi)},
		{"dbt", "double", cdc.Float(4.9406564584124654e-324)},
		{"da", "date", cdc.Text(cdc.KindDate, "2024-02-29")},
		{"dt6", "datetime(6)", cdc.Text(cdc.KindTimestamp, "2024-01-02T03:04:05.123456")},
		{"dt", "datetime", cdc.Text(cdc.KindTimestamp, "1000-01-01T00:00:00")},
		{"ts", "timestamp(6) NULL", cdc.Text(cdc.KindTimestampTZ, "2024-01-02T03:04:05.5Z")},
		{"tm", "time(6)", cdc.Text(cdc.KindTime, "-838:59:58.5")},
		{"yr", "year", cdc.Int(2024)},
		{"ch", "char(5)", cdc.Text(cdc.KindText, "ab")},
		{"vc", "varchar(50)", cdc.Text(cdc.KindText, "héllo 🎉 \"q\" \\ back\ttab 'x'")},
		{"tx", "text", cdc.Text(cdc.KindText, strings.Repeat("long text ", 2000))},
		{"bn", "binary(4)", cdc.Bytes([]byte{0, 0xff, 0, 0})},
		{"vb", "varbinary(10)", cdc.Bytes([]byte{0, 1, 2, 0xfe})},
		{"bl", "blob", cdc.Bytes([]byte("blob\x00bytes"))},
		{"bl0", "blob", cdc.Bytes([]byte{})},
		{"js", "json", cdc.Text(cdc.KindJSON, `{"b":1,  "a":[2, 3.50, "é"]}`)},
		{"en", "enum('sad','happy')", cdc.Text(cdc.KindEnum, "happy")},
		{"st", "set('a','b','c')", cdc.Text(cdc.KindText, "a,c")},
		{"bt", "bit(10)", cdc.Int(5)},
		{"bt64", "bit(64)", cdc.Int(-1)},
		{"nul", "varchar(5)", cdc.Null()},
	}
}

func testApplierTypes(t *testing.T, srv *myserver.Server) {
	e := newEnv(t, srv)
	cases := apTypeCases()
	var decls []string
	for _, c := range cases {
		decls = append(decls, c.col+" "+c.decl)
	}
	e.exec("CREATE TABLE types (id int PRIMARY KEY, " + strings.Join(decls, ", ") + ")")
	a := newTestApplier(e, "types")
	table := e.table("types")
	row := cdc.Row{apField("id", cdc.Int(1))}
	for _, c := range cases {
		row = append(row, apField(c.col, c.v))
	}
	apNoErrors(t, apApply(t, a, cdc.Tag{Origin: "edge-a", Batch: "b1"}, apInsert(table, row...)))
	got, found := apRead(t, a, table, 1)
	if !found {
		t.Fatal("ReadRow did not find the applied row")
	}
	for _, c := range cases {
		v, ok := got.Get(c.col)
		if !ok || !v.Equal(c.v) {
			t.Errorf("%s %s = %s %.80q, want %s %.80q", c.col, c.decl, v.Kind(), v.String(), c.v.Kind(), c.v.String())
		}
	}
	// The values survive an update that writes them back unchanged, and a matched row
	// counts as found even when nothing changed.
	res := apApply(t, a, cdc.Tag{Origin: "edge-a", Batch: "b2"}, cdc.Change{Table: table, Op: cdc.OpUpdate, Before: row[:1], After: row})
	apNoErrors(t, res)
}

// What the applier writes reaches the Source's stream attributed to the tag, with the
// origin row left out, and decodes there to the values written and read back.
func testApplierStreamed(t *testing.T, srv *myserver.Server) {
	e := newEnv(t, srv)
	cases := apTypeCases()
	var decls []string
	for _, c := range cases {
		decls = append(decls, c.col+" "+c.decl)
	}
	e.exec("CREATE TABLE types (id int PRIMARY KEY, " + strings.Join(decls, ", ") + ")")
	a := newTestApplier(e, "types")
	src := newSource(t, e.config("types"))
	snapshotAll(t, src)
	h := &collector{}
	startStream(t, src, h)

	table := e.table("types")
	row := cdc.Row{apField("id", cdc.Int(1))}
	for _, c := range cases {
		row = append(row, apField(c.col, c.v))
	}
	apNoErrors(t, apApply(t, a, cdc.Tag{Origin: "edge-a", Batch: "b1"}, apInsert(table, row...)))
	// An update that leaves the row as it is has no row event in the binlog; the
	// write-back still arrives, empty, with its batch.
	apNoErrors(t, apApply(t, a, cdc.Tag{Origin: "edge-a", Batch: "b-same"}, cdc.Change{Table: table, Op: cdc.OpUpdate, Before: row[:1], After: row}))
	apNoErrors(t, apApply(t, a, cdc.Tag{Batch: "r1"}, cdc.Change{Table: table, Op: cdc.OpDelete, Before: row[:1]}))
	waitFor(t, "3 transactions", func() bool { return len(h.whole()) >= 3 })
	txs := h.whole()
	if txs[0].Origin != "edge-a" || txs[0].Batch != "b1" || len(txs[0].Changes) != 1 {
		t.Fatalf("insert tx: origin %q batch %q changes %d, want edge-a b1 1", txs[0].Origin, txs[0].Batch, len(txs[0].Changes))
	}
	if txs[1].Origin != "edge-a" || txs[1].Batch != "b-same" || len(txs[1].Changes) != 0 {
		t.Fatalf("unchanging update tx: origin %q batch %q changes %+v, want edge-a b-same and no changes", txs[1].Origin, txs[1].Batch, txs[1].Changes)
	}
	if txs[2].Origin != "" || txs[2].Batch != "r1" || len(txs[2].Changes) != 1 || txs[2].Changes[0].Op != cdc.OpDelete {
		t.Fatalf("delete tx: origin %q batch %q changes %+v, want \"\" r1 and one delete", txs[2].Origin, txs[2].Batch, txs[2].Changes)
	}
	got := txs[0].Changes[0].After
	for _, c := range cases {
		v, ok := got.Get(c.col)
		if !ok || !v.Equal(c.v) {
			t.Errorf("stream: %s %s = %s %.80q, want %s %.80q", c.col, c.decl, v.Kind(), v.String(), c.v.Kind(), c.v.String())
		}
	}
}

func testApplierOrigin(t *testing.T, srv *myserver.Server) {
	e := newEnv(t, srv)
	e.exec("CREATE TABLE notes (id int PRIMARY KEY, body text)")
	a := newTestApplier(e, "notes")
	table := e.table("notes")
	apNoErrors(t, apApply(t, a, cdc.Tag{Origin: "edge-a", Batch: "b1"},
		apInsert(table, apField("id", cdc.Int(1)), apField("body", cdc.Text(cdc.KindText, "hi")))))

	var origin, batch string
	if err := e.sql.QueryRow("SELECT origin, batch FROM "+OriginTable).Scan(&origin, &batch); err != nil {
		t.Fatalf("read origin table: %v", err)
	}
	if origin != "edge-a" || batch != "b1" {
		t.Errorf("origin row = %q %q, want edge-a b1", origin, batch)
	}
	// In the binlog, the origin row and the note are in one transaction, origin first.
	var file string
	var pos int64
	var ignore1, ignore2 sql.NullString
	if err := e.sql.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &ignore1, &ignore2); err != nil {
		t.Fatalf("SHOW MASTER STATUS: %v", err)
	}
	rows, err := e.sql.Query("SHOW BINLOG EVENTS IN '" + file + "'")
	if err != nil {
		t.Fatalf("SHOW BINLOG EVENTS: %v", err)
	}
	defer rows.Close()
	var tx []string // table maps of the current transaction
	var found []string
	for rows.Next() {
		var logName, evType, info string
		var p, serverID, end int64
		if err := rows.Scan(&logName, &p, &evType, &serverID, &end, &info); err != nil {
			t.Fatal(err)
		}
		switch evType {
		case "Gtid", "Query":
			if strings.HasPrefix(info, "BEGIN") {
				tx = nil // MariaDB: "BEGIN GTID 0-1-4"; MySQL: a Query event "BEGIN"
			}
		case "Table_map":
			tx = append(tx, info)
		case "Xid":
			if len(tx) > 0 && strings.HasSuffix(tx[len(tx)-1], "."+"notes)") {
				found = tx
			}
		}
	}
	if len(found) != 2 || !strings.HasSuffix(found[0], e.db+"."+OriginTable+")") {
		t.Errorf("the note's transaction maps %q, want the origin table then notes", found)
	}
}

func apOrder(table string, id, customer, qty int64) cdc.Change {
	return apInsert(table, apField("id", cdc.Int(id)), apField("customer_id", cdc.Int(customer)), apField("qty", cdc.Int(qty)))
}

func refusalTables(t *testing.T, srv *myserver.Server) (*env, *Applier, string) {
	e := newEnv(t, srv)
	e.exec("CREATE TABLE customers (id int PRIMARY KEY, name varchar(20) NOT NULL) ENGINE=InnoDB")
	e.exec("CREATE TABLE orders (id int PRIMARY KEY, customer_id int, qty int, note varchar(5), " +
		"CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id), " +
		"CONSTRAINT qty_positive CHECK (qty > 0)) ENGINE=InnoDB")
	e.exec("INSERT INTO customers VALUES (1, 'ada'), (2, 'bob')")
	return e, newTestApplier(e, "customers", "orders"), e.table("orders")
}

func testApplierRefusals(t *testing.T, srv *myserver.Server) {
	e, a, orders := refusalTables(t, srv)
	res := apApply(t, a, cdc.Tag{Origin: "edge-a", Batch: "b1"},
		apOrder(orders, 1, 1, 5),
		apOrder(orders, 2, 99, 5), // no customer 99
		apOrder(orders, 3, 2, 5),
		apOrder(orders, 4, 1, -1), // check constraint
		apOrder(orders, 1, 1, 6),  // duplicate key
		apInsert(orders, apField("id", cdc.Int(6)), apField("note", cdc.Text(cdc.KindText, "too long"))),
		apOrder(orders, 5, 2, 1),
	)
	wantErr := []string{"", "orders_customer_fk", "", "qty_positive", "Duplicate entry", "Data too long", ""}
	for i, w := range wantErr {
		switch {
		case w == "" && res[i].Err != nil:
			t.Errorf("change %d: unexpected error %v", i, res[i].Err)
		case w != "" && (res[i].Err == nil || !strings.Contains(res[i].Err.Error(), w)):
			t.Errorf("change %d: error %v, want one mentioning %q", i, res[i].Err, w)
		}
	}
	var ce *ChangeError
	if !errors.As(res[1].Err, &ce) || ce.Err.Code != 1452 {
		t.Errorf("FK refusal %v is not a ChangeError with code 1452", res[1].Err)
	}
	if got := queryInt(e, "SELECT count(*) FROM orders"); got != 3 {
		t.Errorf("orders has %d rows, want 3 (1, 3, 5)", got)
	}
	if got := queryInt(e, "SELECT qty FROM orders WHERE id = 1"); got != 5 {
		t.Errorf("order 1 has qty %d, want 5", got)
	}
}

func testApplierUnknownNames(t *testing.T, srv *myserver.Server) {
	e, a, orders := refusalTables(t, srv)
	evil := "x`; DROP TABLE orders; --"
	res := apApply(t, a, cdc.Tag{Origin: "edge-a"},
		apInsert(e.table("nosuch"), apField("id", cdc.Int(1))),
		apInsert(orders+"`; DROP TABLE orders; --", apField("id", cdc.Int(1))),
		apInsert(orders, apField("id", cdc.Int(1)), apField(evil, cdc.Int(1))),
		cdc.Change{Table: orders, Op: cdc.OpDelete, Before: cdc.Row{apField(evil, cdc.Int(1))}},
		cdc.Change{Table: orders, Op: cdc.OpTruncate},
		apInsert(orders, apField("id", cdc.Int(1)), apField("qty", cdc.Float(math.NaN()))),
	)
	for i, r := range res {
		if r.Err == nil {
			t.Errorf("change %d was accepted", i)
		}
	}
	if !strings.Contains(res[0].Err.Error(), "nosuch") || !strings.Contains(res[2].Err.Error(), "no column") {
		t.Errorf("errors do not say what is unknown: %v / %v", res[0].Err, res[2].Err)
	}
	if got := queryInt(e, "SELECT count(*) FROM orders"); got != 0 {
		t.Errorf("orders has %d rows", got)
	}
	if got := queryInt(e, "SELECT count(*) FROM "+OriginTable); got != 0 {
		t.Errorf("a batch with nothing to write still wrote the origin table")
	}
}

func testApplierKeyChange(t *testing.T, srv *myserver.Server) {
	_, a, orders := refusalTables(t, srv)
	apNoErrors(t, apApply(t, a, cdc.Tag{Origin: "edge-a"}, apOrder(orders, 1, 1, 5)))
	apNoErrors(t, apApply(t, a, cdc.Tag{Origin: "edge-a"}, cdc.Change{Table: orders, Op: cdc.OpUpdate,
		Before: cdc.Row{apField("id", cdc.Int(1))},
		After:  cdc.Row{apField("id", cdc.Int(10)), apField("customer_id", cdc.Int(2)), apField("qty", cdc.Int(7)), apField("note", cdc.Null())}}))
	if _, found := apRead(t, a, orders, 1); found {
		t.Error("the old key still exists")
	}
	row, found := apRead(t, a, orders, 10)
	if !found {
		t.Fatal("the new key does not exist")
	}
	if v, _ := row.Get("qty"); !v.Equal(cdc.Int(7)) {
		t.Errorf("qty = %v, want 7", v)
	}
	res := apApply(t, a, cdc.Tag{Origin: "edge-a"},
		cdc.Change{Table: orders, Op: cdc.OpUpdate, Before: cdc.Row{apField("id", cdc.Int(1))}, After: cdc.Row{apField("id", cdc.Int(1)), apField("qty", cdc.Int(1))}},
		cdc.Change{Table: orders, Op: cdc.OpDelete, Before: cdc.Row{apField("id", cdc.Int(1))}},
		cdc.Change{Table: orders, Op: cdc.OpDelete, Before: cdc.Row{apField("id", cdc.Int(10))}})
	var nf *RowNotFoundError
	if !errors.As(res[0].Err, &nf) || !errors.As(res[1].Err, &nf) || !strings.HasPrefix(res[1].Err.Error(), "row not found") || res[2].Err != nil {
		t.Errorf("results %v, want row not found twice, then success", res)
	}
	if _, found := apRead(t, a, orders, 10); found {
		t.Error("the deleted row still exists")
	}
}

func testApplierColumnAdded(t *testing.T, srv *myserver.Server) {
	e, a, orders := refusalTables(t, srv)
	e.exec("ALTER TABLE orders ADD COLUMN priority int")
	apNoErrors(t, apApply(t, a, cdc.Tag{Origin: "edge-a"}, apInsert(orders, apField("id", cdc.Int(1)), apField("priority", cdc.Int(3)))))
	row, _ := apRead(t, a, orders, 1)
	if v, _ := row.Get("priority"); !v.Equal(cdc.Int(3)) {
		t.Errorf("priority = %v, want 3", v)
	}
	// A dropped column is noticed by ReadRow too.
	e.exec("ALTER TABLE orders DROP COLUMN note")
	row, found := apRead(t, a, orders, 1)
	if _, has := row.Get("note"); !found || has || len(row) != 4 {
		t.Errorf("after DROP COLUMN, ReadRow = %v, %v", row, found)
	}
}

func testApplierConcurrent(t *testing.T, srv *myserver.Server) {
	e, a, orders := refusalTables(t, srv)
	const workers, batches, size = 4, 6, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*batches*size)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				changes := make([]cdc.Change, size)
				for i := range changes {
					id := int64(w*batches*size + b*size + i + 1)
					changes[i] = apOrder(orders, id, 1+id%2, 1)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				res, err := a.Apply(ctx, cdc.Tag{Origin: fmt.Sprintf("edge-%d", w), Batch: fmt.Sprint(b)}, changes)
				cancel()
				if err != nil {
					errs <- err
					continue
				}
				for _, r := range res {
					if r.Err != nil {
						errs <- r.Err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := queryInt(e, "SELECT count(*) FROM orders"); got != workers*batches*size {
		t.Errorf("orders has %d rows, want %d", got, workers*batches*size)
	}
	// Each connection that wrote has its own row in the origin table.
	if got := queryInt(e, "SELECT count(*) FROM "+OriginTable); got < 1 || got > DefaultApplierMaxConns {
		t.Errorf("origin table has %d rows, want one per connection (at most %d)", got, DefaultApplierMaxConns)
	}
}
