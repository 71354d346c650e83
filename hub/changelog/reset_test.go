package changelog

import (
	"context"
	"testing"

	"github.com/synchub/synchub/cdc"
)

func TestSQLiteStore_Reset(t *testing.T) {
	s, cfg := openTest(t, nil)
	ctx := context.Background()
	appendCommitted(t, s, tx(1, ins(1, "a"), ins(2, "b")), tx(2, upd(1, "c")), tx(3, del(2)))
	// A part of version 4 was committed before the source lost its position.
	b := begin(t, s)
	mustAppend(t, b, &cdc.Tx{Changes: []cdc.Change{ins(9, "lost")}, More: true})
	mustCommit(t, b)

	b = begin(t, s)
	if err := b.Reset(ctx, "postgres"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetTables(testTables()); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b,
		&cdc.Tx{Changes: []cdc.Change{ins(1, "snap1")}, More: true},
		&cdc.Tx{Changes: []cdc.Change{ins(3, "snap3")}, More: true},
		&cdc.Tx{Pos: testPos(500), CommitTime: baseTime})
	st := mustCommit(t, b)
	if st.Head != 4 || st.Position != testPos(500).String() || st.SourceKind != "postgres" || st.TombstoneHorizon != 4 || st.Entries != 2 {
		t.Fatalf("state after reset and snapshot: %+v", st)
	}
	for _, since := range []int64{1, 2, 3} {
		if _, err := s.ReadPage(ctx, PageRequest{Since: since}); !isErr(err, ErrTooOld) {
			t.Errorf("since %d after reset: %v, want ErrTooOld", since, err)
		}
	}
	got := pullAll(t, s, 0, 100)
	if got.next != 4 || len(got.changes) != 2 {
		t.Fatalf("pull from 0 after reset: next %d, %s", got.next, changeList(got))
	}
	rows := applyState(t, got.changes)[itemsTable.Name]
	if len(rows) != 2 || rows[keyText(1)][1].Value.AsString() != "snap1" || rows[keyText(3)] == nil {
		t.Fatalf("rows after reset: %v", rows)
	}
	if _, ok, _ := s.Row(ctx, itemsTable.Name, keyText(2)); ok {
		t.Error("row 2 from before the reset is in the index")
	}
	if info, ok, _ := s.Row(ctx, itemsTable.Name, keyText(1)); !ok || info.Version != 4 {
		t.Errorf("row 1 after reset: %+v %v", info, ok)
	}
	// The watermark the new snapshot gave is good, and survives a reopen.
	if p, _ := readPage(t, s, PageRequest{Since: 4}); !p.Commit || p.Changes != 0 {
		t.Fatalf("since 4: %+v", p)
	}
	s.Close()
	s = reopen(t, cfg)
	if st2 := mustState(t, s); st2 != st {
		t.Fatalf("state after reopen %+v, want %+v", st2, st)
	}
	if _, err := s.ReadPage(ctx, PageRequest{Since: 3}); !isErr(err, ErrTooOld) {
		t.Errorf("since 3 after reopen: %v", err)
	}
}
