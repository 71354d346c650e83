package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/hub/syncproto"
)

// memApplier is an in-memory central database for public.orders; it does not capture
// its writes into the change log.
type memApplier struct {
	mu     sync.Mutex
	rows   map[string]cdc.Row
	tags   []cdc.Tag
	refuse string // note value the database refuses
}

func (m *memApplier) Apply(_ context.Context, tag cdc.Tag, changes []cdc.Change) ([]cdc.ApplyResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tags = append(m.tags, tag)
	res := make([]cdc.ApplyResult, len(changes))
	for i, c := range changes {
		if v, ok := c.After.Get("note"); ok && m.refuse != "" && v.AsString() == m.refuse {
			res[i].Err = fmt.Errorf("check constraint orders_note_check refused %q", m.refuse)
			continue
		}
		switch c.Op {
		case cdc.OpInsert, cdc.OpUpdate:
			m.rows[syncproto.KeyText(&ordersTable, c.After)] = c.After
		case cdc.OpDelete:
			delete(m.rows, syncproto.KeyText(&ordersTable, c.Before))
		}
	}
	return res, nil
}

func (m *memApplier) ReadRow(_ context.Context, _ string, key cdc.Row) (cdc.Row, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rows[syncproto.KeyText(&ordersTable, key)]
	return r, ok, nil
}

type pushEnv struct {
	srv   *api.Server
	store *changelog.SQLiteStore
	db    *memApplier
	audit *audit.SQLite
}

func newPushEnv(t *testing.T, cfg api.Config, pcfg push.Config) *pushEnv {
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
	// The central database inserted order 7 before any edge pushed.
	if err := b.AppendTx(ctx, &cdc.Tx{Pos: testPos(1), CommitTime: time.Now().Add(-time.Hour), Changes: []cdc.Change{insertOrder(7, "server")}}); err != nil {
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
	db := &memApplier{rows: map[string]cdc.Row{}}
	db.rows[syncproto.KeyText(&ordersTable, insertOrder(7, "").After)] = insertOrder(7, "server").After
	pcfg.MetaPath = push.DefaultMetaPath(scfg.Path)
	svc, err := push.Open(ctx, pcfg, push.Deps{Store: store, Applier: db, Audit: al})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return &pushEnv{srv: newServer(t, cfg, api.Deps{Store: store, Push: svc, Audit: al}), store: store, db: db, audit: al}
}

func noWaitConfig() push.Config {
	c := push.DefaultConfig()
	c.WaitTimeout = 0
	return c
}

func post(t testing.TB, s *api.Server, target string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, s, req)
}

func pushBody(batch string, changes ...string) []byte {
	return []byte(`{"edge":"till-1","batch_id":"` + batch + `","sent_at":0,"changes":[` + strings.Join(changes, ",") + `]}`)
}

func orderInsert(outbox, id int64, note string) string {
	return fmt.Sprintf(`{"id":%d,"t":"public.orders","op":"i","key":{"id":%d},"row":{"id":%d,"note":%q,"total":"1.00"},"base_version":0,"hlc":"0001700000000000000-00000-till-1"}`,
		outbox, id, id, note)
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestAPI_PushMalformedBody(t *testing.T) {
	e := newPushEnv(t, api.DefaultConfig(), noWaitConfig())
	for _, tc := range []struct {
		name string
		body []byte
		hdr  []string
	}{
		{"empty", nil, nil},
		{"not JSON", []byte(`edge=till-1`), nil},
		{"truncated", []byte(`{"edge":"till-1","batch_id":"b","changes":[`), nil},
		{"wrong type", []byte(`{"edge":"till-1","batch_id":"b","changes":"all"}`), nil},
		{"trailing data", []byte(`{"edge":"till-1","batch_id":"b","changes":[]} {}`), nil},
		{"no edge", []byte(`{"batch_id":"b","changes":[]}`), nil},
		{"no batch id", []byte(`{"edge":"till-1","changes":[]}`), nil},
		{"bad gzip", []byte("not gzip"), []string{"Content-Encoding", "gzip"}},
		{"unknown encoding", pushBody("b"), []string{"Content-Encoding", "br"}},
	} {
		resp, body := post(t, e.srv, "/v1/push", tc.body, tc.hdr...)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", tc.name, resp.StatusCode, body)
			continue
		}
		if e := decodeError(t, resp, body); e.Code != "bad_parameter" {
			t.Errorf("%s: code %q", tc.name, e.Code)
		}
	}
	if len(e.db.tags) != 0 {
		t.Fatalf("malformed pushes reached the database: %+v", e.db.tags)
	}
}

func TestAPI_PushGzipAndResend(t *testing.T) {
	e := newPushEnv(t, api.DefaultConfig(), noWaitConfig())
	body := pushBody("b1", orderInsert(1, 1, "a"), orderInsert(2, 2, "b"))
	resp, out := post(t, e.srv, "/v1/push", gz(t, body), "Content-Encoding", "gzip")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gzip push: %d %s", resp.StatusCode, out)
	}
	var pr syncproto.PushResponse
	if err := json.Unmarshal(out, &pr); err != nil || pr.BatchID != "b1" || len(pr.Results) != 2 || pr.Results[1].Status != syncproto.PushApplied || pr.Results[1].ID != 2 {
		t.Fatalf("push answer %s: %v", out, err)
	}
	resp2, out2 := post(t, e.srv, "/v1/push", body)
	if resp2.StatusCode != http.StatusOK || !bytes.Equal(out, out2) {
		t.Fatalf("re-send: %d %s, want %s", resp2.StatusCode, out2, out)
	}
	if len(e.db.tags) != 1 || e.db.tags[0] != (cdc.Tag{Origin: "till-1", Batch: "b1"}) {
		t.Fatalf("writes: %+v", e.db.tags)
	}
	// A bad change is answered per change, not as a request error.
	resp3, out3 := post(t, e.srv, "/v1/push", pushBody("b2", `{"id":1,"t":"public.orders","op":"i","key":{"id":3},"row":{"id":3,"total":"much"}}`))
	if resp3.StatusCode != http.StatusOK || !strings.Contains(string(out3), `"code":"bad_change"`) || !strings.Contains(string(out3), "much") {
		t.Fatalf("bad change: %d %s", resp3.StatusCode, out3)
	}
}

func TestAPI_PushLimits(t *testing.T) {
	cfg := api.DefaultConfig()
	cfg.BodyLimit = 4096
	pcfg := noWaitConfig()
	pcfg.MaxBatchChanges = 2
	e := newPushEnv(t, cfg, pcfg)
	resp, body := post(t, e.srv, "/v1/push", pushBody("b1", orderInsert(1, 1, "a"), orderInsert(2, 2, "b"), orderInsert(3, 3, "c")))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("3 changes with a limit of 2: %d %s", resp.StatusCode, body)
	}
	decodeError(t, resp, body)
	// A small gzip body that expands past the body limit.
	big := pushBody("b2", orderInsert(1, 1, strings.Repeat("x", 8000)))
	resp, body = post(t, e.srv, "/v1/push", gz(t, big), "Content-Encoding", "gzip")
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("gzip bomb: %d %s", resp.StatusCode, body)
	}
	decodeError(t, resp, body)
}

func TestAPI_PushUnavailableWithoutApplier(t *testing.T) {
	store := newFakeStore(ordersTable)
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})
	for _, path := range []string{"/v1/push", "/v1/conflicts/1/resolve", "/v1/rejected/1/retry"} {
		resp, body := post(t, s, path, pushBody("b1"))
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s without an Applier: %d %s", path, resp.StatusCode, body)
		}
		if e := decodeError(t, resp, body); !strings.Contains(e.Message, "write-back not available") {
			t.Fatalf("%s: %+v", path, e)
		}
	}
	resp, body := get(t, s, "/v1/audit")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("audit without a log: %d %s", resp.StatusCode, body)
	}
}

func TestAPI_ConflictQueue(t *testing.T) {
	pcfg := noWaitConfig()
	pcfg.Policies = map[string]conflict.TablePolicy{ordersTable.Name: {Policy: conflict.Manual}}
	e := newPushEnv(t, api.DefaultConfig(), pcfg)
	// Insert of order 7, which the central database has: insert vs insert, queued.
	resp, out := post(t, e.srv, "/v1/push", pushBody("b1", orderInsert(1, 7, "edge")))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"outcome":"manual"`) {
		t.Fatalf("push: %d %s", resp.StatusCode, out)
	}
	resp, out = get(t, e.srv, "/v1/conflicts?status=open&table=public.orders&edge=till-1")
	var list api.ConflictList
	if resp.StatusCode != http.StatusOK || json.Unmarshal(out, &list) != nil || len(list.Conflicts) != 1 {
		t.Fatalf("list: %d %s", resp.StatusCode, out)
	}
	c := list.Conflicts[0]
	if c.Kind != string(conflict.InsertVsInsert) || c.Edge != "till-1" {
		t.Fatalf("queued: %+v", c)
	}
	if resp, out := get(t, e.srv, "/v1/conflicts?edge=till-2"); resp.StatusCode != 200 || !strings.Contains(string(out), `"conflicts":[]`) {
		t.Fatalf("filter by another edge: %d %s", resp.StatusCode, out)
	}
	if resp, out := get(t, e.srv, "/v1/conflicts?status=maybe"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad status: %d %s", resp.StatusCode, out)
	}
	if resp, out := get(t, e.srv, fmt.Sprintf("/v1/conflicts/%d", c.ID)); resp.StatusCode != 200 || !strings.Contains(string(out), `"status":"open"`) {
		t.Fatalf("get: %d %s", resp.StatusCode, out)
	}
	if resp, _ := get(t, e.srv, "/v1/conflicts/999"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown id: %d", resp.StatusCode)
	}
	if resp, _ := get(t, e.srv, "/v1/conflicts/abc"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad id: %d", resp.StatusCode)
	}
	target := fmt.Sprintf("/v1/conflicts/%d/resolve", c.ID)
	if resp, out := post(t, e.srv, target, []byte(`{"action":"take_client"}`)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("resolve without actor: %d %s", resp.StatusCode, out)
	}
	if resp, out := post(t, e.srv, target, []byte(`{"action":`)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed resolve: %d %s", resp.StatusCode, out)
	}
	resp, out = post(t, e.srv, target, []byte(`{"action":"merged","row":{"id":7,"note":"both","total":"2.00"},"actor":"alice"}`))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"resolved_by":"alice"`) {
		t.Fatalf("resolve: %d %s", resp.StatusCode, out)
	}
	if r, _, _ := e.db.ReadRow(context.Background(), ordersTable.Name, cdc.Row{{Name: "id", Value: cdc.Int(7)}}); string(syncproto.AppendRow(nil, r)) != `{"id":7,"note":"both","total":"2.00"}` {
		t.Fatalf("central row after merge: %s", syncproto.AppendRow(nil, r))
	}
	resp, out = post(t, e.srv, target, []byte(`{"action":"keep_server","actor":"bob"}`))
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("second resolve: %d %s", resp.StatusCode, out)
	}
	decodeError(t, resp, out)

	// The audit log shows the conflict and its resolution.
	resp, out = get(t, e.srv, "/v1/audit?action=resolve&actor=admin:alice")
	var al api.AuditList
	if resp.StatusCode != 200 || json.Unmarshal(out, &al) != nil || len(al.Events) != 1 || al.Events[0].Outcome != "merged" {
		t.Fatalf("audit: %d %s", resp.StatusCode, out)
	}
	resp, out = get(t, e.srv, "/v1/audit?edge=till-1&after_id=0&limit=10")
	if resp.StatusCode != 200 || !strings.Contains(string(out), `"action":"conflict"`) || !strings.Contains(string(out), `"action":"push"`) {
		t.Fatalf("audit by edge: %d %s", resp.StatusCode, out)
	}
	for _, q := range []string{"from=yesterday", "limit=-1", "limit=5000", "after_id=x"} {
		if resp, out := get(t, e.srv, "/v1/audit?"+q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("audit ?%s: %d %s", q, resp.StatusCode, out)
		}
	}
}

func TestAPI_RejectedRetryDiscard(t *testing.T) {
	e := newPushEnv(t, api.DefaultConfig(), noWaitConfig())
	e.db.refuse = "bad"
	resp, out := post(t, e.srv, "/v1/push", pushBody("b1", orderInsert(1, 1, "bad"), orderInsert(2, 2, "bad"), orderInsert(3, 3, "fine")))
	if resp.StatusCode != 200 || strings.Count(string(out), `"code":"constraint"`) != 2 {
		t.Fatalf("push: %d %s", resp.StatusCode, out)
	}
	resp, out = get(t, e.srv, "/v1/rejected?status=open")
	var list api.RejectedList
	if resp.StatusCode != 200 || json.Unmarshal(out, &list) != nil || len(list.Rejected) != 2 || !strings.Contains(list.Rejected[0].Reason, "orders_note_check") {
		t.Fatalf("rejected: %d %s", resp.StatusCode, out)
	}
	e.db.mu.Lock()
	e.db.refuse = ""
	e.db.mu.Unlock()
	resp, out = post(t, e.srv, fmt.Sprintf("/v1/rejected/%d/retry", list.Rejected[0].ID), []byte(`{"actor":"alice"}`))
	if resp.StatusCode != 200 || !strings.Contains(string(out), `"status":"retried"`) {
		t.Fatalf("retry: %d %s", resp.StatusCode, out)
	}
	resp, out = post(t, e.srv, fmt.Sprintf("/v1/rejected/%d/discard?actor=bob", list.Rejected[1].ID), nil)
	if resp.StatusCode != 200 || !strings.Contains(string(out), `"status":"discarded"`) {
		t.Fatalf("discard: %d %s", resp.StatusCode, out)
	}
	if resp, out := post(t, e.srv, fmt.Sprintf("/v1/rejected/%d/discard", list.Rejected[1].ID), []byte(`{"actor":"bob"}`)); resp.StatusCode != http.StatusConflict {
		t.Fatalf("second discard: %d %s", resp.StatusCode, out)
	}
	if resp, out := post(t, e.srv, "/v1/rejected/77/retry", []byte(`{"actor":"bob"}`)); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown rejected id: %d %s", resp.StatusCode, out)
	}
	if resp, out := post(t, e.srv, fmt.Sprintf("/v1/rejected/%d/retry", list.Rejected[1].ID), []byte(`{}`)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("retry without actor: %d %s", resp.StatusCode, out)
	}
}

// TestAPI_PushAfter: a batch naming the batch it follows is accepted; one whose
// predecessor never reached the hub is answered 503 batch_pending, saying what to
// re-send, within the push route's time budget (which includes push.order_wait).
func TestAPI_PushAfter(t *testing.T) {
	cfg := api.DefaultConfig()
	cfg.RequestTimeout = time.Second
	pcfg := noWaitConfig()
	pcfg.OrderWait = 1500 * time.Millisecond
	e := newPushEnv(t, cfg, pcfg)
	resp, out := post(t, e.srv, "/v1/push", pushBody("b1", orderInsert(1, 1, "a")))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("b1: %d %s", resp.StatusCode, out)
	}
	after := func(batch, prev string, changes ...string) []byte {
		return []byte(`{"edge":"till-1","batch_id":"` + batch + `","after":"` + prev + `","sent_at":0,"changes":[` + strings.Join(changes, ",") + `]}`)
	}
	resp, out = post(t, e.srv, "/v1/push", after("b2", "b1", orderInsert(1, 2, "b")))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"status":"applied"`) {
		t.Fatalf("b2 after b1: %d %s", resp.StatusCode, out)
	}
	resp, out = post(t, e.srv, "/v1/push", after("b4", "b3", orderInsert(1, 4, "d")))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("b4 after a batch that never arrived: %d %s, want 503", resp.StatusCode, out)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("pending answer without Retry-After")
	}
	perr := decodeError(t, resp, out)
	if perr.Code != "batch_pending" || !strings.Contains(perr.Message, "re-send b3 first") || !strings.Contains(perr.Message, "this batch unchanged") {
		t.Fatalf("pending answer %+v, want code batch_pending naming the batch to re-send first", perr)
	}
	e.db.mu.Lock()
	defer e.db.mu.Unlock()
	if len(e.db.tags) != 2 {
		t.Fatalf("writes %+v, want b1 and b2 only", e.db.tags)
	}
}

// TestAPI_PushAnnouncesOrdering: every answer to a push, a refusal included, tells the
// edge that this hub orders batches sent with "after".
func TestAPI_PushAnnouncesOrdering(t *testing.T) {
	e := newPushEnv(t, api.DefaultConfig(), noWaitConfig())
	for _, body := range [][]byte{pushBody("b1", orderInsert(1, 1, "one")), []byte(`{"edge":`)} {
		resp, raw := post(t, e.srv, "/v1/push", body, "X-Synchub-Edge", "till-1")
		if got := resp.Header.Get(syncproto.HeaderPushAfter); got != "1" {
			t.Errorf("answer %d %s: %s header %q, want \"1\"", resp.StatusCode, raw, syncproto.HeaderPushAfter, got)
		}
	}
}
