package mysql

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/mysql/myserver"
	"github.com/synchub/synchub/cdc/mysql/mytest"
)

const benchTable = `CREATE TABLE bench (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, qty INT NOT NULL,
	price DECIMAL(12,2) NOT NULL, created DATETIME(6) NOT NULL, flag TINYINT NOT NULL, note TEXT)`

// benchInsert writes 1,000 rows from id ? + 1 in one transaction.
const benchInsert = `INSERT INTO bench WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000)
	SELECT ? + n, CONCAT('customer name ', ? + n), (? + n) % 1000, ((? + n) % 100000) / 100,
	TIMESTAMPADD(SECOND, ? + n, '2024-01-01 00:00:00.123456'), (? + n) % 2, IF(n % 10 = 0, NULL, 'a note') FROM s`

// benchRows is SYNCHUB_BENCH_ROWS rounded to whole 1,000-row transactions, default
// 1,000,000.
func benchRows(b *testing.B) int {
	n := 1000000
	if v := os.Getenv("SYNCHUB_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("SYNCHUB_BENCH_ROWS=%q: want a number of rows >= 1000", v)
		}
	}
	return n / 1000 * 1000
}

// BenchmarkStreamDecode writes SYNCHUB_BENCH_ROWS row inserts in 1,000-row transactions,
// then reads them from the binlog twice: with a bare go-mysql BinlogSyncer that
// discards the events (the limit: server, network and go-mysql's row parsing), and with
// the Source (plus conversion to cdc values and whole transactions). It prints both
// rates and their ratio.
func BenchmarkStreamDecode(b *testing.B) {
	srv := mytest.Start(b, myserver.Options{})
	rows := benchRows(b)
	e := newEnv(b, srv)
	e.exec(benchTable)
	cfg := e.config("bench")
	src, err := New(cfg, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := src.Start(ctx, nil); err != nil {
		b.Fatal(err)
	}
	p, err := src.Snapshot(ctx, func(context.Context, []cdc.Change) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	src.Close()
	start := p.(Position)
	began := time.Now()
	for base := 0; base < rows; base += 1000 {
		e.exec(benchInsert, base, base, base, base, base, base)
	}
	b.Logf("wrote %d rows in %d transactions in %v", rows, rows/1000, time.Since(began).Round(time.Millisecond))

	var rawRate, srcRate float64
	b.Run("gomysql_raw", func(b *testing.B) {
		var elapsed time.Duration
		for b.Loop() {
			t0 := time.Now()
			rawRead(b, src, start, rows)
			elapsed += time.Since(t0)
		}
		rawRate = float64(b.N*rows) / elapsed.Seconds()
		b.ReportMetric(rawRate, "rows/s")
	})
	b.Run("source", func(b *testing.B) {
		var elapsed time.Duration
		for b.Loop() {
			s, err := New(cfg, testLogger(b))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Start(ctx, start); err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			sourceRead(b, s, rows)
			elapsed += time.Since(t0)
			s.Close()
		}
		srcRate = float64(b.N*rows) / elapsed.Seconds()
		b.ReportMetric(srcRate, "rows/s")
	})
	if rawRate > 0 && srcRate > 0 {
		fmt.Printf("binlog decode of %d rows: go-mysql raw %.0f rows/s, Source %.0f rows/s, Source/raw = %.2f\n", rows, rawRate, srcRate, srcRate/rawRate)
	}
}

// rawRead reads the binlog from start with go-mysql alone until n rows arrived.
func rawRead(b *testing.B, src *Source, start Position, n int) {
	syncer, err := src.newSyncer()
	if err != nil {
		b.Fatal(err)
	}
	defer syncer.Close()
	bs, err := src.startSync(syncer, start)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	got := 0
	for got < n {
		ev, err := bs.GetEvent(ctx)
		if err != nil {
			b.Fatalf("raw read after %d rows: %v", got, err)
		}
		if re, ok := ev.Event.(*replication.RowsEvent); ok {
			got += len(re.Rows)
		}
	}
}

// sourceRead streams until n changes arrived.
func sourceRead(b *testing.B, src *Source, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	got := 0
	h := &funcHandler{tx: func(tx *cdc.Tx) error {
		got += len(tx.Changes)
		if !tx.More && got >= n {
			cancel()
		}
		return nil
	}}
	if err := src.Stream(ctx, h); err != context.Canceled || got != n {
		b.Fatalf("Stream: %v after %d of %d changes", err, got, n)
	}
}

type funcHandler struct{ tx func(*cdc.Tx) error }

func (f *funcHandler) Tx(_ context.Context, tx *cdc.Tx) error { return f.tx(tx) }
func (f *funcHandler) Idle(context.Context) error             { return nil }
