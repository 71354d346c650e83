package changelog

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/synchub/synchub/cdc"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestSQLiteStore_PageGolden pins the exact bytes of /v1/changes bodies: the envelope,
// entry headers and stored changes, for a whole page and a split transaction.
func TestSQLiteStore_PageGolden(t *testing.T) {
	s, _ := openTest(t, func(c *SQLiteConfig) { c.ChunkChanges = 2 })
	appendCommitted(t, s,
		&cdc.Tx{Pos: testPos(1), CommitTime: baseTime, Origin: "edge-7", Changes: []cdc.Change{ins(1, "first"), ins(2, "second")}},
		&cdc.Tx{Pos: testPos(2), CommitTime: baseTime.Add(1500), Changes: []cdc.Change{
			{Table: itemsTable.Name, Op: cdc.OpUpdate, Before: itemKey(2), After: itemRow(3, "moved")},
			del(1),
			{Table: itemsTable.Name, Op: cdc.OpTruncate},
		}},
	)
	var got bytes.Buffer
	for _, req := range []PageRequest{{Since: 0, Limit: 10}, {Since: 1, Limit: 2}} {
		p, _ := readPage(t, s, req)
		if !json.Valid(p.Body) {
			t.Fatalf("page body is not JSON: %s", p.Body)
		}
		got.Write(p.Body)
		got.WriteString("\n")
	}
	path := filepath.Join("testdata", "pages.golden")
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run PageGolden -update to create it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("page bodies differ from %s:\n got %s\nwant %s", path, got.Bytes(), want)
	}
}
