package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/synchub/synchub/cdc"
)

func (e *env) newApplier(tables ...string) *Applier {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := NewApplier(ctx, ApplierConfig{DSN: e.srv.DSN(e.db), Tables: tables}, testLogger(e.t))
	if err != nil {
		e.t.Fatalf("NewApplier: %v", err)
	}
	e.t.Cleanup(a.Close)
	return a
}

func apply(t *testing.T, a *Applier, tag cdc.Tag, changes ...cdc.Change) []cdc.ApplyResult {
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

func readRow(t *testing.T, a *Applier, table string, key cdc.Row) (cdc.Row, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	row, found, err := a.ReadRow(ctx, table, key)
	if err != nil {
		t.Fatalf("ReadRow %s %v: %v", table, key, err)
	}
	return row, found
}

func idKey(id int64) cdc.Row { return cdc.Row{{Name: "id", Value: cdc.Int(id)}} }

func ins(table string, fields ...cdc.Field) cdc.Change {
	return cdc.Change{Table: table, Op: cdc.OpInsert, After: fields}
}

func fld(name string, v cdc.Value) cdc.Field { return cdc.Field{Name: name, Value: v} }

func noErrors(t *testing.T, res []cdc.ApplyResult) {
	t.Helper()
	for i, r := range res {
		if r.Err != nil {
			t.Errorf("change %d: %v", i, r.Err)
		}
	}
}

func (e *env) count(sql string) int64 {
	e.t.Helper()
	var n int64
	if err := e.conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Every type of the source's type test goes through Apply, comes back unchanged
// through ReadRow and through the Source's stream, which attributes the transaction to
// the tag's origin and batch.
func TestIntegration_ApplierTypesRoundTrip(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TYPE mood AS ENUM ('sad', 'happy')`)
	e.exec(`CREATE DOMAIN posint AS integer CHECK (VALUE > 0)`)
	cases := append(typeCases(),
		typeCase{"tsbc", "timestamp", "", cdc.KindTimestamp, cdc.Text(cdc.KindTimestamp, "-0043-03-15T10:11:12.5")},
		typeCase{"tstzbc", "timestamptz", "", cdc.KindTimestampTZ, cdc.Text(cdc.KindTimestampTZ, "0000-12-31T23:00:00Z")},
		typeCase{"ivneg", "interval", "", cdc.KindInterval, cdc.Text(cdc.KindInterval, "P-1Y-2M3DT-4H-5M-6.25S")},
		typeCase{"ad", "date[]", "", cdc.KindArray, cdc.Text(cdc.KindArray, `["2024-02-29","-0043-03-15",null]`)},
		typeCase{"aby", "bytea[]", "", cdc.KindArray, cdc.Text(cdc.KindArray, `["\\x00ff",null]`)},
		typeCase{"abox", "box[]", "", cdc.KindArray, cdc.Text(cdc.KindArray, `["(3,4),(1,2)","(1,1),(0,0)"]`)},
		typeCase{"byempty", "bytea", "", cdc.KindBytes, cdc.Bytes([]byte{})},
		typeCase{"tnul", "text", "", cdc.KindText, cdc.Null()},
	)
	var decls []string
	for _, c := range cases {
		decls = append(decls, c.col+" "+c.decl)
	}
	e.exec(`CREATE TABLE types (id int PRIMARY KEY, ` + strings.Join(decls, ", ") + `)`)
	src := e.newSource(e.config("public.types"))
	start(t, src, nil)
	snapshot(t, src)
	rec := &recorder{}
	stream(t, src, rec)
	a := e.newApplier("public.types")

	row := cdc.Row{fld("id", cdc.Int(1))}
	for _, c := range cases {
		row = append(row, fld(c.col, c.want))
	}
	noErrors(t, apply(t, a, cdc.Tag{Origin: "edge-a", Batch: "b1"}, ins("public.types", row...)))

	check := func(how string, got cdc.Row) {
		t.Helper()
		for _, c := range cases {
			v, ok := got.Get(c.col)
			if !ok {
				t.Errorf("%s: no column %s", how, c.col)
				continue
			}
			if !v.Equal(c.want) {
				t.Errorf("%s: %s %s = %s %q, want %s %q", how, c.col, c.decl, v.Kind(), v.String(), c.want.Kind(), c.want.String())
			}
		}
	}
	got, found := readRow(t, a, "public.types", idKey(1))
	if !found {
		t.Fatal("ReadRow did not find the applied row")
	}
	check("ReadRow", got)

	// An admin's resolution has no origin but a batch.
	noErrors(t, apply(t, a, cdc.Tag{Batch: "r7"}, cdc.Change{Table: "public.types", Op: cdc.OpUpdate,
		Before: idKey(1), After: cdc.Row{fld("id", cdc.Int(1)), fld("t", cdc.Text(cdc.KindText, "resolved"))}}))
	noErrors(t, apply(t, a, cdc.Tag{Origin: "edge-b"}, cdc.Change{Table: "public.types", Op: cdc.OpDelete, Before: idKey(1)}))

	txs := rec.waitFinal(t, 3)
	want := []struct {
		origin, batch string
		op            cdc.Op
	}{{"edge-a", "b1", cdc.OpInsert}, {"", "r7", cdc.OpUpdate}, {"edge-b", "", cdc.OpDelete}}
	for i, w := range want {
		tx := txs[i]
		if tx.Origin != w.origin || tx.Batch != w.batch {
			t.Errorf("tx %d: origin %q batch %q, want %q %q", i, tx.Origin, tx.Batch, w.origin, w.batch)
		}
		if len(tx.Changes) != 1 || tx.Changes[0].Op != w.op {
			t.Fatalf("tx %d: changes %+v, want one %s", i, tx.Changes, w.op)
		}
	}
	check("stream", txs[0].Changes[0].After)
	if v, _ := txs[1].Changes[0].After.Get("t"); !v.Equal(cdc.Text(cdc.KindText, "resolved")) {
		t.Errorf("stream update: t = %v", v)
	}
	if _, found := readRow(t, a, "public.types", idKey(1)); found {
		t.Error("ReadRow found the deleted row")
	}
}

func refusalEnv(t *testing.T) (*env, *Applier) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL)`)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers (id),
		qty int CONSTRAINT qty_positive CHECK (qty > 0), note text)`)
	e.exec(`INSERT INTO customers VALUES (1, 'ada'), (2, 'bob')`)
	return e, e.newApplier("public.customers", "public.orders")
}

func order(id, customer, qty int64) cdc.Change {
	return ins("public.orders", fld("id", cdc.Int(id)), fld("customer_id", cdc.Int(customer)), fld("qty", cdc.Int(qty)))
}

// A change PostgreSQL refuses gets its reason with the constraint's name; the others
// in the batch are written, in the same transaction.
func TestIntegration_ApplierRefusedChanges(t *testing.T) {
	e, a := refusalEnv(t)
	res := apply(t, a, cdc.Tag{Origin: "edge-a", Batch: "b1"},
		order(1, 1, 5),
		order(2, 99, 5), // no customer 99
		order(3, 2, 5),
		order(4, 1, -1), // check constraint
		cdc.Change{Table: "public.orders", Op: cdc.OpUpdate, Before: idKey(77), After: cdc.Row{fld("id", cdc.Int(77)), fld("qty", cdc.Int(1))}},
		order(1, 1, 6), // duplicate key of the first change
		order(5, 2, 1),
	)
	wantErr := []string{"", "orders_customer_id_fkey", "", "qty_positive", "row not found", "orders_pkey", ""}
	for i, w := range wantErr {
		switch {
		case w == "" && res[i].Err != nil:
			t.Errorf("change %d: unexpected error %v", i, res[i].Err)
		case w != "" && (res[i].Err == nil || !strings.Contains(res[i].Err.Error(), w)):
			t.Errorf("change %d: error %v, want one mentioning %q", i, res[i].Err, w)
		}
	}
	var ce *ChangeError
	if !errors.As(res[1].Err, &ce) || ce.Err.ConstraintName != "orders_customer_id_fkey" || !strings.Contains(res[1].Err.Error(), "Key (customer_id)=(99)") {
		t.Errorf("FK refusal %v lacks the constraint or the detail", res[1].Err)
	}
	var nf *RowNotFoundError
	if !errors.As(res[4].Err, &nf) || !strings.HasPrefix(res[4].Err.Error(), "row not found") {
		t.Errorf("missing row: %v, want a RowNotFoundError", res[4].Err)
	}
	if got := e.count(`SELECT count(*) FROM orders`); got != 3 {
		t.Errorf("orders has %d rows, want 3 (1, 3, 5)", got)
	}
	if got := e.count(`SELECT qty FROM orders WHERE id = 1`); got != 5 {
		t.Errorf("order 1 has qty %d, want 5 (the duplicate must not have replaced it)", got)
	}
}

// A deferred constraint is attributed to its change, not to COMMIT.
func TestIntegration_ApplierDeferredConstraint(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE parents (id int PRIMARY KEY)`)
	e.exec(`CREATE TABLE kids (id int PRIMARY KEY, parent_id int REFERENCES parents DEFERRABLE INITIALLY DEFERRED)`)
	e.exec(`INSERT INTO parents VALUES (1)`)
	a := e.newApplier("public.parents", "public.kids")
	kid := func(id, parent int64) cdc.Change {
		return ins("public.kids", fld("id", cdc.Int(id)), fld("parent_id", cdc.Int(parent)))
	}
	res := apply(t, a, cdc.Tag{Origin: "edge-a"}, kid(1, 1), kid(2, 5), kid(3, 1))
	if res[0].Err != nil || res[2].Err != nil || res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "kids_parent_id_fkey") {
		t.Errorf("results %v, want only change 1 refused by kids_parent_id_fkey", res)
	}
	if got := e.count(`SELECT count(*) FROM kids`); got != 2 {
		t.Errorf("kids has %d rows, want 2", got)
	}
}

// Names that are not in the catalog are refused before any SQL is sent, whatever
// they contain.
func TestIntegration_ApplierUnknownNames(t *testing.T) {
	e, a := refusalEnv(t)
	evil := `x"; DROP TABLE orders; --`
	res := apply(t, a, cdc.Tag{Origin: "edge-a"},
		ins("public.nosuch", fld("id", cdc.Int(1))),
		ins(`public.orders"; DROP TABLE orders; --`, fld("id", cdc.Int(1))),
		ins("public.orders", fld("id", cdc.Int(1)), fld(evil, cdc.Int(1))),
		cdc.Change{Table: "public.orders", Op: cdc.OpDelete, Before: cdc.Row{fld(evil, cdc.Int(1))}},
		cdc.Change{Table: "public.orders", Op: cdc.OpTruncate},
	)
	for i, r := range res {
		if r.Err == nil {
			t.Errorf("change %d was accepted", i)
		}
	}
	if !strings.Contains(res[0].Err.Error(), "public.nosuch") || !strings.Contains(res[2].Err.Error(), "no column") {
		t.Errorf("errors do not say what is unknown: %v / %v", res[0].Err, res[2].Err)
	}
	if got := e.count(`SELECT count(*) FROM orders`); got != 0 {
		t.Errorf("orders has %d rows", got)
	}
	if got := e.count(`SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'orders'`); got != 1 {
		t.Errorf("orders is gone")
	}
	if _, _, err := a.ReadRow(context.Background(), "public.orders", cdc.Row{fld(evil, cdc.Int(1))}); err == nil {
		t.Error("ReadRow accepted a key without the key column")
	}
}

// A column added or dropped after the applier started is found by re-reading the
// definition.
func TestIntegration_ApplierColumnAdded(t *testing.T) {
	e, a := refusalEnv(t)
	e.exec(`ALTER TABLE orders ADD COLUMN priority int`)
	res := apply(t, a, cdc.Tag{Origin: "edge-a"}, ins("public.orders", fld("id", cdc.Int(1)), fld("priority", cdc.Int(3))))
	noErrors(t, res)
	row, _ := readRow(t, a, "public.orders", idKey(1))
	if v, _ := row.Get("priority"); !v.Equal(cdc.Int(3)) {
		t.Errorf("priority = %v, want 3", v)
	}
	// A dropped column is noticed by ReadRow too.
	e.exec(`ALTER TABLE orders DROP COLUMN note`)
	row, found := readRow(t, a, "public.orders", idKey(1))
	if _, has := row.Get("note"); !found || has || len(row) != 4 {
		t.Errorf("after DROP COLUMN, ReadRow = %v, %v", row, found)
	}
}

// An update may change the key: the row is found by Before's key.
func TestIntegration_ApplierKeyChange(t *testing.T) {
	_, a := refusalEnv(t)
	noErrors(t, apply(t, a, cdc.Tag{Origin: "edge-a"}, order(1, 1, 5)))
	noErrors(t, apply(t, a, cdc.Tag{Origin: "edge-a"}, cdc.Change{Table: "public.orders", Op: cdc.OpUpdate,
		Before: idKey(1),
		After:  cdc.Row{fld("id", cdc.Int(10)), fld("customer_id", cdc.Int(2)), fld("qty", cdc.Int(7)), fld("note", cdc.Null())}}))
	if _, found := readRow(t, a, "public.orders", idKey(1)); found {
		t.Error("the old key still exists")
	}
	row, found := readRow(t, a, "public.orders", idKey(10))
	if !found {
		t.Fatal("the new key does not exist")
	}
	if v, _ := row.Get("qty"); !v.Equal(cdc.Int(7)) {
		t.Errorf("qty = %v, want 7", v)
	}
	res := apply(t, a, cdc.Tag{Origin: "edge-a"},
		cdc.Change{Table: "public.orders", Op: cdc.OpDelete, Before: idKey(1)},
		cdc.Change{Table: "public.orders", Op: cdc.OpDelete, Before: idKey(10)})
	var nf *RowNotFoundError
	if !errors.As(res[0].Err, &nf) || res[1].Err != nil {
		t.Errorf("results %v, want row not found then success", res)
	}
}

// Concurrent Apply calls each commit their own batch.
func TestIntegration_ApplierConcurrent(t *testing.T) {
	e, a := refusalEnv(t)
	const workers, batches, size = 4, 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*batches)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				changes := make([]cdc.Change, size)
				for i := range changes {
					id := int64(w*batches*size + b*size + i + 1)
					changes[i] = order(id, 1+id%2, 1)
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
	if got := e.count(`SELECT count(*) FROM orders`); got != workers*batches*size {
		t.Errorf("orders has %d rows, want %d", got, workers*batches*size)
	}
}

// A failure of the transaction as a whole is Apply's error, and nothing is written.
func TestIntegration_ApplierWholeFailure(t *testing.T) {
	e, a := refusalEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Apply(ctx, cdc.Tag{Origin: "edge-a"}, []cdc.Change{order(1, 1, 1)}); err == nil {
		t.Error("Apply with a cancelled context succeeded")
	}
	e.exec(`CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.qty = 13 THEN RAISE EXCEPTION 'unlucky' USING ERRCODE = '40001'; END IF; RETURN NEW; END $$`)
	e.exec(`CREATE TRIGGER boom BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION boom()`)
	_, err := a.Apply(context.Background(), cdc.Tag{Origin: "edge-a"}, []cdc.Change{order(1, 1, 1), order(2, 1, 13)})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "40001" {
		t.Errorf("Apply error %v, want the serialization failure", err)
	}
	if got := e.count(`SELECT count(*) FROM orders`); got != 0 {
		t.Errorf("orders has %d rows after a failed batch", got)
	}
	noErrors(t, apply(t, a, cdc.Tag{Origin: "edge-a"}, order(1, 1, 1)))
}

// Updates of ever different column sets do not prepare statements without bound on a
// connection.
func TestIntegration_ApplierPreparedBound(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE wide (id int PRIMARY KEY, c0 int, c1 int, c2 int, c3 int, c4 int, c5 int, c6 int, c7 int, c8 int)`)
	e.exec(`INSERT INTO wide (id) VALUES (1)`)
	ctx := context.Background()
	a, err := NewApplier(ctx, ApplierConfig{DSN: e.srv.DSN(e.db), Tables: []string{"public.wide"}, MaxConns: 1}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	const shapes = maxPrepared + 100
	for first := 1; first <= shapes; first += 50 {
		var batch []cdc.Change
		for mask := first; mask < first+50 && mask <= shapes; mask++ {
			after := cdc.Row{fld("id", cdc.Int(1))}
			for c := range 9 {
				if mask&(1<<c) != 0 {
					after = append(after, fld(fmt.Sprintf("c%d", c), cdc.Int(int64(mask))))
				}
			}
			batch = append(batch, cdc.Change{Table: "public.wide", Op: cdc.OpUpdate, Before: idKey(1), After: after})
		}
		noErrors(t, apply(t, a, cdc.Tag{Origin: "edge-a"}, batch...))
	}
	var n int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'synchub_apply_%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 || n > maxPrepared {
		t.Errorf("%d statements prepared on the connection, want between 1 and %d", n, maxPrepared)
	}
	if got := e.count(`SELECT c8 FROM wide`); got != 256+100 {
		t.Errorf("c8 = %d, want the last mask that set it (%d)", got, 256+100)
	}
}
