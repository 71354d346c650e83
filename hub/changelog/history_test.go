package changelog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
)

func TestRowHistory(t *testing.T) {
	s, _ := openTest(t, nil)
	ctx := context.Background()
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	b := begin(t, s)
	if err := b.SetTables(testTables()); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, txAt(1, at, ins(1, "first"), ins(2, "other")))
	mustCommit(t, b)
	edgeTx := txAt(2, at.Add(time.Second), upd(1, "edited"))
	edgeTx.Origin = "till-7"
	appendCommitted(t, s, edgeTx, txAt(3, at.Add(2*time.Second), upd(2, "unrelated")),
		txAt(4, at.Add(3*time.Second), del(1)),
		txAt(5, at.Add(4*time.Second), cdc.Change{Table: pairsTable.Name, Op: cdc.OpInsert, After: cdc.Row{
			{Name: "a", Value: cdc.Text(cdc.KindText, "x")}, {Name: "b", Value: cdc.Int(7)}, {Name: "v", Value: cdc.Null()}}}))

	got, err := RowHistory(ctx, s, itemsTable.Name, keyText(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("history of item 1: %d versions %+v, want 3", len(got), got)
	}
	wantVersions := []int64{4, 2, 1}
	wantOps := []cdc.Op{cdc.OpDelete, cdc.OpUpdate, cdc.OpInsert}
	for i, v := range got {
		if v.Version != wantVersions[i] || v.Op != wantOps[i] {
			t.Errorf("entry %d: version %d op %v, want %d %v", i, v.Version, v.Op, wantVersions[i], wantOps[i])
		}
	}
	if got[1].Origin != "till-7" || !got[1].CommitTime.Equal(at.Add(time.Second)) || !strings.Contains(string(got[1].Row), `"edited"`) {
		t.Errorf("edge update entry: %+v", got[1])
	}
	if got[0].Row != nil || string(got[0].Key) != `{"id":1}` {
		t.Errorf("delete entry: row %s key %s", got[0].Row, got[0].Key)
	}

	// A limit keeps the newest versions; a key given with spaces matches.
	got, err = RowHistory(ctx, s, itemsTable.Name, "[ 1 ]", 2)
	if err != nil || len(got) != 2 || got[0].Version != 4 || got[1].Version != 2 {
		t.Fatalf("limited history: %+v %v", got, err)
	}
	// Composite keys.
	got, err = RowHistory(ctx, s, pairsTable.Name, `["x",7]`, 10)
	if err != nil || len(got) != 1 || got[0].Version != 5 {
		t.Fatalf("pairs history: %+v %v", got, err)
	}
	// A row never seen has no history.
	if got, err := RowHistory(ctx, s, itemsTable.Name, keyText(99), 10); err != nil || len(got) != 0 {
		t.Fatalf("unknown row: %+v %v", got, err)
	}
	// Bad input names what was wrong.
	if _, err := RowHistory(ctx, s, "public.nope", "[1]", 10); err == nil || !strings.Contains(err.Error(), "not captured") {
		t.Fatalf("unknown table: %v", err)
	}
	if _, err := RowHistory(ctx, s, itemsTable.Name, "[1", 10); err == nil || !strings.Contains(err.Error(), "JSON array") {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := RowHistory(ctx, s, itemsTable.Name, "[1,2]", 10); err == nil || !strings.Contains(err.Error(), "key columns") {
		t.Fatalf("key with two values for one key column: %v", err)
	}
}

func TestRowHistory_ManyPages(t *testing.T) {
	s, _ := openTest(t, nil)
	b := begin(t, s)
	if err := b.SetTables(testTables()); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, tx(1, ins(1, "v0")))
	for i := int64(2); i <= 40; i++ {
		changes := []cdc.Change{upd(1, "v")}
		for j := int64(0); j < 200; j++ {
			changes = append(changes, ins(1000+i*1000+j, "filler"))
		}
		mustAppend(t, b, tx(i, changes...))
	}
	mustCommit(t, b)
	got, err := RowHistory(context.Background(), s, itemsTable.Name, keyText(1), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 40 || got[0].Version != 40 || got[39].Version != 1 {
		t.Fatalf("history over many pages: %d versions, first %+v", len(got), got[0])
	}
}

// BenchmarkRowHistory reads one row's history from a log of 100 000 changes (1000
// versions of 100 inserts). dense: the row is updated in every tenth version, so every
// page is decoded; sparse: in ten versions only, so most pages are skipped unread.
func BenchmarkRowHistory(b *testing.B) {
	for _, bc := range []struct {
		name  string
		every int64
		want  int
	}{{"dense", 10, 100}, {"sparse", 100, 11}} {
		b.Run(bc.name, func(b *testing.B) {
			s, _ := openTest(b, nil)
			bt := begin(b, s)
			if err := bt.SetTables(testTables()); err != nil {
				b.Fatal(err)
			}
			mustAppend(b, bt, tx(1, ins(1, "v0")))
			for v := int64(2); v <= 1000; v++ {
				changes := make([]cdc.Change, 0, 100)
				if v%bc.every == 0 {
					changes = append(changes, upd(1, "v"))
				}
				for len(changes) < 100 {
					changes = append(changes, ins(1_000_000+v*1000+int64(len(changes)), "filler"))
				}
				mustAppend(b, bt, tx(v, changes...))
			}
			mustCommit(b, bt)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got, err := RowHistory(context.Background(), s, itemsTable.Name, keyText(1), 100)
				if err != nil || len(got) != bc.want {
					b.Fatalf("%d versions, %v; want %d", len(got), err, bc.want)
				}
			}
			b.ReportMetric(float64(mustState(b, s).Entries), "changes_scanned")
		})
	}
}

func TestRowHistory_PageFilter(t *testing.T) {
	needles, err := keyNeedles(&pairsTable, []byte(`["x",7]`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"entries":[{"changes":[{"t":"app.pairs","op":"i","row":{"a":"x","b":7,"v":null}}]}]}`, true},
		{`{"entries":[{"changes":[{"t":"app.pairs","op":"d","key":{"a":"x","b":7}}]}]}`, true},
		{`{"entries":[{"changes":[{"t":"app.pairs","op":"i","row":{"a":"x","b":70}}]}]}`, false},
		{`{"entries":[{"changes":[{"t":"app.pairs","op":"i","row":{"a":"xy","b":7}}]}]}`, false},
		{`{"entries":[{"changes":[{"t":"app.pairs","op":"t"}]}]}`, true},
	} {
		if got := mayHold([]byte(tc.body), needles); got != tc.want {
			t.Errorf("mayHold(%s) = %v, want %v", tc.body, got, tc.want)
		}
	}
}
