package changelog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
)

// benchRow is a typical row: a key, short text, a decimal, a few bytes, a sentence, a
// float and a timestamp.
func benchRow(id int64) cdc.Row {
	return cdc.Row{
		{Name: "id", Value: cdc.Int(id)},
		{Name: "name", Value: cdc.Text(cdc.KindText, "customer-"+strconv.FormatInt(id, 10))},
		{Name: "amount", Value: cdc.Text(cdc.KindDecimal, strconv.FormatInt(id%100000, 10)+".25")},
		{Name: "data", Value: cdc.Bytes([]byte("0123456789abcdef"))},
		{Name: "note", Value: cdc.Text(cdc.KindText, "delivered to the back door, signed by the owner")},
		{Name: "ratio", Value: cdc.Float(float64(id) / 7)},
		{Name: "at", Value: cdc.Text(cdc.KindTimestampTZ, "2024-05-06T07:08:09.123456Z")},
	}
}

func benchInserts(first int64, n int) []cdc.Change {
	cs := make([]cdc.Change, n)
	for i := range cs {
		cs[i] = cdc.Change{Table: itemsTable.Name, Op: cdc.OpInsert, After: benchRow(first + int64(i))}
	}
	return cs
}

func benchStore(b *testing.B, mutate func(*SQLiteConfig)) *SQLiteStore {
	b.Helper()
	s, _ := openTest(b, mutate)
	bt := begin(b, s)
	if err := bt.SetTables(testTables()); err != nil {
		b.Fatal(err)
	}
	mustCommit(b, bt)
	return s
}

// BenchmarkSQLiteStore_AppendLargeTx appends 1000-change transactions, one batch
// (one SQLite transaction) each, like BenchmarkSQLiteBaseline_PlainInsert.
func BenchmarkSQLiteStore_AppendLargeTx(b *testing.B) {
	s := benchStore(b, nil)
	const n = 1000
	x := &cdc.Tx{Pos: testPos(1), CommitTime: baseTime, Changes: benchInserts(0, n)}
	ctx := context.Background()
	id := int64(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range x.Changes { // new keys every time, as in the baseline
			id++
			x.Changes[j].After[0].Value = cdc.Int(id)
		}
		bt, err := s.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := bt.AppendTx(ctx, x); err != nil {
			b.Fatal(err)
		}
		if _, err := bt.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkSQLiteStore_AppendToastUpdate appends 1000-change transactions of updates
// whose 2 KiB note column is unchanged, over a working set of 4000 rows, with and
// without the row cache (without it, every fill reads and scans the stored chunk).
func BenchmarkSQLiteStore_AppendToastUpdate(b *testing.B) {
	for _, tc := range []struct {
		name   string
		mutate func(*SQLiteConfig)
	}{
		{"rowcache", nil},
		{"norowcache", func(c *SQLiteConfig) { c.RowCacheEntries = 0 }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchStore(b, tc.mutate)
			const rows, n = 4000, 1000
			note := cdc.Text(cdc.KindText, strings.Repeat("lorem ipsum ", 171))
			ins := benchInserts(0, rows)
			for i := range ins {
				ins[i].After[4].Value = note
			}
			bt := begin(b, s)
			mustAppend(b, bt, &cdc.Tx{Pos: testPos(1), CommitTime: baseTime, Changes: ins})
			mustCommit(b, bt)
			x := &cdc.Tx{Pos: testPos(2), CommitTime: baseTime, Changes: benchInserts(0, n)}
			for i := range x.Changes {
				x.Changes[i].Op = cdc.OpUpdate
				x.Changes[i].After[4] = cdc.Field{Name: "note", Unchanged: true}
			}
			ctx := context.Background()
			round := 0
			run := func() {
				for j := range x.Changes {
					x.Changes[j].After[0].Value = cdc.Int(int64((round*n + j) % rows))
				}
				round++
				bt, err := s.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := bt.AppendTx(ctx, x); err != nil {
					b.Fatal(err)
				}
				if _, err := bt.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
			for range rows / n { // one pass over the working set before timing
				run()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run()
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkSQLiteStore_AppendSmallTx appends single-change transactions, 1000 per commit.
func BenchmarkSQLiteStore_AppendSmallTx(b *testing.B) {
	s := benchStore(b, nil)
	ctx := context.Background()
	x := &cdc.Tx{Pos: testPos(1), CommitTime: baseTime, Changes: benchInserts(0, 1)}
	bt, err := s.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x.Changes[0].After[0].Value = cdc.Int(int64(i))
		if err := bt.AppendTx(ctx, x); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			if _, err := bt.Commit(ctx); err != nil {
				b.Fatal(err)
			}
			if bt, err = s.Begin(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := bt.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txs/s")
}

// BenchmarkSQLiteStore_ReadPage serves 1000-change pages from stored bytes, and
// encodes the same page with encoding/json from values already in memory (no
// database read at all), which is what a store that re-encodes would do at best.
func BenchmarkSQLiteStore_ReadPage(b *testing.B) {
	s := benchStore(b, nil)
	ctx := context.Background()
	const versions, per = 20, 1000
	bt := begin(b, s)
	for v := int64(1); v <= versions; v++ {
		mustAppend(b, bt, &cdc.Tx{Pos: testPos(v), CommitTime: baseTime, Changes: benchInserts(v*per, per)})
	}
	mustCommit(b, bt)

	b.Run("stored", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for i := 0; i < b.N; i++ {
			p, err := s.ReadPage(ctx, PageRequest{Since: int64(i % versions), Limit: per})
			if err != nil {
				b.Fatal(err)
			}
			if p.Changes != per {
				b.Fatalf("page has %d changes", p.Changes)
			}
			size = len(p.Body)
		}
		b.SetBytes(int64(size))
	})

	b.Run("json_marshal", func(b *testing.B) {
		type wireRow map[string]any
		type wireChange struct {
			Table string  `json:"t"`
			Op    string  `json:"op"`
			Row   wireRow `json:"row"`
		}
		type entry struct {
			Version int64        `json:"v"`
			Seq     int          `json:"seq"`
			Last    bool         `json:"last"`
			Origin  string       `json:"origin"`
			TS      int64        `json:"ts"`
			Schema  int64        `json:"schema"`
			Changes []wireChange `json:"changes"`
		}
		type page struct {
			Since         int64   `json:"since"`
			Next          int64   `json:"next"`
			Cursor        string  `json:"cursor"`
			Commit        bool    `json:"commit"`
			Head          int64   `json:"head"`
			SchemaVersion int64   `json:"schema_version"`
			Entries       []entry `json:"entries"`
		}
		pg := page{Since: 0, Next: 1, Commit: true, Head: versions, SchemaVersion: 1}
		for seq := 0; seq < 2; seq++ {
			e := entry{Version: 1, Seq: seq, Last: seq == 1, TS: baseTime.UnixMicro(), Schema: 1}
			for _, c := range benchInserts(int64(seq*500), 500) {
				r := wireRow{}
				for _, f := range c.After {
					switch f.Value.Kind() {
					case cdc.KindInt:
						r[f.Name] = f.Value.AsInt()
					case cdc.KindFloat:
						r[f.Name] = f.Value.AsFloat()
					case cdc.KindBytes:
						r[f.Name] = f.Value.AsBytes()
					default:
						r[f.Name] = f.Value.AsString()
					}
				}
				e.Changes = append(e.Changes, wireChange{Table: c.Table, Op: "i", Row: r})
			}
			pg.Entries = append(pg.Entries, e)
		}
		b.ReportAllocs()
		var size int
		for i := 0; i < b.N; i++ {
			body, err := json.Marshal(&pg)
			if err != nil {
				b.Fatal(err)
			}
			size = len(body)
		}
		b.SetBytes(int64(size))
	})
}

// BenchmarkSQLiteBaseline_PlainInsert is the floor the store is measured against: the
// same rows inserted into a plain table in 1000-row transactions through the same
// driver, with the same journal settings.
func BenchmarkSQLiteBaseline_PlainInsert(b *testing.B) {
	p := newPlainInsert(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.run(b)
	}
	b.ReportMetric(float64(b.N*plainRows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkSQLiteStore_AppendVsPlainInsert alternates a 1000-change store transaction
// with a 1000-row plain insert transaction, so both see the same machine load, and
// reports the store's throughput as a fraction of the plain insert's.
func BenchmarkSQLiteStore_AppendVsPlainInsert(b *testing.B) {
	s := benchStore(b, nil)
	p := newPlainInsert(b)
	ctx := context.Background()
	x := &cdc.Tx{Pos: testPos(1), CommitTime: baseTime, Changes: benchInserts(0, plainRows)}
	id := int64(0)
	var storeTime, plainTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range x.Changes {
			id++
			x.Changes[j].After[0].Value = cdc.Int(id)
		}
		start := time.Now()
		bt, err := s.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := bt.AppendTx(ctx, x); err != nil {
			b.Fatal(err)
		}
		if _, err := bt.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		p.run(b)
		storeTime += mid.Sub(start)
		plainTime += time.Since(mid)
	}
	b.ReportMetric(float64(b.N*plainRows)/storeTime.Seconds(), "store_rows/s")
	b.ReportMetric(float64(b.N*plainRows)/plainTime.Seconds(), "plain_rows/s")
	b.ReportMetric(plainTime.Seconds()/storeTime.Seconds(), "store/plain")
}

const plainRows = 1000

type plainInsert struct {
	db   *sql.DB
	stmt *sql.Stmt
	rows []cdc.Change
	id   int64
}

func newPlainInsert(b *testing.B) *plainInsert {
	b.Helper()
	path := filepath.Join(b.TempDir(), "plain.db")
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-65536)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, data BLOB,
		note TEXT, ratio REAL, at TEXT)`); err != nil {
		b.Fatal(err)
	}
	stmt, err := db.PrepareContext(ctx, `INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stmt.Close() })
	return &plainInsert{db: db, stmt: stmt, rows: benchInserts(0, plainRows)}
}

// run inserts one transaction of plainRows new rows.
func (p *plainInsert) run(b *testing.B) {
	ctx := context.Background()
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	st := tx.StmtContext(ctx, p.stmt)
	for _, c := range p.rows {
		p.id++
		r := c.After
		if _, err := st.ExecContext(ctx, p.id, r[1].Value.SQLiteArg(), r[2].Value.SQLiteArg(), r[3].Value.SQLiteArg(),
			r[4].Value.SQLiteArg(), r[5].Value.SQLiteArg(), r[6].Value.SQLiteArg()); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

func TestBenchmarkFixturesRoundTrip(t *testing.T) {
	// The benchmark rows must survive the store like any other.
	s, _ := openTest(t, nil)
	appendCommitted(t, s, &cdc.Tx{Pos: testPos(1), CommitTime: time.Now(), Changes: benchInserts(1, 3)})
	got := pullAll(t, s, 0, 10)
	for i, c := range got.changes {
		if err := sameRow(decodeRow(t, &itemsTable, c.Row), benchRow(int64(i+1))); err != nil {
			t.Fatal(fmt.Errorf("row %d: %w", i, err))
		}
	}
	if len(got.changes) != 3 {
		t.Fatalf("%d changes", len(got.changes))
	}
}
