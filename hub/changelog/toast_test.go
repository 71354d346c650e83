package changelog

import (
	"strings"
	"testing"

	"github.com/synchub/synchub/cdc"
)

func withNote(r cdc.Row, note string) cdc.Row {
	out := append(cdc.Row{}, r...)
	for i := range out {
		if out[i].Name == "note" {
			out[i] = cdc.Field{Name: "note", Value: cdc.Text(cdc.KindText, note)}
		}
	}
	return out
}

func unchangedNote(r cdc.Row) cdc.Row {
	out := append(cdc.Row{}, r...)
	for i := range out {
		if out[i].Name == "note" {
			out[i] = cdc.Field{Name: "note", Unchanged: true}
		}
	}
	return out
}

// storedRow returns the last stored row image of id in version v.
func storedRow(t *testing.T, s Store, v, id int64) cdc.Row {
	t.Helper()
	got := pullAll(t, s, v-1, 100000)
	var last cdc.Row
	for _, p := range got.pages {
		for _, e := range p.Entries {
			if e.Version != v {
				continue
			}
			for _, c := range e.Changes {
				if c.Row == nil {
					continue
				}
				r := decodeRow(t, &itemsTable, c.Row)
				if r[0].Value.AsInt() == id {
					last = r
				}
			}
		}
	}
	if last == nil {
		t.Fatalf("no row %d in version %d", id, v)
	}
	return last
}

func TestSQLiteStore_ToastFill(t *testing.T) {
	big := strings.Repeat("long text ☃ ", 2000)
	for _, tc := range []struct {
		name   string
		mutate func(*SQLiteConfig)
	}{
		{"row cache", nil},
		{"no row cache", func(c *SQLiteConfig) { c.RowCacheEntries = 0 }},
		{"no row cache, one change per chunk", func(c *SQLiteConfig) { c.RowCacheEntries = 0; c.ChunkChanges = 1 }},
		{"tiny row cache", func(c *SQLiteConfig) { c.RowCacheEntries = 2; c.RowCacheBytes = 1 << 20 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, cfg := openTest(t, tc.mutate)
			// Insert in one committed batch, update with the note unchanged in the next.
			appendCommitted(t, s, tx(1, ins(100, "pad"), cdc.Change{Table: itemsTable.Name, Op: cdc.OpInsert, After: withNote(itemRow(1, "a"), big)}))
			for i := int64(2); i < 6; i++ { // push row 1 out of a tiny cache
				appendCommitted(t, s, tx(i, ins(100+i, "pad")))
			}
			appendCommitted(t, s, tx(6, cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, After: unchangedNote(itemRow(1, "b"))}))
			if err := sameRow(storedRow(t, s, 6, 1), withNote(itemRow(1, "b"), big)); err != nil {
				t.Fatalf("update after a committed insert: %v", err)
			}

			// Insert and update in the same uncommitted batch (and the same transaction).
			b := begin(t, s)
			mustAppend(t, b,
				tx(7, cdc.Change{Table: itemsTable.Name, Op: cdc.OpInsert, After: withNote(itemRow(2, "a"), big+"2")}, ins(200, "pad")),
				tx(8, ins(201, "pad"), cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, After: unchangedNote(itemRow(2, "b"))},
					cdc.Change{Table: itemsTable.Name, Op: cdc.OpInsert, After: withNote(itemRow(3, "a"), "three")},
					cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, After: unchangedNote(itemRow(3, "b"))}),
			)
			mustCommit(t, b)
			if err := sameRow(storedRow(t, s, 8, 2), withNote(itemRow(2, "b"), big+"2")); err != nil {
				t.Fatalf("update in the insert's batch: %v", err)
			}
			if err := sameRow(storedRow(t, s, 8, 3), withNote(itemRow(3, "b"), "three")); err != nil {
				t.Fatalf("update in the insert's transaction: %v", err)
			}

			// A key change takes the image of the old key.
			moved := cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, Before: itemKey(2), After: unchangedNote(itemRow(22, "moved"))}
			appendCommitted(t, s, tx(9, moved))
			if err := sameRow(storedRow(t, s, 9, 22), withNote(itemRow(22, "moved"), big+"2")); err != nil {
				t.Fatalf("key-changing update: %v", err)
			}

			// After a reopen the image comes from the stored chunk.
			s.Close()
			s = reopen(t, cfg)
			appendCommitted(t, s, tx(10, cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, After: unchangedNote(itemRow(1, "c"))}))
			if err := sameRow(storedRow(t, s, 10, 1), withNote(itemRow(1, "c"), big)); err != nil {
				t.Fatalf("update after reopen: %v", err)
			}

			// A row the log never saw (or saw deleted): the column is left out.
			appendCommitted(t, s, tx(11, del(3), cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, After: unchangedNote(itemRow(3, "x"))},
				cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, After: unchangedNote(itemRow(99, "x"))}))
			for _, id := range []int64{3, 99} {
				r := storedRow(t, s, 11, id)
				if _, ok := r.Get("note"); ok {
					t.Fatalf("row %d with no stored image has a note: %v", id, r)
				}
				if err := sameRow(r, unchangedNote(itemRow(id, "x"))); err != nil {
					t.Fatalf("row %d: %v", id, err)
				}
			}
		})
	}
}

func TestRowCache_Bounds(t *testing.T) {
	c := newRowCache(3, 100)
	for i := range 5 {
		c.put("t", string(rune('a'+i)), []byte("0123456789"))
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := c.get("t", string(rune('a'+i))); ok != want {
			t.Errorf("entry %d present %v, want %v", i, ok, want)
		}
	}
	c.put("t", "big", make([]byte, 60)) // larger than an eighth of the budget: not kept
	if _, ok := c.get("t", "big"); ok {
		t.Error("an oversized row was cached")
	}
	c.put("t", "e", []byte("x"))
	if r, ok := c.get("t", "e"); !ok || string(r) != "x" {
		t.Errorf("overwritten entry %q %v", r, ok)
	}
	c.remove("t", "e")
	if _, ok := c.get("t", "e"); ok {
		t.Error("removed entry present")
	}
	c.clear()
	if len(c.index) != 0 || c.bytes != 0 {
		t.Errorf("cleared cache has %d entries %d bytes", len(c.index), c.bytes)
	}
	off := newRowCache(0, 0)
	off.put("t", "a", []byte("x"))
	if _, ok := off.get("t", "a"); ok {
		t.Error("disabled cache returned an entry")
	}

	byBytes := newRowCache(10, 80)
	for i := range 10 {
		byBytes.put("t", string(rune('a'+i)), []byte("0123456789"))
	}
	if byBytes.bytes > 80 {
		t.Errorf("cache holds %d bytes, budget 80", byBytes.bytes)
	}
	if _, ok := byBytes.get("t", "a"); ok {
		t.Error("oldest entry kept beyond the byte budget")
	}
	if _, ok := byBytes.get("t", "j"); !ok {
		t.Error("newest entry evicted")
	}
}
