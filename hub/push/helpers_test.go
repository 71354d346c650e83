package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/syncproto"
)

type testPos int64

func (p testPos) String() string { return "pos/" + strconv.FormatInt(int64(p), 10) }
func (p testPos) IsZero() bool   { return p == 0 }

var ordersTable = cdc.Table{
	Name: "public.orders",
	Columns: []cdc.Column{
		{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "note", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true},
		{Name: "total", SourceType: "numeric(12,2)", Kind: cdc.KindDecimal, SQLiteType: "TEXT", Nullable: true},
		{Name: "qty", SourceType: "integer", Kind: cdc.KindInt, SQLiteType: "INTEGER", Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

func order(id int64, note, total string, qty int64) cdc.Row {
	return cdc.Row{
		{Name: "id", Value: cdc.Int(id)},
		{Name: "note", Value: cdc.Text(cdc.KindText, note)},
		{Name: "total", Value: cdc.Text(cdc.KindDecimal, total)},
		{Name: "qty", Value: cdc.Int(qty)},
	}
}

func orderKey(id int64) cdc.Row { return cdc.Row{{Name: "id", Value: cdc.Int(id)}} }

func keyText(id int64) string { return syncproto.KeyText(&ordersTable, orderKey(id)) }

// fakeDB is an in-memory central database with an Applier, and a capture that appends
// every committed write to the change log like the ingest loop would and reports the
// landing to the service.
type fakeDB struct {
	t     testing.TB
	store *changelog.SQLiteStore

	mu      sync.Mutex
	rows    map[string]cdc.Row // keyText → row of public.orders
	applies []applyCall
	pos     int64
	clock   time.Time
	// refuse returns the database's error for a change, or nil to write it.
	refuse func(c cdc.Change) error
	// failTx fails the whole transaction.
	failTx error
	// capture: append committed writes to the change log and notify svc.
	capture bool
	// interrupt, when set, makes the next Apply behave as if the hub stopped during
	// it: it calls interrupt (cancelling the push's context) and returns its error,
	// after committing the transaction when interruptAfterCommit is set.
	interrupt            func()
	interruptAfterCommit bool
	// skipLanded captures writes without telling the service, as when the hub stops
	// between the change-log commit and recording the landing.
	skipLanded bool
	// landNow reports a landing before Apply returns, as a capture faster than the
	// write's return path would.
	landNow bool
	svc     *Service
	wg      sync.WaitGroup
	// before, when set, is called at the start of every Apply, outside the lock; an
	// error fails the whole transaction. after is called when Apply returns.
	before func(tag cdc.Tag) error
	after  func(tag cdc.Tag)
}

type applyCall struct {
	tag     cdc.Tag
	changes []cdc.Change
}

func newFakeDB(t testing.TB, store *changelog.SQLiteStore) *fakeDB {
	return &fakeDB{t: t, store: store, rows: map[string]cdc.Row{}, capture: true,
		clock: time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)}
}

func (f *fakeDB) Apply(ctx context.Context, tag cdc.Tag, changes []cdc.Change) ([]cdc.ApplyResult, error) {
	var failTx error
	if f.before != nil {
		failTx = f.before(tag)
	}
	if f.after != nil {
		defer f.after(tag)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies = append(f.applies, applyCall{tag: tag, changes: changes})
	if failTx == nil {
		failTx = f.failTx
	}
	if failTx != nil {
		return nil, failTx
	}
	if f.interrupt != nil {
		interrupt := f.interrupt
		f.interrupt = nil
		if f.interruptAfterCommit {
			for _, c := range changes {
				if err := f.applyLocked(c); err != nil {
					f.t.Errorf("interrupted apply: %v", err)
				}
			}
			f.captureLocked(tag, changes)
		}
		interrupt()
		return nil, ctx.Err()
	}
	results := make([]cdc.ApplyResult, len(changes))
	var written []cdc.Change
	for i, c := range changes {
		if f.refuse != nil {
			if err := f.refuse(c); err != nil {
				results[i].Err = err
				continue
			}
		}
		if err := f.applyLocked(c); err != nil {
			results[i].Err = err
			continue
		}
		written = append(written, c)
	}
	if f.capture && len(written) > 0 {
		f.captureLocked(tag, written)
	}
	return results, nil
}

// captureLocked appends a committed write to the change log and, unless skipLanded,
// reports its landing from another goroutine, as the ingest loop would.
func (f *fakeDB) captureLocked(tag cdc.Tag, written []cdc.Change) {
	v := f.appendLocked(tag.Origin, tag.Batch, written)
	if f.skipLanded {
		return
	}
	svc := f.svc
	if f.landNow {
		svc.Landed(context.Background(), []Landing{{Batch: tag.Batch, Version: v}})
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		svc.Landed(context.Background(), []Landing{{Batch: tag.Batch, Version: v}})
	}()
}

func (f *fakeDB) applyLocked(c cdc.Change) error {
	switch c.Op {
	case cdc.OpInsert:
		k := syncproto.KeyText(&ordersTable, c.After)
		if _, ok := f.rows[k]; ok {
			return fmt.Errorf("duplicate key value violates unique constraint \"orders_pkey\" (id)=%s", k)
		}
		f.rows[k] = c.After
	case cdc.OpUpdate:
		k := syncproto.KeyText(&ordersTable, c.Before)
		if _, ok := f.rows[k]; !ok {
			return fmt.Errorf("no row %s to update", k)
		}
		delete(f.rows, k)
		f.rows[syncproto.KeyText(&ordersTable, c.After)] = c.After
	case cdc.OpDelete:
		delete(f.rows, syncproto.KeyText(&ordersTable, c.Before))
	}
	return nil
}

// appendLocked writes one captured transaction to the change log and returns its version.
func (f *fakeDB) appendLocked(origin, batch string, changes []cdc.Change) int64 {
	f.t.Helper()
	f.pos++
	f.clock = f.clock.Add(time.Second)
	b, err := f.store.Begin(context.Background())
	if err != nil {
		f.t.Errorf("begin change log: %v", err)
		return 0
	}
	if err := b.AppendTx(context.Background(), &cdc.Tx{Pos: testPos(f.pos), CommitTime: f.clock, Origin: origin, Batch: batch, Changes: changes}); err != nil {
		b.Rollback()
		f.t.Errorf("append to change log: %v", err)
		return 0
	}
	st, err := b.Commit(context.Background())
	if err != nil {
		f.t.Errorf("commit change log: %v", err)
		return 0
	}
	return st.Head
}

// write simulates a write by the central database itself (origin "") or by another
// edge, captured into the change log; it returns the version.
func (f *fakeDB) write(origin string, changes ...cdc.Change) int64 {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range changes {
		if err := f.applyLocked(c); err != nil {
			f.t.Fatalf("server write: %v", err)
		}
	}
	return f.appendLocked(origin, "", changes)
}

func (f *fakeDB) ReadRow(ctx context.Context, table string, key cdc.Row) (cdc.Row, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rows[syncproto.KeyText(&ordersTable, key)]
	return r, ok, nil
}

func (f *fakeDB) row(id int64) (cdc.Row, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rows[keyText(id)]
	return r, ok
}

func (f *fakeDB) applyCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applies)
}

type env struct {
	t     *testing.T
	store *changelog.SQLiteStore
	db    *fakeDB
	audit *audit.SQLite
	svc   *Service
	cfg   Config
	deps  Deps
	now   time.Time
}

func newEnv(t *testing.T, mutate func(*Config, *Deps)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(dir, "changelog.db")
	store, err := changelog.OpenSQLite(ctx, scfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b, err := store.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetTables([]cdc.Table{ordersTable}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	al, err := audit.OpenSQLite(ctx, filepath.Join(dir, "audit.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	e := &env{t: t, store: store, db: newFakeDB(t, store), audit: al, now: time.Date(2026, 1, 10, 13, 0, 0, 0, time.UTC)}
	e.cfg = DefaultConfig()
	e.cfg.MetaPath = DefaultMetaPath(scfg.Path)
	e.cfg.WaitTimeout = 5 * time.Second
	e.deps = Deps{Store: store, Applier: e.db, Audit: al, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.now }}
	if mutate != nil {
		mutate(&e.cfg, &e.deps)
	}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	svc, err := Open(context.Background(), e.cfg, e.deps)
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
	e.db.mu.Lock()
	e.db.svc = svc
	e.db.mu.Unlock()
	e.t.Cleanup(func() { e.db.wg.Wait(); svc.Close() })
}

// reopen simulates a hub restart: a new Service on the same files.
func (e *env) reopen() {
	e.t.Helper()
	e.db.wg.Wait()
	e.svc.Close()
	e.open()
}

func (e *env) push(req syncproto.PushRequest) syncproto.PushResponse {
	e.t.Helper()
	resp, err := e.svc.Push(context.Background(), req)
	if err != nil {
		e.t.Fatalf("push %s: %v", req.BatchID, err)
	}
	if len(resp.Results) != len(req.Changes) {
		e.t.Fatalf("push %s: %d results for %d changes", req.BatchID, len(resp.Results), len(req.Changes))
	}
	return resp
}

// auditEvents returns the audit events of one action, oldest first.
func (e *env) auditEvents(action string) []audit.Event {
	e.t.Helper()
	evs, err := e.audit.Query(context.Background(), audit.Filter{Action: action, Limit: audit.MaxLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Reverse(evs) // oldest first
	return evs
}

func rowRaw(r cdc.Row) json.RawMessage { return syncproto.AppendRow(nil, r) }

func keyRaw(id int64) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"id":%d}`, id)) }

func hlcAt(t time.Time, node string) string {
	return syncproto.HLC{Wall: t.UnixMicro(), Node: node}.String()
}

// rowID returns the id column of an order row.
func rowID(r cdc.Row) int64 {
	v, _ := r.Get("id")
	return v.AsInt()
}

// insertChange is outbox entry id inserting r.
func insertChange(id int64, r cdc.Row) syncproto.PushChange {
	return syncproto.PushChange{ID: id, Table: ordersTable.Name, Op: "i", Key: keyRaw(rowID(r)), Row: rowRaw(r), HLC: hlcAt(time.Date(2026, 1, 10, 12, 59, 0, 0, time.UTC), "till-1")}
}

// updateChange is outbox entry id updating the row to r, based on version base.
func updateChange(id int64, base int64, baseRow, r cdc.Row) syncproto.PushChange {
	c := syncproto.PushChange{ID: id, Table: ordersTable.Name, Op: "u", Key: keyRaw(rowID(r)), Row: rowRaw(r), BaseVersion: base,
		HLC: hlcAt(time.Date(2026, 1, 10, 12, 59, 0, 0, time.UTC), "till-1")}
	if baseRow != nil {
		c.Base = rowRaw(baseRow)
	}
	return c
}

func sameRow(got json.RawMessage, want cdc.Row) bool {
	return string(got) == string(rowRaw(want))
}

func mustContain(t *testing.T, what, got string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(got, p) {
			t.Errorf("%s %q does not mention %q", what, got, p)
		}
	}
}

var _ cdc.Applier = (*fakeDB)(nil)
var _ = errors.New
var _ = conflict.LWW
