package changelog

import (
	"context"
	"testing"

	"github.com/synchub/synchub/cdc"
)

// TestSQLiteStore_VersionRows checks the stored version rows of a batch that mixes
// single-chunk versions with several origins and schema versions, multi-chunk
// versions and empty ones, across more rows than one grouped statement holds.
func TestSQLiteStore_VersionRows(t *testing.T) {
	s, _ := openTest(t, func(c *SQLiteConfig) { c.ChunkChanges = 3 })
	type want struct {
		origin              string
		schema, changes, us int64
		chunks, lastSeq     int64
	}
	var wants []want
	b := begin(t, s)
	if err := b.SetTables([]cdc.Table{itemsTable}); err != nil {
		t.Fatal(err)
	}
	schema := int64(1)
	id := int64(0)
	for i := int64(1); i <= 200; i++ {
		origin := []string{"", "edge-1", "edge-2"}[(i/40)%3]
		n := int64(1)
		switch {
		case i%50 == 0:
			n = 7 // three chunks of 3, 3 and 1 changes
		case i%61 == 0:
			n = 0
		}
		x := tx(i)
		x.Origin = origin
		for range n {
			id++
			x.Changes = append(x.Changes, ins(id, "r"))
		}
		if i == 90 {
			x.Tables = []cdc.Table{pairsTable}
			schema++
		}
		mustAppend(t, b, x)
		w := want{origin: origin, schema: schema, changes: n, us: x.CommitTime.UnixMicro(), chunks: (n + 2) / 3, lastSeq: (n+2)/3 - 1}
		wants = append(wants, w)
	}
	st := mustCommit(t, b)
	if st.Head != int64(len(wants)) {
		t.Fatalf("head %d, want %d", st.Head, len(wants))
	}
	rows, err := s.rdb.QueryContext(context.Background(), `SELECT version, origin, commit_us, schema_version, changes, bytes, chunks, last_seq FROM versions ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got int
	var bytes int64
	for rows.Next() {
		var v, us, sv, changes, size, chunks, lastSeq int64
		var origin string
		if err := rows.Scan(&v, &origin, &us, &sv, &changes, &size, &chunks, &lastSeq); err != nil {
			t.Fatal(err)
		}
		got++
		if v != int64(got) {
			t.Fatalf("row %d has version %d", got, v)
		}
		w := wants[v-1]
		if origin != w.origin || us != w.us || sv != w.schema || changes != w.changes || chunks != w.chunks || lastSeq != w.lastSeq {
			t.Errorf("version %d: origin %q, commit_us %d, schema %d, changes %d, chunks %d, last_seq %d; want %+v",
				v, origin, us, sv, changes, chunks, lastSeq, w)
		}
		if (changes == 0) != (size == 0) {
			t.Errorf("version %d: %d changes in %d bytes", v, changes, size)
		}
		bytes += size
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got != len(wants) {
		t.Fatalf("%d version rows, want %d", got, len(wants))
	}
	if bytes != st.Bytes {
		t.Errorf("version rows hold %d bytes, state %d", bytes, st.Bytes)
	}
	p := pullAll(t, s, 0, 1000)
	if len(p.changes) != int(id) {
		t.Fatalf("pulled %d changes, want %d", len(p.changes), id)
	}
	for _, dp := range p.pages {
		for _, e := range dp.Entries {
			w := wants[e.Version-1]
			if e.Origin != w.origin || e.TS != w.us || e.Schema != w.schema || e.Last != (int64(e.Seq) == w.lastSeq) {
				t.Errorf("entry %d.%d: origin %q, ts %d, schema %d, last %v; want %+v", e.Version, e.Seq, e.Origin, e.TS, e.Schema, e.Last, w)
			}
		}
	}
}
