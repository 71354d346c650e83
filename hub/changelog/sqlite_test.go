package changelog

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

func TestSQLiteConfig_Validate(t *testing.T) {
	good := DefaultSQLiteConfig()
	good.Path = "/tmp/x.db"
	if err := good.Validate(); err != nil {
		t.Fatalf("default config with a path: %v", err)
	}
	for name, mutate := range map[string]func(*SQLiteConfig){
		"no path":       func(c *SQLiteConfig) { c.Path = "" },
		"memory":        func(c *SQLiteConfig) { c.Path = ":memory:" },
		"uri":           func(c *SQLiteConfig) { c.Path = "file:x.db" },
		"query":         func(c *SQLiteConfig) { c.Path = "x.db?mode=ro" },
		"chunk":         func(c *SQLiteConfig) { c.ChunkChanges = 0 },
		"synchronous":   func(c *SQLiteConfig) { c.Synchronous = "OFF" },
		"read conns":    func(c *SQLiteConfig) { c.ReadConns = 0 },
		"page bytes":    func(c *SQLiteConfig) { c.MaxPageBytes = 10 },
		"compact steps": func(c *SQLiteConfig) { c.CompactStepChanges = 0 },
	} {
		c := good
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

func TestSQLiteStore_AppendVersionsAreGapFree(t *testing.T) {
	s, _ := openTest(t, nil)
	if st := mustState(t, s); st.Head != 0 || st.Position != "" {
		t.Fatalf("empty store state %+v", st)
	}
	b := begin(t, s)
	if err := b.SetTables(testTables()); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := int64(1); i <= n; i++ {
		mustAppend(t, b, tx(i, ins(i, "a"), upd(i, "b")))
	}
	if b.Pending() != 2*n {
		t.Fatalf("pending %d, want %d", b.Pending(), 2*n)
	}
	if st := mustState(t, s); st.Head != 0 {
		t.Fatalf("head %d visible before commit", st.Head)
	}
	st := mustCommit(t, b)
	if st.Head != n || st.Position != testPos(n).String() || st.Entries != 2*n {
		t.Fatalf("state after group commit %+v", st)
	}
	if !st.HeadTime.Equal(baseTime.Add(n * time.Second)) {
		t.Fatalf("head time %v", st.HeadTime)
	}
	got := pullAll(t, s, 0, 1000)
	var versions []int64
	for _, p := range got.pages {
		for _, e := range p.Entries {
			versions = append(versions, e.Version)
			if !e.Last || e.Seq != 0 || len(e.Changes) != 2 {
				t.Fatalf("entry %+v: want one whole chunk of 2 changes", e)
			}
		}
	}
	if len(versions) != n {
		t.Fatalf("got %d versions, want %d", len(versions), n)
	}
	for i, v := range versions {
		if v != int64(i+1) {
			t.Fatalf("versions %v are not 1..%d", versions, n)
		}
	}

	// A transaction in parts: head and position move only with the final part.
	b = begin(t, s)
	mustAppend(t, b, &cdc.Tx{Changes: []cdc.Change{ins(100, "p1")}, More: true})
	st = mustCommit(t, b)
	if st.Head != n || st.Position != testPos(n).String() {
		t.Fatalf("head/position moved on a non-final part: %+v", st)
	}
	if p, _ := readPage(t, s, PageRequest{Since: n}); p.Changes != 0 || !p.Commit || p.Next != n {
		t.Fatalf("unfinished version is visible: %+v", p)
	}
	b = begin(t, s)
	mustAppend(t, b, &cdc.Tx{Changes: []cdc.Change{ins(101, "p2")}, More: true})
	mustAppend(t, b, tx(n+1, ins(102, "p3")))
	st = mustCommit(t, b)
	if st.Head != n+1 || st.Position != testPos(n+1).String() {
		t.Fatalf("final part did not move head/position: %+v", st)
	}
	_, dp := readPage(t, s, PageRequest{Since: n})
	var names []string
	for _, e := range dp.Entries {
		if e.Version != n+1 {
			t.Fatalf("entry of version %d, want %d", e.Version, n+1)
		}
		for _, c := range e.Changes {
			names = append(names, string(decodeRow(t, &itemsTable, c.Row)[1].Value.AsString()))
		}
	}
	if strings.Join(names, ",") != "p1,p2,p3" {
		t.Fatalf("multi-part version holds %v", names)
	}
}

func TestSQLiteStore_AppendRollbackLeavesNothing(t *testing.T) {
	s, _ := openTest(t, nil)
	appendCommitted(t, s, tx(1, ins(1, "kept")))
	before := mustState(t, s)
	changed := s.Changed()

	b := begin(t, s)
	if err := b.SetTables(append(testTables(), cdc.Table{Name: "public.extra", Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt}}, PrimaryKey: []string{"id"}})); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, tx(2, ins(2, "gone"), upd(1, "changed")), &cdc.Tx{Changes: []cdc.Change{ins(3, "part")}, More: true})
	if err := b.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := b.Rollback(); err != nil {
		t.Fatalf("second rollback: %v", err)
	}
	if _, err := b.Commit(context.Background()); err == nil {
		t.Fatal("commit after rollback succeeded")
	}
	if after := mustState(t, s); after != before {
		t.Fatalf("state changed by a rolled-back batch:\n%+v\n%+v", before, after)
	}
	select {
	case <-changed:
		t.Fatal("Changed closed by a rollback")
	default:
	}
	if info, ok, err := s.Row(context.Background(), itemsTable.Name, keyText(1)); err != nil || !ok || info.Version != 1 {
		t.Fatalf("row 1 index after rollback: %+v %v %v", info, ok, err)
	}
	if _, ok, _ := s.Row(context.Background(), itemsTable.Name, keyText(2)); ok {
		t.Fatal("row 2 of a rolled-back batch is in the index")
	}
	sch, _, err := s.Schema(context.Background())
	if err != nil || sch.Version != 1 || len(sch.Tables) != 2 {
		t.Fatalf("schema after rollback: %+v %v", sch, err)
	}
	// The next transaction gets the version the rolled-back one would have had.
	st := appendCommitted(t, s, tx(2, ins(4, "next")))
	if st.Head != 2 {
		t.Fatalf("head %d after rollback and one more tx, want 2", st.Head)
	}
	got := pullAll(t, s, 1, 100)
	if len(got.changes) != 1 || !strings.Contains(string(got.changes[0].Row), `"next"`) {
		t.Fatalf("version 2 holds %+v", got.changes)
	}
}

func TestSQLiteStore_AppendReopenKeepsEverything(t *testing.T) {
	s, cfg := openTest(t, nil)
	appendCommitted(t, s, tx(1, ins(1, "a"), ins(2, "b")), tx(2, upd(1, "c"), del(2)))
	before := mustState(t, s)
	pagesBefore := pullAll(t, s, 0, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.ReadPage(context.Background(), PageRequest{}); err == nil {
		t.Fatal("read after close succeeded")
	}
	s2 := reopen(t, cfg)
	if after := mustState(t, s2); after != before {
		t.Fatalf("state after reopen:\n%+v\nwant\n%+v", after, before)
	}
	pagesAfter := pullAll(t, s2, 0, 100)
	if len(pagesAfter.changes) != 4 || len(pagesAfter.changes) != len(pagesBefore.changes) {
		t.Fatalf("changes after reopen %d, before %d", len(pagesAfter.changes), len(pagesBefore.changes))
	}
	info, ok, err := s2.Row(context.Background(), itemsTable.Name, keyText(2))
	if err != nil || !ok || !info.Deleted || info.Version != 2 {
		t.Fatalf("row 2 after reopen: %+v %v %v", info, ok, err)
	}
	sch, body, err := s2.Schema(context.Background())
	if err != nil || sch.Version != 1 || !strings.Contains(string(body), `"public.items"`) {
		t.Fatalf("schema after reopen: %+v %s %v", sch, body, err)
	}
	st := appendCommitted(t, s2, tx(3, ins(3, "after")))
	if st.Head != 3 || st.SchemaVersion != 1 {
		t.Fatalf("append after reopen: %+v", st)
	}
}

func TestSQLiteStore_AppendCrashDiscardsUnfinishedVersion(t *testing.T) {
	s, cfg := openTest(t, func(c *SQLiteConfig) { c.ChunkChanges = 2 })
	appendCommitted(t, s, tx(1, ins(1, "one"), ins(2, "two")))
	before := mustState(t, s)

	// Parts of version 2 are committed, the final part never comes.
	b := begin(t, s)
	mustAppend(t, b, &cdc.Tx{Changes: []cdc.Change{upd(1, "uncommitted"), ins(3, "new"), del(2)}, More: true})
	mid := mustCommit(t, b)
	if mid.Head != 1 || mid.Entries != before.Entries+3 {
		t.Fatalf("state after a committed part: %+v", mid)
	}
	// Readers see the index as of the head, not the unfinished version.
	info, ok, err := s.Row(context.Background(), itemsTable.Name, keyText(1))
	if err != nil || !ok || info.Version != 1 || info.Deleted {
		t.Fatalf("row 1 while version 2 is unfinished: %+v %v %v", info, ok, err)
	}
	if _, ok, _ := s.Row(context.Background(), itemsTable.Name, keyText(3)); ok {
		t.Fatal("row 3 of the unfinished version is visible")
	}
	b = begin(t, s)
	mustAppend(t, b, &cdc.Tx{Changes: []cdc.Change{ins(4, "more")}, More: true})
	mustCommit(t, b)
	if err := s.Close(); err != nil { // the process dies here
		t.Fatal(err)
	}

	s2 := reopen(t, cfg)
	after := mustState(t, s2)
	if after != before {
		t.Fatalf("state after crash recovery:\n%+v\nwant\n%+v", after, before)
	}
	for id, want := range map[int64]RowInfo{1: {Version: 1}, 2: {Version: 1}} {
		info, ok, err := s2.Row(context.Background(), itemsTable.Name, keyText(id))
		if err != nil || !ok || withoutTime(info) != want {
			t.Fatalf("row %d after recovery: %+v %v %v, want %+v", id, info, ok, err, want)
		}
	}
	for _, id := range []int64{3, 4} {
		if _, ok, _ := s2.Row(context.Background(), itemsTable.Name, keyText(id)); ok {
			t.Fatalf("row %d of the discarded version is in the index", id)
		}
	}
	// The source sends the transaction again; it gets the same version number.
	st := appendCommitted(t, s2, tx(2, upd(1, "again")))
	if st.Head != 2 {
		t.Fatalf("head %d, want 2", st.Head)
	}
	got := pullAll(t, s2, 1, 100)
	if len(got.changes) != 1 || !strings.Contains(string(got.changes[0].Row), `"again"`) {
		t.Fatalf("version 2 after recovery holds %+v", got.changes)
	}
	if st := mustState(t, s2); st.Entries != 3 {
		t.Fatalf("entries %d, want 3", st.Entries)
	}
}

func TestSQLiteStore_AppendRowIndex(t *testing.T) {
	s, _ := openTest(t, nil)
	keyChange := cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, Before: itemKey(2), After: itemRow(20, "moved")}
	pairs := cdc.Change{Table: pairsTable.Name, Op: cdc.OpInsert, After: cdc.Row{
		{Name: "a", Value: cdc.Text(cdc.KindText, "x")}, {Name: "b", Value: cdc.Int(7)}, {Name: "v", Value: cdc.Null()}}}
	b := begin(t, s)
	if err := b.SetTables(testTables()); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b,
		&cdc.Tx{Pos: testPos(1), Origin: "edge-1", Changes: []cdc.Change{ins(1, "a"), ins(2, "b"), ins(3, "c"), pairs}},
		tx(2, keyChange, del(3)),
	)
	mustCommit(t, b)
	ctx := context.Background()
	for _, tc := range []struct {
		table, key string
		want       RowInfo
	}{
		{itemsTable.Name, keyText(1), RowInfo{Version: 1, Origin: "edge-1"}},
		{itemsTable.Name, keyText(2), RowInfo{Version: 2, Deleted: true}},
		{itemsTable.Name, keyText(20), RowInfo{Version: 2}},
		{itemsTable.Name, keyText(3), RowInfo{Version: 2, Deleted: true}},
		{pairsTable.Name, `["x",7]`, RowInfo{Version: 1, Origin: "edge-1"}},
	} {
		info, ok, err := s.Row(ctx, tc.table, tc.key)
		if err != nil || !ok || withoutTime(info) != tc.want {
			t.Errorf("row %s %s: %+v %v %v, want %+v", tc.table, tc.key, info, ok, err, tc.want)
		}
	}
	if _, ok, err := s.Row(ctx, itemsTable.Name, keyText(99)); ok || err != nil {
		t.Errorf("unknown row: ok %v err %v", ok, err)
	}
	got := pullAll(t, s, 1, 100)
	if len(got.changes) != 2 || string(got.changes[0].Key) != `{"id":2}` {
		t.Fatalf("key-changing update on the wire: %+v", got.changes)
	}

	appendCommitted(t, s, tx(3, cdc.Change{Table: itemsTable.Name, Op: cdc.OpTruncate}, ins(5, "after truncate")))
	for id, want := range map[int64]RowInfo{1: {Version: 3, Deleted: true}, 20: {Version: 3, Deleted: true}, 5: {Version: 3}} {
		if info, ok, err := s.Row(ctx, itemsTable.Name, keyText(id)); err != nil || !ok || withoutTime(info) != want {
			t.Errorf("row %d after truncate: %+v %v %v, want %+v", id, info, ok, err, want)
		}
	}
	if info, _, _ := s.Row(ctx, pairsTable.Name, `["x",7]`); info.Deleted {
		t.Error("truncate of items marked a row of another table deleted")
	}
}

func TestSQLiteStore_AppendRejectsBadInput(t *testing.T) {
	s, _ := openTest(t, nil)
	for name, c := range map[string]cdc.Change{
		"unknown table":  {Table: "public.nope", Op: cdc.OpInsert, After: itemRow(1, "x")},
		"insert no row":  {Table: itemsTable.Name, Op: cdc.OpInsert},
		"delete no key":  {Table: itemsTable.Name, Op: cdc.OpDelete},
		"unknown op":     {Table: itemsTable.Name, Op: 9, After: itemRow(1, "x")},
		"update no rows": {Table: itemsTable.Name, Op: cdc.OpUpdate},
	} {
		b := begin(t, s)
		if err := b.SetTables(testTables()); err != nil {
			t.Fatal(err)
		}
		err := b.AppendTx(context.Background(), tx(1, c))
		if err == nil {
			t.Errorf("%s: append accepted %+v", name, c)
		}
		if err := b.AppendTx(context.Background(), tx(1, ins(1, "ok"))); err == nil {
			t.Errorf("%s: a failed batch accepted more", name)
		}
		if _, err := b.Commit(context.Background()); err == nil {
			t.Errorf("%s: a failed batch committed", name)
		}
		if st := mustState(t, s); st.Head != 0 {
			t.Fatalf("%s: head %d", name, st.Head)
		}
	}
	b := begin(t, s)
	defer b.Rollback()
	if err := b.SetTables([]cdc.Table{{Name: "public.nokey", Columns: []cdc.Column{{Name: "a", Kind: cdc.KindInt}}}}); err == nil {
		t.Error("SetTables accepted a table without a primary key")
	}
	if _, err := s.Begin(context.Background()); err == nil {
		t.Error("a second Begin while a batch is open succeeded")
	}
}

func TestSQLiteStore_ChangedClosesOnCommit(t *testing.T) {
	s, _ := openTest(t, nil)
	ch := s.Changed()
	b := begin(t, s)
	if err := b.SetTables(testTables()); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b) // no head move
	select {
	case <-ch:
		t.Fatal("Changed closed by a commit that did not move head")
	default:
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		appendCommitted(t, s, tx(1, ins(1, "a")))
	}()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Changed was not closed by a commit that moved head")
	}
	<-done
	if s.Changed() == ch {
		t.Fatal("Changed returns the closed channel after the commit")
	}
}

func TestSQLiteStore_SchemaVersions(t *testing.T) {
	s, _ := openTest(t, nil)
	ctx := context.Background()
	sch, body, err := s.Schema(ctx)
	if err != nil || sch.Version != 0 || string(body) != `{"version":0,"tables":[]}` {
		t.Fatalf("empty schema: %+v %s %v", sch, body, err)
	}
	b := begin(t, s)
	for range 2 {
		if err := b.SetTables(testTables()); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, b, tx(1, ins(1, "a")))
	st := mustCommit(t, b)
	b = begin(t, s)
	if err := b.SetTables(testTables()); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b)
	if st := mustState(t, s); st.SchemaVersion != 1 {
		t.Fatalf("schema version %d after SetTables with the same tables, want 1 (first %d)", st.SchemaVersion, st.SchemaVersion)
	}

	wider := itemsTable
	wider.Columns = append(append([]cdc.Column{}, itemsTable.Columns...), cdc.Column{Name: "extra", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true})
	row := append(itemRow(2, "b"), cdc.Field{Name: "extra", Value: cdc.Text(cdc.KindText, "new column")})
	b = begin(t, s)
	mustAppend(t, b,
		&cdc.Tx{Pos: testPos(2), Tables: []cdc.Table{wider}, Changes: []cdc.Change{{Table: itemsTable.Name, Op: cdc.OpInsert, After: row}}},
		tx(3, ins(3, "c")))
	st = mustCommit(t, b)
	if st.SchemaVersion != 2 {
		t.Fatalf("schema version %d after an added column, want 2", st.SchemaVersion)
	}
	sch, body, err = s.Schema(ctx)
	if err != nil || sch.Version != 2 {
		t.Fatalf("schema: %+v %v", sch, err)
	}
	tbl, ok := sch.Table(itemsTable.Name)
	if !ok || len(tbl.Columns) != len(wider.Columns) || len(sch.Tables) != 2 {
		t.Fatalf("schema tables %+v", sch.Tables)
	}
	if !strings.Contains(string(body), `"version":2`) || !strings.Contains(string(body), `"extra"`) {
		t.Fatalf("schema body %s", body)
	}
	_, dp := readPage(t, s, PageRequest{Since: 0})
	want := map[int64]int64{1: 1, 2: 2, 3: 2}
	for _, e := range dp.Entries {
		if e.Schema != want[e.Version] {
			t.Errorf("version %d carries schema %d, want %d", e.Version, e.Schema, want[e.Version])
		}
	}
	if dp.SchemaVersion != 2 {
		t.Errorf("page schema_version %d, want 2", dp.SchemaVersion)
	}
	got := decodeRow(t, &wider, dp.Entries[1].Changes[0].Row)
	if err := sameRow(got, row); err != nil {
		t.Fatalf("row with the new column: %v", err)
	}
}

func TestSQLiteStore_ReadsWhileAppending(t *testing.T) {
	s, _ := openTest(t, func(c *SQLiteConfig) { c.ChunkChanges = 7 })
	appendCommitted(t, s) // tables only
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const txs, perTx = 200, 5
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var since int64
			var cur syncproto.Cursor
			seen := 0
			for ctx.Err() == nil {
				changed := s.Changed()
				p, err := s.ReadPage(ctx, PageRequest{Since: since, Cursor: cur, Limit: 3 + r*20})
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				seen += p.Changes
				if !p.Commit {
					cur = p.Cursor
					continue
				}
				cur = syncproto.Cursor{}
				if p.Next < since {
					errs <- errAt("next went back", since, p.Next)
					return
				}
				since = p.Next
				if since == txs {
					if seen != txs*perTx {
						errs <- errAt("changes seen", int64(seen), txs*perTx)
					}
					return
				}
				if p.Changes == 0 {
					select {
					case <-changed:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	for v := int64(1); v <= txs; v += 10 {
		b := begin(t, s)
		for i := v; i < v+10; i++ {
			changes := make([]cdc.Change, perTx)
			for j := range changes {
				changes[j] = ins(i*10+int64(j), "c")
			}
			mustAppend(t, b, tx(i, changes...))
		}
		mustCommit(t, b)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("readers did not reach the head")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func errAt(what string, got, want int64) error {
	return fmt.Errorf("%s: got %d, want %d", what, got, want)
}
