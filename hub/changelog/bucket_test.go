package changelog

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/rules"
	"github.com/synchub/synchub/hub/syncproto"
)

var ordersTable = cdc.Table{
	Name: "shop.orders",
	Columns: []cdc.Column{
		{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "store_id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER", Nullable: true},
		{Name: "total", SourceType: "numeric", Kind: cdc.KindDecimal, SQLiteType: "TEXT", Nullable: true},
		{Name: "secret", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

var productsTable = cdc.Table{
	Name: "shop.products",
	Columns: []cdc.Column{
		{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "name", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT"},
	},
	PrimaryKey: []string{"id"},
}

func shopRules(t testing.TB) *rules.Set {
	t.Helper()
	set, err := rules.Compile(rules.Config{Groups: map[string]rules.GroupConfig{
		"stores": {Tables: map[string]rules.TableConfig{
			"shop.orders":   {Filter: "store_id = {edge.store_id}", Columns: []string{"id", "store_id", "total"}},
			"shop.products": {Filter: "all"},
		}},
		"regions": {Tables: map[string]rules.TableConfig{
			"shop.orders": {Filter: "store_id IN {edge.stores}"},
		}},
	}})
	if err != nil {
		t.Fatalf("compile rules: %v", err)
	}
	return set
}

func orderRow(id, store int64, total string) cdc.Row {
	return cdc.Row{
		{Name: "id", Value: cdc.Int(id)},
		{Name: "store_id", Value: cdc.Int(store)},
		{Name: "total", Value: cdc.Text(cdc.KindDecimal, total)},
		{Name: "secret", Value: cdc.Text(cdc.KindText, "s3cret")},
	}
}

func oIns(id, store int64, total string) cdc.Change {
	return cdc.Change{Table: ordersTable.Name, Op: cdc.OpInsert, After: orderRow(id, store, total)}
}

// oUpd is an update whose before image holds only the key (PostgreSQL's default
// replica identity), so the old bucket comes from the log.
func oUpd(id, store int64, total string) cdc.Change {
	return cdc.Change{Table: ordersTable.Name, Op: cdc.OpUpdate, Before: cdc.Row{{Name: "id", Value: cdc.Int(id)}}, After: orderRow(id, store, total)}
}

func oDel(id int64) cdc.Change {
	return cdc.Change{Table: ordersTable.Name, Op: cdc.OpDelete, Before: cdc.Row{{Name: "id", Value: cdc.Int(id)}}}
}

func pIns(id int64, name string) cdc.Change {
	return cdc.Change{Table: productsTable.Name, Op: cdc.OpInsert, After: cdc.Row{{Name: "id", Value: cdc.Int(id)}, {Name: "name", Value: cdc.Text(cdc.KindText, name)}}}
}

func openShop(t testing.TB, set *rules.Set, mutate func(*SQLiteConfig)) (*SQLiteStore, SQLiteConfig) {
	t.Helper()
	s, cfg := openTest(t, mutate)
	if err := s.SetRules(context.Background(), set); err != nil {
		t.Fatalf("set rules: %v", err)
	}
	return s, cfg
}

func appendShop(t testing.TB, s Store, txs ...*cdc.Tx) State {
	t.Helper()
	b := begin(t, s)
	if err := b.SetTables([]cdc.Table{ordersTable, productsTable}); err != nil {
		t.Fatalf("set tables: %v", err)
	}
	mustAppend(t, b, txs...)
	return mustCommit(t, b)
}

// scopedPull pulls the buckets from since until caught up, following cursors.
func scopedPull(t testing.TB, s Store, since int64, limit int, buckets ...string) pulled {
	t.Helper()
	var out pulled
	var cur syncproto.Cursor
	for range 100000 {
		p, dp := readPage(t, s, PageRequest{Since: since, Cursor: cur, Limit: limit, Scoped: true, Buckets: buckets})
		out.pages = append(out.pages, dp)
		for _, e := range dp.Entries {
			if !e.Last || e.Seq != 0 {
				t.Fatalf("scoped entry of version %d is not whole (seq %d, last %v)", e.Version, e.Seq, e.Last)
			}
			out.changes = append(out.changes, e.Changes...)
		}
		if !p.Commit {
			cur = p.Cursor
			continue
		}
		cur = syncproto.Cursor{}
		if p.Changes == 0 {
			out.next = p.Next
			return out
		}
		since = p.Next
	}
	t.Fatal("pull did not finish")
	return out
}

// shopState applies wire changes to rows keyed by table and key text.
func shopState(t testing.TB, changes []syncproto.WireChange) map[string]string {
	t.Helper()
	tbls := map[string]*cdc.Table{ordersTable.Name: &ordersTable, productsTable.Name: &productsTable}
	state := map[string]string{}
	for _, c := range changes {
		tbl := tbls[c.Table]
		if tbl == nil {
			t.Fatalf("change for unknown table %s", c.Table)
		}
		k := func(raw json.RawMessage) string {
			return c.Table + " " + syncproto.KeyText(tbl, decodeRow(t, tbl, raw))
		}
		switch c.Op {
		case "i", "u":
			if c.Key != nil {
				delete(state, k(c.Key))
			}
			state[k(c.Row)] = string(c.Row)
		case "d":
			delete(state, k(c.Key))
		case "t":
			for key := range state {
				if strings.HasPrefix(key, c.Table+" ") {
					delete(state, key)
				}
			}
		default:
			t.Fatalf("unknown op %q", c.Op)
		}
	}
	return state
}

func ops(changes []syncproto.WireChange) string {
	var parts []string
	for _, c := range changes {
		parts = append(parts, c.Op+":"+string(c.Row)+string(c.Key))
	}
	return strings.Join(parts, " ")
}

func TestBuckets_MovesAreDeleteAndInsert(t *testing.T) {
	s, _ := openShop(t, shopRules(t), nil)
	appendShop(t, s,
		tx(1, oIns(1, 7, "1.00"), oIns(2, 8, "2.00"), pIns(1, "tea")),
		tx(2, oUpd(1, 8, "1.10")), // moves from store 7 to store 8
		tx(3, oUpd(2, 8, "2.20")),
		tx(4, oDel(1)),
	)
	p7 := scopedPull(t, s, 0, 100, "stores/shop.orders/7")
	if got, want := ops(p7.changes), `i:{"id":1,"store_id":7,"total":"1.00"} d:{"id":1}`; got != want {
		t.Fatalf("store 7 received %s\nwant %s", got, want)
	}
	if p7.next != 4 {
		t.Fatalf("store 7 watermark %d, want 4 (versions with nothing for it still move it)", p7.next)
	}
	if len(p7.pages[0].Entries) != 2 || p7.pages[0].Entries[0].Version != 1 || p7.pages[0].Entries[1].Version != 2 {
		t.Fatalf("store 7 entries: %+v", p7.pages[0].Entries)
	}
	p8 := scopedPull(t, s, 0, 100, "stores/shop.orders/8")
	want8 := `i:{"id":2,"store_id":8,"total":"2.00"} i:{"id":1,"store_id":8,"total":"1.10"} u:{"id":2,"store_id":8,"total":"2.20"} d:{"id":1}`
	if got := ops(p8.changes); got != want8 {
		t.Fatalf("store 8 received %s\nwant %s", got, want8)
	}
	for _, c := range append(p7.changes, p8.changes...) {
		if strings.Contains(string(c.Row), "secret") {
			t.Fatalf("a column outside the allow-list was sent: %s", c.Row)
		}
	}
	// The regions group has no allow-list: its rows are whole.
	pr := scopedPull(t, s, 0, 100, "regions/shop.orders/7")
	if len(pr.changes) != 2 || !strings.Contains(string(pr.changes[0].Row), "s3cret") {
		t.Fatalf("regions group received %s", ops(pr.changes))
	}
	// The products bucket is the whole table for the group.
	pp := scopedPull(t, s, 0, 100, "stores/shop.products")
	if len(pp.changes) != 1 || pp.changes[0].Table != productsTable.Name {
		t.Fatalf("products bucket received %s", ops(pp.changes))
	}
	// No buckets: nothing, but the watermark reaches the head.
	pn := scopedPull(t, s, 0, 100)
	if len(pn.changes) != 0 || pn.next != 4 {
		t.Fatalf("no buckets: %d changes, next %d", len(pn.changes), pn.next)
	}
}

func TestBuckets_MoveBetweenTwoOfTheEdgesBuckets(t *testing.T) {
	s, _ := openShop(t, shopRules(t), nil)
	appendShop(t, s,
		tx(1, oIns(1, 7, "1.00")),
		tx(2, oIns(5, 8, "5.00"), oUpd(1, 8, "1.10"), oIns(6, 7, "6.00")),
	)
	p := scopedPull(t, s, 0, 100, "regions/shop.orders/7", "regions/shop.orders/8")
	e := p.pages[0].Entries
	if len(e) != 2 || len(e[1].Changes) != 4 {
		t.Fatalf("want 2 entries, the second with 4 changes; got %+v", e)
	}
	got := []string{}
	for _, c := range e[1].Changes {
		got = append(got, c.Op)
	}
	// Commit order, with the move's delete (old bucket) before its insert (new bucket).
	if strings.Join(got, ",") != "i,d,i,i" {
		t.Fatalf("version 2 ops %v, want i,d,i,i", got)
	}
	st := shopState(t, p.changes)
	if len(st) != 3 || !strings.Contains(st[`shop.orders [1]`], `"store_id":8`) {
		t.Fatalf("state after pull: %v", st)
	}
}

func TestBuckets_PagesKeepVersionsWhole(t *testing.T) {
	s, _ := openShop(t, shopRules(t), nil)
	var txs []*cdc.Tx
	for i := int64(1); i <= 40; i++ {
		txs = append(txs, tx(i, oIns(i, 7+i%2, "1.00"), oIns(100+i, 7+i%3, "2.00"), oUpd(i, 7+(i+1)%2, "1.50")))
	}
	appendShop(t, s, txs...)
	buckets := []string{"regions/shop.orders/7", "regions/shop.orders/8"}
	small := scopedPull(t, s, 0, 3, buckets...)
	big := scopedPull(t, s, 0, 1000, buckets...)
	if len(small.pages) < 10 {
		t.Fatalf("limit 3 served %d pages; want many", len(small.pages))
	}
	if ops(small.changes) != ops(big.changes) {
		t.Fatal("small pages received other changes than one big page")
	}
	if small.next != 40 || big.next != 40 {
		t.Fatalf("watermarks %d and %d, want 40", small.next, big.next)
	}
	st := shopState(t, big.changes)
	n := 0
	for i := int64(1); i <= 40; i++ {
		if s := 7 + i%3; s == 7 || s == 8 {
			n++
		}
	}
	if len(st) != 40+n {
		t.Fatalf("state has %d rows, want %d", len(st), 40+n)
	}
}

func TestBuckets_CompactionKeepsBucketsRight(t *testing.T) {
	s, _ := openShop(t, shopRules(t), nil)
	appendShop(t, s,
		tx(1, oIns(1, 7, "1.00"), oIns(2, 7, "2.00"), oIns(3, 8, "3.00")),
		tx(2, oUpd(1, 7, "1.10")),
		tx(3, oUpd(2, 8, "2.10")), // moves out of 7
		tx(4, oUpd(2, 8, "2.20")), // changes again, only in 8
		tx(5, oUpd(1, 7, "1.20")),
	)
	// What an edge of store 7 that saw version 1 has, and what it must end with.
	before := scopedPull(t, s, 0, 100, "stores/shop.orders/7")
	wantState := shopState(t, before.changes)
	if _, err := s.Compact(context.Background(), CompactOptions{Retention: 0, TombstoneRetention: 100 * 365 * 24 * time.Hour}); err != nil {
		t.Fatalf("compact: %v", err)
	}
	boot := scopedPull(t, s, 0, 100, "stores/shop.orders/7")
	if got := ops(boot.changes); strings.Contains(got, `"store_id":8`) || strings.Contains(got, `"id":3`) {
		t.Fatalf("bootstrap of store 7 received another store's row: %s", got)
	}
	if got := shopState(t, boot.changes); !equalState(got, wantState) {
		t.Fatalf("bootstrap after compaction: %v\nwant %v", got, wantState)
	}
	if len(boot.changes) >= len(before.changes) {
		t.Fatalf("compaction removed nothing from bucket 7 (%d changes before, %d after)", len(before.changes), len(boot.changes))
	}
	// An edge that stopped at version 1 must still learn that row 2 left its store,
	// although the row changed again later in another bucket.
	st := map[string]string{
		`shop.orders [1]`: `{"id":1,"store_id":7,"total":"1.00"}`,
		`shop.orders [2]`: `{"id":2,"store_id":7,"total":"2.00"}`,
	}
	rest := scopedPull(t, s, 1, 100, "stores/shop.orders/7")
	got := shopStateFrom(t, st, rest.changes)
	if !equalState(got, wantState) {
		t.Fatalf("edge resuming from version 1 after compaction: %v\nwant %v", got, wantState)
	}
	// Store 8 after compaction: rows 2 and 3, whole history equivalent.
	p8 := scopedPull(t, s, 0, 100, "stores/shop.orders/8")
	if st := shopState(t, p8.changes); len(st) != 2 || !strings.Contains(st[`shop.orders [2]`], `2.20`) {
		t.Fatalf("store 8 after compaction: %v", st)
	}
}

func shopStateFrom(t testing.TB, st map[string]string, changes []syncproto.WireChange) map[string]string {
	t.Helper()
	var pre []syncproto.WireChange
	for k, row := range st {
		table, _, _ := strings.Cut(k, " ")
		pre = append(pre, syncproto.WireChange{Table: table, Op: "i", Row: json.RawMessage(row)})
	}
	return shopState(t, append(pre, changes...))
}

func equalState(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestBuckets_TruncateReachesEveryBucket(t *testing.T) {
	s, _ := openShop(t, shopRules(t), nil)
	appendShop(t, s,
		tx(1, oIns(1, 7, "1.00"), oIns(2, 8, "2.00")),
		tx(2, cdc.Change{Table: ordersTable.Name, Op: cdc.OpTruncate}),
	)
	for _, b := range []string{"stores/shop.orders/7", "stores/shop.orders/8"} {
		p := scopedPull(t, s, 0, 100, b)
		if len(p.changes) != 2 || p.changes[1].Op != "t" {
			t.Fatalf("%s received %s", b, ops(p.changes))
		}
	}
}

func TestBuckets_RebuiltForNewRules(t *testing.T) {
	txs := []*cdc.Tx{
		tx(1, oIns(1, 7, "1.00"), oIns(2, 8, "2.00"), pIns(1, "tea")),
		tx(2, oUpd(1, 8, "1.10")),
		tx(3, oUpd(2, 7, "2.20"), oDel(1)),
		tx(4, cdc.Change{Table: ordersTable.Name, Op: cdc.OpTruncate}, oIns(9, 7, "9.00")),
	}
	live, _ := openShop(t, shopRules(t), nil)
	appendShop(t, live, txs...)

	later, cfg := openShop(t, nil, nil)
	appendShop(t, later, txs...)
	if p := scopedPull(t, later, 0, 100, "stores/shop.orders/7"); len(p.changes) != 0 {
		t.Fatalf("without rules a bucket has %d changes", len(p.changes))
	}
	later.Close()
	later = reopen(t, cfg)
	if err := later.SetRules(context.Background(), shopRules(t)); err != nil {
		t.Fatalf("set rules: %v", err)
	}
	// Edges hold data chosen without these rules: every watermark is now too old.
	if _, err := later.ReadPage(context.Background(), PageRequest{Since: 3, Scoped: true, Buckets: []string{"stores/shop.orders/7"}}); !isErr(err, ErrTooOld) {
		t.Fatalf("a watermark from before the rules changed: %v, want ErrTooOld", err)
	}
	if st := mustState(t, later); st.TombstoneHorizon != 5 || st.Head != 5 {
		t.Fatalf("head %d, tombstone horizon %d after the rules changed; want an empty version 5 and the horizon on it", st.Head, st.TombstoneHorizon)
	}
	if p := scopedPull(t, later, 0, 100, "stores/shop.orders/7"); p.next != 5 {
		t.Fatalf("a re-bootstrap reaches watermark %d, want 5", p.next)
	}
	for _, b := range []string{"stores/shop.orders/7", "stores/shop.orders/8", "regions/shop.orders/8", "stores/shop.products"} {
		want := scopedPull(t, live, 0, 100, b)
		got := scopedPull(t, later, 0, 100, b)
		if ops(got.changes) != ops(want.changes) || len(want.changes) == 0 {
			t.Fatalf("%s after rebuild: %s\nlive: %s", b, ops(got.changes), ops(want.changes))
		}
	}
	// Appending after the rebuild continues the same buckets.
	appendShop(t, later, tx(5, oUpd(9, 8, "9.90")))
	if p := scopedPull(t, later, 5, 100, "stores/shop.orders/7"); ops(p.changes) != `d:{"id":9}` {
		t.Fatalf("after rebuild, the move of row 9 reached store 7 as %s", ops(p.changes))
	}
}

func TestBuckets_RulesCheckedAgainstSchema(t *testing.T) {
	set, err := rules.Compile(rules.Config{Groups: map[string]rules.GroupConfig{
		"stores": {Tables: map[string]rules.TableConfig{"shop.orders": {Filter: "shop_id = {edge.store_id}"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := openShop(t, set, nil)
	b := begin(t, s)
	err = b.SetTables([]cdc.Table{ordersTable, productsTable})
	b.Rollback()
	if err == nil || !strings.Contains(err.Error(), `"shop_id"`) {
		t.Fatalf("set tables with a rule on an unknown column: %v", err)
	}
	s2, _ := openShop(t, nil, nil)
	appendShop(t, s2, tx(1, oIns(1, 7, "1")))
	if err := s2.SetRules(context.Background(), set); err == nil || !strings.Contains(err.Error(), "shop_id") {
		t.Fatalf("set rules with an unknown column: %v", err)
	}
}

func TestBuckets_DiscardedVersionLeavesNoBucketEntries(t *testing.T) {
	s, cfg := openShop(t, shopRules(t), nil)
	appendShop(t, s, tx(1, oIns(1, 7, "1.00")))
	b := begin(t, s)
	mustAppend(t, b, &cdc.Tx{Changes: []cdc.Change{oIns(2, 7, "2.00")}, More: true})
	mustCommit(t, b)
	s.Close()
	s = reopen(t, cfg)
	if err := s.SetRules(context.Background(), shopRules(t)); err != nil {
		t.Fatal(err)
	}
	appendShop(t, s, tx(2, oIns(3, 7, "3.00")))
	p := scopedPull(t, s, 0, 100, "stores/shop.orders/7")
	if got := ops(p.changes); strings.Contains(got, `"id":2`) || !strings.Contains(got, `"id":3`) {
		t.Fatalf("store 7 after a discarded version: %s", got)
	}
}

func TestBuckets_RolledBackPartMustBeDiscarded(t *testing.T) {
	s, _ := openShop(t, shopRules(t), nil)
	appendShop(t, s, tx(1, oIns(1, 7, "1.00")))
	b := begin(t, s)
	mustAppend(t, b, &cdc.Tx{Changes: []cdc.Change{oIns(2, 7, "2.00")}, More: true})
	mustCommit(t, b)
	b = begin(t, s)
	mustAppend(t, b, &cdc.Tx{Changes: []cdc.Change{oIns(3, 7, "3.00")}, More: true})
	b.Rollback()
	b = begin(t, s)
	if err := b.AppendTx(context.Background(), tx(2, oIns(4, 7, "4.00"))); err == nil || !strings.Contains(err.Error(), "discard the unfinished version") {
		t.Fatalf("completing a version whose part was rolled back: %v", err)
	}
	b.Rollback()
	b = begin(t, s)
	if err := b.DiscardUnfinished(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, &cdc.Tx{Pos: testPos(2), Changes: []cdc.Change{oIns(2, 7, "2.00"), oIns(3, 7, "3.00")}})
	mustCommit(t, b)
	p := scopedPull(t, s, 0, 100, "stores/shop.orders/7")
	if got := len(shopState(t, p.changes)); got != 3 {
		t.Fatalf("store 7 holds %d rows after the resent version, want 3: %s", got, ops(p.changes))
	}
}

func TestBuckets_RulesRemoved(t *testing.T) {
	s, cfg := openShop(t, shopRules(t), nil)
	appendShop(t, s, tx(1, oIns(1, 7, "1.00")))
	s.Close()
	s = reopen(t, cfg)
	if err := s.SetRules(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if p := scopedPull(t, s, 0, 100, "stores/shop.orders/7"); len(p.changes) != 0 {
		t.Fatalf("after the rules were removed the bucket still serves %s", ops(p.changes))
	}
	if p := pullAll(t, s, 0, 100); len(p.changes) != 1 || p.next != 2 {
		t.Fatalf("unscoped pull: %d changes, next %d", len(p.changes), p.next)
	}
}
