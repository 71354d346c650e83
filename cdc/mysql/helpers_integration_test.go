package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/mysql/myserver"
	"github.com/synchub/synchub/cdc/mysql/mytest"
)

var shared struct {
	once sync.Once
	srv  *myserver.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop shared MariaDB:", err)
		}
	}
	os.Exit(code)
}

// sharedServer is one throwaway server for the tests that neither restart it nor need
// special settings; each test gets its own database.
func sharedServer(t testing.TB) *myserver.Server {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.srv, shared.err = myserver.Start(ctx, myserver.Options{})
	})
	if shared.err != nil {
		if errors.Is(shared.err, myserver.ErrNoBinaries) && os.Getenv("CI") == "" {
			t.Skipf("skipping: %v", shared.err)
		}
		t.Fatalf("start throwaway MariaDB: %v", shared.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("MariaDB log tail:\n%s", shared.srv.LogTail())
		}
	})
	return shared.srv
}

// env is one test's database on a server, with a connection pool for writing.
type env struct {
	t   testing.TB
	srv *myserver.Server
	db  string
	sql *sql.DB
}

func newEnv(t testing.TB, srv *myserver.Server) *env {
	t.Helper()
	db := mytest.CreateDB(t, srv)
	conn, err := sql.Open("mysql", srv.DSN(db))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	conn.SetMaxOpenConns(4)
	t.Cleanup(func() { conn.Close() })
	return &env{t: t, srv: srv, db: db, sql: conn}
}

func (e *env) exec(query string, args ...any) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := e.sql.ExecContext(ctx, query, args...); err != nil {
		e.t.Fatalf("exec %q: %v", query, err)
	}
}

// tx runs statements in one transaction.
func (e *env) tx(stmts ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tx, err := e.sql.BeginTx(ctx, nil)
	if err != nil {
		e.t.Fatalf("begin: %v", err)
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			tx.Rollback()
			e.t.Fatalf("exec %q: %v", s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		e.t.Fatalf("commit: %v", err)
	}
}

func (e *env) table(name string) string { return e.db + "." + name }

func (e *env) config(tables ...string) Config {
	cfg := DefaultConfig()
	cfg.DSN = e.srv.URL(e.db)
	for _, t := range tables {
		cfg.Tables = append(cfg.Tables, e.table(t))
	}
	cfg.HeartbeatPeriod = 500 * time.Millisecond
	cfg.ReadTimeout = 3 * time.Second
	cfg.ConnectTimeout = 2 * time.Second
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
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newSource(t testing.TB, cfg Config) *Source {
	t.Helper()
	src, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// collector is a cdc.Handler that keeps every delivered part.
type collector struct {
	mu    sync.Mutex
	txs   []*cdc.Tx
	idles int
	fail  func(*cdc.Tx) error
}

func (c *collector) Tx(ctx context.Context, tx *cdc.Tx) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		if err := c.fail(tx); err != nil {
			return err
		}
	}
	c.txs = append(c.txs, tx)
	return nil
}

func (c *collector) Idle(ctx context.Context) error {
	c.mu.Lock()
	c.idles++
	c.mu.Unlock()
	return nil
}

// parts returns the delivered parts so far.
func (c *collector) parts() []*cdc.Tx {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*cdc.Tx(nil), c.txs...)
}

// whole returns the delivered transactions, parts joined, and whether the last one is
// complete.
func (c *collector) whole() []*cdc.Tx {
	var out []*cdc.Tx
	var cur *cdc.Tx
	for _, p := range c.parts() {
		if cur == nil {
			cur = &cdc.Tx{Origin: p.Origin, Batch: p.Batch}
		}
		cur.Changes = append(cur.Changes, p.Changes...)
		cur.Tables = append(cur.Tables, p.Tables...)
		if !p.More {
			cur.Pos, cur.CommitTime = p.Pos, p.CommitTime
			out = append(out, cur)
			cur = nil
		}
	}
	return out
}

func (c *collector) changes() []cdc.Change {
	var out []cdc.Change
	for _, tx := range c.whole() {
		out = append(out, tx.Changes...)
	}
	return out
}

func (c *collector) lastPos() cdc.Position {
	txs := c.whole()
	if len(txs) == 0 {
		return nil
	}
	return txs[len(txs)-1].Pos
}

// streaming runs Stream in the background until the test ends or stop is called.
type streaming struct {
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	ended  bool
	err    error
}

func startStream(t testing.TB, src *Source, h cdc.Handler) *streaming {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &streaming{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- src.Stream(ctx, h) }()
	t.Cleanup(func() { s.stop() })
	return s
}

// wait waits up to timeout for Stream to return and returns its error; ok is false
// when it is still running.
func (s *streaming) wait(timeout time.Duration) (err error, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return s.err, true
	}
	select {
	case s.err = <-s.done:
		s.ended = true
		return s.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// stop cancels Stream and returns its error.
func (s *streaming) stop() error {
	s.cancel()
	err, ok := s.wait(30 * time.Second)
	if !ok {
		return errors.New("Stream did not return within 30s of cancellation")
	}
	return err
}

// snapshotAll starts src without a position and reads its snapshot.
func snapshotAll(t testing.TB, src *Source) ([]cdc.Change, cdc.Position, *cdc.StartInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	info, err := src.Start(ctx, nil)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !info.NeedSnapshot {
		t.Fatalf("Start without a position did not ask for a snapshot")
	}
	var all []cdc.Change
	pos, err := src.Snapshot(ctx, func(ctx context.Context, ch []cdc.Change) error {
		all = append(all, ch...)
		return nil
	})
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return all, pos, info
}

func intValue(t testing.TB, r cdc.Row, col string) int64 {
	t.Helper()
	v, ok := r.Get(col)
	if !ok {
		t.Fatalf("row %v has no column %s", r, col)
	}
	if v.Kind() != cdc.KindInt {
		t.Fatalf("column %s is %s, want int", col, v.Kind())
	}
	return v.AsInt()
}

func waitFor(t testing.TB, msg string, cond func() bool) {
	t.Helper()
	mytest.WaitFor(t, 30*time.Second, msg, cond)
}
