package changelog

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

var compactNow = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

// buildCompactLog writes six versions: three old (10 days), two middle-aged (3 days)
// and one recent (1 hour).
func buildCompactLog(t *testing.T, s Store) {
	t.Helper()
	old := compactNow.Add(-10 * 24 * time.Hour)
	mid := compactNow.Add(-3 * 24 * time.Hour)
	recent := compactNow.Add(-time.Hour)
	appendCommitted(t, s,
		txAt(1, old, ins(1, "1a"), ins(2, "2a"), ins(3, "3a"), ins(4, "4a")),
		txAt(2, old, upd(1, "1b"), del(2)),
		txAt(3, old, ins(5, "5a"), cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, After: withNote(itemRow(5, "5b"), "note five")}, ins(6, "6a")),
		txAt(4, mid, del(3), upd(4, "4b"), cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, Before: itemKey(6), After: itemRow(60, "60a")}),
		txAt(5, mid, ins(7, "7a"), del(7)),
		txAt(6, recent, upd(1, "1c")),
	)
}

func stateString(st map[string]map[string]cdc.Row) string {
	var lines []string
	for tbl, rows := range st {
		for k, r := range rows {
			lines = append(lines, fmt.Sprintf("%s %s %v", tbl, k, r))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func changeList(got pulled) string {
	var out []string
	for _, c := range got.changes {
		out = append(out, c.Op+string(c.Row)+string(c.Key))
	}
	return strings.Join(out, "\n")
}

func TestSQLiteStore_Compact(t *testing.T) {
	for _, step := range []int{1, 3, 20000} {
		t.Run(fmt.Sprintf("step %d", step), func(t *testing.T) {
			testCompact(t, step)
		})
	}
}

func testCompact(t *testing.T, step int) {
	s, cfg := openTest(t, func(c *SQLiteConfig) { c.CompactStepChanges = step })
	buildCompactLog(t, s)
	ctx := context.Background()
	full := pullAll(t, s, 0, 1000)
	want := stateString(applyState(t, full.changes))
	before := mustState(t, s)
	if before.Entries != 15 {
		t.Fatalf("entries before compaction %d", before.Entries)
	}

	opts := CompactOptions{Retention: 2 * 24 * time.Hour, TombstoneRetention: 5 * 24 * time.Hour, Now: compactNow}
	stats, err := s.Compact(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if stats.ChangesRemoved != 9 || stats.CompactedThrough != 5 || stats.TombstoneHorizon != 3 {
		t.Fatalf("stats %+v; want 9 removed, compacted through 5, tombstone horizon 3", stats)
	}
	st := mustState(t, s)
	if st.Entries != before.Entries-9 || st.CompactedThrough != 5 || st.TombstoneHorizon != 3 || st.Bytes >= before.Bytes || st.Head != 6 {
		t.Fatalf("state after compaction %+v (before %+v)", st, before)
	}

	// A new edge still gets exactly the current rows.
	got := pullAll(t, s, 0, 1000)
	if have := stateString(applyState(t, got.changes)); have != want {
		t.Fatalf("rows from the compacted log:\n%s\nwant\n%s", have, want)
	}
	wantChanges := strings.Join([]string{
		`u{"id":5,"name":"5b","amount":"5.50","data":null,"note":"note five","ratio":0.5,"at":"2024-01-02T03:04:05.123456Z"}`,
		`d{"id":3}`,
		`u{"id":4,"name":"4b","amount":"4.50","data":null,"note":null,"ratio":0.5,"at":"2024-01-02T03:04:05.123456Z"}`,
		`u{"id":60,"name":"60a","amount":"60.50","data":null,"note":null,"ratio":0.5,"at":"2024-01-02T03:04:05.123456Z"}{"id":6}`,
		`d{"id":7}`,
		`u{"id":1,"name":"1c","amount":"1.50","data":null,"note":null,"ratio":0.5,"at":"2024-01-02T03:04:05.123456Z"}`,
	}, "\n")
	if have := changeList(got); have != wantChanges {
		t.Fatalf("compacted log:\n%s\nwant\n%s", have, wantChanges)
	}

	// Watermarks below the tombstone horizon must re-bootstrap; at or above it they
	// continue, and from inside the compacted prefix (below 5) commit no earlier than
	// the head the compaction ran at (6): the insert of row 1 was dropped from
	// version 1 because version 6 supersedes it.
	for _, since := range []int64{1, 2} {
		if _, err := s.ReadPage(ctx, PageRequest{Since: since}); !isErr(err, ErrTooOld) {
			t.Errorf("since %d: %v, want ErrTooOld", since, err)
		}
	}
	for _, since := range []int64{0, 3} {
		var cur syncproto.Cursor
		for {
			p, _ := readPage(t, s, PageRequest{Since: since, Cursor: cur, Limit: 1})
			if p.Next < 6 && p.Commit {
				t.Fatalf("since %d: page commits at %d before the compaction's head 6", since, p.Next)
			}
			if p.Commit {
				break
			}
			cur = p.Cursor
		}
	}
	if _, err := s.ReadPage(ctx, PageRequest{Since: 0, Cursor: syncproto.Cursor{Version: 5, Seq: 0}}); err != nil {
		t.Errorf("a cursor inside the compacted prefix was refused: %v", err)
	}
	// From the end of the compacted prefix nothing was dropped: pages commit freely.
	if p, _ := readPage(t, s, PageRequest{Since: 5, Limit: 1}); !p.Commit || p.Next != 6 {
		t.Errorf("since 5: commit %v next %d, want a committing page to 6", p.Commit, p.Next)
	}

	// The row index lost the expired tombstone and kept the rest.
	if _, ok, _ := s.Row(ctx, itemsTable.Name, keyText(2)); ok {
		t.Error("row 2's expired tombstone is still in the index")
	}
	if info, ok, _ := s.Row(ctx, itemsTable.Name, keyText(3)); !ok || !info.Deleted || info.Version != 4 {
		t.Errorf("row 3's tombstone: %+v %v", info, ok)
	}

	// Compacting again with the same options changes nothing.
	again, err := s.Compact(ctx, opts)
	if err != nil || again.ChangesRemoved != 0 || again.ChunksRewritten != 0 {
		t.Fatalf("second compaction: %+v %v", again, err)
	}

	// The latest image survives for unchanged-column fills, also from the stored chunk.
	s.Close()
	s = reopen(t, cfg)
	appendCommitted(t, s, txAt(7, compactNow, cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, After: unchangedNote(itemRow(5, "5c"))}))
	if err := sameRow(storedRow(t, s, 7, 5), withNote(itemRow(5, "5c"), "note five")); err != nil {
		t.Fatalf("fill from a compacted chunk: %v", err)
	}

	// Later, every tombstone has expired: the deletes go and the key change loses its
	// old key.
	later := CompactOptions{Retention: time.Hour, TombstoneRetention: time.Hour, Now: compactNow.Add(2 * time.Hour)}
	stats, err = s.Compact(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	if stats.TombstoneHorizon != 7 || stats.CompactedThrough != 7 || stats.ChangesRemoved != 3 {
		t.Fatalf("second stats %+v", stats)
	}
	got = pullAll(t, s, 0, 1000)
	wantChanges = strings.Join([]string{
		`u{"id":4,"name":"4b","amount":"4.50","data":null,"note":null,"ratio":0.5,"at":"2024-01-02T03:04:05.123456Z"}`,
		`u{"id":60,"name":"60a","amount":"60.50","data":null,"note":null,"ratio":0.5,"at":"2024-01-02T03:04:05.123456Z"}`,
		`u{"id":1,"name":"1c","amount":"1.50","data":null,"note":null,"ratio":0.5,"at":"2024-01-02T03:04:05.123456Z"}`,
		`u{"id":5,"name":"5c","amount":"5.50","data":null,"note":"note five","ratio":0.5,"at":"2024-01-02T03:04:05.123456Z"}`,
	}, "\n")
	if have := changeList(got); have != wantChanges {
		t.Fatalf("log after tombstones expired:\n%s\nwant\n%s", have, wantChanges)
	}
	for _, id := range []int64{3, 6, 7} {
		if _, ok, _ := s.Row(ctx, itemsTable.Name, keyText(id)); ok {
			t.Errorf("row %d's expired tombstone is still in the index", id)
		}
	}
	if st := mustState(t, s); st.Entries != 4 {
		t.Errorf("entries %d, want 4", st.Entries)
	}
	if _, err := s.ReadPage(ctx, PageRequest{Since: 5}); !isErr(err, ErrTooOld) {
		t.Errorf("since 5 after the horizon moved to 7: %v", err)
	}
}

func TestSQLiteStore_CompactTruncate(t *testing.T) {
	s, _ := openTest(t, nil)
	old := compactNow.Add(-10 * 24 * time.Hour)
	pair := cdc.Change{Table: pairsTable.Name, Op: cdc.OpInsert, After: cdc.Row{
		{Name: "a", Value: cdc.Text(cdc.KindText, "x")}, {Name: "b", Value: cdc.Int(1)}, {Name: "v", Value: cdc.Null()}}}
	appendCommitted(t, s,
		txAt(1, old, ins(1, "a"), ins(2, "b"), pair),
		txAt(2, old, ins(3, "c"), cdc.Change{Table: itemsTable.Name, Op: cdc.OpTruncate}, ins(4, "d")),
		txAt(3, compactNow, ins(5, "e")),
	)
	want := stateString(applyState(t, pullAll(t, s, 0, 100).changes))
	stats, err := s.Compact(context.Background(), CompactOptions{Retention: time.Hour, TombstoneRetention: time.Hour, Now: compactNow})
	if err != nil {
		t.Fatal(err)
	}
	got := pullAll(t, s, 0, 100)
	if have := stateString(applyState(t, got.changes)); have != want {
		t.Fatalf("rows after compacting a truncate:\n%s\nwant\n%s", have, want)
	}
	// Left: the pair, insert 4 and insert 5.
	if len(got.changes) != 3 || stats.ChangesRemoved != 4 {
		t.Fatalf("compacted log %s (removed %d)", changeList(got), stats.ChangesRemoved)
	}
	for _, c := range got.changes {
		if c.Op == "t" {
			t.Fatal("expired truncate kept")
		}
	}
	for _, id := range []int64{1, 2, 3} {
		if _, ok, _ := s.Row(context.Background(), itemsTable.Name, keyText(id)); ok {
			t.Errorf("row %d truncated long ago is still in the index", id)
		}
	}
}

func TestSQLiteStore_CompactWhileAppending(t *testing.T) {
	s, _ := openTest(t, func(c *SQLiteConfig) { c.CompactStepChanges = 10; c.ChunkChanges = 5 })
	old := compactNow.Add(-48 * time.Hour)
	// 40 old versions updating 10 rows over and over.
	var txs []*cdc.Tx
	for v := int64(1); v <= 40; v++ {
		var cs []cdc.Change
		for id := int64(1); id <= 10; id++ {
			cs = append(cs, upd(id, fmt.Sprintf("v%d", v)))
		}
		txs = append(txs, txAt(v, old.Add(time.Duration(v)*time.Second), cs...))
	}
	appendCommitted(t, s, txs...)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := s.Compact(ctx, CompactOptions{Retention: time.Hour, TombstoneRetention: time.Hour, Now: compactNow})
		done <- err
	}()
	for v := int64(41); v <= 60; v++ {
		appendCommitted(t, s, txAt(v, compactNow, upd(v%10+1, fmt.Sprintf("v%d", v)), ins(100+v, "new")))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := pullAll(t, s, 0, 1000)
	rows := applyState(t, got.changes)[itemsTable.Name]
	if len(rows) != 30 {
		t.Fatalf("%d rows after compaction during ingest, want 30", len(rows))
	}
	for id := int64(1); id <= 10; id++ {
		r := rows[keyText(id)]
		name := r[1].Value.AsString()
		last := int64(0)
		for v := int64(41); v <= 60; v++ {
			if v%10+1 == id {
				last = v
			}
		}
		if name != fmt.Sprintf("v%d", last) {
			t.Errorf("row %d is %q, want v%d", id, name, last)
		}
	}
	st := mustState(t, s)
	if st.Entries != int64(len(got.changes)) {
		t.Errorf("entries counter %d, changes stored %d", st.Entries, len(got.changes))
	}
}

func TestSQLiteStore_CompactOptionsValidated(t *testing.T) {
	s, _ := openTest(t, nil)
	if _, err := s.Compact(context.Background(), CompactOptions{Retention: time.Hour, TombstoneRetention: time.Minute}); err == nil {
		t.Fatal("tombstone retention below retention accepted")
	}
	stats, err := s.Compact(context.Background(), CompactOptions{Retention: time.Hour, TombstoneRetention: time.Hour})
	if err != nil || stats.ChangesRemoved != 0 {
		t.Fatalf("compacting an empty log: %+v %v", stats, err)
	}
}

func TestSQLiteStore_CompactKeepsChangesSupersededOnlyByUnfinishedVersion(t *testing.T) {
	s, cfg := openTest(t, nil)
	old := compactNow.Add(-10 * 24 * time.Hour)
	appendCommitted(t, s, txAt(1, old, ins(1, "a"), ins(2, "b")))
	b := begin(t, s)
	mustAppend(t, b, &cdc.Tx{Changes: []cdc.Change{upd(1, "unfinished"), del(2)}, More: true})
	mustCommit(t, b)
	stats, err := s.Compact(context.Background(), CompactOptions{Retention: time.Hour, TombstoneRetention: time.Hour, Now: compactNow})
	if err != nil {
		t.Fatal(err)
	}
	if stats.ChangesRemoved != 0 {
		t.Fatalf("compaction removed %d changes superseded only by an unfinished version", stats.ChangesRemoved)
	}
	s.Close() // the unfinished version never completes
	s = reopen(t, cfg)
	got := pullAll(t, s, 0, 100)
	if rows := applyState(t, got.changes)[itemsTable.Name]; len(rows) != 2 {
		t.Fatalf("rows after the unfinished version was discarded: %s", changeList(got))
	}
}
