// Package bench measures synchub against the limits of its surroundings, in the same
// run: pg_recvlogical decoding the same WAL (ingest), and the sqlite3 CLI inserting the
// same rows (bootstrap). Each benchmark runs its scenario once and reports rows/s and the
// ratio to its baseline; run with -benchtime=1x:
//
//	go test -run='^$' -bench=. -benchtime=1x -timeout 60m ./integration/bench
//
// SYNCHUB_BENCH_ROWS scales the scenarios down (default 1000000) for a quick look.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/postgres"
	"github.com/synchub/synchub/cdc/postgres/pgserver"
	"github.com/synchub/synchub/cdc/postgres/pgtest"
	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub"
	"github.com/synchub/synchub/hub/changelog"
)

// TestMain runs the benchmarks with the garbage-collection target the synchub binary
// uses for a hub (hub.GCPercent), unless GOGC is set.
func TestMain(m *testing.M) {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(hub.GCPercent)
	}
	os.Exit(m.Run())
}

func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("SYNCHUB_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// quiet is the benchmarks' logger: silent unless SYNCHUB_BENCH_LOG is set.
func quiet() *slog.Logger {
	if os.Getenv("SYNCHUB_BENCH_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

const benchTable = `CREATE TABLE public.events (
    id bigint PRIMARY KEY, account bigint NOT NULL, amount numeric(12,2) NOT NULL,
    kind text NOT NULL, at timestamptz NOT NULL)`

// runHub runs a hub on PostgreSQL's public.events with the given store path until the
// returned stop is called.
func runHub(b *testing.B, dsn, storePath string) (*hub.Hub, *changelog.SQLiteStore, func()) {
	b.Helper()
	pcfg := postgres.DefaultConfig()
	pcfg.DSN, pcfg.Tables = dsn, []string{"public.events"}
	src, err := postgres.New(pcfg, quiet())
	if err != nil {
		b.Fatal(err)
	}
	return runHubOn(b, src, storePath)
}

// runHubOn runs a hub on src with the given store path until the returned stop is called.
func runHubOn(b *testing.B, src cdc.Source, storePath string) (*hub.Hub, *changelog.SQLiteStore, func()) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = storePath
	store, err := changelog.OpenSQLite(ctx, scfg, quiet())
	if err != nil {
		b.Fatal(err)
	}
	hcfg := hub.DefaultConfig()
	hcfg.Listen = "127.0.0.1:0"
	hcfg.CompactInterval = 0
	h, err := hub.New(hcfg, hub.Deps{Source: src, Store: store, Log: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	return h, store, func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("hub: %v", err)
		}
		store.Close()
	}
}

func waitFor(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	b.Helper()
	pgtest.WaitFor(b, timeout, what, cond)
}

// ingestScenario measures catching up on WAL written while the hub was stopped: the hub
// and pg_recvlogical each start from a slot created before the workload.
func ingestScenario(b *testing.B, txs, rowsPerTx int) {
	pg := pgtest.Start(b, pgserver.Options{Settings: []string{"max_wal_size = 8GB", "wal_sender_timeout = 0"}})
	db := pgtest.CreateDB(b, pg)
	pgtest.MustExec(b, pg, db, benchTable)
	dsn := pg.DSN(db)
	dir := b.TempDir()
	storePath := filepath.Join(dir, "changelog.db")

	// The hub takes its (empty) snapshot and creates its slot, then stops.
	h, _, stop := runHub(b, dsn, storePath)
	waitFor(b, time.Minute, "hub streaming", func() bool { return strings.HasPrefix(h.Status().SourceState, "streaming") })
	stop()
	pgtest.MustExec(b, pg, db, "SELECT pg_create_logical_replication_slot('recv', 'pgoutput')")

	b.Logf("writing %d transactions of %d rows…", txs, rowsPerTx)
	start := time.Now()
	if err := writeWorkload(pg, db, txs, rowsPerTx); err != nil {
		b.Fatal(err)
	}
	end := pgtest.MustExec(b, pg, db, "SELECT pg_current_wal_insert_lsn()")
	b.Logf("workload written in %v; WAL end %s", time.Since(start).Round(time.Millisecond), end)
	rows := float64(txs * rowsPerTx)

	// Baseline: pg_recvlogical decoding the same WAL with pgoutput to /dev/null.
	recv := filepath.Join(pg.BinDir, "pg_recvlogical")
	if _, err := os.Stat(recv); err != nil {
		if p, err := exec.LookPath("pg_recvlogical"); err == nil {
			recv = p
		}
	}
	start = time.Now()
	out, err := exec.Command(recv, "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "postgres", "-d", db,
		"-S", "recv", "--start", "-o", "proto_version=1", "-o", "publication_names=synchub",
		"-E", end, "-f", "/dev/null", "--no-loop").CombinedOutput()
	if err != nil {
		b.Fatalf("pg_recvlogical: %v\n%s", err, out)
	}
	baseline := time.Since(start)

	// The hub catching up on the same WAL.
	start = time.Now()
	h, _, stop = runHub(b, dsn, storePath)
	defer stop()
	// Startup (opening the store, connecting, checking the catalog and the slot) is
	// part of the headline figure, as pg_recvlogical's connection is part of its own;
	// the streaming-only rate is reported beside it.
	var streaming time.Time
	for streaming.IsZero() {
		if strings.HasPrefix(h.Status().SourceState, "streaming") {
			streaming = time.Now()
		} else if time.Since(start) > time.Minute {
			b.Fatal("hub did not start streaming within a minute")
		} else {
			time.Sleep(time.Millisecond)
		}
	}
	want := int64(1 + txs)
	waitFor(b, 30*time.Minute, "hub ingests the workload", func() bool { return h.Status().Head >= want })
	elapsed := time.Since(start)
	streamed := time.Since(streaming)

	hubRate := rows / elapsed.Seconds()
	recvRate := rows / baseline.Seconds()
	b.ReportMetric(hubRate, "hub_rows/s")
	b.ReportMetric(recvRate, "pg_recvlogical_rows/s")
	b.ReportMetric(hubRate/recvRate, "ratio")
	b.ReportMetric(float64(txs)/elapsed.Seconds(), "hub_tx/s")
	b.ReportMetric(float64(txs)/baseline.Seconds(), "pg_recvlogical_tx/s")
	b.ReportMetric(rows/streamed.Seconds()/recvRate, "ratio_streaming_only")
	fmt.Printf("ingest %d tx x %d rows: hub %.0f rows/s (%.0f tx/s, %v incl. %v startup), pg_recvlogical %.0f rows/s (%v): ratio %.2f (streaming only: %.2f)\n",
		txs, rowsPerTx, hubRate, float64(txs)/elapsed.Seconds(), elapsed.Round(time.Millisecond), (elapsed - streamed).Round(time.Millisecond),
		recvRate, baseline.Round(time.Millisecond), hubRate/recvRate, rows/streamed.Seconds()/recvRate)
}

func writeWorkload(pg *pgserver.Server, db string, txs, rowsPerTx int) error {
	var sb strings.Builder
	// One psql session; each INSERT is its own transaction.
	for i := 0; i < txs; i++ {
		lo := i*rowsPerTx + 1
		fmt.Fprintf(&sb, "INSERT INTO events SELECT g, g %% 1000, (g %% 100000) / 100.0, 'kind' || (g %% 7), '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 second' FROM generate_series(%d, %d) g;\n", lo, lo+rowsPerTx-1)
	}
	f, err := os.CreateTemp("", "synchub-bench-*.sql")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(sb.String()); err != nil {
		return err
	}
	f.Close()
	cmd := exec.Command(filepath.Join(pg.BinDir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
		"-p", strconv.Itoa(pg.Port), "-U", "postgres", "-d", db, "-f", f.Name())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("psql workload: %v: %s", err, out)
	}
	return nil
}

// BenchmarkIngestLargeTx: 1,000,000 row changes in 1,000-row transactions; hub rows/s
// vs pg_recvlogical. Target ≥ 1.0.
func BenchmarkIngestLargeTx(b *testing.B) {
	n := benchRows()
	for i := 0; i < b.N; i++ {
		ingestScenario(b, n/1000, 1000)
	}
}

// BenchmarkIngestSmallTx: 200,000 single-row transactions; hub tx/s vs pg_recvlogical.
// Target ≥ 1.5.
func BenchmarkIngestSmallTx(b *testing.B) {
	n := benchRows() / 5
	for i := 0; i < b.N; i++ {
		ingestScenario(b, n, 1)
	}
}

// BenchmarkBootstrap: a new edge pulls and applies 1,000,000 rows over HTTP; edge rows/s
// vs the sqlite3 CLI executing the same rows as one transaction of INSERTs. Target ≥ 0.7.
func BenchmarkBootstrap(b *testing.B) {
	rows := benchRows()
	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		b.Skip("the sqlite3 CLI is not installed (apt-get install sqlite3); it is the baseline")
	}
	pg := pgtest.Start(b, pgserver.Options{})
	db := pgtest.CreateDB(b, pg)
	pgtest.MustExec(b, pg, db, benchTable)
	pgtest.MustExec(b, pg, db, fmt.Sprintf(`INSERT INTO events SELECT g, g %% 1000, (g %% 100000) / 100.0, 'kind' || (g %% 7),
		'2026-01-01 00:00:00+00'::timestamptz + g * interval '1 second' FROM generate_series(1, %d) g`, rows))
	dir := b.TempDir()
	h, _, stop := runHub(b, pg.DSN(db), filepath.Join(dir, "changelog.db"))
	defer stop()
	waitFor(b, 10*time.Minute, "hub snapshot", func() bool { return h.Status().Head >= 1 })
	url := "http://" + h.Addr().String()

	for i := 0; i < b.N; i++ {
		// Baseline: the same rows as INSERT statements in one transaction, through sqlite3.
		sqlPath := filepath.Join(dir, "rows.sql")
		if err := writeInsertSQL(sqlPath, rows); err != nil {
			b.Fatal(err)
		}
		cliDB := filepath.Join(dir, fmt.Sprintf("cli%d.db", i))
		start := time.Now()
		cmd := exec.Command(sqlite3, cliDB)
		f, _ := os.Open(sqlPath)
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		f.Close()
		if err != nil {
			b.Fatalf("sqlite3: %v: %s", err, out)
		}
		cli := time.Since(start)

		ecfg := edge.DefaultConfig()
		ecfg.HubURL, ecfg.DBPath, ecfg.EdgeID = url, filepath.Join(dir, fmt.Sprintf("edge%d.db", i)), "bench"
		a, err := edge.Open(context.Background(), ecfg, quiet())
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if _, err := a.SyncNow(context.Background()); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		var n int
		a.DB().QueryRow(`SELECT count(*) FROM events`).Scan(&n)
		a.Close()
		if n != rows {
			b.Fatalf("edge has %d rows, want %d", n, rows)
		}
		edgeRate, cliRate := float64(rows)/el.Seconds(), float64(rows)/cli.Seconds()
		b.ReportMetric(edgeRate, "edge_rows/s")
		b.ReportMetric(cliRate, "sqlite3_cli_rows/s")
		b.ReportMetric(edgeRate/cliRate, "ratio")
		fmt.Printf("bootstrap %d rows: edge %.0f rows/s (%v), sqlite3 CLI %.0f rows/s (%v): ratio %.2f\n",
			rows, edgeRate, el.Round(time.Millisecond), cliRate, cli.Round(time.Millisecond), edgeRate/cliRate)
	}
}

func writeInsertSQL(path string, rows int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, `CREATE TABLE events (id INTEGER, account INTEGER, amount TEXT, kind TEXT, at TEXT, PRIMARY KEY (id));`)
	fmt.Fprintln(w, "BEGIN;")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for g := 1; g <= rows; g++ {
		fmt.Fprintf(w, "INSERT INTO events VALUES (%d, %d, '%d.%02d', 'kind%d', '%s');\n",
			g, g%1000, (g%100000)/100, (g%100000)%100, g%7, base.Add(time.Duration(g)*time.Second).Format("2006-01-02T15:04:05Z"))
	}
	fmt.Fprintln(w, "COMMIT;")
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
