package changelog

import (
	"context"
	"strconv"
	"testing"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// TestSQLiteStore_RowIndexMixed writes, in one batch, more index rows than one
// grouped statement holds, in long runs of one table and origin and in rows that
// alternate tables, touching the same rows
// again and again, and checks that every row's index entry is its latest change.
func TestSQLiteStore_RowIndexMixed(t *testing.T) {
	s, _ := openTest(t, nil)
	pairKey := func(i int64) cdc.Row {
		return cdc.Row{{Name: "a", Value: cdc.Text(cdc.KindText, "k"+strconv.FormatInt(i, 10))}, {Name: "b", Value: cdc.Int(i)}}
	}
	pairRow := func(i int64) cdc.Row {
		return append(pairKey(i), cdc.Field{Name: "v", Value: cdc.Text(cdc.KindText, "v")})
	}
	type entry struct {
		table, key string
	}
	want := map[entry]RowInfo{}
	b := begin(t, s)
	if err := b.SetTables(testTables()); err != nil {
		t.Fatal(err)
	}
	const keys = 37
	for v := int64(1); v <= 320; v++ { // ends with a run after mixed rows
		x := tx(v)
		x.Origin = []string{"", "edge-1", "edge-2"}[(v/10)%3]
		for j := int64(0); j < 1+v%4; j++ {
			i := (v*7 + j*13) % keys
			var c cdc.Change
			var e entry
			deleted := (v+j)%5 == 0
			if (v+j)%2 == 0 || v%50 < 25 { // runs of one table and origin, then mixed
				e = entry{itemsTable.Name, keyText(i)}
				c = ins(i, "n")
				if deleted {
					c = del(i)
				}
			} else {
				e = entry{pairsTable.Name, syncproto.KeyText(&pairsTable, pairKey(i))}
				c = cdc.Change{Table: pairsTable.Name, Op: cdc.OpUpdate, After: pairRow(i)}
				if deleted {
					c = cdc.Change{Table: pairsTable.Name, Op: cdc.OpDelete, Before: pairKey(i)}
				}
			}
			x.Changes = append(x.Changes, c)
			want[e] = RowInfo{Version: v, Origin: x.Origin, Deleted: deleted, CommitTime: x.CommitTime}
		}
		mustAppend(t, b, x)
	}
	mustCommit(t, b)
	if len(want) < keys {
		t.Fatalf("only %d rows touched", len(want))
	}
	for e, w := range want {
		got, ok, err := s.Row(context.Background(), e.table, e.key)
		if err != nil {
			t.Fatal(err)
		}
		if got.CommitTime.Equal(w.CommitTime) {
			got.CommitTime = w.CommitTime // same instant; the location may differ
		}
		if !ok || got != w {
			t.Errorf("row %s %s: %+v (found %v), want %+v", e.table, e.key, got, ok, w)
		}
	}
}
