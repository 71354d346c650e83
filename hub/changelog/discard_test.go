package changelog

import (
	"context"
	"testing"
)

// TestSQLiteStore_DiscardUnfinished: parts of a transaction committed by an earlier
// batch are dropped when the next session discards the unfinished version, the row
// index gets its previous entries back, and the resent transaction is stored once.
func TestSQLiteStore_DiscardUnfinished(t *testing.T) {
	s, _ := openTest(t, nil)
	ctx := context.Background()
	appendCommitted(t, s, tx(1, ins(1, "one"), ins(2, "two")))
	before, ok, err := s.Row(ctx, itemsTable.Name, keyText(1))
	if err != nil || !ok {
		t.Fatalf("row 1: %v %v", ok, err)
	}

	// Session 1: the first part of version 2 is committed, then the session dies.
	b := begin(t, s)
	part := tx(0, upd(1, "changed"), ins(3, "three"))
	part.Pos, part.More = nil, true
	mustAppend(t, b, part)
	mustCommit(t, b)
	b = begin(t, s)
	if err := b.Rollback(); err != nil {
		t.Fatal(err)
	}

	// Session 2 discards it and receives the whole transaction again.
	b = begin(t, s)
	if err := b.DiscardUnfinished(ctx); err != nil {
		t.Fatal(err)
	}
	if info, ok, _ := s.Row(ctx, itemsTable.Name, keyText(1)); !ok || info != before {
		t.Fatalf("row 1 index after discard (uncommitted view is the committed one): %+v", info)
	}
	mustAppend(t, b, tx(2, upd(1, "changed"), ins(3, "three"), ins(4, "four")))
	st := mustCommit(t, b)
	if st.Head != 2 || st.Entries != 5 {
		t.Fatalf("head %d, entries %d; want version 2 and 2+3 changes", st.Head, st.Entries)
	}
	got := pullAll(t, s, 0, 100)
	if n := len(got.changes); n != 5 {
		t.Fatalf("the log serves %d changes, want 5 (no part of the cut transaction twice)", n)
	}
	if _, ok, _ := s.Row(ctx, itemsTable.Name, keyText(3)); !ok {
		t.Fatal("row 3 missing from the index after the resent transaction")
	}

	// Nothing unfinished: a no-op.
	b = begin(t, s)
	if err := b.DiscardUnfinished(ctx); err != nil {
		t.Fatal(err)
	}
	b.Rollback()
	if st := mustState(t, s); st.Entries != 5 || st.Head != 2 {
		t.Fatalf("state after a no-op discard: %+v", st)
	}
}
