package postgres

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/postgres/pgserver"
	"github.com/synchub/synchub/cdc/postgres/pgtest"
)

func (r *streamRun) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		close(r.done)
		return err
	case <-time.After(timeout):
		t.Fatalf("Stream did not return within %v", timeout)
		return nil
	}
}

func TestIntegration_SnapshotThenStream(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE orders (id bigint PRIMARY KEY, item text NOT NULL, qty int)`)
	e.exec(`CREATE TABLE "Mixed Case" ("Id" int PRIMARY KEY, "Val" text)`)
	e.exec(`INSERT INTO orders SELECT g, 'item ' || g, g FROM generate_series(1, 25) g`)
	e.exec(`INSERT INTO "Mixed Case" VALUES (1, 'one')`)
	cfg := e.config("public.orders", "public.Mixed Case")
	cfg.SnapshotPageRows = 10
	src := e.newSource(cfg)
	info := start(t, src, nil)
	if !info.NeedSnapshot || info.PositionLost {
		t.Fatalf("StartInfo = %+v, want NeedSnapshot and not PositionLost", info)
	}
	if !strings.Contains(info.Describe, "PostgreSQL 1") || !strings.Contains(info.Describe, e.slot) {
		t.Errorf("Describe = %q", info.Describe)
	}
	if len(info.Tables) != 2 || info.Tables[0].Name != "public.orders" || info.Tables[1].Name != "public.Mixed Case" {
		t.Fatalf("tables = %+v", info.Tables)
	}
	orders := info.Tables[0]
	if strings.Join(orders.PrimaryKey, ",") != "id" || len(orders.Columns) != 3 {
		t.Fatalf("orders = %+v", orders)
	}
	wantCols := []cdc.Column{
		{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER", Nullable: false},
		{Name: "item", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: false},
		{Name: "qty", SourceType: "integer", Kind: cdc.KindInt, SQLiteType: "INTEGER", Nullable: true},
	}
	for i, c := range wantCols {
		if orders.Columns[i] != c {
			t.Errorf("column %d = %+v, want %+v", i, orders.Columns[i], c)
		}
	}

	var pages []int
	ctx := context.Background()
	pos, err := src.Snapshot(ctx, func(_ context.Context, ch []cdc.Change) error {
		pages = append(pages, len(ch))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pages) != "[10 10 5 1]" {
		t.Errorf("snapshot pages = %v, want [10 10 5 1]", pages)
	}
	if pos == nil || pos.IsZero() {
		t.Fatalf("snapshot position = %v", pos)
	}

	rec := &recorder{}
	stream(t, src, rec)
	e.exec(`INSERT INTO orders VALUES (26, 'late', 1)`)
	e.exec(`INSERT INTO "Mixed Case" VALUES (2, 'two')`)
	txs := rec.waitFinal(t, 2)
	if len(txs) != 2 {
		t.Fatalf("got %d txs", len(txs))
	}
	ch := txs[0].Changes[0]
	if ch.Table != "public.orders" || ch.Op != cdc.OpInsert || getInt(t, ch.After, "id") != 26 {
		t.Errorf("first change = %+v", ch)
	}
	if txs[1].Changes[0].Table != "public.Mixed Case" {
		t.Errorf("second change = %+v", txs[1].Changes[0])
	}
	p0, p1 := txs[0].Pos.(LSN), txs[1].Pos.(LSN)
	if p0.Compare(pos.(LSN)) <= 0 || p1.Compare(p0) <= 0 {
		t.Errorf("positions not increasing: snapshot %v, tx %v, tx %v", pos, p0, p1)
	}
	if txs[0].CommitTime.IsZero() || time.Since(txs[0].CommitTime) > time.Minute {
		t.Errorf("commit time = %v", txs[0].CommitTime)
	}
	pgtest.WaitFor(t, 5*time.Second, "an Idle call", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.idles > 0
	})
}

// Rows inserted while the slot is created and the snapshot is read must each be seen
// exactly once across the snapshot and the stream.
func TestIntegration_SnapshotStreamSeam(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE seam (id bigint PRIMARY KEY, v int)`)
	e.exec(`INSERT INTO seam SELECT g, g FROM generate_series(1, 20000) g`)

	writer := newEnv(t, e.srv)
	writer.db = e.db
	writer.connect()
	var (
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		lastID  int64
		wErr    error
		started = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for id := int64(20001); id <= 200000; id++ {
			if _, err := writer.conn.Exec(ctx, `INSERT INTO seam VALUES ($1, 0)`, id); err != nil {
				wErr = err
				return
			}
			lastID = id
			if id == 20050 {
				close(started)
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	<-started

	cfg := e.config("public.seam")
	cfg.SnapshotPageRows = 500
	src := e.newSource(cfg)
	start(t, src, nil)
	snap, _ := snapshot(t, src)
	rec := &recorder{}
	stream(t, src, rec)
	pgtest.WaitFor(t, 30*time.Second, "stream to deliver writes made after the snapshot", func() bool {
		return len(rec.changes()) > 50
	})
	close(stop)
	wg.Wait()
	if wErr != nil {
		t.Fatalf("writer: %v", wErr)
	}
	total := lastID
	seen := make(map[int64]int, total)
	for _, ch := range snap {
		seen[getInt(t, ch.After, "id")]++
	}
	fromSnapshot := len(seen)
	pgtest.WaitFor(t, 30*time.Second, "every row", func() bool {
		n := len(snap) + len(rec.changes())
		return int64(n) >= total
	})
	for _, ch := range rec.changes() {
		if ch.Op != cdc.OpInsert {
			t.Fatalf("unexpected change %+v", ch)
		}
		seen[getInt(t, ch.After, "id")]++
	}
	for id := int64(1); id <= total; id++ {
		if seen[id] != 1 {
			t.Fatalf("row %d seen %d times (snapshot had %d rows, stream %d, writer wrote up to %d)", id, seen[id], len(snap), len(rec.changes()), total)
		}
	}
	if len(seen) != int(total) {
		t.Fatalf("saw %d distinct rows, want %d", len(seen), total)
	}
	if fromSnapshot <= 20000 || int64(fromSnapshot) >= total {
		t.Errorf("snapshot held %d of %d rows: the writer did not overlap the snapshot as intended", fromSnapshot, total)
	}
}

func TestIntegration_MultiStatementTx(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, v text)`)
	e.exec(`INSERT INTO t VALUES (1, 'a')`)
	src := e.newSource(e.config("public.t"))
	start(t, src, nil)
	snapshot(t, src)
	rec := &recorder{}
	stream(t, src, rec)
	e.exec(`BEGIN; INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'A' WHERE id = 1; DELETE FROM t WHERE id = 2; COMMIT`)
	e.exec(`INSERT INTO t VALUES (3, 'c')`)
	txs := rec.waitFinal(t, 2)
	if len(rec.all()) != 2 {
		t.Fatalf("got %d parts, want 2 whole transactions", len(rec.all()))
	}
	tx := txs[0]
	if len(tx.Changes) != 3 || tx.More || tx.Pos == nil || tx.Pos.IsZero() {
		t.Fatalf("tx = %+v", tx)
	}
	ops := []cdc.Op{tx.Changes[0].Op, tx.Changes[1].Op, tx.Changes[2].Op}
	if fmt.Sprint(ops) != "[insert update delete]" {
		t.Errorf("ops = %v", ops)
	}
	if v, _ := tx.Changes[1].After.Get("v"); v.AsString() != "A" {
		t.Errorf("update after = %v", tx.Changes[1].After)
	}
	if tx.Changes[1].Before != nil {
		t.Errorf("update of a non-key column with default replica identity has Before %v", tx.Changes[1].Before)
	}
	if del := tx.Changes[2]; len(del.Before) != 1 || getInt(t, del.Before, "id") != 2 || del.After != nil {
		t.Errorf("delete = %+v", del)
	}
	if txs[1].Pos.(LSN).Compare(tx.Pos.(LSN)) <= 0 {
		t.Errorf("positions %v then %v", tx.Pos, txs[1].Pos)
	}
}

func TestIntegration_UpdateDeleteTruncate(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE k (a int, b text, v text, PRIMARY KEY (b, a))`)
	e.exec(`CREATE TABLE f (id int PRIMARY KEY, v text, w int)`)
	e.exec(`ALTER TABLE f REPLICA IDENTITY FULL`)
	e.exec(`INSERT INTO k VALUES (1, 'x', 'one'), (2, 'y', 'two')`)
	e.exec(`INSERT INTO f VALUES (1, 'old', 10)`)
	src := e.newSource(e.config("public.k", "public.f"))
	info := start(t, src, nil)
	if strings.Join(info.Tables[0].PrimaryKey, ",") != "b,a" {
		t.Fatalf("primary key = %v, want b,a", info.Tables[0].PrimaryKey)
	}
	snapshot(t, src)
	rec := &recorder{}
	stream(t, src, rec)
	e.exec(`UPDATE k SET a = 10 WHERE a = 1`)
	e.exec(`DELETE FROM k WHERE a = 2`)
	e.exec(`UPDATE f SET v = 'new' WHERE id = 1`)
	e.exec(`DELETE FROM f WHERE id = 1`)
	e.exec(`TRUNCATE k, f`)
	txs := rec.waitFinal(t, 5)

	keyUpd := txs[0].Changes[0]
	if keyUpd.Op != cdc.OpUpdate || getInt(t, keyUpd.After, "a") != 10 {
		t.Fatalf("key update = %+v", keyUpd)
	}
	if len(keyUpd.Before) != 2 || getInt(t, keyUpd.Before, "a") != 1 {
		t.Errorf("key update Before = %v, want the old key (a=1, b=x)", keyUpd.Before)
	}
	if b, _ := keyUpd.Before.Get("b"); b.AsString() != "x" {
		t.Errorf("key update Before = %v", keyUpd.Before)
	}
	del := txs[1].Changes[0]
	if del.Op != cdc.OpDelete || len(del.Before) != 2 || getInt(t, del.Before, "a") != 2 {
		t.Errorf("delete = %+v", del)
	}
	fullUpd := txs[2].Changes[0]
	if len(fullUpd.Before) != 3 || getInt(t, fullUpd.Before, "w") != 10 {
		t.Errorf("REPLICA IDENTITY FULL update Before = %v, want the whole old row", fullUpd.Before)
	}
	if v, _ := fullUpd.Before.Get("v"); v.AsString() != "old" {
		t.Errorf("full update Before = %v", fullUpd.Before)
	}
	fullDel := txs[3].Changes[0]
	if len(fullDel.Before) != 3 {
		t.Errorf("REPLICA IDENTITY FULL delete Before = %v", fullDel.Before)
	}
	trunc := txs[4].Changes
	if len(trunc) != 2 || trunc[0].Op != cdc.OpTruncate || trunc[1].Op != cdc.OpTruncate {
		t.Fatalf("truncate = %+v", trunc)
	}
	names := []string{trunc[0].Table, trunc[1].Table}
	if !(names[0] == "public.k" && names[1] == "public.f" || names[0] == "public.f" && names[1] == "public.k") {
		t.Errorf("truncated tables = %v", names)
	}
}

func TestIntegration_TOASTUnchanged(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE docs (id int PRIMARY KEY, body text, n int)`)
	raw := make([]byte, 75*1024)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	body := base64.StdEncoding.EncodeToString(raw) // 100 KB that does not compress below the TOAST threshold
	src := e.newSource(e.config("public.docs"))
	start(t, src, nil)
	snapshot(t, src)
	rec := &recorder{}
	stream(t, src, rec)
	e.exec(`INSERT INTO docs VALUES (1, $1, 0)`, body)
	e.exec(`UPDATE docs SET n = 1 WHERE id = 1`)
	txs := rec.waitFinal(t, 2)
	ins := txs[0].Changes[0].After
	if v, _ := ins.Get("body"); v.AsString() != body {
		t.Fatalf("inserted body has %d bytes, want the %d inserted", len(v.AsString()), len(body))
	}
	upd := txs[1].Changes[0].After
	if upd[1].Name != "body" || !upd[1].Unchanged || !upd[1].Value.IsNull() {
		t.Errorf("updated body = %+v, want Unchanged", upd[1])
	}
	if upd[2].Unchanged || getInt(t, upd, "n") != 1 || upd[0].Unchanged {
		t.Errorf("update after = %+v", upd)
	}
	if !upd.HasUnchanged() {
		t.Error("HasUnchanged is false")
	}
}

func TestIntegration_AddDropColumn(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, a text)`)
	src := e.newSource(e.config("public.t"))
	start(t, src, nil)
	snapshot(t, src)
	rec := &recorder{}
	stream(t, src, rec)
	e.exec(`INSERT INTO t VALUES (1, 'x')`)
	e.exec(`ALTER TABLE t ADD COLUMN c numeric(10,2) NOT NULL DEFAULT 0`)
	e.exec(`INSERT INTO t VALUES (2, 'y', 3.5)`)
	e.exec(`INSERT INTO t VALUES (3, 'z', 4)`)
	e.exec(`ALTER TABLE t DROP COLUMN a`)
	e.exec(`INSERT INTO t VALUES (4, 5)`)
	txs := rec.waitFinal(t, 4)
	if len(txs[0].Tables) != 0 {
		t.Errorf("first tx announces tables %+v", txs[0].Tables)
	}
	added := txs[1]
	if len(added.Tables) != 1 {
		t.Fatalf("tx after ADD COLUMN has tables %+v", added.Tables)
	}
	tbl := added.Tables[0]
	if tbl.Name != "public.t" || len(tbl.Columns) != 3 || tbl.Columns[2].Name != "c" || tbl.Columns[2].Kind != cdc.KindDecimal ||
		tbl.Columns[2].SourceType != "numeric(10,2)" || tbl.Columns[2].Nullable || strings.Join(tbl.PrimaryKey, ",") != "id" {
		t.Errorf("table after ADD COLUMN = %+v", tbl)
	}
	if got := string(tbl.Columns[2].Default); got != `"0.00"` {
		t.Errorf("default of existing rows for the added column = %s, want \"0.00\"", got)
	}
	if tbl.Columns[1].Default != "" {
		t.Errorf("column a has a default %s, want none", tbl.Columns[1].Default)
	}
	if v, ok := added.Changes[0].After.Get("c"); !ok || v.AsString() != "3.50" {
		t.Errorf("row after ADD COLUMN = %v", added.Changes[0].After)
	}
	if len(txs[2].Tables) != 0 {
		t.Errorf("unchanged table announced again: %+v", txs[2].Tables)
	}
	dropped := txs[3]
	if len(dropped.Tables) != 1 || len(dropped.Tables[0].Columns) != 2 || dropped.Tables[0].Columns[1].Name != "c" {
		t.Fatalf("tx after DROP COLUMN has tables %+v", dropped.Tables)
	}
	row := dropped.Changes[0].After
	if len(row) != 2 || row[0].Name != "id" || row[1].Name != "c" || row[1].Value.AsString() != "5.00" {
		t.Errorf("row after DROP COLUMN = %v", row)
	}
}

func TestIntegration_AckAndRestart(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	cfg := e.config("public.t")
	src := e.newSource(cfg)
	start(t, src, nil)
	snapshot(t, src)
	rec := &recorder{}
	run := stream(t, src, rec)
	for i := 1; i <= 5; i++ {
		e.exec(`INSERT INTO t VALUES ($1)`, i)
	}
	txs := rec.waitFinal(t, 5)
	src.Ack(txs[0].Pos)
	src.Ack(txs[1].Pos)
	src.Ack(txs[0].Pos) // an older position never moves the acknowledgement back
	if err := run.stop(t); err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	confirmed := pgtest.MustExec(t, e.srv, e.db, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '"+e.slot+"'")
	if confirmed != txs[1].Pos.String() {
		t.Fatalf("slot confirmed %s, want exactly the acked %s (tx 5 is at %s)", confirmed, txs[1].Pos, txs[4].Pos)
	}

	pos, err := src.ParsePosition(txs[1].Pos.String())
	if err != nil {
		t.Fatal(err)
	}
	info := start(t, src, pos)
	if info.NeedSnapshot || info.PositionLost {
		t.Fatalf("resume: %+v", info)
	}
	rec2 := &recorder{}
	stream(t, src, rec2)
	e.exec(`INSERT INTO t VALUES (6)`)
	got := rec2.waitFinal(t, 4)
	var ids []int64
	for _, tx := range got {
		ids = append(ids, getInt(t, tx.Changes[0].After, "id"))
	}
	if fmt.Sprint(ids) != "[3 4 5 6]" {
		t.Fatalf("after resuming at tx 2 got ids %v, want [3 4 5 6]", ids)
	}
	for i := range 3 {
		if got[i].Pos != txs[i+2].Pos {
			t.Errorf("redelivered tx %d at %v, first delivered at %v", i+3, got[i].Pos, txs[i+2].Pos)
		}
	}
}

func TestIntegration_OriginMessage(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	src := e.newSource(e.config("public.t"))
	start(t, src, nil)
	snapshot(t, src)
	rec := &recorder{}
	stream(t, src, rec)
	e.exec(`BEGIN; SELECT pg_logical_emit_message(true, 'synchub.origin', 'edge-a'); INSERT INTO t VALUES (1); COMMIT`)
	e.exec(`INSERT INTO t VALUES (2)`)
	e.exec(`BEGIN; SELECT pg_logical_emit_message(true, 'other.prefix', 'edge-b'); INSERT INTO t VALUES (3); COMMIT`)
	e.exec(`SELECT pg_logical_emit_message(false, 'synchub.origin', 'edge-c')`)
	e.exec(`INSERT INTO t VALUES (4)`)
	txs := rec.waitFinal(t, 4)
	var origins []string
	for _, tx := range txs {
		origins = append(origins, fmt.Sprintf("%d:%q", getInt(t, tx.Changes[0].After, "id"), tx.Origin))
	}
	if got := strings.Join(origins, " "); got != `1:"edge-a" 2:"" 3:"" 4:""` {
		t.Fatalf("origins = %s", got)
	}
}

func TestIntegration_LargeTxInParts(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE big (id int PRIMARY KEY, v text)`)
	src := e.newSource(e.config("public.big"))
	start(t, src, nil)
	snapshot(t, src)
	var (
		mu       sync.Mutex
		parts    int
		rows     int
		maxPart  int
		finalPos cdc.Position
		moreErr  error
		nextID   int64 = 1
	)
	h := &funcHandler{tx: func(tx *cdc.Tx) error {
		mu.Lock()
		defer mu.Unlock()
		parts++
		rows += len(tx.Changes)
		maxPart = max(maxPart, len(tx.Changes))
		for _, ch := range tx.Changes {
			v, _ := ch.After.Get("id")
			if v.AsInt() != nextID && moreErr == nil {
				moreErr = fmt.Errorf("row %d arrived where %d was expected", v.AsInt(), nextID)
			}
			nextID++
		}
		if tx.More && tx.Pos != nil && moreErr == nil {
			moreErr = errors.New("a part with More set carries a position")
		}
		if !tx.More {
			finalPos = tx.Pos
		}
		return nil
	}}
	stream(t, src, h)
	e.exec(`INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, 200000) g`)
	pgtest.WaitFor(t, 90*time.Second, "the final part", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return finalPos != nil
	})
	mu.Lock()
	defer mu.Unlock()
	if moreErr != nil {
		t.Fatal(moreErr)
	}
	if rows != 200000 || parts != 40 || maxPart != 5000 {
		t.Fatalf("got %d rows in %d parts (largest %d), want 200000 in 40 parts of 5000", rows, parts, maxPart)
	}
}

type funcHandler struct {
	tx   func(*cdc.Tx) error
	idle func() error
}

func (h *funcHandler) Tx(_ context.Context, tx *cdc.Tx) error { return h.tx(tx) }
func (h *funcHandler) Idle(context.Context) error {
	if h.idle != nil {
		return h.idle()
	}
	return nil
}

func requireFix(t *testing.T, err error, wantMsg, wantFix string) {
	t.Helper()
	var ce *cdc.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *cdc.Error", err, err)
	}
	if !strings.Contains(err.Error(), wantMsg) || !strings.Contains(ce.Fix, wantFix) {
		t.Fatalf("error %q (fix %q) should mention %q and fix %q", err, ce.Fix, wantMsg, wantFix)
	}
	if cdc.IsRetryable(err) {
		t.Errorf("configuration error %v is retryable", err)
	}
}

func TestIntegration_WalLevelNotLogical(t *testing.T) {
	srv := pgtest.Start(t, pgserver.Options{Settings: []string{"wal_level = replica"}})
	e := newEnv(t, srv)
	e.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	src := e.newSource(e.config("public.t"))
	_, err := src.Start(context.Background(), nil)
	requireFix(t, err, "wal_level", "ALTER SYSTEM SET wal_level = logical")
}

func TestIntegration_RoleWithoutReplication(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	role := "norepl_" + e.db
	e.exec(`CREATE ROLE ` + role + ` LOGIN`)
	e.exec(`GRANT SELECT ON t TO ` + role)
	cfg := e.config("public.t")
	cfg.DSN = strings.Replace(cfg.DSN, "postgres@", role+"@", 1)
	src := e.newSource(cfg)
	_, err := src.Start(context.Background(), nil)
	requireFix(t, err, "REPLICATION", `ALTER ROLE "`+role+`" REPLICATION`)
}

func TestIntegration_TableProblems(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE nopk (id int, v text)`)
	e.exec(`CREATE TABLE ok (id int PRIMARY KEY)`)
	cases := []struct {
		tables       []string
		msg, fix     string
		wantNotFound bool
	}{
		{[]string{"public.ok", "public.nopk"}, "public.nopk has no primary key", `ALTER TABLE "public"."nopk" ADD PRIMARY KEY`, false},
		{[]string{"public.missing"}, "public.missing does not exist", "create table public.missing", true},
	}
	for _, c := range cases {
		src := e.newSource(e.config(c.tables...))
		_, err := src.Start(context.Background(), nil)
		requireFix(t, err, c.msg, c.fix)
		src.Close()
	}
	if n := pgtest.MustExec(t, e.srv, e.db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '"+e.slot+"'"); n != "0" {
		t.Errorf("a failed Start left %s slots behind", n)
	}
}

func TestIntegration_LagBytes(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, v text)`)
	cfg := e.config("public.t")
	cfg.StatusInterval = 50 * time.Millisecond
	src := e.newSource(cfg)
	if _, err := src.LagBytes(context.Background()); err == nil {
		t.Fatal("LagBytes before Start should fail")
	}
	start(t, src, nil)
	snapshot(t, src)
	rec := &recorder{}
	stream(t, src, rec)
	e.exec(`INSERT INTO t VALUES (0, 'small')`)
	rec.waitFinal(t, 1) // delivered and never acknowledged: the slot may not move past it
	e.exec(`INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g`)
	txs := rec.waitFinal(t, 2)
	lag, err := src.LagBytes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if lag < 100*2000 {
		t.Fatalf("lag before any Ack = %d bytes, want at least the 200 KB written", lag)
	}
	src.Ack(txs[1].Pos)
	pgtest.WaitFor(t, 10*time.Second, "lag to drop after Ack", func() bool {
		l, err := src.LagBytes(context.Background())
		return err == nil && l < lag/10
	})
}

// PostgreSQL stops under a running stream: Stream fails with a retryable error, and a
// new Start from the last acknowledged position continues without loss. A fast
// shutdown must not wait for the stream when everything delivered was acknowledged;
// a crash loses nothing that was delivered but not acknowledged.
func TestIntegration_PostgresRestart(t *testing.T) {
	srv := pgtest.Start(t, pgserver.Options{})
	e := newEnv(t, srv)
	e.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	src := e.newSource(e.config("public.t"))
	start(t, src, nil)
	snapshot(t, src)
	rec := &recorder{onTx: func(tx *cdc.Tx) error {
		src.Ack(tx.Pos)
		return nil
	}}
	run := stream(t, src, rec)
	e.exec(`INSERT INTO t VALUES (1)`)
	e.exec(`INSERT INTO t VALUES (2)`)
	txs := rec.waitFinal(t, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stopAndRestart := func(mode string, run *streamRun) {
		t.Helper()
		e.conn.Close(ctx)
		began := time.Now()
		if err := srv.StopServer(ctx, mode); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(began); took > 20*time.Second {
			t.Errorf("%s shutdown took %v: the stream held the server up", mode, took)
		}
		err := run.wait(t, 30*time.Second)
		if err == nil || !cdc.IsRetryable(err) {
			t.Fatalf("Stream after a %s stop returned %v, want a retryable error", mode, err)
		}
		src.Close()
		if err := srv.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		e.connect()
	}
	ids := func(txs []*cdc.Tx) string {
		var out []int64
		for _, tx := range txs {
			out = append(out, getInt(t, tx.Changes[0].After, "id"))
		}
		return fmt.Sprint(out)
	}

	stopAndRestart("fast", run)
	e.exec(`INSERT INTO t VALUES (3)`)
	if info := start(t, src, txs[1].Pos); info.NeedSnapshot || info.PositionLost {
		t.Fatalf("resume after restart: %+v", info)
	}
	rec2 := &recorder{}
	run = stream(t, src, rec2)
	e.exec(`INSERT INTO t VALUES (4)`)
	got := rec2.waitFinal(t, 2)
	if ids(got) != "[3 4]" {
		t.Fatalf("after a fast restart got ids %s, want [3 4]", ids(got))
	}
	src.Ack(got[0].Pos) // tx 4 is delivered but never acknowledged

	stopAndRestart("immediate", run)
	if info := start(t, src, got[0].Pos); info.NeedSnapshot || info.PositionLost {
		t.Fatalf("resume after crash: %+v", info)
	}
	rec3 := &recorder{}
	stream(t, src, rec3)
	e.exec(`INSERT INTO t VALUES (5)`)
	if got := rec3.waitFinal(t, 2); ids(got) != "[4 5]" {
		t.Fatalf("after a crash got ids %s, want [4 5]", ids(got))
	}
}
