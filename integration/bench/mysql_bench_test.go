package bench

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	_ "modernc.org/sqlite"

	"github.com/synchub/synchub/cdc/mysql"
	"github.com/synchub/synchub/cdc/mysql/myserver"
	"github.com/synchub/synchub/cdc/mysql/mytest"
)

const mysqlBenchTable = `CREATE TABLE events (
    id BIGINT PRIMARY KEY, account BIGINT NOT NULL, amount DECIMAL(12,2) NOT NULL,
    kind VARCHAR(20) NOT NULL, at TIMESTAMP(6) NOT NULL) ENGINE=InnoDB`

// BenchmarkIngestMariaDB: 1,000,000 row changes in 1,000-row transactions written to
// MariaDB while the hub was stopped; hub rows/s against two ceilings measured in the same
// run: a raw go-mysql BinlogSyncer decoding the same binlog and discarding it (the
// source's ceiling), and a plain modernc.org/sqlite loop inserting the same rows in
// 1,000-row transactions (the store's ceiling). Target: ≥ 0.5 of the store's ceiling.
func BenchmarkIngestMariaDB(b *testing.B) {
	rows := benchRows()
	const rowsPerTx = 1000
	txs := rows / rowsPerTx
	for i := 0; i < b.N; i++ {
		my := mytest.Start(b, myserver.Options{Settings: []string{"max_binlog_size=1073741824"}})
		db := mytest.CreateDB(b, my)
		mytest.MustExec(b, my, db, mysqlBenchTable)
		dir := b.TempDir()
		storePath := filepath.Join(dir, "changelog.db")
		newSource := func() *mysql.Source {
			cfg := mysql.DefaultConfig()
			cfg.DSN, cfg.Tables = my.URL(db), []string{db + ".events"}
			src, err := mysql.New(cfg, quiet())
			if err != nil {
				b.Fatal(err)
			}
			return src
		}

		// The hub takes its (empty) snapshot and stops.
		h, _, stop := runHubOn(b, newSource(), storePath)
		waitFor(b, time.Minute, "hub streaming", func() bool { return strings.HasPrefix(h.Status().SourceState, "streaming") })
		stop()

		conn, err := sql.Open("mysql", my.DSN(db))
		if err != nil {
			b.Fatal(err)
		}
		startFile, startPos := masterStatus(b, conn)
		b.Logf("writing %d transactions of %d rows…", txs, rowsPerTx)
		wstart := time.Now()
		for t := 0; t < txs; t++ {
			lo := t*rowsPerTx + 1
			if _, err := conn.Exec(fmt.Sprintf(`INSERT INTO events
				SELECT seq, seq %% 1000, (seq %% 100000) / 100, CONCAT('kind', seq %% 7),
				TIMESTAMP('2026-01-01 00:00:00') + INTERVAL seq SECOND FROM seq_%d_to_%d`, lo, lo+rowsPerTx-1)); err != nil {
				b.Fatalf("workload: %v", err)
			}
		}
		endFile, endPos := masterStatus(b, conn)
		conn.Close()
		b.Logf("workload written in %v; binlog %s:%d → %s:%d", time.Since(wstart).Round(time.Millisecond), startFile, startPos, endFile, endPos)

		raw := rawBinlogRead(b, my, startFile, startPos, endFile, endPos, rows)
		store := sqliteLoop(b, filepath.Join(dir, "loop.db"), rows, rowsPerTx)

		start := time.Now()
		h, _, stop = runHubOn(b, newSource(), storePath)
		waitFor(b, 30*time.Minute, "hub ingests the workload", func() bool { return h.Status().Head >= int64(1+txs) })
		elapsed := time.Since(start)
		stop()

		n := float64(rows)
		hubRate, rawRate, storeRate := n/elapsed.Seconds(), n/raw.Seconds(), n/store.Seconds()
		b.ReportMetric(hubRate, "hub_rows/s")
		b.ReportMetric(rawRate, "binlogsyncer_rows/s")
		b.ReportMetric(storeRate, "sqlite_loop_rows/s")
		b.ReportMetric(hubRate/rawRate, "ratio_vs_source")
		b.ReportMetric(hubRate/storeRate, "ratio_vs_store")
		fmt.Printf("ingest MariaDB %d tx x %d rows: hub %.0f rows/s (%v), raw BinlogSyncer %.0f rows/s (%v), plain SQLite loop %.0f rows/s (%v): ratio vs source %.2f, vs store %.2f (target ≥ 0.5)\n",
			txs, rowsPerTx, hubRate, elapsed.Round(time.Millisecond), rawRate, raw.Round(time.Millisecond),
			storeRate, store.Round(time.Millisecond), hubRate/rawRate, hubRate/storeRate)
	}
}

func masterStatus(b *testing.B, db *sql.DB) (string, uint32) {
	b.Helper()
	rows, err := db.Query(`SHOW MASTER STATUS`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if !rows.Next() {
		b.Fatal("SHOW MASTER STATUS: no row (is log_bin on?)")
	}
	if err := rows.Scan(ptrs...); err != nil {
		b.Fatal(err)
	}
	var pos uint32
	fmt.Sscan(string(vals[1]), &pos)
	return string(vals[0]), pos
}

// rawBinlogRead decodes the binlog between two positions with a bare BinlogSyncer,
// counting rows and discarding them.
func rawBinlogRead(b *testing.B, my *myserver.Server, file string, pos uint32, endFile string, endPos uint32, want int) time.Duration {
	b.Helper()
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 0x5eed0001, Flavor: gomysql.MariaDBFlavor, Host: "127.0.0.1", Port: uint16(my.Port), User: "root",
		UseDecimal: true, Logger: nil,
	})
	defer syncer.Close()
	start := time.Now()
	streamer, err := syncer.StartSync(gomysql.Position{Name: file, Pos: pos})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	rows, curFile := 0, file
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			b.Fatalf("raw binlog read: %v", err)
		}
		switch e := ev.Event.(type) {
		case *replication.RowsEvent:
			rows += len(e.Rows)
		case *replication.RotateEvent:
			curFile = string(e.NextLogName)
		}
		if curFile == endFile && ev.Header.LogPos >= endPos {
			break
		}
	}
	el := time.Since(start)
	if rows != want {
		b.Fatalf("raw binlog read decoded %d rows, want %d", rows, want)
	}
	return el
}

// sqliteLoop inserts the workload's rows into SQLite with a plain prepared-statement
// loop, one transaction per 1,000 rows: the store's ceiling.
func sqliteLoop(b *testing.B, path string, rows, rowsPerTx int) time.Duration {
	b.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE events (id INTEGER PRIMARY KEY, account INTEGER, amount TEXT, kind TEXT, at TEXT)`); err != nil {
		b.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	for lo := 1; lo <= rows; lo += rowsPerTx {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		stmt, err := tx.Prepare(`INSERT INTO events VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			b.Fatal(err)
		}
		for g := lo; g < lo+rowsPerTx && g <= rows; g++ {
			if _, err := stmt.Exec(g, g%1000, fmt.Sprintf("%d.%02d", (g%100000)/100, g%100), fmt.Sprintf("kind%d", g%7),
				base.Add(time.Duration(g)*time.Second).Format("2006-01-02T15:04:05.000000")); err != nil {
				b.Fatal(err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}
