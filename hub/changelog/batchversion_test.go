package changelog

import (
	"context"
	"testing"
)

// TestSQLiteStore_BatchVersion: the version holding a push batch's write-back is
// known exactly once it is committed (the batch named on the first part of a
// transaction delivered in parts), not while it is uncommitted or after it was
// discarded, and it survives a reopen.
func TestSQLiteStore_BatchVersion(t *testing.T) {
	s, cfg := openTest(t, nil)
	ctx := context.Background()
	appendCommitted(t, s, tx(1, ins(1, "one")))

	lookup := func(s *SQLiteStore, batch string) (int64, bool) {
		t.Helper()
		v, ok, err := s.BatchVersion(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		return v, ok
	}
	// A part committed, then the session dies: not known, and discarded.
	b := begin(t, s)
	part := tx(0, ins(2, "two"))
	part.Pos, part.More, part.Batch = nil, true, "cut"
	mustAppend(t, b, part)
	mustCommit(t, b)
	if _, ok := lookup(s, "cut"); ok {
		t.Fatal("an unfinished version's batch is known")
	}
	b = begin(t, s)
	if err := b.DiscardUnfinished(ctx); err != nil {
		t.Fatal(err)
	}
	first := tx(0, ins(2, "two"))
	first.Pos, first.More, first.Batch = nil, true, "b1"
	mustAppend(t, b, first)
	mustAppend(t, b, tx(2, ins(3, "three")))
	if _, ok := lookup(s, "b1"); ok {
		t.Fatal("an uncommitted version's batch is visible")
	}
	mustCommit(t, b)
	if v, ok := lookup(s, "b1"); !ok || v != 2 {
		t.Fatalf("batch b1: version %d, %v; want 2", v, ok)
	}
	if _, ok := lookup(s, "cut"); ok {
		t.Fatal("the discarded version's batch is still known")
	}
	s.Close()
	s = reopen(t, cfg)
	if v, ok := lookup(s, "b1"); !ok || v != 2 {
		t.Fatalf("after reopening: batch b1 version %d, %v; want 2", v, ok)
	}
	if err := s.DropBatchVersions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, ok := lookup(s, "b1"); !ok {
		t.Fatal("dropping through version 1 forgot the batch of version 2")
	}
	if err := s.DropBatchVersions(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, ok := lookup(s, "b1"); ok {
		t.Fatal("batch b1 still known after dropping through version 2")
	}
}
