package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/changelog"
)

type fakePos int64

func (p fakePos) String() string { return strconv.FormatInt(int64(p), 10) }
func (p fakePos) IsZero() bool   { return p == 0 }

var table = cdc.Table{
	Name:       "public.t",
	Columns:    []cdc.Column{{Name: "id", Kind: cdc.KindInt, SQLiteType: "INTEGER"}, {Name: "v", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true}},
	PrimaryKey: []string{"id"},
}

// fakeSource replays a fixed history of single-row transactions; transaction i (1..N)
// commits at position i+1 and the snapshot is taken at position 1. Each
// session streams from its start position; sessions listed in failAfter end with an
// error after that many transactions.
type fakeSource struct {
	mu        sync.Mutex
	history   int
	snapshot  int // rows in the snapshot
	failAfter map[int]int
	lost      map[int]bool // sessions whose Start reports the position lost
	// snapFailAfter: sessions whose snapshot fails after emitting that many rows.
	snapFailAfter map[int]int
	idleEvery     int
	sessions      int
	from          fakePos
	acks          []fakePos
	onAck         func(fakePos)
	// onFreshStart runs when Start is called without a position.
	onFreshStart func()
	starts       []cdc.Position
}

func (f *fakeSource) Start(_ context.Context, from cdc.Position) (*cdc.StartInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions++
	f.starts = append(f.starts, from)
	info := &cdc.StartInfo{Tables: []cdc.Table{table}, Describe: "fake"}
	if from != nil && f.lost[f.sessions] {
		info.PositionLost = true
		return info, nil
	}
	if from == nil {
		if f.onFreshStart != nil {
			f.onFreshStart()
		}
		info.NeedSnapshot = true
		f.from = 0
		return info, nil
	}
	f.from = from.(fakePos)
	return info, nil
}

func row(id int64, v string) cdc.Row {
	return cdc.Row{{Name: "id", Value: cdc.Int(id)}, {Name: "v", Value: cdc.Text(cdc.KindText, v)}}
}

func (f *fakeSource) Snapshot(ctx context.Context, emit func(context.Context, []cdc.Change) error) (cdc.Position, error) {
	f.mu.Lock()
	failAt, failing := f.snapFailAfter[f.sessions]
	f.mu.Unlock()
	var batch []cdc.Change
	for i := 1; i <= f.snapshot; i++ {
		if failing && i > failAt {
			return nil, errors.New("snapshot connection lost")
		}
		batch = append(batch, cdc.Change{Table: table.Name, Op: cdc.OpInsert, After: row(int64(-i), "snap")})
		if len(batch) == 100 {
			if err := emit(ctx, batch); err != nil {
				return nil, err
			}
			batch = nil
		}
	}
	if len(batch) > 0 {
		if err := emit(ctx, batch); err != nil {
			return nil, err
		}
	}
	return fakePos(1), nil
}

func (f *fakeSource) Stream(ctx context.Context, h cdc.Handler) error {
	f.mu.Lock()
	from, session := int(f.from), f.sessions
	fail, failing := f.failAfter[session]
	f.mu.Unlock()
	sent := 0
	for p := max(from, 1); p <= f.history; p++ {
		if failing && sent == fail {
			return errors.New("connection reset by fake peer")
		}
		tx := &cdc.Tx{Pos: fakePos(p + 1), CommitTime: time.Now(), Changes: []cdc.Change{{Table: table.Name, Op: cdc.OpInsert, After: row(int64(p), fmt.Sprint("tx ", p))}}}
		if err := h.Tx(ctx, tx); err != nil {
			return err
		}
		sent++
		if f.idleEvery > 0 && sent%f.idleEvery == 0 {
			if err := h.Idle(ctx); err != nil {
				return err
			}
		}
	}
	if err := h.Idle(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeSource) Ack(pos cdc.Position) {
	p := pos.(fakePos)
	f.mu.Lock()
	f.acks = append(f.acks, p)
	cb := f.onAck
	f.mu.Unlock()
	if cb != nil {
		cb(p)
	}
}

func (f *fakeSource) ParsePosition(s string) (cdc.Position, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	return fakePos(n), err
}

func (f *fakeSource) Close() error { return nil }

type running struct {
	h      *Hub
	store  *changelog.SQLiteStore
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func startHub(t *testing.T, src cdc.Source, mutate func(*Config)) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(t.TempDir(), "log.db")
	store, err := changelog.OpenSQLite(ctx, scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.ReconnectMin, cfg.ReconnectMax = time.Millisecond, 10*time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	reg := prometheus.NewRegistry()
	h, err := New(cfg, Deps{Source: src, Store: store, Registry: reg, Gatherer: reg, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := &running{h: h, store: store, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("hub run: %v", err)
		}
		store.Close()
	})
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHub_AckOnlyAfterCommit: every position the source is told to release is already
// committed in the change log at the moment of the ack.
func TestHub_AckOnlyAfterCommit(t *testing.T) {
	src := &fakeSource{history: 500, snapshot: 250, idleEvery: 7}
	var r *running
	var mu sync.Mutex
	var violations []string
	ready := make(chan struct{})
	src.onAck = func(p fakePos) {
		<-ready
		st, err := r.store.State(context.Background())
		committed, _ := strconv.ParseInt(st.Position, 10, 64)
		if err != nil || committed < int64(p) {
			mu.Lock()
			violations = append(violations, fmt.Sprintf("ack %d while the change log holds position %q", p, st.Position))
			mu.Unlock()
		}
	}
	r = startHub(t, src, func(c *Config) { c.GroupMaxChanges = 40 })
	close(ready)
	waitFor(t, "head 501", func() bool { return r.h.Status().Head == 501 })
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("%d early acks, first: %s", len(violations), violations[0])
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.acks) == 0 || src.acks[len(src.acks)-1] != 501 {
		t.Fatalf("last ack %v, want 501", src.acks)
	}
}

// TestHub_GroupCommit: a stream of tiny transactions is committed in groups, not one
// store commit per transaction, and versions stay one per transaction.
func TestHub_GroupCommit(t *testing.T) {
	src := &fakeSource{history: 2000}
	r := startHub(t, src, func(c *Config) { c.GroupMaxChanges = 500 })
	waitFor(t, "head 2001", func() bool { return r.h.Status().Head == 2001 })
	commits := testutil.ToFloat64(r.h.m.IngestCommits)
	if commits > 10 {
		t.Fatalf("%v store commits for 2000 transactions with groups of 500; grouping is not happening", commits)
	}
	if got := testutil.ToFloat64(r.h.m.IngestTransactions.WithLabelValues("postgres")); got != 2001 {
		t.Fatalf("ingested transactions metric %v, want 2001 (snapshot + 2000)", got)
	}
	page, err := r.store.ReadPage(context.Background(), changelog.PageRequest{Since: 1000, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if page.Changes != 10 || page.Next != 1010 {
		t.Fatalf("page after 1000: %d changes, next %d; want 10 single-change versions", page.Changes, page.Next)
	}
}

// TestHub_ReconnectResumesFromCommitted: after stream failures the hub starts the source
// again from the last committed position; nothing is lost or doubled.
func TestHub_ReconnectResumesFromCommitted(t *testing.T) {
	src := &fakeSource{history: 300, failAfter: map[int]int{1: 100, 2: 37, 3: 0}, idleEvery: 10}
	r := startHub(t, src, func(c *Config) { c.GroupMaxChanges = 1000 })
	waitFor(t, "head 301", func() bool { return r.h.Status().Head == 301 })
	src.mu.Lock()
	starts := append([]cdc.Position(nil), src.starts...)
	src.mu.Unlock()
	if len(starts) < 4 || starts[0] != nil {
		t.Fatalf("starts %v: want a first start without a position and three reconnects", starts)
	}
	for i, p := range starts[1:] {
		if p == nil {
			t.Fatalf("reconnect %d started without a position", i+1)
		}
	}
	if got := testutil.ToFloat64(r.h.m.IngestErrors.WithLabelValues("postgres")); got != 3 {
		t.Fatalf("ingest errors %v, want 3", got)
	}
	st, _ := r.store.State(context.Background())
	if st.Entries != 300 {
		t.Fatalf("change log holds %d changes, want exactly 300", st.Entries)
	}
}

// TestHub_PositionLostResetsLog: when the source cannot resume, the log is reset, the
// snapshot is taken again, and edges with a watermark are told to re-bootstrap.
func TestHub_PositionLostResetsLog(t *testing.T) {
	src := &fakeSource{history: 50, snapshot: 5, failAfter: map[int]int{1: 40}, lost: map[int]bool{2: true}, idleEvery: 10}
	var r *running
	ready := make(chan struct{})
	var positionAtFreshStart []string
	src.onFreshStart = func() {
		<-ready
		st, _ := r.store.State(context.Background())
		positionAtFreshStart = append(positionAtFreshStart, st.Position)
	}
	r = startHub(t, src, nil)
	close(ready)
	waitFor(t, "third session", func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.sessions >= 3
	})
	waitFor(t, "re-ingested history", func() bool { return r.h.Status().Head == 92 })
	src.mu.Lock()
	starts := fmt.Sprint(src.starts)
	src.mu.Unlock()
	if starts != "[<nil> 41 <nil>]" {
		t.Fatalf("Start positions %s, want [<nil> 41 <nil>]: the hub must start without a position after the loss", starts)
	}
	// The reset was durable before the source was asked to prepare a new stream.
	if len(positionAtFreshStart) != 2 || positionAtFreshStart[1] != "" {
		t.Fatalf("committed position at each fresh Start: %q; want the reset committed first", positionAtFreshStart)
	}
	if _, err := r.store.ReadPage(context.Background(), changelog.PageRequest{Since: 10, Limit: 10}); !errors.Is(err, changelog.ErrTooOld) {
		t.Fatalf("watermark from before the reset: %v, want ErrTooOld", err)
	}
}

// TestHub_MetricsAndStatusPage: /metrics counts the workload and /ui asks for a sign-in.
func TestHub_MetricsAndStatusPage(t *testing.T) {
	src := &fakeSource{history: 120}
	r := startHub(t, src, nil)
	waitFor(t, "head 121", func() bool { return r.h.Status().Head == 121 })
	base := "http://" + r.h.Addr().String()
	body := get(t, base+"/metrics")
	for _, want := range []string{
		`synchub_ingest_transactions_total{source="postgres"} 121`,
		`synchub_ingest_changes_total{op="insert",source="postgres",table="public.t"} 120`,
		`synchub_changelog_head_version 121`,
		`synchub_source_up 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	get(t, base+"/v1/changes?since=0&limit=50")
	if body := get(t, base+"/metrics"); !strings.Contains(body, "synchub_api_pull_changes_total 50") {
		t.Errorf("pull counter did not count the 50 changes served")
	}
	page := get(t, base+"/ui")
	if !strings.Contains(page, `action="/ui/login"`) || strings.Contains(page, "v121") {
		t.Fatalf("/ui without a session did not lead to the sign-in form:\n%s", page)
	}
	if css := get(t, base+"/ui/static/style.css"); !strings.Contains(css, "--fg") {
		t.Fatal("stylesheet not served")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func TestConfig_Validate(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.GroupMaxChanges = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "group_max_changes") {
		t.Fatalf("want an error naming group_max_changes, got %v", err)
	}
	c = DefaultConfig()
	c.Compact.TombstoneRetention = time.Hour
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "tombstone") {
		t.Fatalf("want an error about tombstone retention, got %v", err)
	}
}

// TestHub_SnapshotRetryIsNotDoubled: a snapshot that fails after some of its rows were
// committed is taken again from scratch; the change log holds each row once.
func TestHub_SnapshotRetryIsNotDoubled(t *testing.T) {
	src := &fakeSource{history: 10, snapshot: 300, snapFailAfter: map[int]int{1: 250}}
	r := startHub(t, src, func(c *Config) { c.GroupMaxChanges = 20 })
	waitFor(t, "head 11", func() bool { return r.h.Status().Head == 11 })
	st, err := r.store.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 310 {
		t.Fatalf("change log holds %d changes, want 300 snapshot rows + 10 = 310", st.Entries)
	}
	page, err := r.store.ReadPage(context.Background(), changelog.PageRequest{Since: 0, Limit: 300})
	if err != nil {
		t.Fatal(err)
	}
	if page.Changes != 300 || page.Next != 1 {
		t.Fatalf("snapshot version: %d changes up to %d, want 300 in version 1", page.Changes, page.Next)
	}
}
