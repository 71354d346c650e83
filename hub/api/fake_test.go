package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/syncproto"
)

// fakeStore is an in-memory change log: every version is one whole chunk. Function
// fields, when set, replace the matching method.
type fakeStore struct {
	mu       sync.Mutex
	tables   []cdc.Table
	schemaV  int64
	versions [][]cdc.Change
	horizon  int64
	changed  chan struct{}
	lastBody []byte

	readCalls atomic.Int64
	lastReq   atomic.Pointer[changelog.PageRequest]

	readPage func(ctx context.Context, req changelog.PageRequest) (*changelog.Page, error)
	schema   func(ctx context.Context) (*cdc.Schema, []byte, error)
}

var _ changelog.Store = (*fakeStore)(nil)

func newFakeStore(tables ...cdc.Table) *fakeStore {
	return &fakeStore{tables: tables, schemaV: 1, changed: make(chan struct{})}
}

// commit appends one version and wakes waiters, as a store commit moving Head does.
func (f *fakeStore) commit(changes ...cdc.Change) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions = append(f.versions, changes)
	close(f.changed)
	f.changed = make(chan struct{})
	return int64(len(f.versions))
}

func (f *fakeStore) setHorizon(h int64) {
	f.mu.Lock()
	f.horizon = h
	f.mu.Unlock()
}

func (f *fakeStore) body() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastBody
}

func (f *fakeStore) table(name string) *cdc.Table {
	for i := range f.tables {
		if f.tables[i].Name == name {
			return &f.tables[i]
		}
	}
	return nil
}

func (f *fakeStore) State(context.Context) (changelog.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return changelog.State{Head: int64(len(f.versions)), SchemaVersion: f.schemaV, TombstoneHorizon: f.horizon, SourceKind: "fake"}, nil
}

func (f *fakeStore) Begin(context.Context) (changelog.Batch, error) {
	return nil, errors.New("fake store is read-only")
}

func (f *fakeStore) ReadPage(ctx context.Context, req changelog.PageRequest) (*changelog.Page, error) {
	f.readCalls.Add(1)
	f.lastReq.Store(&req)
	if f.readPage != nil {
		return f.readPage(ctx, req)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	head := int64(len(f.versions))
	if req.Since > 0 && req.Since < f.horizon {
		return nil, changelog.ErrTooOld
	}
	if req.Cursor != (syncproto.Cursor{}) {
		return nil, changelog.ErrBadCursor
	}
	b := make([]byte, 0, 4096)
	b = append(b, `{"since":`...)
	b = appendInt(b, req.Since)
	next, n := req.Since, 0
	var entries []byte
	for v := req.Since + 1; v <= head && (n == 0 || n < req.Limit); v++ {
		if len(entries) > 0 {
			entries = append(entries, ',')
		}
		entries = append(entries, `{"v":`...)
		entries = appendInt(entries, v)
		entries = append(entries, `,"seq":0,"last":true,"origin":"","ts":1700000000000000,"schema":`...)
		entries = appendInt(entries, f.schemaV)
		entries = append(entries, `,"changes":[`...)
		for i := range f.versions[v-1] {
			if i > 0 {
				entries = append(entries, ',')
			}
			c := &f.versions[v-1][i]
			entries = syncproto.AppendChange(entries, c, f.table(c.Table))
			n++
		}
		entries = append(entries, "]}"...)
		next = v
	}
	b = append(b, `,"next":`...)
	b = appendInt(b, next)
	b = append(b, `,"commit":true,"head":`...)
	b = appendInt(b, head)
	b = append(b, `,"schema_version":`...)
	b = appendInt(b, f.schemaV)
	b = append(b, `,"entries":[`...)
	b = append(b, entries...)
	b = append(b, "]}"...)
	f.lastBody = b
	return &changelog.Page{Body: b, Next: next, Commit: true, Changes: n, Head: head}, nil
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

func (f *fakeStore) Schema(ctx context.Context) (*cdc.Schema, []byte, error) {
	if f.schema != nil {
		return f.schema(ctx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &cdc.Schema{Version: f.schemaV, Tables: f.tables}
	body, err := json.Marshal(syncproto.SchemaResponse{Version: s.Version, Tables: s.Tables})
	return s, body, err
}

func (f *fakeStore) Row(context.Context, string, string) (changelog.RowInfo, bool, error) {
	return changelog.RowInfo{}, false, errors.New("fake store has no row index")
}

func (f *fakeStore) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fakeStore) Compact(context.Context, changelog.CompactOptions) (changelog.CompactStats, error) {
	return changelog.CompactStats{}, errors.New("fake store does not compact")
}

func (f *fakeStore) Close() error { return nil }
