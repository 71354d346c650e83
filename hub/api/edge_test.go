package api_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/changelog"
)

type testPos int64

func (p testPos) String() string { return strconv.FormatInt(int64(p), 10) }
func (p testPos) IsZero() bool   { return p == 0 }

// liveLog appends transactions to a real change log and keeps the rows they should
// leave, to compare an edge against.
type liveLog struct {
	t     testing.TB
	store *changelog.SQLiteStore
	pos   int64
	want  map[int64]string
}

func (l *liveLog) append(changes ...cdc.Change) {
	l.t.Helper()
	ctx := context.Background()
	b, err := l.store.Begin(ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := b.SetTables([]cdc.Table{ordersTable}); err != nil {
		l.t.Fatal(err)
	}
	l.pos++
	if err := b.AppendTx(ctx, &cdc.Tx{Pos: testPos(l.pos), CommitTime: time.Now(), Changes: changes}); err != nil {
		l.t.Fatal(err)
	}
	if _, err := b.Commit(ctx); err != nil {
		l.t.Fatal(err)
	}
	for _, c := range changes {
		switch c.Op {
		case cdc.OpInsert, cdc.OpUpdate:
			if len(c.Before) > 0 {
				old, _ := c.Before.Get("id")
				delete(l.want, old.AsInt())
			}
			id, _ := c.After.Get("id")
			note, _ := c.After.Get("note")
			l.want[id.AsInt()] = note.AsString()
		case cdc.OpDelete:
			id, _ := c.Before.Get("id")
			delete(l.want, id.AsInt())
		case cdc.OpTruncate:
			clear(l.want)
		}
	}
}

func (l *liveLog) head() int64 {
	st, err := l.store.State(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	return st.Head
}

func (l *liveLog) check(db *sql.DB) {
	l.t.Helper()
	rows, err := db.Query(`SELECT id, note, total FROM orders ORDER BY id`)
	if err != nil {
		l.t.Fatal(err)
	}
	defer rows.Close()
	got := map[int64]string{}
	for rows.Next() {
		var id int64
		var note, total string
		if err := rows.Scan(&id, &note, &total); err != nil {
			l.t.Fatal(err)
		}
		if total != "9.90" {
			l.t.Fatalf("row %d: total %q, want the exact decimal 9.90", id, total)
		}
		got[id] = note
	}
	if !maps.Equal(got, l.want) {
		ids := slices.Sorted(maps.Keys(l.want))
		for _, id := range ids {
			if got[id] != l.want[id] {
				l.t.Fatalf("edge differs from the log: %d rows vs %d; first: id %d edge %q log %q", len(got), len(l.want), id, got[id], l.want[id])
			}
		}
		l.t.Fatalf("edge has %d rows, the log %d", len(got), len(l.want))
	}
}

// TestEdgeAgainstHub runs the sync API on a real SQLite change log on a loopback port
// and an edge agent against it over HTTP: initial sync of a transaction larger than a
// chunk, live changes through the long-poll, and a re-bootstrap after compaction moved
// the tombstone horizon past the edge's watermark.
func TestEdgeAgainstHub(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(dir, "changelog.db")
	scfg.ChunkChanges = 50
	store, err := changelog.OpenSQLite(ctx, scfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := &liveLog{t: t, store: store, want: map[int64]string{}}

	var big []cdc.Change
	for i := int64(1); i <= 300; i++ {
		big = append(big, insertOrder(i, fmt.Sprintf("order %d", i)))
	}
	log.append(big...)

	cfg := api.DefaultConfig()
	cfg.MaxWait = 5 * time.Second
	srv := newServer(t, cfg, api.Deps{Store: store})
	base, stop := serve(t, srv)
	defer stop()

	ecfg := edge.DefaultConfig()
	ecfg.HubURL, ecfg.DBPath, ecfg.EdgeID = base, filepath.Join(dir, "edge.db"), "it-edge"
	ecfg.PageLimit, ecfg.Wait = 120, 2*time.Second
	ecfg.BackoffMin, ecfg.BackoffMax = 10*time.Millisecond, 200*time.Millisecond
	agent, err := edge.Open(ctx, ecfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- agent.Run(runCtx) }()
	waitFor(t, 20*time.Second, "the edge to pull the first transaction", func() bool { return agent.Status().Watermark == log.head() })
	log.check(agent.DB())

	waitFor(t, 10*time.Second, "the edge to long-poll", func() bool { return agent.Status().State == edge.StateWaiting })
	log.append(insertOrder(1000, "live"))
	log.append(
		cdc.Change{Table: "public.orders", Op: cdc.OpUpdate, After: insertOrder(5, "five updated").After},
		cdc.Change{Table: "public.orders", Op: cdc.OpDelete, Before: cdc.Row{{Name: "id", Value: cdc.Int(6)}}},
		cdc.Change{Table: "public.orders", Op: cdc.OpUpdate, Before: cdc.Row{{Name: "id", Value: cdc.Int(7)}}, After: insertOrder(7007, "re-keyed").After},
	)
	var updates []cdc.Change
	for i := int64(100); i < 300; i++ {
		updates = append(updates, cdc.Change{Table: "public.orders", Op: cdc.OpUpdate, After: insertOrder(i, fmt.Sprintf("bulk %d", i)).After})
	}
	log.append(updates...)
	waitFor(t, 20*time.Second, "the edge to apply live changes", func() bool { return agent.Status().Watermark == log.head() })
	log.check(agent.DB())

	cancelRun()
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := agent.Close(); err != nil {
		t.Fatal(err)
	}

	// While the edge is away, rows are deleted and compaction forgets the deletes.
	log.append(cdc.Change{Table: "public.orders", Op: cdc.OpDelete, Before: cdc.Row{{Name: "id", Value: cdc.Int(1)}}})
	log.append(insertOrder(2000, "after"), cdc.Change{Table: "public.orders", Op: cdc.OpDelete, Before: cdc.Row{{Name: "id", Value: cdc.Int(2)}}})
	stats, err := store.Compact(ctx, changelog.CompactOptions{Now: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if stats.TombstoneHorizon <= agent.Status().Watermark {
		t.Fatalf("compaction horizon %d does not pass the edge's watermark %d; the test cannot reach a 410", stats.TombstoneHorizon, agent.Status().Watermark)
	}
	log.append(insertOrder(3000, "latest"))

	agent, err = edge.Open(ctx, ecfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := agent.SyncNow(sctx); err != nil {
		t.Fatalf("SyncNow after compaction: %v", err)
	}
	if st := agent.Status(); st.Rebootstraps != 1 || st.Watermark != log.head() {
		t.Fatalf("status after compaction %+v; want one re-bootstrap and watermark %d", st, log.head())
	}
	log.check(agent.DB())
}

func TestAPI_LongPollWakesOnSQLiteCommit(t *testing.T) {
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(t.TempDir(), "changelog.db")
	store, err := changelog.OpenSQLite(context.Background(), scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := &liveLog{t: t, store: store, want: map[int64]string{}}
	log.append(insertOrder(1, "a"))
	counted := &countingStore{Store: store}
	srv := newServer(t, api.DefaultConfig(), api.Deps{Store: counted})
	base, _ := serve(t, srv)

	res := longPoll(context.Background(), base+"/v1/changes?since=1&wait=25s")
	waitFor(t, 10*time.Second, "the long-poll to read the empty page", func() bool { return counted.reads.Load() > 0 })
	log.append(insertOrder(2, "b"))
	r := <-res
	if r.err != nil || r.status != 200 || r.page.Next != 2 || len(r.page.Entries) != 1 {
		t.Fatalf("long-poll on the SQLite store: status %d err %v next %d entries %d", r.status, r.err, r.page.Next, len(r.page.Entries))
	}
	if r.took > 10*time.Second {
		t.Fatalf("long-poll took %v to see a commit", r.took)
	}
}

// countingStore counts ReadPage calls of the store it wraps.
type countingStore struct {
	changelog.Store
	reads atomic.Int64
}

func (c *countingStore) ReadPage(ctx context.Context, req changelog.PageRequest) (*changelog.Page, error) {
	c.reads.Add(1)
	return c.Store.ReadPage(ctx, req)
}
