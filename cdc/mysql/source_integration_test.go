package mysql

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/mysql/myserver"
	"github.com/synchub/synchub/cdc/mysql/mytest"
)

func TestIntegration_SnapshotThenStream(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, qty INT)")
	e.exec("CREATE TABLE other (id INT PRIMARY KEY)")
	for i := 1; i <= 25; i++ {
		e.exec("INSERT INTO items VALUES (?, ?, ?)", i, fmt.Sprintf("item %d", i), i*10)
	}
	cfg := e.config("items")
	cfg.SnapshotPageRows = 7
	src := newSource(t, cfg)
	snap, pos, info := snapshotAll(t, src)
	if len(info.Tables) != 1 || info.Tables[0].Name != e.table("items") || len(info.Tables[0].PrimaryKey) != 1 || info.Tables[0].PrimaryKey[0] != "id" {
		t.Fatalf("tables = %+v", info.Tables)
	}
	if len(snap) != 25 {
		t.Fatalf("snapshot has %d rows, want 25", len(snap))
	}
	for i, ch := range snap {
		if ch.Op != cdc.OpInsert || ch.Table != e.table("items") || intValue(t, ch.After, "id") != int64(i+1) {
			t.Fatalf("snapshot change %d = %+v", i, ch)
		}
	}
	if p, ok := pos.(Position); !ok || p.Flavour != FlavourMariaDB || p.File == "" {
		t.Fatalf("snapshot position = %#v", pos)
	}

	h := &collector{}
	st := startStream(t, src, h)
	e.exec("INSERT INTO items VALUES (100, 'new', 1)")
	e.exec("INSERT INTO other VALUES (1)")
	e.exec("UPDATE items SET qty = 2 WHERE id = 100")
	e.exec("DELETE FROM items WHERE id = 1")
	e.tx("INSERT INTO items VALUES (101, 'a', NULL)", "UPDATE items SET name = 'b' WHERE id = 101", "INSERT INTO other VALUES (2)", "DELETE FROM items WHERE id = 2")
	waitFor(t, "5 transactions", func() bool { return len(h.whole()) >= 4 })
	waitFor(t, "an idle call", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.idles > 0 })
	if err := st.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream after cancel = %v, want context.Canceled", err)
	}
	txs := h.whole()
	if len(txs) != 4 {
		t.Fatalf("got %d transactions, want 4 (the one on an uncaptured table is skipped)", len(txs))
	}
	ins := txs[0].Changes[0]
	if ins.Op != cdc.OpInsert || intValue(t, ins.After, "id") != 100 {
		t.Fatalf("insert = %+v", ins)
	}
	upd := txs[1].Changes[0]
	if upd.Op != cdc.OpUpdate || intValue(t, upd.Before, "qty") != 1 || intValue(t, upd.After, "qty") != 2 {
		t.Fatalf("update = %+v", upd)
	}
	del := txs[2].Changes[0]
	if del.Op != cdc.OpDelete || intValue(t, del.Before, "id") != 1 || del.After != nil {
		t.Fatalf("delete = %+v", del)
	}
	multi := txs[3]
	if len(multi.Changes) != 3 || multi.Changes[0].Op != cdc.OpInsert || multi.Changes[1].Op != cdc.OpUpdate || multi.Changes[2].Op != cdc.OpDelete {
		t.Fatalf("multi-statement transaction = %+v", multi.Changes)
	}
	if v, _ := multi.Changes[0].After.Get("qty"); !v.IsNull() {
		t.Fatalf("NULL qty decoded as %v", v)
	}
	var prev Position
	for i, tx := range txs {
		p := tx.Pos.(Position)
		if i > 0 && p.Compare(prev) <= 0 {
			t.Fatalf("positions do not increase: %s then %s", prev, p)
		}
		prev = p
		if p.GTID == "" {
			t.Fatalf("position %s has no GTID", p)
		}
		if time.Since(tx.CommitTime) > time.Minute || tx.CommitTime.Location() != time.UTC {
			t.Fatalf("commit time %v", tx.CommitTime)
		}
		if tx.Origin != "" || tx.Batch != "" {
			t.Fatalf("origin %q batch %q on a plain transaction", tx.Origin, tx.Batch)
		}
	}
	if p, err := ParsePosition(prev.String()); err != nil || p != prev {
		t.Fatalf("position %q does not round-trip: %v, %v", prev.String(), p, err)
	}
}

func TestIntegration_BigTransactionInParts(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(20))")
	cfg := e.config("big")
	cfg.MaxTxChanges = 100
	src := newSource(t, cfg)
	snapshotAll(t, src)
	h := &collector{}
	startStream(t, src, h)
	e.exec("INSERT INTO big (id, v) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 350) SELECT n, CONCAT('v', n) FROM s")
	e.exec("INSERT INTO big VALUES (1000, 'after')")
	waitFor(t, "two transactions", func() bool { return len(h.whole()) == 2 })
	parts := h.parts()
	if len(parts) != 5 {
		t.Fatalf("got %d parts, want 4 for 350 changes in parts of 100, plus 1", len(parts))
	}
	for i, p := range parts[:4] {
		wantMore := i < 3
		if p.More != wantMore {
			t.Fatalf("part %d More = %v, want %v", i, p.More, wantMore)
		}
		if wantMore && (p.Pos != nil || !p.CommitTime.IsZero()) {
			t.Fatalf("part %d carries a position before the end", i)
		}
	}
	if parts[3].Pos == nil || len(parts[3].Changes) != 50 {
		t.Fatalf("last part = %d changes, pos %v", len(parts[3].Changes), parts[3].Pos)
	}
	ids := map[int64]bool{}
	for _, ch := range h.whole()[0].Changes {
		ids[intValue(t, ch.After, "id")] = true
	}
	if len(ids) != 350 {
		t.Fatalf("big transaction has %d distinct rows, want 350", len(ids))
	}
}

// model applies changes to a map keyed by id, failing on doubles and misses.
type model struct {
	rows map[int64]int64
}

func (m *model) apply(t *testing.T, ch cdc.Change) {
	t.Helper()
	switch ch.Op {
	case cdc.OpInsert:
		id := intValue(t, ch.After, "id")
		if _, ok := m.rows[id]; ok {
			t.Fatalf("row %d inserted twice", id)
		}
		m.rows[id] = intValue(t, ch.After, "v")
	case cdc.OpUpdate:
		id := intValue(t, ch.After, "id")
		old, ok := m.rows[id]
		if !ok {
			t.Fatalf("update of row %d that is not there", id)
		}
		if b := intValue(t, ch.Before, "v"); b != old {
			t.Fatalf("update of row %d from %d, but the model has %d (an update was missed or doubled)", id, b, old)
		}
		m.rows[id] = intValue(t, ch.After, "v")
	case cdc.OpDelete:
		id := intValue(t, ch.Before, "id")
		if _, ok := m.rows[id]; !ok {
			t.Fatalf("delete of row %d that is not there", id)
		}
		delete(m.rows, id)
	}
}

func (e *env) tableState(table string) map[int64]int64 {
	e.t.Helper()
	rows, err := e.sql.Query("SELECT id, v FROM " + table)
	if err != nil {
		e.t.Fatalf("query: %v", err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var id, v int64
		if err := rows.Scan(&id, &v); err != nil {
			e.t.Fatalf("scan: %v", err)
		}
		out[id] = v
	}
	return out
}

func sameState(a, b map[int64]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestIntegration_SnapshotSeam writes continuously while the snapshot is prepared and
// read: snapshot plus stream must equal the table, with nothing missed or doubled.
func TestIntegration_SnapshotSeam(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE seam (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
	for k := 0; k < 3; k++ {
		e.exec("INSERT INTO seam (id, v) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000) SELECT n + ?, 0 FROM s", k*1000)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	var writes atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		next := int64(3001)
		for i := 0; i < 100000 && !stop.Load(); i++ {
			var err error
			switch rng.IntN(3) {
			case 0:
				_, err = e.sql.Exec("INSERT INTO seam VALUES (?, ?)", next, i)
				next++
			case 1:
				_, err = e.sql.Exec("UPDATE seam SET v = v + 1 WHERE id = ?", rng.Int64N(next)+1)
			case 2:
				_, err = e.sql.Exec("DELETE FROM seam WHERE id = ?", rng.Int64N(next)+1)
			}
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			writes.Add(1)
		}
	}()
	waitFor(t, "the writer to start", func() bool { return writes.Load() > 50 })

	cfg := e.config("seam")
	cfg.SnapshotPageRows = 100
	src := newSource(t, cfg)
	m := &model{rows: map[int64]int64{}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := src.Start(ctx, nil); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var snap []cdc.Change
	duringSnapshot := writes.Load()
	// A slow consumer keeps the snapshot open while the writer goes on.
	if _, err := src.Snapshot(ctx, func(_ context.Context, ch []cdc.Change) error {
		snap = append(snap, ch...)
		time.Sleep(20 * time.Millisecond)
		return nil
	}); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	duringSnapshot = writes.Load() - duringSnapshot
	if duringSnapshot < 20 {
		t.Fatalf("only %d writes happened while the snapshot was read; the test did not exercise the seam", duringSnapshot)
	}
	for _, ch := range snap {
		m.apply(t, ch)
	}
	h := &collector{}
	startStream(t, src, h)
	before := writes.Load()
	waitFor(t, "more writes after the snapshot", func() bool { return writes.Load() > before+200 })
	stop.Store(true)
	wg.Wait()
	final := e.tableState("seam")
	applied := 0
	waitFor(t, "snapshot plus stream to equal the table", func() bool {
		chs := h.changes()
		for _, ch := range chs[applied:] {
			m.apply(t, ch)
		}
		applied = len(chs)
		return sameState(m.rows, final)
	})
	t.Logf("snapshot rows %d, writes during the snapshot %d, streamed changes %d, writes %d", len(snap), duringSnapshot, applied, writes.Load())
}

func TestIntegration_ResumeAfterClose(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE r (id INT PRIMARY KEY, v INT NOT NULL)")
	cfg := e.config("r")
	src := newSource(t, cfg)
	snapshotAll(t, src)
	h := &collector{}
	st := startStream(t, src, h)
	for i := 1; i <= 5; i++ {
		e.exec("INSERT INTO r VALUES (?, ?)", i, i)
	}
	waitFor(t, "5 transactions", func() bool { return len(h.whole()) == 5 })
	st.stop()
	last := h.lastPos()
	src.Ack(last)
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for i := 6; i <= 9; i++ {
		e.exec("INSERT INTO r VALUES (?, ?)", i, i)
	}
	text := last.String()

	src2 := newSource(t, cfg)
	from, err := src2.ParsePosition(text)
	if err != nil {
		t.Fatalf("ParsePosition(%q): %v", text, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := src2.Start(ctx, from)
	if err != nil {
		t.Fatalf("Start(%s): %v", text, err)
	}
	if info.NeedSnapshot || info.PositionLost {
		t.Fatalf("resume asked for a snapshot (%v) or lost the position (%v)", info.NeedSnapshot, info.PositionLost)
	}
	h2 := &collector{}
	startStream(t, src2, h2)
	e.exec("INSERT INTO r VALUES (10, 10)")
	waitFor(t, "the 5 later transactions", func() bool { return len(h2.whole()) >= 5 })
	time.Sleep(100 * time.Millisecond)
	var ids []int64
	for _, ch := range h2.changes() {
		ids = append(ids, intValue(t, ch.After, "id"))
	}
	if fmt.Sprint(ids) != "[6 7 8 9 10]" {
		t.Fatalf("after resume got ids %v, want [6 7 8 9 10]", ids)
	}
	lag, err := src2.LagBytes(ctx)
	if err != nil || lag < 0 {
		t.Fatalf("LagBytes = %d, %v", lag, err)
	}
	src2.Ack(h2.lastPos())
	if lag, err = src2.LagBytes(ctx); err != nil || lag != 0 {
		t.Fatalf("LagBytes after acking everything = %d, %v; want 0", lag, err)
	}
}

func TestIntegration_OriginTable(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(originTableDDL)
	e.exec("CREATE TABLE o (id INT PRIMARY KEY, v INT)")
	src := newSource(t, e.config("o"))
	snapshotAll(t, src)
	h := &collector{}
	startStream(t, src, h)
	e.tx("REPLACE INTO synchub_origin (conn_id, origin, batch) VALUES (CONNECTION_ID(), 'edge-1', 'batch-7')",
		"INSERT INTO o VALUES (1, 1)", "INSERT INTO o VALUES (2, 2)")
	e.tx("REPLACE INTO synchub_origin (conn_id, origin, batch) VALUES (CONNECTION_ID(), 'edge-2', 'batch-8')",
		"UPDATE o SET v = 3 WHERE id = 1")
	e.exec("INSERT INTO o VALUES (3, 3)")
	waitFor(t, "3 transactions", func() bool { return len(h.whole()) == 3 })
	txs := h.whole()
	want := []struct {
		origin, batch string
		changes       int
	}{{"edge-1", "batch-7", 2}, {"edge-2", "batch-8", 1}, {"", "", 1}}
	for i, w := range want {
		if txs[i].Origin != w.origin || txs[i].Batch != w.batch || len(txs[i].Changes) != w.changes {
			t.Fatalf("tx %d: origin %q batch %q changes %d; want %q %q %d", i, txs[i].Origin, txs[i].Batch, len(txs[i].Changes), w.origin, w.batch, w.changes)
		}
		for _, ch := range txs[i].Changes {
			if ch.Table != e.table("o") {
				t.Fatalf("tx %d carries a change of %s", i, ch.Table)
			}
		}
	}
}

func TestIntegration_AlterTableMidStream(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE a (id INT PRIMARY KEY, v INT)")
	src := newSource(t, e.config("a"))
	snapshotAll(t, src)
	h := &collector{}
	startStream(t, src, h)
	// Each statement is captured before the next runs: the stream reads a changed
	// table's definition from the catalog when it meets the DDL, so a later ALTER
	// already made would be seen in its place (see the package documentation).
	for i, q := range []string{
		"INSERT INTO a VALUES (1, 1)",
		"ALTER TABLE a ADD COLUMN note VARCHAR(20) NULL",
		"INSERT INTO a VALUES (2, 2, 'hello')",
		"ALTER TABLE a DROP COLUMN v",
		"INSERT INTO a VALUES (3, 'bye')",
		"TRUNCATE TABLE a",
	} {
		e.exec(q)
		waitFor(t, fmt.Sprintf("%d transactions", i+1), func() bool { return len(h.whole()) == i+1 })
	}
	txs := h.whole()
	if len(txs[0].Tables) != 0 || len(txs[0].Changes[0].After) != 2 {
		t.Fatalf("first insert: tables %v, row %v", txs[0].Tables, txs[0].Changes[0].After)
	}
	if len(txs[1].Tables) != 1 || len(txs[1].Tables[0].Columns) != 3 || txs[1].Tables[0].Columns[2].Name != "note" || len(txs[1].Changes) != 0 {
		t.Fatalf("ADD COLUMN transaction = %+v", txs[1])
	}
	if c := txs[1].Tables[0].Columns[2]; c.Kind != cdc.KindText || !c.Nullable || c.SourceType != "varchar(20)" {
		t.Fatalf("new column = %+v", c)
	}
	row := txs[2].Changes[0].After
	if v, ok := row.Get("note"); !ok || v.AsString() != "hello" || len(row) != 3 {
		t.Fatalf("row after ADD COLUMN = %v", row)
	}
	if len(txs[3].Tables) != 1 || len(txs[3].Tables[0].Columns) != 2 {
		t.Fatalf("DROP COLUMN transaction = %+v", txs[3])
	}
	row = txs[4].Changes[0].After
	if _, ok := row.Get("v"); ok || len(row) != 2 || intValue(t, row, "id") != 3 {
		t.Fatalf("row after DROP COLUMN = %v", row)
	}
	if len(txs[5].Changes) != 1 || txs[5].Changes[0].Op != cdc.OpTruncate {
		t.Fatalf("TRUNCATE = %+v", txs[5].Changes)
	}
}

// TestIntegration_AlterTableWhileBehind alters a table twice before the stream reads
// the first change: rows logged between the two ALTERs must still decode with the
// columns they were written with.
func TestIntegration_AlterTableWhileBehind(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE b (id INT PRIMARY KEY, v INT)")
	src := newSource(t, e.config("b"))
	snapshotAll(t, src)
	e.exec("ALTER TABLE b ADD COLUMN w INT")
	e.exec("INSERT INTO b VALUES (1, 1, 10)")
	e.exec("ALTER TABLE b DROP COLUMN v")
	e.exec("INSERT INTO b VALUES (2, 20)")
	h := &collector{}
	startStream(t, src, h)
	waitFor(t, "4 transactions", func() bool { return len(h.whole()) == 4 })
	txs := h.whole()
	r1 := txs[1].Changes[0].After
	if len(r1) != 3 || intValue(t, r1, "v") != 1 || intValue(t, r1, "w") != 10 {
		t.Fatalf("row written between the ALTERs = %v", r1)
	}
	r2 := txs[3].Changes[0].After
	if len(r2) != 2 || intValue(t, r2, "w") != 20 {
		t.Fatalf("row written after both ALTERs = %v", r2)
	}
	// The definition announced last is the current one.
	var last cdc.Table
	for _, tx := range txs {
		for _, tb := range tx.Tables {
			last = tb
		}
	}
	if len(last.Columns) != 2 || last.Columns[1].Name != "w" {
		t.Fatalf("last announced definition = %+v", last)
	}
}

func TestIntegration_PositionPurged(t *testing.T) {
	srv := mytest.Start(t, myserver.Options{})
	e := newEnv(t, srv)
	e.exec("CREATE TABLE p (id INT PRIMARY KEY)")
	cfg := e.config("p")
	src := newSource(t, cfg)
	snapshotAll(t, src)
	h := &collector{}
	st := startStream(t, src, h)
	e.exec("INSERT INTO p VALUES (1)")
	waitFor(t, "one transaction", func() bool { return len(h.whole()) == 1 })
	st.stop()
	src.Close()
	pos := h.lastPos()

	e.exec("FLUSH BINARY LOGS")
	e.exec("INSERT INTO p VALUES (2)")
	e.exec("FLUSH BINARY LOGS")
	var current string
	var ignored any
	if err := e.sql.QueryRow("SHOW MASTER STATUS").Scan(&current, &ignored, &ignored, &ignored); err != nil {
		t.Fatalf("SHOW MASTER STATUS: %v", err)
	}
	// A binlog still read by a dump thread that has not noticed its client left is
	// skipped by PURGE; try until it is gone.
	waitFor(t, "the old binlogs to be purged", func() bool {
		e.exec("PURGE BINARY LOGS TO '" + current + "'")
		var first string
		if err := e.sql.QueryRow("SHOW BINARY LOGS").Scan(&first, &ignored); err != nil {
			t.Fatalf("SHOW BINARY LOGS: %v", err)
		}
		return first == current
	})

	src2 := newSource(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := src2.Start(ctx, pos)
	if err != nil {
		t.Fatalf("Start from a purged position: %v", err)
	}
	if !info.PositionLost || info.NeedSnapshot {
		t.Fatalf("PositionLost = %v, NeedSnapshot = %v; want true, false", info.PositionLost, info.NeedSnapshot)
	}
	src2.Close()

	// A loss the stream meets (purged between Start and Stream) is not retryable.
	src3 := newSource(t, cfg)
	if _, err := src3.Start(ctx, nil); err != nil {
		t.Fatalf("Start: %v", err)
	}
	src3.releaseSnapshot()
	src3.startPos = pos.(Position)
	err = src3.Stream(ctx, &collector{})
	if !errors.Is(err, cdc.ErrPositionLost) || cdc.IsRetryable(err) {
		t.Fatalf("Stream from a purged position = %v; want ErrPositionLost, not retryable", err)
	}
}

func TestIntegration_ServerRestartMidStream(t *testing.T) {
	srv := mytest.Start(t, myserver.Options{})
	e := newEnv(t, srv)
	e.exec("CREATE TABLE s (id INT PRIMARY KEY)")
	cfg := e.config("s")
	src := newSource(t, cfg)
	snapshotAll(t, src)
	h := &collector{}
	st := startStream(t, src, h)
	e.exec("INSERT INTO s VALUES (1)")
	e.exec("INSERT INTO s VALUES (2)")
	waitFor(t, "two transactions", func() bool { return len(h.whole()) == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	streamErr, ok := st.wait(30 * time.Second)
	if !ok {
		t.Fatalf("Stream did not return within 30s of the server restarting")
	}
	var ce *cdc.Error
	if !errors.As(streamErr, &ce) || !ce.Transient || !cdc.IsRetryable(streamErr) {
		t.Fatalf("Stream error after restart = %v; want a retryable *cdc.Error", streamErr)
	}
	src.Close()
	e.exec("INSERT INTO s VALUES (3)")

	src2 := newSource(t, cfg)
	info, err := src2.Start(ctx, h.lastPos())
	if err != nil || info.PositionLost || info.NeedSnapshot {
		t.Fatalf("Start after restart: %+v, %v", info, err)
	}
	h2 := &collector{}
	startStream(t, src2, h2)
	e.exec("INSERT INTO s VALUES (4)")
	waitFor(t, "two transactions after restart", func() bool { return len(h2.whole()) >= 2 })
	time.Sleep(100 * time.Millisecond)
	var ids []int64
	for _, ch := range h2.changes() {
		ids = append(ids, intValue(t, ch.After, "id"))
	}
	if fmt.Sprint(ids) != "[3 4]" {
		t.Fatalf("after restart got ids %v, want [3 4]", ids)
	}
}

// TestIntegration_ServerFrozen stops the server process (SIGSTOP): no heartbeat
// arrives, and Stream must end with a retryable error after ReadTimeout instead of
// waiting forever.
func TestIntegration_ServerFrozen(t *testing.T) {
	srv := mytest.Start(t, myserver.Options{})
	e := newEnv(t, srv)
	e.exec("CREATE TABLE f (id INT PRIMARY KEY)")
	src := newSource(t, e.config("f"))
	snapshotAll(t, src)
	h := &collector{}
	st := startStream(t, src, h)
	e.exec("INSERT INTO f VALUES (1)")
	waitFor(t, "one transaction", func() bool { return len(h.whole()) == 1 })

	pidText, err := os.ReadFile(filepath.Join(srv.Dir, "mysqld.pid"))
	if err != nil {
		t.Fatalf("read pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	began := time.Now()
	streamErr, ok := st.wait(30 * time.Second)
	if !ok {
		t.Fatalf("Stream did not return within 30s of the server freezing")
	}
	if !cdc.IsRetryable(streamErr) || !strings.Contains(streamErr.Error(), "no binlog event") {
		t.Fatalf("Stream error = %v; want a retryable error about missing events", streamErr)
	}
	t.Logf("Stream gave up after %v: %v", time.Since(began).Round(time.Millisecond), streamErr)
}

// TestIntegration_CatalogReconnects kills the source's catalog connection (as
// wait_timeout would): LagBytes and the reload after DDL reconnect instead of failing.
func TestIntegration_CatalogReconnects(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE k (id INT PRIMARY KEY)")
	src := newSource(t, e.config("k"))
	snapshotAll(t, src)
	h := &collector{}
	startStream(t, src, h)
	kill := func() {
		src.metaMu.Lock()
		id := src.meta.GetConnectionID()
		src.metaMu.Unlock()
		e.exec(fmt.Sprintf("KILL %d", id))
	}
	kill()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := src.LagBytes(ctx); err != nil {
		t.Fatalf("LagBytes after the catalog connection was killed: %v", err)
	}
	kill()
	e.exec("ALTER TABLE k ADD COLUMN v INT")
	e.exec("INSERT INTO k VALUES (1, 2)")
	waitFor(t, "the ALTER and the insert", func() bool { return len(h.whole()) == 2 })
	if tx := h.whole()[0]; len(tx.Tables) != 1 || len(tx.Tables[0].Columns) != 2 {
		t.Fatalf("ALTER transaction = %+v", tx)
	}
}

// TestIntegration_XATransactions: a prepared XA transaction is delivered at its XA
// COMMIT (after transactions committed in between), never after XA ROLLBACK, and a
// one-phase XA commit is an ordinary transaction.
func TestIntegration_XATransactions(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE x (id INT PRIMARY KEY)")
	cfg := e.config("x")
	cfg.MaxTxChanges = 2
	src := newSource(t, cfg)
	snapshotAll(t, src)
	h := &collector{}
	startStream(t, src, h)
	ctx := context.Background()
	conn, err := e.sql.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	run := func(qs ...string) {
		t.Helper()
		for _, q := range qs {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	run("XA START 'a'", "INSERT INTO x VALUES (1)", "XA END 'a'", "XA PREPARE 'a'", "XA COMMIT 'a'")
	run("XA START 'one'", "INSERT INTO x VALUES (2)", "XA END 'one'", "XA COMMIT 'one' ONE PHASE")
	run("XA START 'rb'", "INSERT INTO x VALUES (3)", "XA END 'rb'", "XA PREPARE 'rb'", "XA ROLLBACK 'rb'")
	run("INSERT INTO x VALUES (4)")
	run("XA START 'p'", "INSERT INTO x VALUES (5)", "INSERT INTO x VALUES (50)", "INSERT INTO x VALUES (500)", "XA END 'p'", "XA PREPARE 'p'")
	e.exec("INSERT INTO x VALUES (6)")
	run("XA COMMIT 'p'")
	waitFor(t, "5 transactions", func() bool { return len(h.whole()) >= 5 })
	time.Sleep(200 * time.Millisecond)
	var got []string
	for _, tx := range h.whole() {
		var ids []int64
		for _, ch := range tx.Changes {
			ids = append(ids, intValue(t, ch.After, "id"))
		}
		got = append(got, fmt.Sprint(ids))
	}
	if fmt.Sprint(got) != "[[1] [2] [4] [6] [5 50 500]]" {
		t.Fatalf("transactions = %v, want [[1] [2] [4] [6] [5 50 500]]", got)
	}
}

// TestIntegration_DropRecreateRename: DROP TABLE of a captured table is a truncate, a
// new CREATE TABLE and a column rename are announced in Tx.Tables, and later rows use
// the new columns.
func TestIntegration_DropRecreateRename(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE d (id INT PRIMARY KEY, v INT)")
	src := newSource(t, e.config("d"))
	snapshotAll(t, src)
	h := &collector{}
	startStream(t, src, h)
	e.exec("INSERT INTO d VALUES (1, 1)")
	e.exec("DROP TABLE d")
	e.exec("CREATE TABLE d (id INT PRIMARY KEY, label VARCHAR(10) NOT NULL)")
	e.exec("INSERT INTO d VALUES (2, 'two')")
	e.exec("ALTER TABLE d RENAME COLUMN label TO name")
	e.exec("INSERT INTO d VALUES (3, 'three')")
	waitFor(t, "6 transactions", func() bool { return len(h.whole()) == 6 })
	txs := h.whole()
	if len(txs[1].Changes) != 1 || txs[1].Changes[0].Op != cdc.OpTruncate {
		t.Fatalf("DROP TABLE = %+v", txs[1])
	}
	if len(txs[2].Tables) != 1 || txs[2].Tables[0].Columns[1].Name != "label" || txs[2].Tables[0].Columns[1].Nullable {
		t.Fatalf("CREATE TABLE = %+v", txs[2])
	}
	if v, _ := txs[3].Changes[0].After.Get("label"); v.AsString() != "two" {
		t.Fatalf("row after CREATE = %v", txs[3].Changes[0].After)
	}
	if len(txs[4].Tables) != 1 || txs[4].Tables[0].Columns[1].Name != "name" {
		t.Fatalf("RENAME COLUMN = %+v", txs[4])
	}
	if v, ok := txs[5].Changes[0].After.Get("name"); !ok || v.AsString() != "three" {
		t.Fatalf("row after RENAME COLUMN = %v", txs[5].Changes[0].After)
	}
}

// TestIntegration_IdleUnderUnrelatedTraffic: a stream kept busy by transactions on
// other tables still calls Idle after a delivery, so the consumer commits.
func TestIntegration_IdleUnderUnrelatedTraffic(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE mine (id INT PRIMARY KEY)")
	e.exec("CREATE TABLE noise (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	cfg := e.config("mine")
	cfg.IdleWait = 300 * time.Millisecond
	src := newSource(t, cfg)
	snapshotAll(t, src)
	h := &collector{}
	startStream(t, src, h)

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 200000 && !stop.Load(); i++ {
			if _, err := e.sql.Exec("INSERT INTO noise (v) VALUES (?)", i); err != nil {
				t.Errorf("noise: %v", err)
				return
			}
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()
	time.Sleep(100 * time.Millisecond)
	h.mu.Lock()
	idles := h.idles
	h.mu.Unlock()
	e.exec("INSERT INTO mine VALUES (1)")
	waitFor(t, "the insert", func() bool { return len(h.whole()) == 1 })
	waitFor(t, "an Idle call while unrelated transactions keep coming", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.idles > idles
	})
}
