package postgres

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/postgres/pgserver"
	"github.com/synchub/synchub/cdc/postgres/pgtest"
)

// benchApplyRows is how many rows each round pushes; SYNCHUB_BENCH_ROWS overrides it.
func benchApplyRows(b *testing.B) int {
	n := 100000
	if s := os.Getenv("SYNCHUB_BENCH_ROWS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("SYNCHUB_BENCH_ROWS=%q is not a positive number", s)
		}
		n = v
	}
	return n
}

const benchApplyBatch = 500

var benchEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// BenchmarkApplyPush pushes rows into the bench table through Apply in batches of 500
// and compares the rate with the limit measured in the same run: the same rows
// inserted with a plain pgx.Batch (prepared statements, native Go values), one
// transaction per 500 rows.
func BenchmarkApplyPush(b *testing.B) { benchApplyPush(b, false) }

// BenchmarkApplyPushOneRefused is BenchmarkApplyPush with the last change of every
// batch refused (a duplicate key), so every batch takes the savepoint path.
func BenchmarkApplyPushOneRefused(b *testing.B) { benchApplyPush(b, true) }

func benchApplyPush(b *testing.B, refuse bool) {
	srv := pgtest.Start(b, pgserver.Options{})
	rows := benchApplyRows(b)
	e := newEnv(b, srv)
	e.exec(benchTable)
	ctx := context.Background()
	a, err := NewApplier(ctx, ApplierConfig{DSN: srv.DSN(e.db), Tables: []string{"public.bench"}, MaxConns: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()

	var plainTime, applyTime time.Duration
	next := int64(1)
	for b.Loop() {
		began := time.Now()
		benchPlainInsert(b, e.conn, next, rows)
		plainTime += time.Since(began)
		next += int64(rows)

		batches := benchChanges(next, rows)
		if refuse {
			for i := range batches {
				batches[i] = append(batches[i], batches[i][0])
			}
		}
		began = time.Now()
		for i, batch := range batches {
			res, err := a.Apply(ctx, cdc.Tag{Origin: "bench", Batch: strconv.Itoa(i)}, batch)
			if err != nil {
				b.Fatal(err)
			}
			for j, r := range res {
				if (r.Err != nil) != (refuse && j == len(res)-1) {
					b.Fatalf("change %d: %v", j, r.Err)
				}
			}
		}
		applyTime += time.Since(began)
		next += int64(rows)
	}
	total := float64(b.N * rows)
	plainRate, applyRate := total/plainTime.Seconds(), total/applyTime.Seconds()
	b.ReportMetric(applyRate, "rows/s")
	b.ReportMetric(plainRate, "pgx_rows/s")
	b.ReportMetric(applyRate/plainRate, "ratio")
	how := "all written"
	if refuse {
		how = "one refused change per batch"
	}
	fmt.Printf("apply push (%s): %d rows in batches of %d: Apply %.0f rows/s, plain pgx.Batch %.0f rows/s, ratio %.2f\n",
		how, rows, benchApplyBatch, applyRate, plainRate, applyRate/plainRate)
}

// benchChanges builds the Apply batches for rows ids from first, as an edge would send
// them; building them is not part of the measured time.
func benchChanges(first int64, rows int) [][]cdc.Change {
	var out [][]cdc.Change
	for start := 0; start < rows; start += benchApplyBatch {
		n := min(benchApplyBatch, rows-start)
		batch := make([]cdc.Change, n)
		for i := range batch {
			id := first + int64(start+i)
			batch[i] = cdc.Change{Table: "public.bench", Op: cdc.OpInsert, After: cdc.Row{
				{Name: "id", Value: cdc.Int(id)},
				{Name: "name", Value: cdc.Text(cdc.KindText, "customer name "+strconv.FormatInt(id, 10))},
				{Name: "qty", Value: cdc.Int(id % 1000)},
				{Name: "price", Value: cdc.Text(cdc.KindDecimal, strconv.FormatFloat(float64(id%100000)/100, 'f', 2, 64))},
				{Name: "created", Value: cdc.Text(cdc.KindTimestampTZ, benchEpoch.Add(time.Duration(id)*time.Second).Format("2006-01-02T15:04:05Z"))},
				{Name: "flag", Value: cdc.Bool(id%2 == 0)},
				{Name: "tags", Value: cdc.Text(cdc.KindArray, `["a","b`+strconv.FormatInt(id, 10)+`"]`)},
			}}
		}
		out = append(out, batch)
	}
	return out
}

// benchPlainInsert inserts the same rows with pgx.Batch, one transaction per batch.
func benchPlainInsert(b *testing.B, conn *pgx.Conn, first int64, rows int) {
	ctx := context.Background()
	const sql = `INSERT INTO bench (id, name, qty, price, created, flag, tags) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	for start := 0; start < rows; start += benchApplyBatch {
		n := min(benchApplyBatch, rows-start)
		tx, err := conn.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		batch := &pgx.Batch{}
		for i := range n {
			id := first + int64(start+i)
			batch.Queue(sql, id, "customer name "+strconv.FormatInt(id, 10), id%1000, float64(id%100000)/100,
				benchEpoch.Add(time.Duration(id)*time.Second), id%2 == 0, []string{"a", "b" + strconv.FormatInt(id, 10)})
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
