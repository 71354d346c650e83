package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc/mysql/myserver"
	"github.com/synchub/synchub/cdc/mysql/mytest"
	"github.com/synchub/synchub/cdc/postgres/pgtest"
	"github.com/synchub/synchub/edge"
)

const mysqlTypesSchema = `
CREATE TABLE items (
    id     BIGINT UNSIGNED PRIMARY KEY,
    i1     TINYINT, u1 TINYINT UNSIGNED, i2 SMALLINT, u2 SMALLINT UNSIGNED,
    i3     MEDIUMINT, u3 MEDIUMINT UNSIGNED, i4 INT, u4 INT UNSIGNED,
    i8     BIGINT, u8 BIGINT UNSIGNED,
    dec1   DECIMAL(38,10), dec2 DECIMAL(5,0),
    f4     FLOAT, f8 DOUBLE,
    d      DATE, dt DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME, yr YEAR,
    c      CHAR(3), vc VARCHAR(100), tx TEXT,
    bin    BINARY(4), vb VARBINARY(20), bl BLOB,
    js     JSON,
    en     ENUM('sad','ok','happy'),
    st     SET('a','b','c'),
    bits   BIT(10)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE orders (
    id      BIGINT AUTO_INCREMENT PRIMARY KEY,
    item_id BIGINT UNSIGNED NOT NULL,
    qty     INT NOT NULL,
    note    VARCHAR(200)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`

const mysqlTypesRow = `INSERT INTO items VALUES (%d,
    -128, 255, -32768, 65535,
    -8388608, 16777215, -2147483648, 4294967295,
    -9223372036854775808, 18446744073709551615,
    '1234567890123456789012345678.0123456789', -99999,
    3.25, 1.0000000000000002,
    '2024-02-29', '2024-01-02 03:04:05.123456', '2024-06-01 12:00:00.654321', '-838:59:59', 2155,
    'ab', 'héllo 🌍 "quoted" \\ back', 'long text ✓',
    X'00FF0001', X'DEADBEEF', X'000102',
    '{"a": [1, 2.50], "s": "🎉"}',
    'happy', 'a,c', b'1010101010')`

// TestIntegration_MariaDBEndToEnd: snapshot then stream of every kind of change, with
// every mapped MariaDB type, a multi-statement transaction as one version and an ALTER
// TABLE mid-stream, reaching two edges that end equal to MariaDB row for row.
func TestIntegration_MariaDBEndToEnd(t *testing.T) {
	s := newMySQLStack(t, mysqlTypesSchema+";"+fmt.Sprintf(mysqlTypesRow, 1)+";"+fmt.Sprintf(mysqlTypesRow, 2)+
		";INSERT INTO items (id) VALUES (3);INSERT INTO orders (item_id, qty) VALUES (1, 5)", []string{"items", "orders"})
	a, b := s.newEdge("a"), s.newEdge("b")
	s.waitStreaming()
	s.syncEdge(a)
	s.assertEdgeEqualsSource(a)

	runEdge(t, b)
	s.exec(fmt.Sprintf(mysqlTypesRow, 10))
	s.exec(`UPDATE items SET vc = 'changed ✓', dec1 = '-0.0000000001', u8 = 0, en = NULL WHERE id = 1`)
	s.exec(`DELETE FROM items WHERE id = 2`)
	for i := 0; i < 50; i++ {
		s.exec(fmt.Sprintf(`INSERT INTO orders (item_id, qty) VALUES (1, %d)`, i))
	}
	s.exec(`UPDATE items SET id = 11 WHERE id = 10`)
	s.waitHubCaughtUp()
	before := s.head()
	s.exec(`BEGIN; UPDATE orders SET qty = qty + 1 WHERE id = 1; INSERT INTO orders (item_id, qty) VALUES (3, 7); DELETE FROM orders WHERE id = 2; COMMIT`)
	s.waitHubCaughtUp()
	// The marker of waitHubCaughtUp is a version of its own.
	if got := s.head() - before; got != 2 {
		t.Fatalf("a 3-statement transaction became %d versions, want 1", got-1)
	}
	s.syncEdge(a)
	s.assertEdgeEqualsSource(a)

	// A column added mid-stream reaches the edge with a schema version bump, and rows
	// written after it carry the new column.
	schemaBefore := s.hub.Status().SchemaVersion
	s.exec(`ALTER TABLE orders ADD COLUMN shipped DATETIME(6) NULL, ADD COLUMN weight DECIMAL(10,3) NOT NULL DEFAULT 1.5`)
	s.exec(`INSERT INTO orders (item_id, qty, shipped, weight) VALUES (3, 2, '2025-01-01 10:00:00.5', 12.125)`)
	s.exec(`UPDATE orders SET shipped = '2025-02-02 00:00:00' WHERE id = 1`)
	s.waitHubCaughtUp()
	if got := s.hub.Status().SchemaVersion; got <= schemaBefore {
		t.Fatalf("schema version %d after ALTER TABLE, want more than %d", got, schemaBefore)
	}
	s.syncEdge(a)
	s.assertEdgeEqualsSource(a)
	var weight string
	if err := a.DB().QueryRow(`SELECT weight FROM "` + edgeLocal(s, "orders") + `" WHERE qty = 2 AND item_id = 3`).Scan(&weight); err != nil || weight != "12.125" {
		t.Fatalf("new column on the edge: weight = %q, %v; want 12.125", weight, err)
	}

	head := s.head()
	pgtest.WaitFor(t, 30*time.Second, "running edge b reaches the head", func() bool { return b.Status().Watermark >= head })
	s.assertEdgeEqualsSource(b)
}

// edgeLocal is the edge's local table name for a table of the stack's database.
func edgeLocal(s *stack, table string) string { return edge.LocalTableName(s.db + "." + table) }

// TestIntegration_MariaDBRestart: MariaDB restarts while transactions are being written;
// the hub reconnects, and the edge ends equal to MariaDB with every transaction.
func TestIntegration_MariaDBRestart(t *testing.T) {
	s := newMySQLStack(t, `CREATE TABLE ledger (n INT PRIMARY KEY, note VARCHAR(50))`, []string{"ledger"})
	a := s.newEdge("a")
	s.waitStreaming()
	runEdge(t, a)
	for n := 1; n <= 100; n++ {
		s.exec(fmt.Sprintf(`INSERT INTO ledger VALUES (%d, 'before')`, n))
	}
	if err := s.my.Restart(context.Background()); err != nil {
		t.Fatalf("restart MariaDB: %v", err)
	}
	for n := 101; n <= 200; n++ {
		s.exec(fmt.Sprintf(`INSERT INTO ledger VALUES (%d, 'after')`, n))
	}
	s.waitHubCaughtUp()
	head := s.head()
	pgtest.WaitFor(t, time.Minute, "edge reaches the head", func() bool { return a.Status().Watermark >= head })
	s.assertEdgeEqualsSource(a)
	if n := count(t, a.DB(), edgeLocal(s, "ledger")); n != 200 {
		t.Fatalf("edge has %d ledger rows, want 200", n)
	}
}

// TestIntegration_MariaDBBinlogPurged: while the hub is down, the binlog it would resume
// from is purged. The hub says so, takes a new snapshot, and the edge re-bootstraps
// (through the 410 path) and converges, including a delete it could not have streamed.
func TestIntegration_MariaDBBinlogPurged(t *testing.T) {
	s := newMySQLStack(t, `CREATE TABLE ledger (n INT PRIMARY KEY, note VARCHAR(50));
		INSERT INTO ledger VALUES (1, 'one'), (2, 'two'), (3, 'three')`, []string{"ledger"})
	a := s.newEdge("a")
	s.waitStreaming()
	s.exec(`INSERT INTO ledger VALUES (4, 'four')`)
	s.waitHubCaughtUp()
	s.syncEdge(a)
	s.assertEdgeEqualsSource(a)
	oldHead := s.head()

	s.stopHub()
	s.exec(`DELETE FROM ledger WHERE n = 1; UPDATE ledger SET note = 'changed' WHERE n = 2; INSERT INTO ledger VALUES (5, 'five')`)
	s.exec(`FLUSH BINARY LOGS`)
	purgeAllBinlogs(t, s.my)
	s.startHub()
	s.waitStreaming()
	s.exec(`INSERT INTO ledger VALUES (6, 'six')`)
	s.waitHubCaughtUp()
	if s.head() <= oldHead {
		t.Fatalf("head %d after the re-snapshot, want above %d", s.head(), oldHead)
	}
	s.syncEdge(a)
	s.assertEdgeEqualsSource(a)
	var n int
	if err := a.DB().QueryRow(`SELECT count(*) FROM "` + edgeLocal(s, "ledger") + `" WHERE n = 1`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("row deleted while the binlog was purged is still on the edge (%d, %v)", n, err)
	}
}

// purgeAllBinlogs purges every binary log but the current one.
func purgeAllBinlogs(t testing.TB, my *myserver.Server) {
	t.Helper()
	db, err := sql.Open("mysql", my.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SHOW MASTER STATUS`)
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var current string
	if rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		current = string(vals[0])
	}
	rows.Close()
	if current == "" {
		t.Fatal("SHOW MASTER STATUS returned no binlog file")
	}
	if _, err := db.Exec(`PURGE BINARY LOGS TO '` + current + `'`); err != nil {
		t.Fatalf("purge binary logs: %v", err)
	}
}

// TestIntegration_MariaDBKill9: the hub runs as a separate process on MariaDB and is
// killed with SIGKILL several times while a workload commits numbered transactions.
// Afterwards the change log holds every transaction exactly once, in commit order, and
// the edge equals MariaDB.
func TestIntegration_MariaDBKill9(t *testing.T) {
	my := mytest.Start(t, myserver.Options{})
	db := mytest.CreateDB(t, my)
	mytest.MustExec(t, my, db, `CREATE TABLE ledger (n INT PRIMARY KEY, note VARCHAR(50))`)
	p, url := newHubProcess(t, "mysql", my.URL(db), db+".ledger", 50)
	dir := t.TempDir()
	p.start()
	waitHTTP(t, url+"/readyz", 60*time.Second)

	ecfg := edge.DefaultConfig()
	ecfg.HubURL, ecfg.DBPath, ecfg.EdgeID, ecfg.Wait = url, filepath.Join(dir, "edge.db"), "crash-edge", time.Second
	a, err := edge.Open(context.Background(), ecfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	runEdge(t, a)

	const total = 2000
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	workDone := make(chan error, 1)
	go func() {
		conn, err := sql.Open("mysql", my.DSN(db))
		if err != nil {
			workDone <- err
			return
		}
		defer conn.Close()
		conn.SetMaxOpenConns(1)
		for n := 1; n <= total; n++ {
			if _, err := conn.ExecContext(ctx, `INSERT INTO ledger VALUES (?, ?)`, n, fmt.Sprintf("tx %d", n)); err != nil {
				workDone <- fmt.Errorf("insert %d: %w", n, err)
				return
			}
			if n%3 == 0 {
				if _, err := conn.ExecContext(ctx, `UPDATE ledger SET note = 'updated' WHERE n = ?`, n-1); err != nil {
					workDone <- err
					return
				}
			}
		}
		workDone <- nil
	}()
	wantTx := total + total/3
	for kill := 1; kill <= 3; kill++ {
		threshold := int64(kill * wantTx / 5)
		pgtest.WaitFor(t, time.Minute, fmt.Sprintf("head passes %d before kill %d", threshold, kill), func() bool {
			return hubHead(url) >= threshold
		})
		p.kill9()
		p.start()
		waitHTTP(t, url+"/healthz", 30*time.Second)
	}
	if err := <-workDone; err != nil {
		t.Fatalf("workload: %v", err)
	}
	p.kill9()
	p.start()
	waitHTTP(t, url+"/readyz", 60*time.Second)
	// Version 1 is the (empty) snapshot; then one version per transaction.
	head := int64(wantTx) + 1
	pgtest.WaitFor(t, 2*time.Minute, "hub ingested the whole workload", func() bool { return hubHead(url) >= head })
	time.Sleep(500 * time.Millisecond) // a duplicate would land right behind
	if got := hubHead(url); got != head {
		t.Fatalf("hub head %d, want %d: a transaction is missing or doubled", got, head)
	}
	entries := readWholeLog(t, url)
	seenInsert := map[int]int{}
	lastInsert, lastVersion := 0, int64(1)
	for _, e := range entries {
		if e.Version != lastVersion && e.Version != lastVersion+1 {
			t.Fatalf("version %d follows %d: the change log has a gap", e.Version, lastVersion)
		}
		lastVersion = e.Version
		for _, c := range e.Changes {
			if c.Op != "i" {
				continue
			}
			var row struct {
				N int `json:"n"`
			}
			if err := json.Unmarshal(c.Row, &row); err != nil {
				t.Fatal(err)
			}
			seenInsert[row.N]++
			if row.N <= lastInsert {
				t.Fatalf("insert %d arrived after insert %d: commit order broken", row.N, lastInsert)
			}
			lastInsert = row.N
		}
	}
	for n := 1; n <= total; n++ {
		if seenInsert[n] != 1 {
			t.Fatalf("insert of ledger row %d is in the change log %d times, want exactly once", n, seenInsert[n])
		}
	}
	pgtest.WaitFor(t, time.Minute, "edge reaches the head", func() bool { return a.Status().Watermark >= head })
	var n, updated int
	if err := a.DB().QueryRow(`SELECT count(*), count(*) FILTER (WHERE note = 'updated') FROM "`+edge.LocalTableName(db+".ledger")+`"`).Scan(&n, &updated); err != nil {
		t.Fatal(err)
	}
	if n != total || updated != total/3 {
		t.Fatalf("edge has %d rows (%d updated), want %d (%d)", n, updated, total, total/3)
	}
	if err := p.term(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// TestIntegration_MariaDBPushUnchangedRow: an edge's update that leaves the row as
// MariaDB already has it (written and written back) has no row event in the binlog;
// the write-back still reaches the hub, so the push is answered with its version at
// once rather than without one after push.wait_timeout.
func TestIntegration_MariaDBPushUnchangedRow(t *testing.T) {
	s := newMySQLStack(t, mysqlTypesSchema+";"+fmt.Sprintf(mysqlTypesRow, 1), []string{"items"})
	a := s.newEdge("a")
	s.waitStreaming()
	s.syncEdge(a)
	if err := a.InitSyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	local := edgeLocal(s, "items")
	s.waitHubCaughtUp()
	before := s.head()
	var vc string
	if err := a.DB().QueryRow(`SELECT vc FROM "` + local + `" WHERE id = 1`).Scan(&vc); err != nil {
		t.Fatal(err)
	}
	edgeExec(t, a, `UPDATE "`+local+`" SET vc = 'for a moment' WHERE id = 1`)
	edgeExec(t, a, `UPDATE "`+local+`" SET vc = ? WHERE id = 1`, vc)
	start := time.Now()
	rep := push(t, a)
	took := time.Since(start)
	if rep.Applied != 1 {
		t.Fatalf("push: %+v, want 1 applied", rep)
	}
	var version int64
	if err := a.DB().QueryRow(`SELECT version FROM _synchub_rowver WHERE tbl = ? AND pushed = 1`, s.db+".items").Scan(&version); err != nil {
		t.Fatalf("row 1's pushed version on the edge: %v", err)
	}
	if version <= before {
		t.Fatalf("row 1 recorded at version %d after the push (the log's head was %d before it; push took %v): the answer came without the write-back's version", version, before, took)
	}
	s.waitHubCaughtUp()
	s.syncEdge(a)
	s.assertEdgeEqualsSource(a)
}
