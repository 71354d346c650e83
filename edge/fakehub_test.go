package edge

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// fakeHub serves the sync API from an in-memory log whose versions may be split into
// chunks, so tests can craft multi-page transactions, compaction (410), schema changes
// and failures.
type fakeHub struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	schema   cdc.Schema
	versions []fakeVersion
	horizon  int64
	changed  chan struct{}
	requests []fakeRequest

	// fail, when set, may answer a request instead of the hub: it returns the status
	// and body to send, or 0 to serve normally.
	fail func(r *http.Request) (int, string)
	// beforePage, when set, runs before a /v1/changes request is answered.
	beforePage func(r fakeRequest)

	// pushes records every POST /v1/push body received, in order.
	pushes []syncproto.PushRequest
	// onPush, when set, answers a push: it returns the HTTP status and the body to
	// encode as JSON (status 0: answer every change "applied"; status dropConn: close
	// the connection without an answer, as a lost response).
	onPush func(n int, req *syncproto.PushRequest) (int, any)
	// noPushAfter leaves out the X-Synchub-Push-After header, which the fake hub
	// otherwise sets on every /v1/push response as a hub that honours After does.
	noPushAfter bool
}

// dropConn makes the fake hub close a push's connection without answering.
const dropConn = -1

// dropFirstAnswer is an onPush that loses the answer to the first push and answers
// the others "applied".
func dropFirstAnswer(n int, _ *syncproto.PushRequest) (int, any) {
	if n == 1 {
		return dropConn, nil
	}
	return 0, nil
}

type fakeVersion struct {
	origin string
	ts     int64
	schema int64
	chunks [][]string // each change already encoded as wire JSON
}

type fakeRequest struct {
	n      int // 1-based count of /v1/changes requests
	since  int64
	cursor string
	limit  int
	wait   time.Duration
	gzip   bool
}

func newFakeHub(t testing.TB, tables ...cdc.Table) *fakeHub {
	h := &fakeHub{t: t, schema: cdc.Schema{Version: 1, Tables: tables}, changed: make(chan struct{})}
	h.srv = httptest.NewServer(h)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *fakeHub) url() string { return h.srv.URL }

func (h *fakeHub) table(name string) *cdc.Table {
	for i := range h.schema.Tables {
		if h.schema.Tables[i].Name == name {
			return &h.schema.Tables[i]
		}
	}
	return nil
}

// commit appends one version holding changes, split into chunks of chunk changes
// (0: one chunk), and returns its number.
func (h *fakeHub) commit(chunk int, changes ...cdc.Change) int64 {
	return h.commitChunks(chunk, "", 1700000000000000, changes...)
}

// commitFrom appends one single-chunk version written by origin (an edge id, or "")
// with commit time ts (Unix microseconds).
func (h *fakeHub) commitFrom(origin string, ts int64, changes ...cdc.Change) int64 {
	return h.commitChunks(0, origin, ts, changes...)
}

func (h *fakeHub) commitChunks(chunk int, origin string, ts int64, changes ...cdc.Change) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := fakeVersion{schema: h.schema.Version, origin: origin, ts: ts}
	var cur []string
	for i := range changes {
		c := &changes[i]
		cur = append(cur, string(syncproto.AppendChange(nil, c, h.table(c.Table))))
		if chunk > 0 && len(cur) == chunk {
			v.chunks = append(v.chunks, cur)
			cur = nil
		}
	}
	if len(cur) > 0 || len(v.chunks) == 0 {
		v.chunks = append(v.chunks, cur)
	}
	h.versions = append(h.versions, v)
	close(h.changed)
	h.changed = make(chan struct{})
	return int64(len(h.versions))
}

// setTables installs a new schema version.
func (h *fakeHub) setTables(tables ...cdc.Table) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.schema = cdc.Schema{Version: h.schema.Version + 1, Tables: tables}
}

// replaceLog swaps the whole log (as compaction or a reset would) and sets the horizon.
func (h *fakeHub) replaceLog(horizon int64, build func(h *fakeHub)) {
	h.mu.Lock()
	h.versions = nil
	h.mu.Unlock()
	build(h)
	h.mu.Lock()
	h.horizon = horizon
	h.mu.Unlock()
}

func (h *fakeHub) head() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return int64(len(h.versions))
}

func (h *fakeHub) seen() []fakeRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]fakeRequest(nil), h.requests...)
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/push" {
		h.mu.Lock()
		off := h.noPushAfter
		h.mu.Unlock()
		if !off {
			w.Header().Set("X-Synchub-Push-After", "1")
		}
	}
	if h.fail != nil {
		if status, body := h.fail(r); status != 0 {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
			return
		}
	}
	switch r.URL.Path {
	case "/v1/schema":
		h.mu.Lock()
		body, err := json.Marshal(syncproto.SchemaResponse{Version: h.schema.Version, Tables: h.schema.Tables})
		h.mu.Unlock()
		if err != nil {
			h.t.Errorf("fake hub: encode schema: %v", err)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	case "/v1/changes":
		h.serveChanges(w, r)
	case "/v1/push":
		h.servePush(w, r)
	default:
		writeErr(w, http.StatusNotFound, "not_found", "no route")
	}
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(syncproto.Error{Code: code, Message: msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (h *fakeHub) serveChanges(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := strconv.ParseInt(q.Get("since"), 10, 64)
	if err != nil || since < 0 {
		writeErr(w, http.StatusBadRequest, "bad_parameter", "since")
		return
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 {
		writeErr(w, http.StatusBadRequest, "bad_parameter", "limit")
		return
	}
	var wait time.Duration
	if s := q.Get("wait"); s != "" {
		if wait, err = time.ParseDuration(s); err != nil {
			writeErr(w, http.StatusBadRequest, "bad_parameter", "wait")
			return
		}
	}
	h.mu.Lock()
	req := fakeRequest{n: len(h.requests) + 1, since: since, cursor: q.Get("cursor"), limit: limit, wait: wait,
		gzip: r.Header.Get("Accept-Encoding") == "gzip"}
	h.requests = append(h.requests, req)
	h.mu.Unlock()
	if h.beforePage != nil {
		h.beforePage(req)
	}

	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		body, status, code, empty := h.buildPage(since, req.cursor, limit)
		changed := h.changed
		h.mu.Unlock()
		if status != 0 {
			writeErr(w, status, code, string(body))
			return
		}
		if empty && wait > 0 {
			select {
			case <-changed:
				continue
			case <-deadline.C:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
		return
	}
}

// buildPage encodes the page after since (and cursor). Called with h.mu held.
func (h *fakeHub) buildPage(since int64, cursor string, limit int) (body []byte, status int, code string, empty bool) {
	head := int64(len(h.versions))
	if since > 0 && since < h.horizon {
		return []byte("since is older than the horizon; delete local data and pull again from since=0"), http.StatusGone, "watermark_too_old", false
	}
	if since > head {
		return []byte("since is ahead of the head"), http.StatusConflict, "watermark_ahead", false
	}
	v, seq := since+1, 0
	if cursor != "" {
		c, err := syncproto.ParseCursor(cursor)
		if err != nil || c.Version <= since || c.Version > head || c.Seq+1 >= len(h.versions[c.Version-1].chunks) {
			return []byte("bad cursor"), http.StatusBadRequest, "bad_cursor", false
		}
		v, seq = c.Version, c.Seq+1
	}
	b := []byte(`{"since":` + strconv.FormatInt(since, 10))
	var entries []byte
	next, n, commit := since, 0, true
	var lastV int64
	var lastSeq int
	for v <= head && (n == 0 || n < limit) {
		ver := h.versions[v-1]
		chunk := ver.chunks[seq]
		last := seq == len(ver.chunks)-1
		if len(entries) > 0 {
			entries = append(entries, ',')
		}
		entries = append(entries, `{"v":`+strconv.FormatInt(v, 10)+`,"seq":`+strconv.Itoa(seq)+`,"last":`+strconv.FormatBool(last)+
			`,"origin":`+strconv.Quote(ver.origin)+`,"ts":`+strconv.FormatInt(ver.ts, 10)+`,"schema":`+strconv.FormatInt(ver.schema, 10)+`,"changes":[`...)
		for i, c := range chunk {
			if i > 0 {
				entries = append(entries, ',')
			}
			entries = append(entries, c...)
		}
		entries = append(entries, "]}"...)
		n += len(chunk)
		lastV, lastSeq, commit = v, seq, last
		if last {
			next = v
			v, seq = v+1, 0
		} else {
			seq++
		}
	}
	b = append(b, `,"next":`+strconv.FormatInt(next, 10)...)
	if !commit {
		b = append(b, `,"cursor":"`+syncproto.Cursor{Version: lastV, Seq: lastSeq}.String()+`"`...)
	}
	b = append(b, `,"commit":`+strconv.FormatBool(commit)+`,"head":`+strconv.FormatInt(head, 10)+
		`,"schema_version":`+strconv.FormatInt(h.schema.Version, 10)+`,"entries":[`...)
	b = append(b, entries...)
	b = append(b, "]}"...)
	return b, 0, "", len(entries) == 0
}

// servePush records a push and answers it as onPush says.
func (h *fakeHub) servePush(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeErr(w, http.StatusMethodNotAllowed, "bad_method", "POST only")
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "bad_body", err.Error())
			return
		}
		body = zr
	}
	var req syncproto.PushRequest
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "bad_body", err.Error())
		return
	}
	h.mu.Lock()
	h.pushes = append(h.pushes, req)
	n := len(h.pushes)
	on := h.onPush
	h.mu.Unlock()
	status, answer := 0, any(nil)
	if on != nil {
		status, answer = on(n, &req)
	}
	switch status {
	case dropConn:
		hj, ok := w.(http.Hijacker)
		if !ok {
			h.t.Errorf("fake hub: cannot hijack the connection")
			return
		}
		conn, _, err := hj.Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	case 0:
		status, answer = http.StatusOK, appliedAnswer(&req)
	}
	b, err := json.Marshal(answer)
	if err != nil {
		h.t.Errorf("fake hub: encode push answer: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// appliedAnswer answers every change of req "applied" without a version.
func appliedAnswer(req *syncproto.PushRequest) syncproto.PushResponse {
	resp := syncproto.PushResponse{BatchID: req.BatchID}
	for _, c := range req.Changes {
		resp.Results = append(resp.Results, syncproto.PushResult{ID: c.ID, Status: syncproto.PushApplied})
	}
	return resp
}

// pushed returns the push requests received so far.
func (h *fakeHub) pushed() []syncproto.PushRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]syncproto.PushRequest(nil), h.pushes...)
}
