package changelog

import (
	"context"
	"testing"
	"time"
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
