package edge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

func TestCapture_InsertUpdateDelete(t *testing.T) {
	_, _, db := syncedItems(t)
	appExec(t, db, `UPDATE items SET name = 'one local' WHERE id = 1`)
	appExec(t, db, `UPDATE items SET name = 'two local' WHERE id = 2`)
	appExec(t, db, `INSERT INTO items (id, name, price) VALUES (3, 'three', '3.00')`)
	appExec(t, db, `DELETE FROM items WHERE id = 1`)
	appExec(t, db, `UPDATE items SET name = name WHERE id = 2`) // no change: not captured

	rows := readOutboxRows(t, db)
	if len(rows) != 4 {
		t.Fatalf("outbox has %d entries, want 4: %+v", len(rows), rows)
	}
	want := []struct {
		op, ktext   string
		baseVersion int64
		base, row   string // "" for NULL
	}{
		{"u", "1", 1, `{"id":1,"name":"one","price":"1.50"}`, `{"id":1,"name":"one local","price":"1.50"}`},
		{"u", "2", 2, `{"id":2,"name":"two v2","price":"2.50"}`, `{"id":2,"name":"two local","price":"2.50"}`},
		{"i", "3", 0, "", `{"id":3,"name":"three","price":"3.00"}`},
		// The delete keeps the base of the row's first pending change.
		{"d", "1", 1, `{"id":1,"name":"one","price":"1.50"}`, ""},
	}
	for i, w := range want {
		r := rows[i]
		if r.op != w.op || r.ktext != w.ktext || r.baseVersion != w.baseVersion || r.tbl != "public.items" {
			t.Errorf("entry %d: op=%s ktext=%s base_version=%d tbl=%s; want op=%s ktext=%s base_version=%d", i, r.op, r.ktext, r.baseVersion, r.tbl, w.op, w.ktext, w.baseVersion)
		}
		if (w.base == "") != !r.base.Valid {
			t.Errorf("entry %d: base %v, want %q", i, r.base, w.base)
		} else if w.base != "" {
			jsonEq(t, "base", []byte(r.base.String), w.base)
		}
		if (w.row == "") != !r.row.Valid {
			t.Errorf("entry %d: row %v, want %q", i, r.row, w.row)
		} else if w.row != "" {
			jsonEq(t, "row", []byte(r.row.String), w.row)
		}
		if r.batch.Valid {
			t.Errorf("entry %d has a batch id before any push", i)
		}
		if now := time.Now().UnixMicro(); r.wall < now-time.Minute.Microseconds() || r.wall > now+time.Second.Microseconds() {
			t.Errorf("entry %d: wall %d is not the write time (now %d)", i, r.wall, now)
		}
	}
}

func TestCapture_PulledChangesNotCaptured(t *testing.T) {
	h, a, db := syncedItems(t)
	h.commit(0, ins(10, "ten"), upd(1, "one hub"), del(2))
	pullOnly(t, a)
	if got := dump(t, db, "items"); len(got) != 2 || !strings.Contains(got[0], "one hub") {
		t.Fatalf("pulled changes not applied: %v", got)
	}
	if rows := readOutboxRows(t, db); len(rows) != 0 {
		t.Fatalf("pulled changes were captured: %+v", rows)
	}
	if st := a.Status(); st.AppliedForeign == 0 || st.Pending != 0 {
		t.Errorf("status: applied_foreign=%d pending=%d", st.AppliedForeign, st.Pending)
	}
	// A re-bootstrap empties and refills the tables without capturing either.
	head := h.head()
	h.mu.Lock()
	h.horizon = head + 1
	h.mu.Unlock()
	h.commit(0, ins(11, "eleven"))
	h.mu.Lock()
	h.horizon = 0
	h.mu.Unlock()
	pullOnly(t, a)
	if rows := readOutboxRows(t, db); len(rows) != 0 {
		t.Fatalf("re-bootstrap was captured: %+v", rows)
	}
}

func TestRebase_KeepsLocalWrites(t *testing.T) {
	h, a, db := syncedItems(t)
	appExec(t, db, `UPDATE items SET name = 'one local' WHERE id = 1`)
	appExec(t, db, `UPDATE items SET name = 'two local' WHERE id = 2`)
	appExec(t, db, `INSERT INTO items (id, name, price) VALUES (3, 'three local', '3.00')`)
	before := readOutboxRows(t, db)

	// The hub changes the same rows: an update, a delete and an insert of the same key.
	h.commit(0, upd(1, "one hub"), del(2), ins(3, "three hub"), ins(4, "four hub"))
	pullOnly(t, a)

	got := dump(t, db, "items")
	want := []string{"1|one local|1.50", "2|two local|2.50", "3|three local|3.00", "4|four hub|4.50"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after the pull the rows are\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	after := readOutboxRows(t, db)
	if len(after) != len(before) {
		t.Fatalf("outbox changed by the pull: %d entries, was %d", len(after), len(before))
	}
	for i := range after {
		if after[i].baseVersion != before[i].baseVersion || after[i].base != before[i].base {
			t.Errorf("entry %d base changed by the pull: %d %v, was %d %v", i, after[i].baseVersion, after[i].base, before[i].baseVersion, before[i].base)
		}
	}
	if st := a.Status(); st.Rebased != 3 {
		t.Errorf("status rebased = %d, want 3", st.Rebased)
	}
	// A later local write of row 1 still carries the base it had before the pull.
	appExec(t, db, `UPDATE items SET name = 'one local 2' WHERE id = 1`)
	rows := readOutboxRows(t, db)
	if last := rows[len(rows)-1]; last.baseVersion != 1 || !strings.Contains(last.base.String, `"one"`) {
		t.Errorf("later write's base = %d %s; want 1 and the row as pulled before the local write", last.baseVersion, last.base.String)
	}
	// The hub's row version for 4 is recorded: a write of it is based on version 3.
	appExec(t, db, `UPDATE items SET name = 'four local' WHERE id = 4`)
	rows = readOutboxRows(t, db)
	if last := rows[len(rows)-1]; last.baseVersion != 3 {
		t.Errorf("base version of a row pulled at version 3 = %d", last.baseVersion)
	}
}

func TestEcho_RecordsVersionOnly(t *testing.T) {
	h, a, db := syncedItems(t)
	appExec(t, db, `UPDATE items SET name = 'one local' WHERE id = 1`)
	pushNow(t, a) // answered "applied" without a version
	foreign := a.Status().AppliedForeign

	// The hub's log now holds the edge's write, tagged with its origin. Its data differs
	// from the local row only so that a rewrite would show.
	row := itemRow(1, "one local")
	row[2].Value = cdc.Text(cdc.KindDecimal, "1.51")
	v := h.commitFrom("test-edge", time.Now().UnixMicro(), cdc.Change{Table: "public.items", Op: cdc.OpUpdate, After: row})
	h.commit(0, upd(2, "two foreign"))
	pullOnly(t, a)

	got := dump(t, db, "items")
	if strings.Join(got, ",") != "1|one local|1.50,2|two foreign|2.50" {
		t.Errorf("rows after the echo: %v (the echo must not rewrite the row)", got)
	}
	st := a.Status()
	if st.EchoesSkipped != 1 || st.AppliedForeign != foreign+1 {
		t.Errorf("echoes_skipped=%d applied_foreign=%d (was %d); want 1 echo and 1 foreign change", st.EchoesSkipped, st.AppliedForeign, foreign)
	}
	appExec(t, db, `UPDATE items SET name = 'one next' WHERE id = 1`)
	rows := readOutboxRows(t, db)
	if len(rows) != 1 || rows[0].baseVersion != v {
		t.Errorf("next write's base version = %+v; want the echo's version %d", rows, v)
	}
}

func TestHLC_MonotonicAcrossReopenAndPulls(t *testing.T) {
	h := newFakeHub(t, itemsTable())
	h.commit(0, ins(1, "one"))
	path := t.TempDir() + "/edge.db"
	cfg := testConfig(t, h.url(), path)
	a := openAgent(t, cfg)
	pullOnly(t, a)
	if err := a.InitSync(context.Background(), "items"); err != nil {
		t.Fatal(err)
	}
	db := reader(t, path)
	appExec(t, db, `UPDATE items SET name = 'a' WHERE id = 1`)
	pushNow(t, a)
	first := mustHLC(t, h.pushed()[0].Changes[0].HLC)

	// A commit an hour ahead of the local clock: the next local stamp is after it.
	future := time.Now().Add(time.Hour).UnixMicro()
	h.commitFrom("", future, upd(1, "hub"))
	pullOnly(t, a)
	appExec(t, db, `UPDATE items SET name = 'b' WHERE id = 1`)
	pushNow(t, a)
	second := mustHLC(t, h.pushed()[1].Changes[0].HLC)
	if second.Compare(first) <= 0 || second.Wall < future {
		t.Errorf("after pulling ts %d the stamp is %v (first %v); want it past the pulled timestamp", future, second, first)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, with the wall clock still an hour behind, the clock does not go back.
	b := openAgent(t, cfg)
	appExec(t, db, `UPDATE items SET name = 'c' WHERE id = 1`)
	pushNow(t, b)
	third := mustHLC(t, h.pushed()[2].Changes[0].HLC)
	if third.Compare(second) <= 0 {
		t.Errorf("after reopening the stamp %v is not after %v", third, second)
	}
}

func mustHLC(t testing.TB, s string) syncproto.HLC {
	t.Helper()
	h, err := syncproto.ParseHLC(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHLC_Stamp(t *testing.T) {
	c := &clock{last: syncproto.HLC{Node: "e"}}
	a := c.stamp(100)
	b := c.stamp(100)
	d := c.stamp(50) // the wall clock went back
	c.observe(1000)
	e := c.stamp(200)
	for i, p := range [][2]syncproto.HLC{{a, b}, {b, d}, {d, e}} {
		if p[1].Compare(p[0]) <= 0 {
			t.Errorf("stamp %d: %v is not after %v", i, p[1], p[0])
		}
	}
	if e.Wall != 1000 || e.Logical != 1 {
		t.Errorf("after observing 1000, stamp = %v", e)
	}
	c.last.Logical = ^uint16(0)
	if f := c.stamp(0); f.Wall != 1001 || f.Logical != 0 {
		t.Errorf("logical overflow: %v", f)
	}
}

func TestInitSync_SurvivesSchemaChange(t *testing.T) {
	h, a, db := syncedItems(t)
	tbl := itemsTable()
	tbl.Columns = append(tbl.Columns, cdc.Column{Name: "note", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true})
	h.setTables(tbl)
	h.commit(0, ins(20, "twenty"))
	pullOnly(t, a)
	appExec(t, db, `UPDATE items SET note = 'hello' WHERE id = 1`)
	rows := readOutboxRows(t, db)
	if len(rows) != 1 || !strings.Contains(rows[0].row.String, `"note":"hello"`) {
		t.Fatalf("after adding a column: %+v", rows)
	}
	// Dropping a column works although the triggers named it.
	tbl = itemsTable()
	h.setTables(tbl)
	h.commit(0, ins(21, "twenty-one"))
	pullOnly(t, a)
	appExec(t, db, `UPDATE items SET name = 'x' WHERE id = 2`)
	rows = readOutboxRows(t, db)
	if len(rows) != 2 || strings.Contains(rows[1].row.String, "note") {
		t.Fatalf("after dropping a column: %+v", rows)
	}
}

func TestInitSync_UnknownTable(t *testing.T) {
	_, a, _ := syncedItems(t)
	if err := a.InitSync(context.Background(), "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("InitSync of an unknown table: %v", err)
	}
}

func TestRebase_CompositeKeyWithTextAndBytes(t *testing.T) {
	pairs := cdc.Table{
		Name: "inv.pairs",
		Columns: []cdc.Column{
			{Name: "a", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT"},
			{Name: "b", SourceType: "bytea", Kind: cdc.KindBytes, SQLiteType: "BLOB"},
			{Name: "v", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER", Nullable: true},
		},
		PrimaryKey: []string{"a", "b"},
	}
	row := func(a string, b []byte, v int64) cdc.Row {
		return cdc.Row{{Name: "a", Value: cdc.Text(cdc.KindText, a)}, {Name: "b", Value: cdc.Bytes(b)}, {Name: "v", Value: cdc.Int(v)}}
	}
	h := newFakeHub(t, pairs)
	h.commit(0, cdc.Change{Table: "inv.pairs", Op: cdc.OpInsert, After: row("o'k, x", []byte{1, 0}, 1)},
		cdc.Change{Table: "inv.pairs", Op: cdc.OpInsert, After: row("plain", []byte{2}, 1)})
	a, path := newAgent(t, h)
	pullOnly(t, a)
	v2 := h.commit(0, cdc.Change{Table: "inv.pairs", Op: cdc.OpUpdate, After: row("o'k, x", []byte{1, 0}, 2)})
	pullOnly(t, a)
	if err := a.InitSync(context.Background(), "inv_pairs"); err != nil {
		t.Fatal(err)
	}
	db := reader(t, path)
	appExec(t, db, `UPDATE inv_pairs SET v = 100 WHERE a = ? AND b = ?`, "o'k, x", []byte{1, 0})
	rows := readOutboxRows(t, db)
	if len(rows) != 1 || rows[0].baseVersion != v2 {
		t.Fatalf("outbox %+v; want one entry based on version %d", rows, v2)
	}
	h.commit(0, cdc.Change{Table: "inv.pairs", Op: cdc.OpUpdate, After: row("o'k, x", []byte{1, 0}, 3)},
		cdc.Change{Table: "inv.pairs", Op: cdc.OpUpdate, After: row("plain", []byte{2}, 3)})
	pullOnly(t, a)
	var v1, vp int64
	if err := db.QueryRow(`SELECT (SELECT v FROM inv_pairs WHERE a = 'o''k, x'), (SELECT v FROM inv_pairs WHERE a = 'plain')`).Scan(&v1, &vp); err != nil {
		t.Fatal(err)
	}
	if v1 != 100 || vp != 3 {
		t.Errorf("after the pull v = %d (want the local 100) and %d (want the hub's 3)", v1, vp)
	}
	pushNow(t, a)
	c := h.pushed()[0].Changes[0]
	jsonEq(t, "key", c.Key, `{"a":"o'k, x","b":"AQA="}`)
	jsonEq(t, "row", c.Row, `{"a":"o'k, x","b":"AQA=","v":100}`)
	jsonEq(t, "base", c.Base, `{"a":"o'k, x","b":"AQA=","v":2}`)
}
