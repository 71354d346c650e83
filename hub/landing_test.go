package hub

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/hub/syncproto"
	"github.com/synchub/synchub/metrics"
)

// TestIngest_NotifiesLandedBatches checks that after each change-log commit the push
// service is told the version of every committed write-back transaction, including one
// split in parts across a group commit.
func TestIngest_NotifiesLandedBatches(t *testing.T) {
	ctx := context.Background()
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(t.TempDir(), "log.db")
	store, err := changelog.OpenSQLite(ctx, scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg := DefaultConfig()
	cfg.GroupMaxChanges = 3
	in := newIngester(cfg, &fakeSource{}, store, metrics.NewHub(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	var got []push.Landing
	var calls int
	in.landed = func(_ context.Context, ls []push.Landing) { calls++; got = append(got, ls...) }

	w := &writer{in: in}
	if err := w.begin(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.rollback()
	if err := w.batch.SetTables([]cdc.Table{table}); err != nil {
		t.Fatal(err)
	}
	ins := func(id int64) cdc.Change { return cdc.Change{Table: table.Name, Op: cdc.OpInsert, After: row(id, "x")} }
	txs := []*cdc.Tx{
		{Pos: fakePos(2), CommitTime: time.Now(), Changes: []cdc.Change{ins(1)}},                                // version 1, central
		{Pos: fakePos(3), CommitTime: time.Now(), Origin: "till-1", Batch: "b1", Changes: []cdc.Change{ins(2)}}, // version 2
		{Origin: "till-2", Batch: "b2", More: true, Changes: []cdc.Change{ins(3), ins(4)}},                      // group commits here
		{Pos: fakePos(4), CommitTime: time.Now(), Origin: "till-2", Changes: []cdc.Change{ins(5)}},              // version 3 ends
		{Pos: fakePos(5), CommitTime: time.Now(), Origin: "till-1", Batch: "b3", Changes: []cdc.Change{ins(6)}}, // version 4
		{Pos: fakePos(6), CommitTime: time.Now(), Batch: "resolve-9", Changes: []cdc.Change{ins(7)}},            // version 5
	}
	for _, tx := range txs {
		if err := w.Tx(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	want := []push.Landing{{Batch: "b1", Version: 2}, {Batch: "b2", Version: 3}, {Batch: "b3", Version: 4}, {Batch: "resolve-9", Version: 5}}
	if len(got) != len(want) {
		t.Fatalf("landings %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("landing %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if calls < 2 {
		t.Errorf("landings reported in %d calls; want one per commit that held batches (at least 2)", calls)
	}
	// The versions are the ones the row index holds for the batches' rows.
	for id, l := range map[int64]push.Landing{2: want[0], 5: want[1], 6: want[2]} {
		info, ok, err := store.Row(ctx, table.Name, syncproto.KeyText(&table, row(id, "")))
		if err != nil || !ok || info.Version != l.Version {
			t.Errorf("row %d: %+v %v %v, want version %d", id, info, ok, err, l.Version)
		}
	}
}

type nopApplier struct{}

func (nopApplier) Apply(context.Context, cdc.Tag, []cdc.Change) ([]cdc.ApplyResult, error) {
	return nil, nil
}

func (nopApplier) ReadRow(context.Context, string, cdc.Row) (cdc.Row, bool, error) {
	return nil, false, nil
}

func TestNew_PushConfig(t *testing.T) {
	dir := t.TempDir()
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(dir, "log.db")
	store, err := changelog.OpenSQLite(context.Background(), scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := prometheus.NewRegistry()
	deps := Deps{Source: &fakeSource{}, Store: store, Registry: reg, Gatherer: reg, Applier: nopApplier{}}

	cfg := DefaultConfig()
	cfg.Push.MetaPath = push.DefaultMetaPath(scfg.Path)
	cfg.Push.Policies = map[string]conflict.TablePolicy{"public.t": {Policy: "newest"}}
	if _, err := New(cfg, deps); err == nil || !strings.Contains(err.Error(), "public.t") || !strings.Contains(err.Error(), "server-wins") {
		t.Fatalf("bad policy: %v", err)
	}
	cfg.Push.Policies = map[string]conflict.TablePolicy{"public.t": {Policy: "custom:mine"}}
	if _, err := New(cfg, deps); err == nil || !strings.Contains(err.Error(), "custom:mine") {
		t.Fatalf("unregistered resolver: %v", err)
	}
	deps.Resolvers = map[string]conflict.Resolver{"mine": conflict.ResolverFunc(func(context.Context, conflict.Conflict) (conflict.Decision, error) {
		return conflict.Decision{Outcome: syncproto.OutcomeServerWon}, nil
	})}
	cfg.Push.MetaPath = ""
	if _, err := New(cfg, deps); err == nil || !strings.Contains(err.Error(), "meta_path") {
		t.Fatalf("no meta path: %v", err)
	}
	cfg.Push.MetaPath = push.DefaultMetaPath(scfg.Path)
	h, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if h.push == nil || h.in.landed == nil {
		t.Fatal("push service not wired")
	}
	h.closePush()
}
