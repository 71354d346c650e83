package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/hub/syncproto"
)

// loopDB is a central database whose Applier writes come back through its Source's
// stream, tagged, like a real database's change stream.
type loopDB struct {
	mu   sync.Mutex
	rows map[string]cdc.Row
	pos  int64
	txs  chan *cdc.Tx
}

func newLoopDB() *loopDB { return &loopDB{rows: map[string]cdc.Row{}, txs: make(chan *cdc.Tx, 16)} }

func (d *loopDB) Start(context.Context, cdc.Position) (*cdc.StartInfo, error) {
	return &cdc.StartInfo{Tables: []cdc.Table{table}, NeedSnapshot: true, Describe: "loop"}, nil
}

func (d *loopDB) Snapshot(context.Context, func(context.Context, []cdc.Change) error) (cdc.Position, error) {
	return fakePos(1), nil
}

func (d *loopDB) Stream(ctx context.Context, h cdc.Handler) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case tx := <-d.txs:
			if err := h.Tx(ctx, tx); err != nil {
				return err
			}
			if err := h.Idle(ctx); err != nil {
				return err
			}
		}
	}
}

func (d *loopDB) Ack(cdc.Position) {}

func (d *loopDB) ParsePosition(s string) (cdc.Position, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	return fakePos(n), err
}

func (d *loopDB) Close() error { return nil }

func (d *loopDB) Apply(ctx context.Context, tag cdc.Tag, changes []cdc.Change) ([]cdc.ApplyResult, error) {
	d.mu.Lock()
	for _, c := range changes {
		d.rows[syncproto.KeyText(&table, c.After)] = c.After
	}
	d.pos++
	tx := &cdc.Tx{Pos: fakePos(d.pos + 1), CommitTime: time.Now(), Origin: tag.Origin, Batch: tag.Batch, Changes: changes}
	d.mu.Unlock()
	select {
	case d.txs <- tx:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return make([]cdc.ApplyResult, len(changes)), nil
}

func (d *loopDB) ReadRow(_ context.Context, _ string, key cdc.Row) (cdc.Row, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.rows[syncproto.KeyText(&table, key)]
	return r, ok, nil
}

// TestHub_PushAnswersWithCapturedVersion pushes through the hub's HTTP API and checks
// that the answer carries the version at which the ingest loop captured the write.
func TestHub_PushAnswersWithCapturedVersion(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(t.TempDir(), "log.db")
	store, err := changelog.OpenSQLite(ctx, scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	db := newLoopDB()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Push.MetaPath = push.DefaultMetaPath(scfg.Path)
	reg := prometheus.NewRegistry()
	h, err := New(cfg, Deps{Source: db, Store: store, Applier: db, Registry: reg, Gatherer: reg, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("hub run: %v", err)
		}
	}()
	waitFor(t, "streaming", func() bool { return h.readyErr() == nil })
	url := "http://" + h.Addr().String() + "/v1/push"

	body := []byte(`{"edge":"till-1","batch_id":"b1","changes":[{"id":1,"t":"public.t","op":"i","key":{"id":5},"row":{"id":5,"v":"x"}}]}`)
	for attempt := range 2 { // the second is a re-send
		resp, err := http.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var pr syncproto.PushResponse
		if resp.StatusCode != 200 || json.Unmarshal(out, &pr) != nil || len(pr.Results) != 1 {
			t.Fatalf("push %d: %d %s", attempt, resp.StatusCode, out)
		}
		info, ok, err := store.Row(ctx, table.Name, syncproto.KeyText(&table, row(5, "")))
		if err != nil || !ok || info.Origin != "till-1" {
			t.Fatalf("row index: %+v %v %v", info, ok, err)
		}
		if r := pr.Results[0]; r.Status != syncproto.PushApplied || r.Version != info.Version {
			t.Fatalf("push %d answer %+v, want applied at captured version %d", attempt, r, info.Version)
		}
	}
	st, _ := store.State(ctx)
	if st.Head != 2 { // the snapshot and the one write-back transaction
		t.Fatalf("head %d after a push and its re-send, want 2", st.Head)
	}
}
