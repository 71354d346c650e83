package changelog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// testPos is a source position for tests.
type testPos int64

func (p testPos) String() string { return "pos/" + strconv.FormatInt(int64(p), 10) }
func (p testPos) IsZero() bool   { return p == 0 }

var itemsTable = cdc.Table{
	Name: "public.items",
	Columns: []cdc.Column{
		{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "name", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true},
		{Name: "amount", SourceType: "numeric", Kind: cdc.KindDecimal, SQLiteType: "TEXT", Nullable: true},
		{Name: "data", SourceType: "bytea", Kind: cdc.KindBytes, SQLiteType: "BLOB", Nullable: true},
		{Name: "note", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true},
		{Name: "ratio", SourceType: "double precision", Kind: cdc.KindFloat, SQLiteType: "REAL", Nullable: true},
		{Name: "at", SourceType: "timestamptz", Kind: cdc.KindTimestampTZ, SQLiteType: "TEXT", Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

// pairsTable has a two-column key.
var pairsTable = cdc.Table{
	Name: "app.pairs",
	Columns: []cdc.Column{
		{Name: "a", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT"},
		{Name: "b", SourceType: "integer", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "v", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true},
	},
	PrimaryKey: []string{"a", "b"},
}

func testTables() []cdc.Table { return []cdc.Table{itemsTable, pairsTable} }

func itemRow(id int64, name string) cdc.Row {
	return cdc.Row{
		{Name: "id", Value: cdc.Int(id)},
		{Name: "name", Value: cdc.Text(cdc.KindText, name)},
		{Name: "amount", Value: cdc.Text(cdc.KindDecimal, strconv.FormatInt(id, 10)+".50")},
		{Name: "data", Value: cdc.Null()},
		{Name: "note", Value: cdc.Null()},
		{Name: "ratio", Value: cdc.Float(0.5)},
		{Name: "at", Value: cdc.Text(cdc.KindTimestampTZ, "2024-01-02T03:04:05.123456Z")},
	}
}

func itemKey(id int64) cdc.Row { return cdc.Row{{Name: "id", Value: cdc.Int(id)}} }

func ins(id int64, name string) cdc.Change {
	return cdc.Change{Table: itemsTable.Name, Op: cdc.OpInsert, After: itemRow(id, name)}
}

func upd(id int64, name string) cdc.Change {
	return cdc.Change{Table: itemsTable.Name, Op: cdc.OpUpdate, After: itemRow(id, name)}
}

func del(id int64) cdc.Change {
	return cdc.Change{Table: itemsTable.Name, Op: cdc.OpDelete, Before: itemKey(id)}
}

func keyText(id int64) string { return syncproto.KeyText(&itemsTable, itemKey(id)) }

var baseTime = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func txAt(pos int64, at time.Time, changes ...cdc.Change) *cdc.Tx {
	return &cdc.Tx{Pos: testPos(pos), CommitTime: at, Changes: changes}
}

func tx(pos int64, changes ...cdc.Change) *cdc.Tx {
	return txAt(pos, baseTime.Add(time.Duration(pos)*time.Second), changes...)
}

func openTest(t testing.TB, mutate func(*SQLiteConfig)) (*SQLiteStore, SQLiteConfig) {
	t.Helper()
	cfg := DefaultSQLiteConfig()
	cfg.Path = filepath.Join(t.TempDir(), "changelog.db")
	if mutate != nil {
		mutate(&cfg)
	}
	s := reopen(t, cfg)
	return s, cfg
}

func reopen(t testing.TB, cfg SQLiteConfig) *SQLiteStore {
	t.Helper()
	s, err := OpenSQLite(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func begin(t testing.TB, s Store) Batch {
	t.Helper()
	b, err := s.Begin(context.Background())
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	return b
}

func mustAppend(t testing.TB, b Batch, txs ...*cdc.Tx) {
	t.Helper()
	for _, x := range txs {
		if err := b.AppendTx(context.Background(), x); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

func mustCommit(t testing.TB, b Batch) State {
	t.Helper()
	st, err := b.Commit(context.Background())
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return st
}

// appendCommitted appends txs in one batch after setting the test tables.
func appendCommitted(t testing.TB, s Store, txs ...*cdc.Tx) State {
	t.Helper()
	b := begin(t, s)
	if err := b.SetTables(testTables()); err != nil {
		t.Fatalf("set tables: %v", err)
	}
	mustAppend(t, b, txs...)
	return mustCommit(t, b)
}

func mustState(t testing.TB, s Store) State {
	t.Helper()
	st, err := s.State(context.Background())
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	return st
}

func readPage(t testing.TB, s Store, req PageRequest) (*Page, syncproto.Page) {
	t.Helper()
	p, err := s.ReadPage(context.Background(), req)
	if err != nil {
		t.Fatalf("read page %+v: %v", req, err)
	}
	var dp syncproto.Page
	if err := json.Unmarshal(p.Body, &dp); err != nil {
		t.Fatalf("page body is not valid JSON: %v\n%s", err, p.Body)
	}
	checkEnvelope(t, p, &dp, req.Since)
	return p, dp
}

// checkEnvelope compares the decoded body with the Page fields.
func checkEnvelope(t testing.TB, p *Page, dp *syncproto.Page, since int64) {
	t.Helper()
	n := 0
	for _, e := range dp.Entries {
		n += len(e.Changes)
	}
	switch {
	case dp.Since != since:
		t.Fatalf("body since %d, want %d", dp.Since, since)
	case dp.Next != p.Next || dp.Commit != p.Commit || dp.Head != p.Head:
		t.Fatalf("body next/commit/head %d/%v/%d differ from page %d/%v/%d", dp.Next, dp.Commit, dp.Head, p.Next, p.Commit, p.Head)
	case dp.Cursor != p.Cursor.String():
		t.Fatalf("body cursor %q, page cursor %q", dp.Cursor, p.Cursor)
	case n != p.Changes:
		t.Fatalf("body has %d changes, page says %d", n, p.Changes)
	}
}

// pulled is everything an edge received while pulling to the head.
type pulled struct {
	pages   []syncproto.Page
	changes []syncproto.WireChange
	next    int64
}

// pullAll pulls like an edge from since until caught up, following cursors, and
// checks the protocol's invariants on the way.
func pullAll(t testing.TB, s Store, since int64, limit int) pulled {
	t.Helper()
	var out pulled
	var cur syncproto.Cursor
	for i := 0; i < 100000; i++ {
		p, dp := readPage(t, s, PageRequest{Since: since, Cursor: cur, Limit: limit})
		out.pages = append(out.pages, dp)
		for _, e := range dp.Entries {
			out.changes = append(out.changes, e.Changes...)
		}
		if !p.Commit {
			if p.Cursor == (syncproto.Cursor{}) {
				t.Fatalf("page without commit has no cursor")
			}
			cur = p.Cursor
			continue
		}
		cur = syncproto.Cursor{}
		if p.Next < since {
			t.Fatalf("next %d went back from since %d", p.Next, since)
		}
		if p.Changes == 0 {
			out.next = p.Next
			return out
		}
		since = p.Next
	}
	t.Fatalf("pull did not finish")
	return out
}

// decodeRow decodes a wire row with the table's column kinds.
func decodeRow(t testing.TB, tbl *cdc.Table, raw json.RawMessage) cdc.Row {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("row %s: %v", raw, err)
	}
	var r cdc.Row
	for _, c := range tbl.Columns {
		v, ok := m[c.Name]
		if !ok {
			continue
		}
		val, err := cdc.ParseJSONValue(c.Kind, v)
		if err != nil {
			t.Fatalf("column %s: %v", c.Name, err)
		}
		r = append(r, cdc.Field{Name: c.Name, Value: val})
		delete(m, c.Name)
	}
	if len(m) > 0 {
		t.Fatalf("row has unknown columns: %v", m)
	}
	return r
}

func sameRow(a, b cdc.Row) error {
	var want cdc.Row
	for _, f := range b {
		if !f.Unchanged {
			want = append(want, f)
		}
	}
	if len(a) != len(want) {
		return fmt.Errorf("got %d columns, want %d", len(a), len(want))
	}
	for i := range a {
		if a[i].Name != want[i].Name || !a[i].Value.Equal(want[i].Value) {
			return fmt.Errorf("column %s: got %s (%s), want %s %s (%s)", a[i].Name, a[i].Value, a[i].Value.Kind(),
				want[i].Name, want[i].Value, want[i].Value.Kind())
		}
	}
	return nil
}

// applyState replays pulled changes onto a map of rows keyed by key text, the way an
// edge would, and returns the resulting rows.
func applyState(t testing.TB, changes []syncproto.WireChange) map[string]map[string]cdc.Row {
	t.Helper()
	state := map[string]map[string]cdc.Row{}
	tbls := map[string]*cdc.Table{itemsTable.Name: &itemsTable, pairsTable.Name: &pairsTable}
	for _, c := range changes {
		tbl := tbls[c.Table]
		if tbl == nil {
			t.Fatalf("change for unknown table %s", c.Table)
		}
		m := state[c.Table]
		if m == nil {
			m = map[string]cdc.Row{}
			state[c.Table] = m
		}
		switch c.Op {
		case "i", "u":
			row := decodeRow(t, tbl, c.Row)
			if c.Key != nil {
				delete(m, syncproto.KeyText(tbl, decodeRow(t, tbl, c.Key)))
			}
			m[syncproto.KeyText(tbl, row)] = row
		case "d":
			delete(m, syncproto.KeyText(tbl, decodeRow(t, tbl, c.Key)))
		case "t":
			clear(m)
		default:
			t.Fatalf("unknown op %q", c.Op)
		}
	}
	return state
}

func isErr(err, target error) bool { return errors.Is(err, target) }
