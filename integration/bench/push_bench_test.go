package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synchub/synchub/cdc/postgres"
	"github.com/synchub/synchub/cdc/postgres/pgserver"
	"github.com/synchub/synchub/cdc/postgres/pgtest"
	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub"
	"github.com/synchub/synchub/hub/changelog"
)

const pushBenchSchema = `
CREATE TABLE public.notes (id bigint PRIMARY KEY, account bigint NOT NULL, amount numeric(12,2) NOT NULL, body text NOT NULL);
CREATE TABLE public.notes_baseline (LIKE public.notes INCLUDING ALL);`

// BenchmarkPush: one edge pushes 100,000 local inserts; rows/s written to PostgreSQL
// through the whole path (outbox, HTTP push, conflict check, applier, capture of the
// write-back so the answer carries versions) against a plain pgx batch inserting the
// same rows, 500 per transaction, measured in the same run. Target ≥ 0.3.
func BenchmarkPush(b *testing.B) {
	rows := benchRows() / 10
	pg := pgtest.Start(b, pgserver.Options{Settings: []string{"max_wal_size = 4GB"}})
	db := pgtest.CreateDB(b, pg)
	pgtest.MustExec(b, pg, db, pushBenchSchema)
	dsn := pg.DSN(db)
	ctx := context.Background()
	dir := b.TempDir()

	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(dir, "changelog.db")
	store, err := changelog.OpenSQLite(ctx, scfg, quiet())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	pcfg := postgres.DefaultConfig()
	pcfg.DSN, pcfg.Tables = dsn, []string{"public.notes"}
	src, err := postgres.New(pcfg, quiet())
	if err != nil {
		b.Fatal(err)
	}
	applier, err := postgres.NewApplier(ctx, postgres.ApplierConfig{DSN: dsn, Tables: pcfg.Tables}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	defer applier.Close()
	hcfg := hub.DefaultConfig()
	hcfg.Listen = "127.0.0.1:0"
	hcfg.CompactInterval = 0
	hcfg.Push.MetaPath = filepath.Join(dir, "meta.db")
	h, err := hub.New(hcfg, hub.Deps{Source: src, Store: store, Applier: applier, Log: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	hctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	defer func() { stop(); <-done }()
	waitFor(b, time.Minute, "hub streaming", func() bool { return strings.HasPrefix(h.Status().SourceState, "streaming") })

	for i := 0; i < b.N; i++ {
		pgtest.MustExec(b, pg, db, "TRUNCATE notes_baseline")
		base := baselineInsert(b, dsn, rows)

		ecfg := edge.DefaultConfig()
		ecfg.HubURL, ecfg.DBPath, ecfg.EdgeID = "http://"+h.Addr().String(), filepath.Join(dir, fmt.Sprintf("edge%d.db", i)), "bench"
		a, err := edge.Open(ctx, ecfg, quiet())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.SyncNow(ctx); err != nil {
			b.Fatal(err)
		}
		if err := a.InitSyncAll(ctx); err != nil {
			b.Fatal(err)
		}
		offset := int64(i * rows)
		tx, err := a.DB().Begin()
		if err != nil {
			b.Fatal(err)
		}
		for g := int64(1); g <= int64(rows); g++ {
			id := offset + g
			if _, err := tx.Exec(`INSERT INTO notes VALUES (?, ?, ?, ?)`, id, id%1000, fmt.Sprintf("%d.%02d", id%10000, id%100), "note from the edge"); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		stopProfile := profilePhase(b, "push")
		start := time.Now()
		rep, err := a.PushNow(ctx)
		el := time.Since(start)
		stopProfile()
		a.Close()
		if err != nil {
			b.Fatal(err)
		}
		if rep.Applied != rows {
			b.Fatalf("push report %+v, want %d applied", rep, rows)
		}
		if n := pgtest.MustExec(b, pg, db, fmt.Sprintf("SELECT count(*) FROM notes WHERE id > %d", offset)); n != fmt.Sprint(rows) {
			b.Fatalf("PostgreSQL holds %s pushed rows, want %d", n, rows)
		}
		pushRate, baseRate := float64(rows)/el.Seconds(), float64(rows)/base.Seconds()
		b.ReportMetric(pushRate, "push_rows/s")
		b.ReportMetric(baseRate, "pgx_batch_rows/s")
		b.ReportMetric(pushRate/baseRate, "ratio")
		fmt.Printf("push %d rows from one edge: %.0f rows/s (%v, %d batches), plain pgx batch %.0f rows/s (%v): ratio %.2f (target ≥ 0.3)\n",
			rows, pushRate, el.Round(time.Millisecond), rep.Batches, baseRate, base.Round(time.Millisecond), pushRate/baseRate)
	}
}

// baselineInsert writes the same rows with pgx batches of 500 inserts, one transaction
// each.
func baselineInsert(b *testing.B, dsn string, rows int) time.Duration {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	start := time.Now()
	for lo := 1; lo <= rows; lo += 500 {
		batch := &pgx.Batch{}
		for id := lo; id < lo+500 && id <= rows; id++ {
			batch.Queue(`INSERT INTO notes_baseline VALUES ($1, $2, $3, $4)`, id, id%1000, fmt.Sprintf("%d.%02d", id%10000, id%100), "note from the edge")
		}
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return tx.SendBatch(ctx, batch).Close() }); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// profilePhase writes a CPU profile of one measured phase to the file named by
// SYNCHUB_BENCH_CPUPROFILE (with the phase's name appended), when it is set: unlike
// go test -cpuprofile it leaves out the setup around the phase.
func profilePhase(b *testing.B, phase string) (stop func()) {
	path := os.Getenv("SYNCHUB_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path + "." + phase)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatalf("SYNCHUB_BENCH_CPUPROFILE: %v (not with go test -cpuprofile)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
