package changelog

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

func TestSQLiteStore_ReadPageEndsOnTransactionBoundaries(t *testing.T) {
	s, _ := openTest(t, func(c *SQLiteConfig) { c.ChunkChanges = 4 })
	// Versions of 3, 5, 2, 1 and 6 changes.
	sizes := []int{3, 5, 2, 1, 6}
	var txs []*cdc.Tx
	id := int64(0)
	for i, n := range sizes {
		var cs []cdc.Change
		for range n {
			id++
			cs = append(cs, ins(id, "r"))
		}
		txs = append(txs, tx(int64(i+1), cs...))
	}
	appendCommitted(t, s, txs...)

	for _, tc := range []struct {
		since      int64
		limit      int
		next       int64
		changes    int
		commit     bool
		versions   []int64
		cursorVSeq [2]int64
	}{
		{since: 0, limit: 8, next: 2, changes: 8, commit: true, versions: []int64{1, 2, 2}},
		{since: 0, limit: 9, next: 2, changes: 8, commit: true, versions: []int64{1, 2, 2}},
		{since: 0, limit: 10, next: 3, changes: 10, commit: true, versions: []int64{1, 2, 2, 3}},
		{since: 0, limit: 1000, next: 5, changes: 17, commit: true, versions: []int64{1, 2, 2, 3, 4, 5, 5}},
		{since: 2, limit: 3, next: 4, changes: 3, commit: true, versions: []int64{3, 4}},
		// Version 5 alone (6 changes, chunks of 4 and 2) exceeds the limit: split.
		{since: 4, limit: 5, next: 4, changes: 4, commit: false, versions: []int64{5}, cursorVSeq: [2]int64{5, 0}},
		// A limit below the first chunk still returns that chunk.
		{since: 0, limit: 1, next: 1, changes: 3, commit: true, versions: []int64{1}},
		{since: 1, limit: 1, next: 1, changes: 4, commit: false, versions: []int64{2}, cursorVSeq: [2]int64{2, 0}},
	} {
		p, dp := readPage(t, s, PageRequest{Since: tc.since, Limit: tc.limit})
		var versions []int64
		for _, e := range dp.Entries {
			versions = append(versions, e.Version)
		}
		if p.Next != tc.next || p.Changes != tc.changes || p.Commit != tc.commit || !equalInts(versions, tc.versions) ||
			p.Cursor != (syncproto.Cursor{Version: tc.cursorVSeq[0], Seq: int(tc.cursorVSeq[1])}) {
			t.Errorf("since %d limit %d: next %d changes %d commit %v versions %v cursor %s; want %d %d %v %v %d.%d",
				tc.since, tc.limit, p.Next, p.Changes, p.Commit, versions, p.Cursor,
				tc.next, tc.changes, tc.commit, tc.versions, tc.cursorVSeq[0], tc.cursorVSeq[1])
		}
		if p.Head != 5 || dp.SchemaVersion != 1 {
			t.Errorf("head %d schema %d", p.Head, dp.SchemaVersion)
		}
	}

	// Continue the split version with its cursor.
	p, dp := readPage(t, s, PageRequest{Since: 4, Cursor: syncproto.Cursor{Version: 5, Seq: 0}, Limit: 5})
	if !p.Commit || p.Next != 5 || p.Changes != 2 || len(dp.Entries) != 1 || !dp.Entries[0].Last || dp.Entries[0].Seq != 1 {
		t.Fatalf("continuation of version 5: %+v %+v", p, dp.Entries)
	}

	// Caught up: an empty page that commits at the head.
	p, dp = readPage(t, s, PageRequest{Since: 5})
	if !p.Commit || p.Next != 5 || p.Changes != 0 || len(dp.Entries) != 0 || string(p.Body[len(p.Body)-len(`"entries":[]}`):]) != `"entries":[]}` {
		t.Fatalf("caught-up page: %+v %s", p, p.Body)
	}

	// Every limit yields the same changes in the same order.
	all := pullAll(t, s, 0, 1000)
	for limit := 1; limit <= 18; limit++ {
		got := pullAll(t, s, 0, limit)
		if len(got.changes) != len(all.changes) || got.next != 5 {
			t.Fatalf("limit %d: %d changes next %d, want %d next 5", limit, len(got.changes), got.next, len(all.changes))
		}
		for i := range got.changes {
			if string(got.changes[i].Row) != string(all.changes[i].Row) {
				t.Fatalf("limit %d: change %d differs", limit, i)
			}
		}
	}
}

func TestSQLiteStore_ReadPageErrors(t *testing.T) {
	s, _ := openTest(t, func(c *SQLiteConfig) { c.ChunkChanges = 2 })
	appendCommitted(t, s, tx(1, ins(1, "a")), tx(2, ins(2, "b"), ins(3, "c"), ins(4, "d")), tx(3, ins(5, "e")))
	ctx := context.Background()
	for _, tc := range []struct {
		req  PageRequest
		want error
	}{
		{PageRequest{Since: 4}, ErrAhead},
		{PageRequest{Since: 100}, ErrAhead},
		{PageRequest{Since: 1, Cursor: syncproto.Cursor{Version: 3, Seq: 0}}, ErrBadCursor}, // not the first version after since
		{PageRequest{Since: 1, Cursor: syncproto.Cursor{Version: 1, Seq: 0}}, ErrBadCursor}, // not after since
		{PageRequest{Since: 1, Cursor: syncproto.Cursor{Version: 9, Seq: 0}}, ErrBadCursor}, // beyond head
		{PageRequest{Since: 3, Cursor: syncproto.Cursor{Version: 4, Seq: 0}}, ErrBadCursor},
		{PageRequest{Since: 1, Cursor: syncproto.Cursor{Version: 2, Seq: 2}}, ErrBadCursor},       // version 2 has chunks 0 and 1
		{PageRequest{Since: 1, Cursor: syncproto.Cursor{Version: 2, Seq: 1048575}}, ErrBadCursor}, // largest seq a chunk id holds
		{PageRequest{Since: 1, Cursor: syncproto.Cursor{Version: 2, Seq: 1 << 40}}, ErrBadCursor}, // would overflow the chunk id
	} {
		_, err := s.ReadPage(ctx, tc.req)
		if !isErr(err, tc.want) {
			t.Errorf("%+v: error %v, want %v", tc.req, err, tc.want)
		}
	}
	if _, err := s.ReadPage(ctx, PageRequest{Since: -1}); err == nil {
		t.Error("negative since accepted")
	}
	if _, err := s.ReadPage(ctx, PageRequest{Since: 1, Cursor: syncproto.Cursor{Version: 2, Seq: 0}, Limit: 1}); err != nil {
		t.Errorf("valid cursor rejected: %v", err)
	}
}

func TestSQLiteStore_ReadPageRoundTripsValues(t *testing.T) {
	s, _ := openTest(t, nil)
	kinds := cdc.Table{
		Name: "public.kinds",
		Columns: []cdc.Column{
			{Name: "id", Kind: cdc.KindInt, SourceType: "bigint"},
			{Name: "big", Kind: cdc.KindInt, SourceType: "bigint", Nullable: true},
			{Name: "neg", Kind: cdc.KindInt, SourceType: "bigint", Nullable: true},
			{Name: "dec", Kind: cdc.KindDecimal, SourceType: "numeric", Nullable: true},
			{Name: "bin", Kind: cdc.KindBytes, SourceType: "bytea", Nullable: true},
			{Name: "txt", Kind: cdc.KindText, SourceType: "text", Nullable: true},
			{Name: "nan", Kind: cdc.KindFloat, SourceType: "float8", Nullable: true},
			{Name: "inf", Kind: cdc.KindFloat, SourceType: "float8", Nullable: true},
			{Name: "tiny", Kind: cdc.KindFloat, SourceType: "float8", Nullable: true},
			{Name: "tz", Kind: cdc.KindTimestampTZ, SourceType: "timestamptz", Nullable: true},
			{Name: "ts", Kind: cdc.KindTimestamp, SourceType: "timestamp", Nullable: true},
			{Name: "d", Kind: cdc.KindDate, SourceType: "date", Nullable: true},
			{Name: "tm", Kind: cdc.KindTime, SourceType: "time", Nullable: true},
			{Name: "u", Kind: cdc.KindUUID, SourceType: "uuid", Nullable: true},
			{Name: "j", Kind: cdc.KindJSON, SourceType: "jsonb", Nullable: true},
			{Name: "b", Kind: cdc.KindBool, SourceType: "boolean", Nullable: true},
			{Name: "arr", Kind: cdc.KindArray, SourceType: "int[]", Nullable: true},
			{Name: "n", Kind: cdc.KindText, SourceType: "text", Nullable: true},
		},
		PrimaryKey: []string{"id"},
	}
	rows := []cdc.Row{
		{
			{Name: "id", Value: cdc.Int(1)},
			{Name: "big", Value: cdc.Int(math.MaxInt64)},
			{Name: "neg", Value: cdc.Int(math.MinInt64)},
			{Name: "dec", Value: cdc.Text(cdc.KindDecimal, "1234567890123456789012345678901234567890.0001")},
			{Name: "bin", Value: cdc.Bytes([]byte{0, 1, 2, 0, 255, '"', '\\'})},
			{Name: "txt", Value: cdc.Text(cdc.KindText, "héllo \"wörld\"\n\t\u2028 ☃ 😀 \x01 </script>")},
			{Name: "nan", Value: cdc.Float(math.NaN())},
			{Name: "inf", Value: cdc.Float(math.Inf(-1))},
			{Name: "tiny", Value: cdc.Float(5e-324)},
			{Name: "tz", Value: cdc.Text(cdc.KindTimestampTZ, "2024-02-29T23:59:59.999999Z")},
			{Name: "ts", Value: cdc.Text(cdc.KindTimestamp, "1999-12-31T00:00:00")},
			{Name: "d", Value: cdc.Text(cdc.KindDate, "0001-01-01")},
			{Name: "tm", Value: cdc.Text(cdc.KindTime, "13:14:15.5")},
			{Name: "u", Value: cdc.Text(cdc.KindUUID, "0b7e0f7e-4b5a-4a53-9a7e-1c3d2f1e0a9b")},
			{Name: "j", Value: cdc.Text(cdc.KindJSON, `{"a":[1,2,{"b":null}]}`)},
			{Name: "b", Value: cdc.Bool(true)},
			{Name: "arr", Value: cdc.Text(cdc.KindArray, `[1,null,3]`)},
			{Name: "n", Value: cdc.Null()},
		},
		{
			{Name: "id", Value: cdc.Int(-5)},
			{Name: "bin", Value: cdc.Bytes([]byte{})},
			{Name: "txt", Value: cdc.Text(cdc.KindText, "")},
			{Name: "inf", Value: cdc.Float(math.Inf(1))},
			{Name: "b", Value: cdc.Bool(false)},
		},
	}
	b := begin(t, s)
	if err := b.SetTables([]cdc.Table{kinds}); err != nil {
		t.Fatal(err)
	}
	var changes []cdc.Change
	for _, r := range rows {
		changes = append(changes, cdc.Change{Table: kinds.Name, Op: cdc.OpInsert, After: r})
	}
	changes = append(changes, cdc.Change{Table: kinds.Name, Op: cdc.OpDelete, Before: cdc.Row{{Name: "id", Value: cdc.Int(-5)}}})
	mustAppend(t, b, &cdc.Tx{Pos: testPos(1), Origin: "edge \"7\"", CommitTime: baseTime, Changes: changes})
	mustCommit(t, b)

	_, dp := readPage(t, s, PageRequest{})
	if len(dp.Entries) != 1 {
		t.Fatalf("entries %+v", dp.Entries)
	}
	e := dp.Entries[0]
	if e.Origin != "edge \"7\"" || e.TS != baseTime.UnixMicro() || e.Schema != 1 || !e.Last {
		t.Fatalf("entry header %+v", e)
	}
	for i, r := range rows {
		wc := e.Changes[i]
		if wc.Table != kinds.Name || wc.Op != "i" {
			t.Fatalf("change %d: %+v", i, wc)
		}
		if err := sameRow(decodeRow(t, &kinds, wc.Row), r); err != nil {
			t.Errorf("row %d: %v", i, err)
		}
	}
	if d := e.Changes[2]; d.Op != "d" || string(d.Key) != `{"id":-5}` || d.Row != nil {
		t.Errorf("delete on the wire: %+v", d)
	}
}

func TestSQLiteStore_ReadPageBytesLimit(t *testing.T) {
	s, _ := openTest(t, func(c *SQLiteConfig) {
		c.ChunkChanges = 10
		c.ChunkBytes = 4096
		c.MaxPageBytes = 8192
	})
	big := strings.Repeat("x", 3000)
	var txs []*cdc.Tx
	for i := int64(1); i <= 6; i++ {
		txs = append(txs, tx(i, ins(i, big)))
	}
	appendCommitted(t, s, txs...)
	p, dp := readPage(t, s, PageRequest{Limit: 1000})
	if len(dp.Entries) != 2 || p.Next != 2 || !p.Commit {
		t.Fatalf("page with a byte limit: %d entries next %d commit %v", len(dp.Entries), p.Next, p.Commit)
	}
	got := pullAll(t, s, 0, 1000)
	if len(got.changes) != 6 || got.next != 6 {
		t.Fatalf("pulled %d changes to %d", len(got.changes), got.next)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSQLiteStore_ReadPageSkipsEmptyVersions(t *testing.T) {
	s, _ := openTest(t, nil)
	appendCommitted(t, s, tx(1, ins(1, "a")), tx(2), tx(3))
	for _, since := range []int64{0, 1, 2} {
		p, _ := readPage(t, s, PageRequest{Since: since, Limit: 1})
		if p.Next != 3 || !p.Commit {
			t.Errorf("since %d: next %d commit %v, want 3 true", since, p.Next, p.Commit)
		}
	}
	appendCommitted(t, s, tx(4, ins(2, "b"), ins(3, "c")), tx(5))
	p, dp := readPage(t, s, PageRequest{Since: 1, Limit: 2})
	if p.Next != 5 || p.Changes != 2 || len(dp.Entries) != 1 || dp.Entries[0].Version != 4 {
		t.Fatalf("after empty versions: next %d changes %d entries %+v", p.Next, p.Changes, dp.Entries)
	}
	// A version that does not fit stops the page before it, past the empty ones.
	appendCommitted(t, s, tx(6), tx(7, ins(4, "d"), ins(5, "e")))
	p, _ = readPage(t, s, PageRequest{Since: 1, Limit: 3})
	if p.Next != 6 || p.Changes != 2 || !p.Commit {
		t.Fatalf("page stopped before version 7: next %d changes %d commit %v", p.Next, p.Changes, p.Commit)
	}
}

// TestSQLiteStore_CursorSurvivesCompaction: an edge part-way through a version in the
// compacted prefix keeps its cursor valid when compaction removes the version's later
// chunks in between; the read skips to what remains.
func TestSQLiteStore_CursorSurvivesCompaction(t *testing.T) {
	s, _ := openTest(t, func(c *SQLiteConfig) { c.ChunkChanges = 2 })
	old := compactNow.Add(-10 * 24 * time.Hour)
	appendCommitted(t, s, txAt(1, old, ins(1, "a"), ins(2, "b"), ins(3, "c"), ins(4, "d"), ins(5, "e"), ins(6, "f")))
	p1, _ := readPage(t, s, PageRequest{Since: 0, Limit: 2})
	p2, _ := readPage(t, s, PageRequest{Since: 0, Limit: 2, Cursor: p1.Cursor})
	if p2.Commit || p2.Cursor.Seq != 1 {
		t.Fatalf("second page: commit %v, cursor %v; want to be inside version 1", p2.Commit, p2.Cursor)
	}
	appendCommitted(t, s, txAt(2, compactNow, upd(3, "x"), upd(4, "x"), upd(5, "x"), upd(6, "x")))
	stats, err := s.Compact(context.Background(), CompactOptions{Retention: time.Hour, TombstoneRetention: time.Hour, Now: compactNow})
	if err != nil {
		t.Fatal(err)
	}
	if stats.ChangesRemoved == 0 {
		t.Fatal("compaction removed nothing; the test needs version 1's later chunks gone")
	}
	if _, err := s.ReadPage(context.Background(), PageRequest{Since: 0, Limit: 2, Cursor: p2.Cursor}); err != nil {
		t.Fatalf("the next page with the cursor the edge was given: %v", err)
	}
}
