package postgres

import (
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/postgres/pgserver"
	"github.com/synchub/synchub/cdc/postgres/pgtest"
)

const benchTable = `CREATE TABLE bench (id bigint PRIMARY KEY, name text, qty int, price numeric(12,2),
	created timestamptz, flag bool, tags text[])`

const benchInsert = `INSERT INTO bench SELECT g, 'customer name ' || g, g % 1000, (g % 100000) / 100.0,
	'2024-01-01'::timestamptz + g * interval '1 second', g % 2 = 0, ARRAY['a', 'b' || g]
	FROM generate_series($1::bigint, $2::bigint) g`

// BenchmarkStreamDecode measures the stream end to end: server-side decoding,
// pgoutput, and this package's decoding into Values, for 200,000-row transactions.
// BenchmarkDecodeTuple isolates this package's share.
func BenchmarkStreamDecode(b *testing.B) {
	srv := pgtest.Start(b, pgserver.Options{})
	const rows = 200000
	e := newEnv(b, srv)
	e.exec(benchTable)
	src := e.newSource(e.config("public.bench"))
	if _, err := src.Start(context.Background(), nil); err != nil {
		b.Fatal(err)
	}
	if _, err := src.Snapshot(context.Background(), func(context.Context, []cdc.Change) error { return nil }); err != nil {
		b.Fatal(err)
	}
	next := int64(1)
	var elapsed time.Duration
	for b.Loop() {
		e.exec(benchInsert, next, next+rows-1)
		next += rows
		began := time.Now()
		sourceReceive(b, src, rows)
		elapsed += time.Since(began)
	}
	b.ReportMetric(float64(b.N*rows)/elapsed.Seconds(), "rows/s")
}

// sourceReceive streams until n rows arrived, then closes and restarts the source at
// the last position so the next round starts clean.
func sourceReceive(b *testing.B, src *Source, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := 0
	var last cdc.Position
	h := &funcHandler{tx: func(tx *cdc.Tx) error {
		got += len(tx.Changes)
		if !tx.More {
			last = tx.Pos
			if got >= n {
				cancel()
			}
		}
		return nil
	}}
	if err := src.Stream(ctx, h); err != context.Canceled {
		b.Fatalf("Stream: %v", err)
	}
	src.Ack(last)
	src.Close()
	if _, err := src.Start(context.Background(), last); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSnapshot measures Snapshot's rows/s against reading the same table without
// decoding: COPY in text format, one streamed SELECT (what Snapshot does) and keyset
// pagination in pages of 10000.
func BenchmarkSnapshot(b *testing.B) {
	srv := pgtest.Start(b, pgserver.Options{})
	e := newEnv(b, srv)
	e.exec(benchTable)
	const rows = 300000
	e.exec(benchInsert, 1, rows)
	e.exec(`VACUUM ANALYZE bench`)
	b.Run("copy", func(b *testing.B) {
		var elapsed time.Duration
		for b.Loop() {
			began := time.Now()
			if _, err := e.conn.PgConn().CopyTo(context.Background(), io.Discard, "COPY bench TO STDOUT"); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(began)
		}
		b.ReportMetric(float64(b.N*rows)/elapsed.Seconds(), "rows/s")
	})
	b.Run("select", func(b *testing.B) {
		var elapsed time.Duration
		for b.Loop() {
			began := time.Now()
			rr := e.conn.PgConn().ExecParams(context.Background(), "SELECT id, name, qty, price, created, flag, tags FROM bench", nil, nil, nil, nil)
			n := 0
			for rr.NextRow() {
				n += len(rr.Values())
			}
			if _, err := rr.Close(); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(began)
		}
		b.ReportMetric(float64(b.N*rows)/elapsed.Seconds(), "rows/s")
	})
	b.Run("keyset", func(b *testing.B) {
		var elapsed time.Duration
		for b.Loop() {
			began := time.Now()
			last, n := int64(0), 0
			for {
				rr := e.conn.PgConn().ExecParams(context.Background(),
					"SELECT id, name, qty, price, created, flag, tags FROM bench WHERE id > $1 ORDER BY id LIMIT 10000",
					[][]byte{[]byte(strconv.FormatInt(last, 10))}, nil, nil, nil)
				page := 0
				for rr.NextRow() {
					last, _ = strconv.ParseInt(string(rr.Values()[0]), 10, 64)
					page++
				}
				if _, err := rr.Close(); err != nil {
					b.Fatal(err)
				}
				n += page
				if page == 0 {
					break
				}
			}
			elapsed += time.Since(began)
			if n != rows {
				b.Fatalf("keyset read %d rows", n)
			}
		}
		b.ReportMetric(float64(b.N*rows)/elapsed.Seconds(), "rows/s")
	})
	b.Run("source", func(b *testing.B) {
		var elapsed time.Duration
		for i := 0; b.Loop(); i++ {
			cfg := e.config("public.bench")
			cfg.Slot = e.slot + "_" + strconv.Itoa(i)
			src := e.newSource(cfg)
			if _, err := src.Start(context.Background(), nil); err != nil {
				b.Fatal(err)
			}
			got := 0
			began := time.Now()
			_, err := src.Snapshot(context.Background(), func(_ context.Context, ch []cdc.Change) error {
				got += len(ch)
				return nil
			})
			elapsed += time.Since(began)
			if err != nil || got != rows {
				b.Fatalf("snapshot: %d rows, %v", got, err)
			}
			src.Close()
			e.exec(`SELECT pg_drop_replication_slot($1)`, cfg.Slot)
		}
		b.ReportMetric(float64(b.N*rows)/elapsed.Seconds(), "rows/s")
	})
}
