package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/postgres/pgserver"
	"github.com/synchub/synchub/cdc/postgres/pgtest"
)

var shared struct {
	once sync.Once
	srv  *pgserver.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop shared PostgreSQL:", err)
		}
	}
	os.Exit(code)
}

// sharedServer is one throwaway server for the tests that neither restart it nor need
// special settings; each test gets its own database and slot.
func sharedServer(t *testing.T) *pgserver.Server {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.srv, shared.err = pgserver.Start(ctx, pgserver.Options{})
	})
	if shared.err != nil {
		if errors.Is(shared.err, pgserver.ErrNoBinaries) && os.Getenv("CI") == "" {
			t.Skipf("skipping: %v", shared.err)
		}
		t.Fatalf("start throwaway PostgreSQL: %v", shared.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("PostgreSQL log tail:\n%s", shared.srv.LogTail())
		}
	})
	return shared.srv
}

// env is one test's database on a server, with a connection for writing.
type env struct {
	t    testing.TB
	srv  *pgserver.Server
	db   string
	slot string
	conn *pgx.Conn
}

func newEnv(t testing.TB, srv *pgserver.Server) *env {
	t.Helper()
	db := pgtest.CreateDB(t, srv)
	e := &env{t: t, srv: srv, db: db, slot: "slot_" + db}
	e.connect()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if e.conn != nil {
			e.conn.Close(ctx)
		}
		_, _ = srv.Exec(ctx, "postgres", "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '"+e.slot+"' AND NOT active")
	})
	return e
}

func (e *env) connect() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.srv.DSN(e.db))
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	e.conn = conn
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := e.conn.Exec(ctx, sql, args...); err != nil {
		e.t.Fatalf("exec %q: %v", sql, err)
	}
}

func (e *env) config(tables ...string) Config {
	cfg := DefaultConfig()
	cfg.DSN = e.srv.DSN(e.db)
	cfg.Tables = tables
	cfg.Slot = e.slot
	cfg.Publication = "pub_" + e.db
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

func (e *env) newSource(cfg Config) *Source {
	e.t.Helper()
	src, err := New(cfg, testLogger(e.t))
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() { src.Close() })
	return src
}

func start(t *testing.T, src *Source, from cdc.Position) *cdc.StartInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	info, err := src.Start(ctx, from)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return info
}

// snapshot reads the whole snapshot and returns its changes.
func snapshot(t *testing.T, src *Source) ([]cdc.Change, LSN) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var all []cdc.Change
	pos, err := src.Snapshot(ctx, func(_ context.Context, changes []cdc.Change) error {
		all = append(all, changes...)
		return nil
	})
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return all, pos.(LSN)
}

// recorder is a cdc.Handler that keeps every Tx it is given.
type recorder struct {
	mu    sync.Mutex
	txs   []*cdc.Tx
	idles int
	onTx  func(*cdc.Tx) error
}

func (r *recorder) Tx(_ context.Context, tx *cdc.Tx) error {
	r.mu.Lock()
	r.txs = append(r.txs, tx)
	r.mu.Unlock()
	if r.onTx != nil {
		return r.onTx(tx)
	}
	return nil
}

func (r *recorder) Idle(context.Context) error {
	r.mu.Lock()
	r.idles++
	r.mu.Unlock()
	return nil
}

func (r *recorder) all() []*cdc.Tx {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*cdc.Tx(nil), r.txs...)
}

// final returns the final parts received so far (one per source transaction).
func (r *recorder) final() []*cdc.Tx {
	var out []*cdc.Tx
	for _, tx := range r.all() {
		if !tx.More {
			out = append(out, tx)
		}
	}
	return out
}

func (r *recorder) changes() []cdc.Change {
	var out []cdc.Change
	for _, tx := range r.all() {
		out = append(out, tx.Changes...)
	}
	return out
}

func (r *recorder) waitFinal(t *testing.T, n int) []*cdc.Tx {
	t.Helper()
	pgtest.WaitFor(t, 30*time.Second, fmt.Sprintf("%d transactions", n), func() bool { return len(r.final()) >= n })
	return r.final()
}

// streamRun is a Stream call running in its own goroutine.
type streamRun struct {
	cancel context.CancelFunc
	done   chan error
}

func stream(t *testing.T, src *Source, h cdc.Handler) *streamRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &streamRun{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- src.Stream(ctx, h) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the stream and returns its error, nil when it ended by cancellation.
func (r *streamRun) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if !ok {
			return nil
		}
		close(r.done)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Stream did not return within 10s of cancellation")
		return nil
	}
}

func getInt(t *testing.T, row cdc.Row, col string) int64 {
	t.Helper()
	v, ok := row.Get(col)
	if !ok || v.Kind() != cdc.KindInt {
		t.Fatalf("row %v has no int column %s", row, col)
	}
	return v.AsInt()
}
