package postgres

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/postgres/pgtest"
)

// Tests of what happens to a stored position: a dropped slot, a position ahead of the
// server, and tables added to or removed from the configuration.

func TestIntegration_SlotDroppedWhileStopped(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	src := e.newSource(e.config("public.t"))
	start(t, src, nil)
	snapshot(t, src)
	rec := &recorder{}
	run := stream(t, src, rec)
	e.exec(`INSERT INTO t VALUES (1)`)
	txs := rec.waitFinal(t, 1)
	src.Ack(txs[0].Pos)
	run.stop(t)
	src.Close()
	pgtest.MustExec(t, e.srv, e.db, "SELECT pg_drop_replication_slot('"+e.slot+"')")
	e.exec(`INSERT INTO t VALUES (2)`)

	info := start(t, src, txs[0].Pos)
	if !info.PositionLost || info.NeedSnapshot {
		t.Fatalf("StartInfo = %+v, want PositionLost and no snapshot prepared", info)
	}
	assertNoSlot(t, e)
	src.Close()
	if info = start(t, src, nil); !info.NeedSnapshot || info.PositionLost {
		t.Fatalf("Start without a position after the loss: %+v, want NeedSnapshot", info)
	}
	rows, _ := snapshot(t, src)
	if len(rows) != 2 {
		t.Fatalf("new snapshot has %d rows, want 2", len(rows))
	}
	src.Close()

	future, _ := ParseLSN("FF/0")
	info = start(t, src, future)
	if !info.PositionLost || info.NeedSnapshot {
		t.Fatalf("Start from a position ahead of the server's WAL: %+v, want PositionLost", info)
	}
}

// assertNoSlot fails if the source created a slot while reporting a lost position.
func assertNoSlot(t *testing.T, e *env) {
	t.Helper()
	if n := pgtest.MustExec(t, e.srv, e.db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '"+e.slot+"'"); n != "0" {
		t.Fatalf("a slot exists after Start reported the position lost: a consumer that dies now would resume from it")
	}
}

// A table added to the configuration was never streamed, so resuming cannot be
// consistent: Start reports the position lost and takes a snapshot of every table.
func TestIntegration_TableAddedToConfig(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE a (id int PRIMARY KEY)`)
	e.exec(`CREATE TABLE b (id int PRIMARY KEY)`)
	e.exec(`INSERT INTO a VALUES (1); INSERT INTO b VALUES (1), (2)`)
	src := e.newSource(e.config("public.a"))
	start(t, src, nil)
	snapshot(t, src)
	rec := &recorder{}
	run := stream(t, src, rec)
	e.exec(`INSERT INTO a VALUES (2)`)
	txs := rec.waitFinal(t, 1)
	src.Ack(txs[0].Pos)
	run.stop(t)
	src.Close()

	both := e.newSource(e.config("public.a", "public.b"))
	pubTables := func() string {
		return pgtest.MustExec(t, e.srv, e.db, "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = 'pub_"+e.db+"'")
	}
	// Until the consumer starts without a position, every Start from the old one
	// reports the loss again: nothing is added that would let it resume.
	for attempt := 1; attempt <= 2; attempt++ {
		info := start(t, both, txs[0].Pos)
		if !info.PositionLost || info.NeedSnapshot || len(info.Tables) != 2 {
			t.Fatalf("Start %d: StartInfo = %+v, want PositionLost, nothing prepared and two tables", attempt, info)
		}
		both.Close()
		if got := pubTables(); got != "a" {
			t.Fatalf("after a Start that reported the loss the publication holds %s, want a only", got)
		}
	}
	if info := start(t, both, nil); !info.NeedSnapshot {
		t.Fatalf("Start without a position: %+v, want NeedSnapshot", info)
	}
	rows, _ := snapshot(t, both)
	if len(rows) != 4 {
		t.Fatalf("snapshot has %d rows, want 4", len(rows))
	}
	if got := pubTables(); got != "a,b" {
		t.Errorf("publication holds %s, want a,b", got)
	}
}

// A table removed from the configuration may still stream until the publication drops
// it; its changes are skipped. A captured table renamed under the stream is an error.
func TestIntegration_TableRemovedAndRenamed(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec(`CREATE TABLE a (id int PRIMARY KEY)`)
	e.exec(`CREATE TABLE b (id int PRIMARY KEY)`)
	src := e.newSource(e.config("public.a", "public.b"))
	start(t, src, nil)
	snapshot(t, src)
	rec := &recorder{}
	run := stream(t, src, rec)
	e.exec(`INSERT INTO a VALUES (1)`)
	txs := rec.waitFinal(t, 1)
	src.Ack(txs[0].Pos)
	run.stop(t)
	src.Close()
	e.exec(`INSERT INTO b VALUES (1)`)
	e.exec(`INSERT INTO a VALUES (2)`)

	onlyA := e.newSource(e.config("public.a"))
	if info := start(t, onlyA, txs[0].Pos); info.PositionLost {
		t.Fatalf("removing a table lost the position: %+v", info)
	}
	rec2 := &recorder{}
	run2 := stream(t, onlyA, rec2)
	got := rec2.waitFinal(t, 1)
	if len(got) != 1 || got[0].Changes[0].Table != "public.a" {
		t.Fatalf("after removing b got %+v", got[0].Changes)
	}
	e.exec(`ALTER TABLE a RENAME TO a2`)
	e.exec(`INSERT INTO a2 VALUES (3)`)
	err := run2.wait(t, 30*time.Second)
	var ce *cdc.Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "renamed to public.a2") || cdc.IsRetryable(err) {
		t.Fatalf("Stream after a rename returned %v, want a configuration error naming the rename", err)
	}
}
