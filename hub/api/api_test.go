package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/syncproto"
)

var ordersTable = cdc.Table{
	Name: "public.orders",
	Columns: []cdc.Column{
		{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "note", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true},
		{Name: "total", SourceType: "numeric(12,2)", Kind: cdc.KindDecimal, SQLiteType: "TEXT", Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

func insertOrder(id int64, note string) cdc.Change {
	return cdc.Change{Table: "public.orders", Op: cdc.OpInsert, After: cdc.Row{
		{Name: "id", Value: cdc.Int(id)},
		{Name: "note", Value: cdc.Text(cdc.KindText, note)},
		{Name: "total", Value: cdc.Text(cdc.KindDecimal, "9.90")},
	}}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newServer(t testing.TB, cfg api.Config, deps api.Deps) *api.Server {
	t.Helper()
	s, err := api.New(cfg, deps, testLogger(t))
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	return s
}

// get runs one request through the app without a network.
func get(t testing.TB, s *api.Server, target string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, s, req)
}

func do(t testing.TB, s *api.Server, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := s.App().Test(req, 10_000)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

func decodeError(t testing.TB, resp *http.Response, body []byte) syncproto.Error {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error response has Content-Type %q, want application/json; body %s", ct, body)
	}
	var e syncproto.Error
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	if e.Code == "" || e.Message == "" {
		t.Fatalf("error body lacks code or message: %s", body)
	}
	return e
}

func TestAPI_BadParameters(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.commit(insertOrder(1, "a"))
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})
	cases := []struct {
		query string
		param string
	}{
		{"", "since"},
		{"since=", "since"},
		{"since=abc", "since"},
		{"since=-1", "since"},
		{"since=1.5", "since"},
		{"since=99999999999999999999", "since"},
		{"since=0&limit=0", "limit"},
		{"since=0&limit=-3", "limit"},
		{"since=0&limit=ten", "limit"},
		{"since=0&wait=abc", "wait"},
		{"since=0&wait=-1s", "wait"},
		{"since=0&wait=-2", "wait"},
		{"since=0&wait=NaN", "wait"},
		{"since=0&cursor=x", "cursor"},
		{"since=0&cursor=0.1", "cursor"},
		{"since=0&cursor=1.-1", "cursor"},
		{"since=0&cursor=1.", "cursor"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			resp, body := get(t, s, "/v1/changes?"+tc.query)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", resp.StatusCode, body)
			}
			e := decodeError(t, resp, body)
			if e.Code != "bad_parameter" {
				t.Errorf("code %q, want bad_parameter", e.Code)
			}
			if !strings.HasPrefix(e.Message, tc.param+":") {
				t.Errorf("message %q does not start with the parameter name %q", e.Message, tc.param)
			}
		})
	}
}

func TestAPI_ChangesPageServedAsStored(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.commit(insertOrder(1, "a"), insertOrder(2, "b"))
	store.commit(insertOrder(3, `quote " and ünïcode`))
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})

	resp, body := get(t, s, "/v1/changes?since=0&limit=10&wait=0")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if !bytes.Equal(body, store.body()) {
		t.Fatalf("body differs from the stored page:\n got %s\nwant %s", body, store.body())
	}
	var p syncproto.Page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Next != 2 || len(p.Entries) != 2 || !p.Commit || p.Head != 2 {
		t.Fatalf("page = next %d, %d entries, commit %v, head %d; want next 2, 2 entries, commit, head 2", p.Next, len(p.Entries), p.Commit, p.Head)
	}

	resp, body = get(t, s, "/v1/changes?since=0&limit=1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Next != 1 || len(p.Entries) != 1 {
		t.Fatalf("limit=1: next %d with %d entries; want version 1 only", p.Next, len(p.Entries))
	}
}

func TestAPI_WatermarkTooOld(t *testing.T) {
	store := newFakeStore(ordersTable)
	for i := range 6 {
		store.commit(insertOrder(int64(i), "x"))
	}
	store.setHorizon(5)
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})

	resp, body := get(t, s, "/v1/changes?since=2")
	if resp.StatusCode != http.StatusGone {
		t.Fatalf("status %d, want 410; body %s", resp.StatusCode, body)
	}
	e := decodeError(t, resp, body)
	if e.Code != "watermark_too_old" || e.Horizon != 5 || !strings.Contains(e.Message, "since=0") {
		t.Fatalf("410 body = %+v; want watermark_too_old, horizon 5 and advice to pull from since=0", e)
	}
	if resp, body := get(t, s, "/v1/changes?since=0"); resp.StatusCode != http.StatusOK {
		t.Fatalf("since=0 after 410: status %d: %s", resp.StatusCode, body)
	}
}

func TestAPI_WatermarkAhead(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.commit(insertOrder(1, "a"))
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})
	resp, body := get(t, s, "/v1/changes?since=7")
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("status %d, want 409; body %s", resp.StatusCode, body)
	}
	e := decodeError(t, resp, body)
	if e.Code != "watermark_ahead" || !strings.Contains(e.Message, "re-bootstrap") {
		t.Fatalf("409 body = %+v", e)
	}

	store.readPage = func(context.Context, changelog.PageRequest) (*changelog.Page, error) {
		return nil, fmt.Errorf("read page since 7: %w (head 1)", changelog.ErrAhead)
	}
	resp, body = get(t, s, "/v1/changes?since=7")
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("store ErrAhead: status %d, want 409; body %s", resp.StatusCode, body)
	}
	if e := decodeError(t, resp, body); e.Code != "watermark_ahead" {
		t.Fatalf("store ErrAhead: code %q", e.Code)
	}
}

func TestAPI_BadCursorFromStore(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.commit(insertOrder(1, "a"))
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})
	resp, body := get(t, s, "/v1/changes?since=0&cursor=5.0")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400; body %s", resp.StatusCode, body)
	}
	if e := decodeError(t, resp, body); e.Code != "bad_cursor" {
		t.Fatalf("code %q, want bad_cursor", e.Code)
	}
}

func TestAPI_StoreErrorIsInternal(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.readPage = func(context.Context, changelog.PageRequest) (*changelog.Page, error) {
		return nil, errors.New("disk I/O error at /secret/path")
	}
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})
	resp, body := get(t, s, "/v1/changes?since=0")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500; body %s", resp.StatusCode, body)
	}
	e := decodeError(t, resp, body)
	if e.Code != "internal" || strings.Contains(e.Message, "/secret/path") {
		t.Fatalf("500 body = %+v; want code internal without the cause's text", e)
	}
}

func TestAPI_PanicIsRecovered(t *testing.T) {
	store := newFakeStore(ordersTable)
	var panicking sync.Once
	store.readPage = func(context.Context, changelog.PageRequest) (*changelog.Page, error) {
		panicked := false
		panicking.Do(func() { panicked = true })
		if panicked {
			panic("boom")
		}
		return &changelog.Page{Body: []byte(`{"entries":[]}`), Commit: true}, nil
	}
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})
	resp, body := get(t, s, "/v1/changes?since=0")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500; body %s", resp.StatusCode, body)
	}
	if e := decodeError(t, resp, body); e.Code != "internal" {
		t.Fatalf("code %q, want internal", e.Code)
	}
	if resp, body := get(t, s, "/v1/changes?since=0"); resp.StatusCode != http.StatusOK {
		t.Fatalf("request after the panic: status %d: %s", resp.StatusCode, body)
	}
}

func TestAPI_RequestTimeout(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.readPage = func(ctx context.Context, _ changelog.PageRequest) (*changelog.Page, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("read page: %w", ctx.Err())
	}
	cfg := api.DefaultConfig()
	cfg.RequestTimeout = 100 * time.Millisecond
	cfg.MaxWait = 0
	s := newServer(t, cfg, api.Deps{Store: store})
	resp, body := get(t, s, "/v1/changes?since=0")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503; body %s", resp.StatusCode, body)
	}
	if e := decodeError(t, resp, body); e.Code != "timeout" {
		t.Fatalf("code %q, want timeout", e.Code)
	}
}

func TestAPI_UnknownRoute(t *testing.T) {
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: newFakeStore(ordersTable)})
	resp, body := get(t, s, "/v2/nothing")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404; body %s", resp.StatusCode, body)
	}
	if e := decodeError(t, resp, body); e.Code != "not_found" || !strings.Contains(e.Message, "/v1/changes") {
		t.Fatalf("404 body = %+v", e)
	}
	req, _ := http.NewRequest(http.MethodDelete, "/v1/changes?since=0", nil)
	resp, body = do(t, s, req)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE: status %d, want 405; body %s", resp.StatusCode, body)
	}
	decodeError(t, resp, body)
}

func TestAPI_Gzip(t *testing.T) {
	store := newFakeStore(ordersTable)
	changes := make([]cdc.Change, 1000)
	for i := range changes {
		changes[i] = insertOrder(int64(i+1), fmt.Sprintf("note number %d", i))
	}
	store.commit(changes...)
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})

	resp, plain := get(t, s, "/v1/changes?since=0")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("without Accept-Encoding: status %d, Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	if !bytes.Equal(plain, store.body()) {
		t.Fatal("plain body differs from the stored page")
	}
	resp, zipped := get(t, s, "/v1/changes?since=0", "Accept-Encoding", "br, gzip;q=0.8")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("with gzip: status %d, Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("Vary = %q, want Accept-Encoding", resp.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unzipped, plain) {
		t.Fatal("gunzipped body differs from the stored page")
	}
	if len(zipped)*3 > len(plain) {
		t.Errorf("gzip body is %d bytes for %d plain: compression is not working", len(zipped), len(plain))
	}
	resp, _ = get(t, s, "/v1/changes?since=0", "Accept-Encoding", "gzip;q=0")
	if resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
}

func TestAPI_SchemaETag(t *testing.T) {
	store := newFakeStore(ordersTable)
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})
	_, want, _ := store.Schema(context.Background())

	resp, body := get(t, s, "/v1/schema")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if !bytes.Equal(body, want) {
		t.Fatalf("schema body\n got %s\nwant %s", body, want)
	}
	etag := resp.Header.Get("ETag")
	if etag != `"1"` {
		t.Fatalf("ETag %q, want \"1\"", etag)
	}
	resp, body = get(t, s, "/v1/schema", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("If-None-Match %s: status %d with %d bytes, want 304 and no body", etag, resp.StatusCode, len(body))
	}
	resp, _ = get(t, s, "/v1/schema", "If-None-Match", `"0", W/"1"`)
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("weak match: status %d, want 304", resp.StatusCode)
	}
	resp, _ = get(t, s, "/v1/schema", "If-None-Match", `"0"`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stale ETag: status %d, want 200", resp.StatusCode)
	}

	store.schema = func(context.Context) (*cdc.Schema, []byte, error) { return nil, nil, nil }
	resp, body = get(t, s, "/v1/schema")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("no schema yet: status %d, want 503", resp.StatusCode)
	}
	decodeError(t, resp, body)
}

func TestAPI_HealthReadyStatus(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.commit(insertOrder(1, "a"))
	var notReady error = errors.New("source is connecting")
	var mu sync.Mutex
	want := syncproto.Status{Head: 1, SchemaVersion: 1, Source: "postgres", SourceState: "streaming", LagSeconds: 0.5}
	s := newServer(t, api.DefaultConfig(), api.Deps{
		Store:  store,
		Status: func() syncproto.Status { return want },
		Ready:  func() error { mu.Lock(); defer mu.Unlock(); return notReady },
	})
	if resp, body := get(t, s, "/healthz"); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	resp, body := get(t, s, "/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz while not ready: %d %s", resp.StatusCode, body)
	}
	if e := decodeError(t, resp, body); !strings.Contains(e.Message, "source is connecting") {
		t.Fatalf("readyz message %q lacks the reason", e.Message)
	}
	mu.Lock()
	notReady = nil
	mu.Unlock()
	if resp, body := get(t, s, "/readyz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz when ready: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, s, "/v1/status")
	var got syncproto.Status
	if err := json.Unmarshal(body, &got); err != nil || got != want {
		t.Fatalf("status = %+v (%v), want %+v", got, err, want)
	}

	plain := newServer(t, api.DefaultConfig(), api.Deps{Store: store})
	_, body = get(t, plain, "/v1/status")
	got = syncproto.Status{}
	if err := json.Unmarshal(body, &got); err != nil || got.Head != 1 || got.SchemaVersion != 1 {
		t.Fatalf("status from the store = %+v (%v); want head 1, schema 1", got, err)
	}
}

func TestAPI_Observe(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.commit(insertOrder(1, "a"), insertOrder(2, "b"))
	type obs struct {
		route   string
		code    int
		changes int
	}
	var mu sync.Mutex
	var seen []obs
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store, Observe: func(route string, code int, _ time.Duration, changes, bytes int) {
		mu.Lock()
		seen = append(seen, obs{route, code, changes})
		mu.Unlock()
	}})
	get(t, s, "/v1/changes?since=0")
	get(t, s, "/v1/changes?since=x")
	get(t, s, "/nope/12345")
	want := []obs{{"/v1/changes", 200, 2}, {"/v1/changes", 400, 0}, {"unmatched", 404, 0}}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("observed %v, want %v", seen, want)
	}
}

func TestConfig_Validate(t *testing.T) {
	if err := api.DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := []func(*api.Config){
		func(c *api.Config) { c.MaxPageChanges = 0 },
		func(c *api.Config) { c.MaxPageChanges = 10001 },
		func(c *api.Config) { c.MaxWait = -time.Second },
		func(c *api.Config) { c.MaxWait = 121 * time.Second },
		func(c *api.Config) { c.RequestTimeout = 0 },
		func(c *api.Config) { c.BodyLimit = 0 },
		func(c *api.Config) { c.WriteTimeout = 10 * time.Second },
		func(c *api.Config) { c.ShutdownTimeout = 0 },
		func(c *api.Config) { c.GzipLevel = 0 },
		func(c *api.Config) { c.GzipMinBytes = -1 },
	}
	for i, mutate := range bad {
		c := api.DefaultConfig()
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: Validate accepted %+v", i, c)
		}
		if _, err := api.New(c, api.Deps{Store: newFakeStore()}, nil); err == nil {
			t.Errorf("case %d: New accepted an invalid config", i)
		}
	}
	if _, err := api.New(api.DefaultConfig(), api.Deps{}, nil); err == nil {
		t.Error("New accepted a nil store")
	}
}

// serve runs s on a loopback listener until the returned stop is called; stop returns
// Serve's error.
func serve(t testing.TB, s *api.Server) (baseURL string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-errc:
			case <-time.After(20 * time.Second):
				serveErr = errors.New("Serve did not return within 20s of cancel")
			}
		})
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + ln.Addr().String(), stop
}

type pollResult struct {
	status int
	page   syncproto.Page
	err    error
	took   time.Duration
}

func longPoll(ctx context.Context, url string) <-chan pollResult {
	out := make(chan pollResult, 1)
	go func() {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- pollResult{err: err, took: time.Since(start)}
			return
		}
		defer resp.Body.Close()
		r := pollResult{status: resp.StatusCode}
		r.err = json.NewDecoder(resp.Body).Decode(&r.page)
		r.took = time.Since(start)
		out <- r
	}()
	return out
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAPI_LongPollWakesOnCommit(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.commit(insertOrder(1, "a"))
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})
	base, _ := serve(t, s)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := store.readCalls.Load()
	res := longPoll(ctx, base+"/v1/changes?since=1&wait=25s")
	waitFor(t, 10*time.Second, "the long-poll to read the empty page", func() bool { return store.readCalls.Load() > before })
	store.commit(insertOrder(2, "b"))
	r := <-res
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("long-poll: status %d, err %v", r.status, r.err)
	}
	if len(r.page.Entries) != 1 || r.page.Next != 2 {
		t.Fatalf("long-poll page: next %d, %d entries; want the new version 2", r.page.Next, len(r.page.Entries))
	}
	if r.took > 10*time.Second {
		t.Fatalf("long-poll took %v to see a commit", r.took)
	}
}

func TestAPI_LongPollExpires(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.commit(insertOrder(1, "a"))
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store})
	base, _ := serve(t, s)
	r := <-longPoll(context.Background(), base+"/v1/changes?since=1&wait=300ms")
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("long-poll: status %d, err %v", r.status, r.err)
	}
	if len(r.page.Entries) != 0 || !r.page.Commit || r.page.Next != 1 {
		t.Fatalf("expired long-poll page: %+v; want an empty committed page at 1", r.page)
	}
	if r.took < 300*time.Millisecond {
		t.Fatalf("long-poll returned after %v, before its wait of 300ms", r.took)
	}
}

func TestAPI_LongPollReleasedOnShutdown(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.commit(insertOrder(1, "a"))
	cfg := api.DefaultConfig()
	cfg.MaxWait = 120 * time.Second
	cfg.ShutdownTimeout = 60 * time.Second
	s := newServer(t, cfg, api.Deps{Store: store})
	base, stop := serve(t, s)

	before := store.readCalls.Load()
	res := longPoll(context.Background(), base+"/v1/changes?since=1&wait=100s")
	waitFor(t, 10*time.Second, "the long-poll to start waiting", func() bool { return store.readCalls.Load() > before })
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("shutdown took %v with a long-poll in flight", took)
	}
	r := <-res
	if r.err != nil || r.status != http.StatusOK || len(r.page.Entries) != 0 {
		t.Fatalf("released long-poll: status %d, err %v, %d entries; want an empty 200 page", r.status, r.err, len(r.page.Entries))
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

// TestAPI_LimitAndWaitAreCapped: a limit or wait beyond the hub's maximum is served at the
// maximum rather than refused, so lowering api.max_page_changes or api.max_wait never
// locks out edges configured for more.
func TestAPI_LimitAndWaitAreCapped(t *testing.T) {
	store := newFakeStore()
	store.commit(insertOrder(1, "a"))
	cfg := api.DefaultConfig()
	cfg.MaxPageChanges, cfg.MaxWait = 50, 200*time.Millisecond
	s := newServer(t, cfg, api.Deps{Store: store})
	start := time.Now()
	resp, body := get(t, s, "/v1/changes?since=1&limit=5000&wait=10m")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := store.lastReq.Load(); got == nil || got.Limit != 50 {
		t.Fatalf("store asked for %+v, want the cap of 50 changes", got)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("a 10m wait was not cut to the 200ms maximum (took %v)", el)
	}
}
