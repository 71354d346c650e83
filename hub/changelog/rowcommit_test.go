package changelog

import (
	"context"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
)

// TestSQLiteStore_RowCommitTime checks that the row index reports the source commit
// time of the row's latest complete version, not of a version still open.
func TestSQLiteStore_RowCommitTime(t *testing.T) {
	s, _ := openTest(t, nil)
	ctx := context.Background()
	t1 := time.Date(2025, 6, 1, 10, 0, 0, 123000, time.UTC)
	t2 := t1.Add(90 * time.Second)
	b := begin(t, s)
	if err := b.SetTables(testTables()); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, txAt(1, t1, ins(1, "a")), txAt(2, t2, upd(1, "b"), ins(2, "c")))
	open := txAt(0, time.Time{}, upd(2, "d"))
	open.More = true
	mustAppend(t, b, open)
	mustCommit(t, b)

	for _, c := range []struct {
		id      int64
		version int64
		at      time.Time
	}{{1, 2, t2}, {2, 2, t2}} {
		info, ok, err := s.Row(ctx, itemsTable.Name, keyText(c.id))
		if err != nil || !ok {
			t.Fatalf("row %d: ok=%v err=%v", c.id, ok, err)
		}
		if info.Version != c.version || !info.CommitTime.Equal(c.at) {
			t.Errorf("row %d: version %d at %v, want %d at %v", c.id, info.Version, info.CommitTime, c.version, c.at)
		}
	}
}

// withoutTime returns info without its commit time, for tests about the other fields.
func withoutTime(info RowInfo) RowInfo {
	info.CommitTime = time.Time{}
	return info
}

// TestSQLiteStore_RowsOf: a batch lookup over more keys than one query takes returns
// exactly what Row returns key by key, and leaves out keys without an entry.
func TestSQLiteStore_RowsOf(t *testing.T) {
	s, _ := openTest(t, nil)
	ctx := context.Background()
	t1 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	b := begin(t, s)
	if err := b.SetTables(testTables()); err != nil {
		t.Fatal(err)
	}
	var first, second []cdc.Change
	for id := int64(1); id <= 600; id++ {
		first = append(first, ins(id, "a"))
		if id%3 == 0 {
			second = append(second, upd(id, "b"))
		}
	}
	mustAppend(t, b, txAt(1, t1, first...), txAt(2, t1.Add(time.Minute), second...))
	mustCommit(t, b)

	var keys []string
	for id := int64(1); id <= 700; id++ {
		keys = append(keys, keyText(id))
	}
	got, err := s.RowsOf(ctx, itemsTable.Name, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 600 {
		t.Fatalf("RowsOf found %d rows, want 600 (keys 601..700 have no entry)", len(got))
	}
	for _, k := range keys {
		want, ok, err := s.Row(ctx, itemsTable.Name, k)
		if err != nil {
			t.Fatal(err)
		}
		g, found := got[k]
		if found != ok || g.Version != want.Version || g.Origin != want.Origin || g.Deleted != want.Deleted || !g.CommitTime.Equal(want.CommitTime) {
			t.Fatalf("key %s: RowsOf %+v (%v), Row %+v (%v)", k, g, found, want, ok)
		}
	}
	if v := got[keyText(3)].Version; v != 2 {
		t.Fatalf("row 3 (updated in version 2) has version %d in RowsOf", v)
	}
}
