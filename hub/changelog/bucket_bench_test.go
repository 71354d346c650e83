package changelog

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/rules"
)

// benchBucketRows is the number of changes in the large log: SYNCHUB_BENCH_ROWS, or
// 1,000,000.
func benchBucketRows(b *testing.B) int {
	if s := os.Getenv("SYNCHUB_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1000 {
			b.Fatalf("SYNCHUB_BENCH_ROWS=%q: want an integer of at least 1000", s)
		}
		return n
	}
	return 1_000_000
}

func benchRules(b *testing.B) *rules.Set {
	set, err := rules.Compile(rules.Config{Groups: map[string]rules.GroupConfig{
		"stores": {Tables: map[string]rules.TableConfig{"shop.orders": {Filter: "store_id = {edge.store_id}", Columns: []string{"id", "store_id", "total"}}}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	return set
}

// fillBuckets appends rows changes to s: transactions of txSize inserts, the change
// with id i going to store i%stores.
func fillBuckets(b *testing.B, s *SQLiteStore, rows, stores, txSize int, only int64) {
	ctx := context.Background()
	batch, err := s.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := batch.SetTables([]cdc.Table{ordersTable, productsTable}); err != nil {
		b.Fatal(err)
	}
	var pos int64
	changes := make([]cdc.Change, 0, txSize)
	for i := 0; i < rows; i++ {
		store := int64(i % stores)
		if only >= 0 && store != only {
			continue
		}
		changes = append(changes, oIns(int64(i), store, "9.99"))
		if only < 0 && len(changes) < txSize {
			continue
		}
		pos++
		if err := batch.AppendTx(ctx, &cdc.Tx{Pos: testPos(pos), CommitTime: baseTime, Changes: changes}); err != nil {
			b.Fatal(err)
		}
		changes = changes[:0]
		if batch.Pending() >= 20000 {
			if _, err := batch.Commit(ctx); err != nil {
				b.Fatal(err)
			}
			if batch, err = s.Begin(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := batch.Commit(ctx); err != nil {
		b.Fatal(err)
	}
}

// catchUp pulls one bucket from since 0 to the head and returns the changes received.
func catchUp(b *testing.B, s *SQLiteStore, bucket string) int {
	n := 0
	since := int64(0)
	for range 100000 {
		p, err := s.ReadPage(context.Background(), PageRequest{Since: since, Limit: 1000, Scoped: true, Buckets: []string{bucket}})
		if err != nil {
			b.Fatal(err)
		}
		n += p.Changes
		if p.Changes == 0 {
			return n
		}
		since = p.Next
	}
	b.Fatal("catch-up did not finish")
	return n
}

// BenchmarkBucketCatchUp measures one edge's catch-up pull (from watermark 0) of its
// bucket in a log of SYNCHUB_BENCH_ROWS changes spread over 1,000 buckets, against the
// same pull from a log holding only that bucket's changes, and reports both and
// their ratio.
func BenchmarkBucketCatchUp(b *testing.B) {
	rows := benchBucketRows(b)
	const stores, txSize, edge = 1000, 10, 7
	set := benchRules(b)
	start := time.Now()
	full, _ := openShop(b, set, nil)
	fillBuckets(b, full, rows, stores, txSize, -1)
	fillTime := time.Since(start)
	own, _ := openShop(b, set, nil)
	fillBuckets(b, own, rows, stores, txSize, edge)
	bucket := "stores/shop.orders/" + strconv.Itoa(edge)
	want := catchUp(b, own, bucket)
	if got := catchUp(b, full, bucket); got != want || want != rows/stores {
		b.Fatalf("the large log served %d changes, the edge's own log %d; want %d", got, want, rows/stores)
	}
	b.ResetTimer()
	var tFull, tOwn time.Duration
	for b.Loop() {
		t0 := time.Now()
		catchUp(b, full, bucket)
		t1 := time.Now()
		catchUp(b, own, bucket)
		tFull += t1.Sub(t0)
		tOwn += time.Since(t1)
	}
	n := float64(b.N)
	fullMS, ownMS := float64(tFull.Microseconds())/1000/n, float64(tOwn.Microseconds())/1000/n
	b.ReportMetric(fullMS, "full-log-ms/pull")
	b.ReportMetric(ownMS, "own-log-ms/pull")
	b.ReportMetric(fullMS/ownMS, "ratio")
	b.ReportMetric(0, "ns/op")
	st, _ := full.State(context.Background())
	fmt.Printf("bucket catch-up: %d changes in %d buckets (%d versions, filled in %v); one edge's %d changes: %.2f ms from the full log, %.2f ms from a log of only its own, ratio %.2f\n",
		st.Entries, stores, st.Head, fillTime.Round(time.Second), want, fullMS, ownMS, fullMS/ownMS)
}
