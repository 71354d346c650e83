package edge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
)

func TestAgent_ApplyOps(t *testing.T) {
	h := newFakeHub(t, itemsTable())
	a, _ := newAgent(t, h)
	h.commit(0, ins(1, "one"), ins(2, "two"), ins(3, "three"))
	if n := syncNow(t, a); n != 3 {
		t.Fatalf("applied %d changes, want 3", n)
	}
	want := []string{"1|one|1.50", "2|two|2.50", "3|three|3.50"}
	if got := dump(t, a.DB(), "items"); !slices.Equal(got, want) {
		t.Fatalf("after inserts: %v, want %v", got, want)
	}

	keyChange := cdc.Change{Table: "public.items", Op: cdc.OpUpdate,
		Before: cdc.Row{{Name: "id", Value: cdc.Int(3)}},
		After:  itemRow(30, "thirty")}
	h.commit(0, upd(1, "uno"), del(2), keyChange)
	syncNow(t, a)
	want = []string{"1|uno|1.50", "30|thirty|30.50"}
	if got := dump(t, a.DB(), "items"); !slices.Equal(got, want) {
		t.Fatalf("after update, delete, key change: %v, want %v", got, want)
	}

	h.commit(0, cdc.Change{Table: "public.items", Op: cdc.OpTruncate}, ins(7, "seven"))
	syncNow(t, a)
	want = []string{"7|seven|7.50"}
	if got := dump(t, a.DB(), "items"); !slices.Equal(got, want) {
		t.Fatalf("after truncate and insert: %v, want %v", got, want)
	}
	st := a.Status()
	if st.Watermark != 3 || st.HeadSeen != 3 || st.SchemaVersion != 1 || st.Applied != 8 || st.LastError != "" {
		t.Fatalf("status = %+v; want watermark 3, head 3, schema 1, 8 applied, no error", st)
	}
}

func kindsTable() cdc.Table {
	col := func(name string, k cdc.Kind) cdc.Column {
		return cdc.Column{Name: name, SourceType: k.String(), Kind: k, SQLiteType: k.SQLiteType(), Nullable: true}
	}
	return cdc.Table{
		Name: "app.kinds",
		Columns: []cdc.Column{
			col("id", cdc.KindInt), col("b", cdc.KindBool), col("f", cdc.KindFloat), col("dec", cdc.KindDecimal),
			col("txt", cdc.KindText), col("raw", cdc.KindBytes), col("u", cdc.KindUUID), col("j", cdc.KindJSON),
			col("d", cdc.KindDate), col("tm", cdc.KindTime), col("ts", cdc.KindTimestamp), col("tz", cdc.KindTimestampTZ),
			col("iv", cdc.KindInterval), col("arr", cdc.KindArray), col("en", cdc.KindEnum), col("n", cdc.KindText),
		},
		PrimaryKey: []string{"id"},
	}
}

func TestAgent_KindsRoundTrip(t *testing.T) {
	h := newFakeHub(t, kindsTable())
	a, _ := newAgent(t, h)
	row := func(id int64, b bool, f float64, dec, txt string, raw []byte) cdc.Row {
		return cdc.Row{
			{Name: "id", Value: cdc.Int(id)}, {Name: "b", Value: cdc.Bool(b)}, {Name: "f", Value: cdc.Float(f)},
			{Name: "dec", Value: cdc.Text(cdc.KindDecimal, dec)}, {Name: "txt", Value: cdc.Text(cdc.KindText, txt)},
			{Name: "raw", Value: cdc.Bytes(raw)}, {Name: "u", Value: cdc.Text(cdc.KindUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")},
			{Name: "j", Value: cdc.Text(cdc.KindJSON, `{"a":[1,2,{"b":"c\"d"}]}`)}, {Name: "d", Value: cdc.Text(cdc.KindDate, "2024-02-29")},
			{Name: "tm", Value: cdc.Text(cdc.KindTime, "23:59:59.999999")}, {Name: "ts", Value: cdc.Text(cdc.KindTimestamp, "2024-02-29T12:00:00.5")},
			{Name: "tz", Value: cdc.Text(cdc.KindTimestampTZ, "2024-02-29T11:00:00.123456Z")},
			{Name: "iv", Value: cdc.Text(cdc.KindInterval, "1 year 2 mons 3 days 04:05:06")},
			{Name: "arr", Value: cdc.Text(cdc.KindArray, `[1,null,3]`)}, {Name: "en", Value: cdc.Text(cdc.KindEnum, "shipped")},
			{Name: "n", Value: cdc.Null()},
		}
	}
	h.commit(0,
		cdc.Change{Table: "app.kinds", Op: cdc.OpInsert, After: row(math.MaxInt64, true, 1.5, "12345678901234567890.123456789000", "héllo wörld ✓ 😀 \"quoted\" \\ \n\ttab", []byte{0, 1, 2, 0, 255})},
		cdc.Change{Table: "app.kinds", Op: cdc.OpInsert, After: row(math.MinInt64, false, math.Inf(-1), "-0.000000000000000001", "", []byte{})},
		cdc.Change{Table: "app.kinds", Op: cdc.OpInsert, After: row(0, false, -2.5e-300, "0", "\u2028\u0000nul", []byte("\x00"))},
	)
	syncNow(t, a)

	type got struct {
		id               int64
		b                int64
		f                float64
		dec, txt         string
		raw              []byte
		u, j, d, tm, ts  string
		tz, iv, arr, en  string
		n                any
		tid, tdec, traw  string
		tb, tf, tn, ttxt string
	}
	rows, err := a.DB().Query(`SELECT id, b, f, dec, txt, raw, u, j, d, tm, ts, tz, iv, arr, en, n,
		typeof(id), typeof(dec), typeof(raw), typeof(b), typeof(f), typeof(n), typeof(txt) FROM app_kinds ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var all []got
	for rows.Next() {
		var g got
		if err := rows.Scan(&g.id, &g.b, &g.f, &g.dec, &g.txt, &g.raw, &g.u, &g.j, &g.d, &g.tm, &g.ts, &g.tz, &g.iv, &g.arr, &g.en, &g.n,
			&g.tid, &g.tdec, &g.traw, &g.tb, &g.tf, &g.tn, &g.ttxt); err != nil {
			t.Fatal(err)
		}
		all = append(all, g)
	}
	if len(all) != 3 {
		t.Fatalf("got %d rows, want 3", len(all))
	}
	lo, zero, hi := all[0], all[1], all[2]
	if hi.id != math.MaxInt64 || lo.id != math.MinInt64 || zero.id != 0 {
		t.Errorf("ids = %d, %d, %d; want MinInt64, 0, MaxInt64", lo.id, zero.id, hi.id)
	}
	for _, g := range all {
		if g.tid != "integer" || g.tdec != "text" || g.traw != "blob" || g.tb != "integer" || g.tf != "real" || g.tn != "null" || g.ttxt != "text" {
			t.Errorf("row %d storage classes id=%s dec=%s raw=%s b=%s f=%s n=%s txt=%s", g.id, g.tid, g.tdec, g.traw, g.tb, g.tf, g.tn, g.ttxt)
		}
		if g.u != "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" || g.j != `{"a":[1,2,{"b":"c\"d"}]}` || g.d != "2024-02-29" ||
			g.tm != "23:59:59.999999" || g.ts != "2024-02-29T12:00:00.5" || g.tz != "2024-02-29T11:00:00.123456Z" ||
			g.iv != "1 year 2 mons 3 days 04:05:06" || g.arr != `[1,null,3]` || g.en != "shipped" || g.n != nil {
			t.Errorf("row %d text kinds: %+v", g.id, g)
		}
	}
	if hi.b != 1 || lo.b != 0 || hi.f != 1.5 || !math.IsInf(lo.f, -1) || zero.f != -2.5e-300 {
		t.Errorf("bool/float: %d %d %v %v %v", hi.b, lo.b, hi.f, lo.f, zero.f)
	}
	if hi.dec != "12345678901234567890.123456789000" || lo.dec != "-0.000000000000000001" {
		t.Errorf("decimals: %q %q", hi.dec, lo.dec)
	}
	if hi.txt != "héllo wörld ✓ 😀 \"quoted\" \\ \n\ttab" || zero.txt != "\u2028\u0000nul" || lo.txt != "" {
		t.Errorf("texts: %q %q %q", hi.txt, zero.txt, lo.txt)
	}
	if string(hi.raw) != "\x00\x01\x02\x00\xff" || len(lo.raw) != 0 || string(zero.raw) != "\x00" {
		t.Errorf("bytes: %q %q %q", hi.raw, lo.raw, zero.raw)
	}
}

// TestAgent_MultiPageTransactionInvisible checks that a source transaction split over
// several pages becomes visible to other connections only when its last page is applied.
func TestAgent_MultiPageTransactionInvisible(t *testing.T) {
	h := newFakeHub(t, itemsTable())
	h.commit(0, inserts(1, 10)...)
	a, path := newAgent(t, h, func(c *Config) { c.PageLimit = 50 })
	syncNow(t, a)
	h.commit(50, inserts(11, 260)...)
	r := reader(t, path)

	var checks atomic.Int64
	h.beforePage = func(req fakeRequest) {
		if req.since != 1 || req.cursor == "" {
			return
		}
		// The agent holds a write transaction with part of version 2 applied.
		if n, err := tryCount(r, "items"); err != nil || n != 10 {
			t.Errorf("page %d (cursor %s): a reader sees %d rows (%v), want the 10 of version 1 only", req.n, req.cursor, n, err)
		}
		checks.Add(1)
	}
	if n := syncNow(t, a); n != 250 {
		t.Fatalf("applied %d, want 250", n)
	}
	if checks.Load() < 4 {
		t.Fatalf("only %d pages continued a transaction; the test needs at least 4", checks.Load())
	}
	if n := count(t, r, "items"); n != 260 {
		t.Fatalf("after the last page a reader sees %d rows, want 260", n)
	}
}

// TestAgent_CrashMidTransactionResumes cancels a pull between two pages of one source
// transaction, then reopens the database: nothing of the transaction is visible, and
// the next sync resumes from the committed watermark and ends equal to the hub.
func TestAgent_CrashMidTransactionResumes(t *testing.T) {
	h := newFakeHub(t, itemsTable())
	h.commit(0, inserts(1, 10)...)
	path := t.TempDir() + "/edge.db"
	cfg := testConfig(t, h.url(), path)
	cfg.PageLimit = 40
	a, err := Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.commit(40, inserts(11, 200)...)
	h.commit(0, del(5), upd(6, "six"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.beforePage = func(req fakeRequest) {
		if req.cursor != "" && strings.HasSuffix(req.cursor, ".2") {
			cancel()
		}
	}
	if _, err := a.SyncNow(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("SyncNow with a cancel mid-transaction: %v, want context.Canceled", err)
	}
	if st := a.Status(); st.Watermark != 1 {
		t.Fatalf("watermark after the cancel = %d, want 1", st.Watermark)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	r := reader(t, path)
	if n := count(t, r, "items"); n != 10 {
		t.Fatalf("after the cancel a reader sees %d rows, want the 10 of version 1", n)
	}

	h.beforePage = nil
	before := len(h.seen())
	b := openAgent(t, cfg)
	if st := b.Status(); st.Watermark != 1 {
		t.Fatalf("reopened watermark = %d, want 1", st.Watermark)
	}
	syncNow(t, b)
	if first := h.seen()[before]; first.since != 1 || first.cursor != "" {
		t.Fatalf("first request after restart: since %d cursor %q; want since 1 without cursor", first.since, first.cursor)
	}
	want := []string{}
	for i := 1; i <= 200; i++ {
		switch i {
		case 5:
			continue
		case 6:
			want = append(want, "6|six|6.50")
		default:
			want = append(want, fmt.Sprintf("%d|item %d|%d.50", i, i, i))
		}
	}
	got := dump(t, r, "items")
	slices.SortFunc(want, func(a, b string) int { return cmpLead(a, b) })
	if !slices.Equal(got, want) {
		t.Fatalf("after resume: %d rows, want %d; first difference: %v", len(got), len(want), firstDiff(got, want))
	}
	if st := b.Status(); st.Watermark != 3 {
		t.Fatalf("final watermark %d, want 3", st.Watermark)
	}
}

func cmpLead(a, b string) int {
	var x, y int
	fmt.Sscanf(a, "%d", &x)
	fmt.Sscanf(b, "%d", &y)
	return x - y
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("row %d: got %q want %q", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

// TestAgent_RebootstrapOn410 compacts the hub's log past the edge's watermark: the
// edge must re-bootstrap to exactly the hub's state, and a reader must see the old
// rows, never an empty or half-filled table, until the refill commits.
func TestAgent_RebootstrapOn410(t *testing.T) {
	h := newFakeHub(t, itemsTable())
	h.commit(0, inserts(1, 5)...)
	h.commit(0, inserts(6, 8)...)
	a, path := newAgent(t, h, func(c *Config) { c.PageLimit = 3 })
	syncNow(t, a)
	r := reader(t, path)
	if n := count(t, r, "items"); n != 8 {
		t.Fatalf("before compaction: %d rows, want 8", n)
	}

	h.replaceLog(6, func(h *fakeHub) {
		h.commit(0)
		h.commit(0)
		h.commit(0)
		h.commit(0)
		h.commit(2, ins(1, "item 1"), ins(3, "item 3"), ins(4, "four"), ins(9, "item 9"), ins(10, "item 10"))
		h.commit(0, ins(11, "item 11"))
		h.commit(0, del(10))
	})
	var refillChecks atomic.Int64
	h.beforePage = func(req fakeRequest) {
		if req.since == 0 && req.cursor != "" {
			if n, err := tryCount(r, "items"); err != nil || n != 8 {
				t.Errorf("during the refill a reader sees %d rows (%v), want the old 8", n, err)
			}
			refillChecks.Add(1)
		}
	}
	h.commit(0, ins(12, "item 12"))
	syncNow(t, a)

	want := []string{"1|item 1|1.50", "3|item 3|3.50", "4|four|4.50", "9|item 9|9.50", "11|item 11|11.50", "12|item 12|12.50"}
	if got := dump(t, r, "items"); !slices.Equal(got, want) {
		t.Fatalf("after re-bootstrap: %v, want %v", got, want)
	}
	if refillChecks.Load() == 0 {
		t.Fatal("the refill never continued a transaction across pages; the visibility check did not run")
	}
	st := a.Status()
	if st.Rebootstraps != 1 || st.Watermark != h.head() {
		t.Fatalf("status %+v; want 1 re-bootstrap and watermark %d", st, h.head())
	}
}

func TestAgent_RebootstrapWhenAhead(t *testing.T) {
	h := newFakeHub(t, itemsTable())
	for i := int64(1); i <= 5; i++ {
		h.commit(0, ins(i, "old"))
	}
	a, _ := newAgent(t, h)
	syncNow(t, a)
	h.replaceLog(0, func(h *fakeHub) { h.commit(0, ins(100, "new log")) })
	syncNow(t, a)
	if got, want := dump(t, a.DB(), "items"), []string{"100|new log|100.50"}; !slices.Equal(got, want) {
		t.Fatalf("after the hub's log was replaced: %v, want %v", got, want)
	}
	if st := a.Status(); st.Watermark != 1 || st.Rebootstraps != 1 {
		t.Fatalf("status %+v; want watermark 1 after one re-bootstrap", st)
	}
}

func TestAgent_SchemaChangeWithoutRebootstrap(t *testing.T) {
	h := newFakeHub(t, itemsTable())
	h.commit(0, ins(1, "one"))
	a, _ := newAgent(t, h)
	syncNow(t, a)

	v2 := itemsTable()
	v2.Columns = append(v2.Columns, cdc.Column{Name: "stock", SourceType: "integer", Kind: cdc.KindInt, SQLiteType: "INTEGER", Nullable: true})
	v2.Columns = slices.DeleteFunc(v2.Columns, func(c cdc.Column) bool { return c.Name == "price" })
	other := cdc.Table{Name: "public.notes", Columns: []cdc.Column{{Name: "k", Kind: cdc.KindText, SQLiteType: "TEXT"}}, PrimaryKey: []string{"k"}}
	h.setTables(v2, other)
	h.commit(0,
		cdc.Change{Table: "public.items", Op: cdc.OpInsert, After: cdc.Row{{Name: "id", Value: cdc.Int(2)}, {Name: "name", Value: cdc.Text(cdc.KindText, "two")}, {Name: "stock", Value: cdc.Int(7)}}},
		cdc.Change{Table: "public.notes", Op: cdc.OpInsert, After: cdc.Row{{Name: "k", Value: cdc.Text(cdc.KindText, "hello")}}},
	)
	before := len(h.seen())
	syncNow(t, a)
	for _, req := range h.seen()[before:] {
		if req.since == 0 {
			t.Fatalf("the schema change caused a pull from since=0 (re-bootstrap)")
		}
	}
	if got, want := dump(t, a.DB(), "items"), []string{"1|one|<nil>", "2|two|7"}; !slices.Equal(got, want) {
		t.Fatalf("items after adding stock and dropping price: %v, want %v", got, want)
	}
	if got := dump(t, a.DB(), "notes"); !slices.Equal(got, []string{"hello"}) {
		t.Fatalf("new table notes: %v", got)
	}
	if st := a.Status(); st.SchemaVersion != 2 || st.Rebootstraps != 0 {
		t.Fatalf("status %+v; want schema 2 and no re-bootstrap", st)
	}
	// A change written with the old schema still carries the dropped column: ignored.
	h.commit(0, ins(3, "three"))
	syncNow(t, a)
	if got := dump(t, a.DB(), "items"); len(got) != 3 || got[2] != "3|three|<nil>" {
		t.Fatalf("change with a dropped column: %v", got)
	}
}

func TestAgent_PrimaryKeyChangeRebuilds(t *testing.T) {
	h := newFakeHub(t, itemsTable())
	h.commit(0, ins(1, "one"), ins(2, "two"))
	a, _ := newAgent(t, h)
	syncNow(t, a)
	v2 := itemsTable()
	v2.PrimaryKey = []string{"name"}
	h.setTables(v2)
	h.replaceLog(4, func(h *fakeHub) {
		h.commit(0, ins(1, "one"), ins(2, "two"))
		h.commit(0)
		h.commit(0, ins(3, "two"))
	})
	syncNow(t, a)
	if got, want := dump(t, a.DB(), "items"), []string{"1|one|1.50", "3|two|3.50"}; !slices.Equal(got, want) {
		t.Fatalf("after a key change: %v, want %v", got, want)
	}
	if st := a.Status(); st.Rebootstraps == 0 {
		t.Fatal("a changed primary key did not re-bootstrap")
	}
}

func TestAgent_HostileIdentifiersRefused(t *testing.T) {
	cases := []struct {
		name  string
		table cdc.Table
	}{
		{"table", cdc.Table{Name: `public.x"; DROP TABLE t; --`, Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt}}, PrimaryKey: []string{"id"}}},
		{"column", cdc.Table{Name: "public.ok", Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt}, {Name: `a") ; DELETE FROM _synchub_meta; --`, Kind: cdc.KindText}}, PrimaryKey: []string{"id"}}},
		{"schema", cdc.Table{Name: `ev"il.t`, Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt}}, PrimaryKey: []string{"id"}}},
		{"type", cdc.Table{Name: "public.ok", Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt, SQLiteType: "INTEGER); DROP TABLE x; --"}}, PrimaryKey: []string{"id"}}},
		{"reserved", cdc.Table{Name: "public._synchub_meta", Columns: []cdc.Column{{Name: "k", Kind: cdc.KindText}}, PrimaryKey: []string{"k"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHub(t, itemsTable(), tc.table)
			h.commit(0, ins(1, "one"))
			a, _ := newAgent(t, h)
			_, err := a.SyncNow(context.Background())
			if err == nil {
				t.Fatal("SyncNow accepted a schema with a hostile identifier")
			}
			if !strings.Contains(err.Error(), "hub schema version 1") {
				t.Fatalf("error %q does not say which schema was refused", err)
			}
			var names []string
			rows, qerr := a.DB().Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
			if qerr != nil {
				t.Fatal(qerr)
			}
			for rows.Next() {
				var n string
				_ = rows.Scan(&n)
				if !strings.HasPrefix(n, "_synchub_") && !strings.HasPrefix(n, "sqlite_") {
					names = append(names, n)
				}
			}
			rows.Close()
			if len(names) > 0 {
				t.Fatalf("tables after a refused schema: %v; want only the agent's own", names)
			}
			t.Logf("refused with: %v", err)
		})
	}
}

func TestAgent_TablesFilter(t *testing.T) {
	other := cdc.Table{Name: "sales.items", Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt, SQLiteType: "INTEGER"}}, PrimaryKey: []string{"id"}}
	h := newFakeHub(t, itemsTable(), other)
	h.commit(0, ins(1, "one"), cdc.Change{Table: "sales.items", Op: cdc.OpInsert, After: cdc.Row{{Name: "id", Value: cdc.Int(9)}}})
	path := t.TempDir() + "/edge.db"
	cfg := testConfig(t, h.url(), path)
	cfg.Tables = []string{"sales.items"}
	a := openAgent(t, cfg)
	if n := syncNow(t, a); n != 1 {
		t.Fatalf("applied %d changes, want only the 1 of sales.items", n)
	}
	if got := dump(t, a.DB(), "sales_items"); !slices.Equal(got, []string{"9"}) {
		t.Fatalf("sales_items: %v", got)
	}
	var n int
	_ = a.DB().QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'items'`).Scan(&n)
	if n != 0 {
		t.Fatal("a table outside the filter was created")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	cfg.Tables = nil
	b := openAgent(t, cfg)
	syncNow(t, b)
	if got := dump(t, b.DB(), "items"); !slices.Equal(got, []string{"1|one|1.50"}) {
		t.Fatalf("after widening the filter, items = %v; want the row re-bootstrapped in", got)
	}
	if got := dump(t, b.DB(), "sales_items"); !slices.Equal(got, []string{"9"}) {
		t.Fatalf("sales_items after widening: %v", got)
	}
}

func TestAgent_OpenIsOffline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	path := t.TempDir() + "/edge.db"
	a := openAgent(t, testConfig(t, "http://"+addr, path))
	if _, err := a.DB().Exec(`CREATE TABLE app_local (x)`); err != nil {
		t.Fatalf("local database unusable while the hub is down: %v", err)
	}
	_, err = a.SyncNow(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("SyncNow with the hub down: %v; want connection refused", err)
	}
	if st := a.Status(); st.LastError == "" {
		t.Fatal("status has no last error after a failed pull")
	}
}

// TestAgent_RunRecoversFromHubOutage runs the pull loop while the hub first refuses
// connections, then answers 503, then recovers.
func TestAgent_RunRecoversFromHubOutage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	h := &fakeHub{t: t, schema: cdc.Schema{Version: 1, Tables: []cdc.Table{itemsTable()}}, changed: make(chan struct{})}
	var unavailable atomic.Int64
	unavailable.Store(3)
	h.fail = func(r *http.Request) (int, string) {
		if unavailable.Add(-1) >= 0 {
			return http.StatusServiceUnavailable, `{"error":"not_ready","message":"source is connecting"}`
		}
		return 0, ""
	}
	h.commit(0, inserts(1, 20)...)

	cfg := testConfig(t, "http://"+addr, t.TempDir()+"/edge.db")
	cfg.Wait = 200 * time.Millisecond
	a := openAgent(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	waitFor(t, 10*time.Second, "a connection-refused error", func() bool {
		return strings.Contains(a.Status().LastError, "connection refused")
	})
	var srv *httptest.Server
	waitFor(t, 10*time.Second, "the hub to listen again", func() bool {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		srv = httptest.NewUnstartedServer(h)
		srv.Listener.Close()
		srv.Listener = l
		srv.Start()
		return true
	})
	defer srv.Close()
	waitFor(t, 10*time.Second, "the edge to catch up after the outage", func() bool {
		return a.Status().Watermark == 1
	})
	if unavailable.Load() >= 0 {
		t.Fatal("the 503 phase was skipped")
	}
	if n := count(t, a.DB(), "items"); n != 20 {
		t.Fatalf("after recovery: %d rows, want 20", n)
	}
	h.commit(0, ins(21, "live"))
	waitFor(t, 10*time.Second, "a live change through the long-poll", func() bool { return a.Status().Watermark == 2 })
	if st := a.Status(); st.LastError != "" {
		t.Fatalf("last error still set after recovery: %q", st.LastError)
	}
}

func TestAgent_CloseStopsRun(t *testing.T) {
	h := newFakeHub(t, itemsTable())
	h.commit(0, ins(1, "one"))
	cfg := testConfig(t, h.url(), t.TempDir()+"/edge.db")
	cfg.Wait = 60 * time.Second
	cfg.RequestTimeout = 60 * time.Second
	a := openAgent(t, cfg)
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	waitFor(t, 10*time.Second, "the edge to long-poll", func() bool {
		return a.Status().Watermark == 1 && a.Status().State == StateWaiting
	})
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Run after Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close took %v during a long-poll", took)
	}
	if _, err := a.SyncNow(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("SyncNow after Close: %v, want ErrClosed", err)
	}
}

func TestAgent_SendsGzipAndEdgeID(t *testing.T) {
	h := newFakeHub(t, itemsTable())
	var gotID atomic.Value
	h.fail = func(r *http.Request) (int, string) {
		gotID.Store(r.Header.Get("X-Synchub-Edge"))
		return 0, ""
	}
	h.commit(0, ins(1, "x"))
	a, _ := newAgent(t, h)
	syncNow(t, a)
	reqs := h.seen()
	if len(reqs) == 0 || !reqs[0].gzip {
		t.Fatal("the agent did not send Accept-Encoding: gzip")
	}
	if gotID.Load() != "test-edge" {
		t.Fatalf("edge id header = %v", gotID.Load())
	}
}

func TestLocalTableName(t *testing.T) {
	for in, want := range map[string]string{"public.orders": "orders", "orders": "orders", "sales.orders": "sales_orders", "dbo.Order Lines": "dbo_Order Lines"} {
		if got := LocalTableName(in); got != want {
			t.Errorf("LocalTableName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSelectTables_Collision(t *testing.T) {
	s := &cdc.Schema{Version: 4, Tables: []cdc.Table{
		{Name: "public.sales_orders", Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt}}, PrimaryKey: []string{"id"}},
		{Name: "sales.orders", Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt}}, PrimaryKey: []string{"id"}},
	}}
	_, _, err := selectTables(s, nil)
	if err == nil || !strings.Contains(err.Error(), "both map to the local table") {
		t.Fatalf("collision: %v", err)
	}
	sel, unmatched, err := selectTables(s, []string{"sales.orders", "nope"})
	if err != nil || len(sel) != 1 || sel[0].local != "sales_orders" || !slices.Equal(unmatched, []string{"nope"}) {
		t.Fatalf("filtered: %v %v %v", sel, unmatched, err)
	}
}

func TestConfig_Validate(t *testing.T) {
	good := DefaultConfig()
	good.HubURL, good.DBPath = "http://127.0.0.1:8080", "edge.db"
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := map[string]func(*Config){
		"no hub":        func(c *Config) { c.HubURL = "" },
		"ftp hub":       func(c *Config) { c.HubURL = "ftp://x" },
		"hub query":     func(c *Config) { c.HubURL = "http://x/?a=1" },
		"no db":         func(c *Config) { c.DBPath = "" },
		"no edge id":    func(c *Config) { c.EdgeID = "" },
		"bad edge id":   func(c *Config) { c.EdgeID = "a b" },
		"limit 0":       func(c *Config) { c.PageLimit = 0 },
		"limit big":     func(c *Config) { c.PageLimit = 10001 },
		"wait negative": func(c *Config) { c.Wait = -1 },
		"wait big":      func(c *Config) { c.Wait = 3 * time.Minute },
		"timeout":       func(c *Config) { c.RequestTimeout = 0 },
		"backoff":       func(c *Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond },
		"empty table":   func(c *Config) { c.Tables = []string{" "} },
	}
	for name, mutate := range bad {
		c := good
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
		if _, err := Open(context.Background(), c, nil); err == nil {
			t.Errorf("%s: Open accepted it", name)
		}
	}
}
