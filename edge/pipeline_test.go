package edge

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synchub/synchub/hub/syncproto"
)

// holdLimit bounds how long a test's fake hub holds a push while it waits for the agent
// to do something; running out is reported as a failure.
const holdLimit = 10 * time.Second

// await polls cond until it holds; after holdLimit it reports what did not happen and
// returns false. It may be called from the fake hub's goroutines.
func await(t testing.TB, what string, cond func() bool) bool {
	deadline := time.Now().Add(holdLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("waited %v for %s", holdLimit, what)
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// awaitClosed waits until ch is closed; see await.
func awaitClosed(t testing.TB, what string, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(holdLimit):
		t.Errorf("waited %v for %s", holdLimit, what)
		return false
	}
}

// otherBatchFormed reports whether outbox entries carry a batch id other than id.
func otherBatchFormed(t testing.TB, db *sql.DB, id string) bool {
	var ok bool
	if err := db.QueryRow(`SELECT EXISTS (SELECT 1 FROM _synchub_outbox WHERE batch_id IS NOT NULL AND batch_id <> ?)`, id).Scan(&ok); err != nil {
		t.Errorf("read the outbox: %v", err)
		return true
	}
	return ok
}

// allBatched reports whether every outbox entry is in a batch.
func allBatched(t testing.TB, db *sql.DB) bool {
	var ok bool
	if err := db.QueryRow(`SELECT NOT EXISTS (SELECT 1 FROM _synchub_outbox WHERE batch_id IS NULL)`).Scan(&ok); err != nil {
		t.Errorf("read the outbox: %v", err)
		return true
	}
	return ok
}

// insertItems inserts rows from..to-1 through the application's connection.
func insertItems(t testing.TB, db *sql.DB, from, to int) {
	t.Helper()
	for id := from; id < to; id++ {
		appExec(t, db, fmt.Sprintf(`INSERT INTO items (id, name, price) VALUES (%d, 'n%d', '1.00')`, id, id))
	}
}

// learnPushAfter pushes one change so that the agent sees the fake hub's
// X-Synchub-Push-After header and pipelines from then on.
func learnPushAfter(t *testing.T, a *Agent, db *sql.DB) {
	t.Helper()
	appExec(t, db, `UPDATE items SET name = 'two b' WHERE id = 2`)
	pushNow(t, a)
	if !a.client.pushAfter.Load() {
		t.Fatal("the agent did not take note of the hub's X-Synchub-Push-After header")
	}
}

// keyIDs returns the "id" key column of each change of a push.
func keyIDs(t testing.TB, req syncproto.PushRequest) []int64 {
	var ids []int64
	for _, c := range req.Changes {
		var k struct{ ID int64 }
		if err := json.Unmarshal(c.Key, &k); err != nil {
			t.Errorf("key %s: %v", c.Key, err)
		}
		ids = append(ids, k.ID)
	}
	return ids
}

// inSendingOrder sorts pushes by their first change, the order the agent formed (and
// sent) them in: batches sent together may reach the hub in any order. A re-sent batch
// stays after its first send.
func inSendingOrder(p []syncproto.PushRequest) []syncproto.PushRequest {
	sort.SliceStable(p, func(i, j int) bool { return p[i].Changes[0].ID < p[j].Changes[0].ID })
	return p
}

// TestPush_PipelinesOnlyOnceTheHubHonoursAfter: against a hub that does not send
// X-Synchub-Push-After (one that may ignore After) the agent never has two pushes at the
// hub at once, and names no batch to follow, although PushPipeline is 3; it still forms
// the next batch while the hub works on the current one. Once a push response carries
// the header, the agent sends batches while earlier ones are unanswered.
func TestPush_PipelinesOnlyOnceTheHubHonoursAfter(t *testing.T) {
	h, a, db := syncedItems(t, func(c *Config) { c.PushBatch, c.PushPipeline = 2, 3 })
	h.mu.Lock()
	h.noPushAfter = true
	h.mu.Unlock()
	insertItems(t, db, 10, 20)

	var mu sync.Mutex
	inHub, most := 0, 0
	var hold func(n int, req *syncproto.PushRequest)
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		mu.Lock()
		inHub++
		most = max(most, inHub)
		mu.Unlock()
		hold(n, req)
		mu.Lock()
		inHub--
		mu.Unlock()
		return 0, nil
	}
	// Without the header: each push is held until the agent has formed the batch after
	// it (or has nothing left to form), when a pipelining agent would have sent it.
	gaveUp := false // after one wait ran out, to fail fast
	hold = func(n int, req *syncproto.PushRequest) {
		mu.Lock()
		skip := gaveUp
		mu.Unlock()
		if !skip && !await(h.t, fmt.Sprintf("the batch after push %d to be formed", n), func() bool {
			return otherBatchFormed(h.t, db, req.BatchID) || allBatched(h.t, db)
		}) {
			mu.Lock()
			gaveUp = true
			mu.Unlock()
		}
	}
	pushNow(t, a)
	p := h.pushed()
	if most != 1 {
		t.Errorf("without X-Synchub-Push-After, %d pushes were at the hub at once; want 1", most)
	}
	for _, req := range p {
		if req.After != "" {
			t.Errorf("without X-Synchub-Push-After, batch %s names %s to follow; want none", req.BatchID, req.After)
		}
	}
	if len(p) != 5 || a.client.pushAfter.Load() {
		t.Fatalf("%d pushes (want 5); header seen %v", len(p), a.client.pushAfter.Load())
	}

	// With the header: the first push (alone: the header is not known yet) teaches the
	// agent; the next is held until another push arrives.
	h.mu.Lock()
	h.noPushAfter = false
	h.mu.Unlock()
	insertItems(t, db, 20, 30)
	k := len(p)
	mu.Lock()
	most = 0
	mu.Unlock()
	arrived := make(chan struct{})
	hold = func(n int, req *syncproto.PushRequest) {
		switch n {
		case k + 2:
			awaitClosed(h.t, "a second push while the first pipelined one is at the hub", arrived)
		case k + 3:
			close(arrived)
		}
	}
	pushNow(t, a)
	if most < 2 {
		t.Errorf("with X-Synchub-Push-After, at most %d pushes were at the hub at once; want the pipeline to send ahead", most)
	}
	p = inSendingOrder(h.pushed()[k:])
	if p[0].After != "" {
		t.Errorf("the first batch names %s to follow", p[0].After)
	}
	afters := 0
	for i, req := range p {
		if req.After != "" {
			afters++
			if req.After != p[i-1].BatchID {
				t.Errorf("batch %d names %s to follow, want the batch sent before it", i, req.After)
			}
		}
	}
	if afters == 0 || len(p) != 5 || len(readOutboxRows(t, db)) != 0 {
		t.Errorf("%d pushes, %d naming the batch they follow, outbox %v", len(p), afters, readOutboxRows(t, db))
	}

	// The hub is rolled back to a version without the header: a successful answer
	// without it stops the pipelining.
	h.mu.Lock()
	h.noPushAfter = true
	h.mu.Unlock()
	hold = func(int, *syncproto.PushRequest) {}
	insertItems(t, db, 30, 32)
	pushNow(t, a)
	if a.client.pushAfter.Load() {
		t.Error("after a successful push answer without X-Synchub-Push-After the agent still pipelines")
	}
}

// TestPush_PipelinedBatchesStayInOrder: with several batches in the outbox and one batch
// on its way at a time (PushPipeline 1), the agent forms the next batch (its outbox
// entries carry its batch id) while the hub handles the current one, and sends it once
// that one is answered: the hub receives them one after the other in outbox order. A
// lost answer in the middle leaves the lost batch and the one formed behind it open,
// and the next push sends them first, in order, each once more.
func TestPush_PipelinedBatchesStayInOrder(t *testing.T) {
	h, a, db := syncedItems(t, func(c *Config) { c.PushBatch, c.PushPipeline = 2, 1 })
	insertItems(t, db, 10, 20)
	var mu sync.Mutex
	inHub := 0
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		mu.Lock()
		inHub++
		busy := inHub
		mu.Unlock()
		defer func() { mu.Lock(); inHub--; mu.Unlock() }()
		if busy != 1 {
			h.t.Errorf("push %d reached the hub while another was in progress", n)
		}
		if n == 1 {
			await(h.t, "the second batch to be formed while the first is at the hub", func() bool {
				return otherBatchFormed(h.t, db, req.BatchID)
			})
		}
		if n == 3 {
			return dropConn, nil
		}
		return 0, nil
	}
	ctx := context.Background()
	if _, err := a.PushNow(ctx); err == nil {
		t.Fatal("PushNow succeeded although the third answer was lost")
	}
	open := map[string]bool{}
	for _, r := range readOutboxRows(t, db) {
		if r.batch.Valid {
			open[r.batch.String] = true
		}
	}
	if p := h.pushed(); len(p) != 3 || len(open) != 2 || !open[p[2].BatchID] {
		t.Fatalf("after %d pushes (want 3, the last lost) the batches %v are open, want the lost one and the one formed behind it", len(p), open)
	}
	rep, err := a.PushNow(ctx)
	if err != nil {
		t.Fatalf("second PushNow: %v", err)
	}
	p := h.pushed()
	var ids []int64
	seen := map[string]int{}
	for _, req := range p {
		seen[req.BatchID]++
		if seen[req.BatchID] > 1 {
			continue // the re-send of the lost batch
		}
		ids = append(ids, keyIDs(t, req)...)
	}
	for i, id := range ids {
		if id != int64(10+i) {
			t.Fatalf("rows reached the hub in the order %v, want 10..19 in outbox order", ids)
		}
	}
	if len(ids) != 10 || seen[p[2].BatchID] != 2 || p[3].BatchID != p[2].BatchID {
		t.Fatalf("pushes %d, ids %v; want the lost third batch re-sent right after it was lost", len(p), ids)
	}
	if rep.Pending != 0 || len(readOutboxRows(t, db)) != 0 {
		t.Fatalf("report %+v, outbox %v: want it empty", rep, readOutboxRows(t, db))
	}
}

// TestPush_PipelineSendsAhead: with PushPipeline 3 (and the hub's X-Synchub-Push-After
// seen) the agent sends batches while earlier ones are unanswered, each naming the batch
// sent before it (After), and a later local write of a row whose batch is unanswered
// waits for that answer (the batches formed meanwhile end before it).
func TestPush_PipelineSendsAhead(t *testing.T) {
	h, a, db := syncedItems(t, func(c *Config) { c.PushBatch, c.PushPipeline = 2, 3 })
	learnPushAfter(t, a, db)
	insertItems(t, db, 10, 14)
	var mu sync.Mutex
	inHub, most := 0, 0
	answered := map[string]bool{}
	var firstBatch string
	second := make(chan struct{})
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		mu.Lock()
		inHub++
		most = max(most, inHub)
		for i, id := range keyIDs(h.t, *req) {
			switch {
			case id != 12:
			case req.Changes[i].Op == "i":
				firstBatch = req.BatchID
				// A later write of row 12 while its batch is on its way: the batch
				// formed on the first batch's answer must leave it out.
				if _, err := db.Exec(`UPDATE items SET name = 'again' WHERE id = 12`); err != nil {
					h.t.Errorf("write during push: %v", err)
				}
			case !answered[firstBatch]:
				h.t.Errorf("push %d carries the later write of row 12 before the batch holding its first write was answered", n)
			}
		}
		mu.Unlock()
		switch n {
		case 2: // the first push after learnPushAfter's
			awaitClosed(h.t, "a second push while the first is at the hub", second)
		case 3:
			close(second)
		}
		mu.Lock()
		inHub--
		answered[req.BatchID] = true
		mu.Unlock()
		return 0, nil
	}
	rep, err := a.PushNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if most < 2 {
		t.Errorf("at most %d pushes were at the hub at once; want the pipeline to send ahead", most)
	}
	// In the order the agent formed them, each batch names the one before it, or
	// nothing when that one was answered already.
	p := inSendingOrder(h.pushed()[1:])
	var ids []int64
	afters := 0
	for i, req := range p {
		ids = append(ids, keyIDs(t, req)...)
		if req.After == "" {
			continue
		}
		afters++
		if i == 0 || req.After != p[i-1].BatchID {
			t.Errorf("batch %d names %q as the one it follows; want the batch sent before it", i, req.After)
		}
	}
	if afters == 0 {
		t.Errorf("no batch named the batch it follows: %+v", p)
	}
	want := []int64{10, 11, 12, 13, 12}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("rows reached the hub as %v, want %v (the later write of row 12 last)", ids, want)
	}
	if rep.Applied != 5 || rep.Pending != 0 || len(readOutboxRows(t, db)) != 0 {
		t.Errorf("report %+v, outbox %v", rep, readOutboxRows(t, db))
	}
}

// TestPush_KeyChangeInFlightHoldsBothKeys: while the batch moving row 1 to key 50 is
// unanswered, a later write of either key (a new row 1, or an update of row 50) waits
// for its answer, and so does everything behind it; an unrelated row before them is
// sent ahead. The key change is an open batch (its first answer was lost), so the batch
// formed behind it would hold all three later writes but for the busy rows.
func TestPush_KeyChangeInFlightHoldsBothKeys(t *testing.T) {
	for _, tc := range []struct {
		name, write string
		key         int64
	}{
		{"new row under the old key", `INSERT INTO items (id, name, price) VALUES (1, 'one again', '1.00')`, 1},
		{"update under the new key", `UPDATE items SET name = 'fifty' WHERE id = 50`, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, a, db := syncedItems(t, func(c *Config) { c.PushBatch, c.PushPipeline = 3, 3 })
			learnPushAfter(t, a, db)
			appExec(t, db, `UPDATE items SET id = 50 WHERE id = 1`)
			h.onPush = func(n int, req *syncproto.PushRequest) (int, any) { return dropConn, nil }
			if _, err := a.PushNow(context.Background()); err == nil {
				t.Fatal("PushNow succeeded although the answer was lost")
			}
			keyChange := h.pushed()[1].BatchID
			appExec(t, db, `INSERT INTO items (id, name, price) VALUES (60, 'sixty', '6.00')`)
			appExec(t, db, tc.write)
			appExec(t, db, `INSERT INTO items (id, name, price) VALUES (61, 'sixty-one', '6.10')`)

			var mu sync.Mutex
			keyChangeDone := false
			aheadArrived := make(chan struct{})
			h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
				ids := keyIDs(h.t, *req)
				mu.Lock()
				done := keyChangeDone
				mu.Unlock()
				switch {
				case req.BatchID == keyChange:
					awaitClosed(h.t, "a batch to be sent while the key change is at the hub", aheadArrived)
					mu.Lock()
					keyChangeDone = true
					mu.Unlock()
				case !done:
					if fmt.Sprint(ids) != "[60]" {
						h.t.Errorf("while the key change of row 1 to 50 was unanswered, a batch of rows %v was sent; want only row 60", ids)
					}
					close(aheadArrived)
				}
				return 0, nil
			}
			pushNow(t, a)
			p := inSendingOrder(h.pushed()[2:])
			var rows [][]int64
			for _, req := range p {
				rows = append(rows, keyIDs(t, req))
			}
			if got, want := fmt.Sprint(rows), fmt.Sprintf("[[1] [60] [%d 61]]", tc.key); got != want {
				t.Errorf("batches of rows %s reached the hub, want %s: the key change re-sent, 60, then the waiting write and 61", got, want)
			}
			if len(readOutboxRows(t, db)) != 0 {
				t.Errorf("outbox not empty: %v", readOutboxRows(t, db))
			}
		})
	}
}

// TestPush_PipelineFailureKeepsOrder: a lost answer in the middle of the pipeline stops
// sending; answers to batches already sent are still applied, the lost batch stays open
// and is re-sent first next time, and nothing is lost or sent as a new batch twice.
func TestPush_PipelineFailureKeepsOrder(t *testing.T) {
	h, a, db := syncedItems(t, func(c *Config) { c.PushBatch, c.PushPipeline = 2, 3 })
	insertItems(t, db, 10, 20)
	var mu sync.Mutex
	var lost string
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		mu.Lock()
		defer mu.Unlock()
		if ids := keyIDs(h.t, *req); ids[0] == 12 && lost == "" {
			lost = req.BatchID
			return dropConn, nil
		}
		return 0, nil
	}
	ctx := context.Background()
	if _, err := a.PushNow(ctx); err == nil {
		t.Fatal("PushNow succeeded although an answer was lost")
	}
	first := len(h.pushed())
	open := map[string]bool{}
	for _, r := range readOutboxRows(t, db) {
		if r.batch.Valid {
			open[r.batch.String] = true
		}
	}
	if !open[lost] {
		t.Fatalf("the batch whose answer was lost is not open: %v", open)
	}
	if _, err := a.PushNow(ctx); err != nil {
		t.Fatalf("second PushNow: %v", err)
	}
	// The lost batch is sent first again; what is formed behind it while it is away names
	// it (or a batch behind it), so the hub writes them after it whatever order the
	// requests arrive in.
	p := h.pushed()
	resent := false
	for _, req := range p[first:] {
		switch {
		case req.BatchID == lost:
			resent = true
		case req.After == "":
			t.Errorf("batch %s (rows %v) was sent after the lost batch without naming the batch it follows", req.BatchID, keyIDs(t, req))
		}
	}
	if !resent {
		t.Errorf("the lost batch %s was not re-sent", lost)
	}
	seen := map[int64]int{}
	for _, req := range p {
		if req.BatchID == lost {
			continue
		}
		for _, id := range keyIDs(t, req) {
			seen[id]++
		}
	}
	for id := int64(10); id < 20; id++ {
		if want := map[bool]int{true: 0, false: 1}[id == 12 || id == 13]; seen[id] != want {
			t.Errorf("row %d sent in %d batches other than the lost one, want %d", id, seen[id], want)
		}
	}
	if len(readOutboxRows(t, db)) != 0 {
		t.Errorf("outbox not empty: %v", readOutboxRows(t, db))
	}
}

// TestPush_RefusedBatchAfterFailureIsRejected: when a batch fails (503) and a batch
// sent behind it is refused as such (400), the refused one still goes to
// _synchub_rejected; only the failed one stays open, and the next push re-sends only it.
func TestPush_RefusedBatchAfterFailureIsRejected(t *testing.T) {
	h, a, db := syncedItems(t, func(c *Config) { c.PushBatch, c.PushPipeline = 2, 3 })
	learnPushAfter(t, a, db)
	insertItems(t, db, 10, 16)
	var mu sync.Mutex
	failed := ""
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		mu.Lock()
		defer mu.Unlock()
		switch keyIDs(h.t, *req)[0] {
		case 10:
			if failed == "" {
				failed = req.BatchID
				return http.StatusServiceUnavailable, syncproto.Error{Code: "unavailable", Message: "try later"}
			}
		case 12:
			return http.StatusBadRequest, syncproto.Error{Code: "bad_change", Message: "row 12 is not acceptable"}
		}
		return 0, nil
	}
	if _, err := a.PushNow(context.Background()); err == nil {
		t.Fatal("PushNow succeeded although the first batch failed")
	}
	p := inSendingOrder(h.pushed()[1:])
	if len(p) != 3 || p[0].BatchID != failed || p[1].After != p[0].BatchID {
		t.Fatalf("%d pushes; want three, pipelined, the failed one first", len(p))
	}
	var left []string
	for _, r := range readOutboxRows(t, db) {
		left = append(left, r.ktext)
	}
	if fmt.Sprint(left) != "[10 11]" {
		t.Errorf("outbox holds rows %v, want only the failed batch's 10 and 11", left)
	}
	rej := rejectedRows(t, db)
	if len(rej) != 2 || !strings.Contains(rej[0], "bad_change") || !strings.Contains(rej[1], "bad_change") {
		t.Errorf("rejected %v, want rows 12 and 13 with the hub's code", rej)
	}
	pushNow(t, a)
	p = h.pushed()[4:]
	if len(p) != 1 || p[0].BatchID != failed {
		var rows [][]int64
		for _, req := range p {
			rows = append(rows, keyIDs(t, req))
		}
		t.Errorf("the next push sent batches of rows %v; want only the failed batch (10, 11) again", rows)
	}
}

// signalTransport tells, after a push response's body was closed (the agent holds the
// answer), on closed.
type signalTransport struct {
	rt     http.RoundTripper
	closed chan struct{}
}

func (s signalTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.rt.RoundTrip(r)
	if err == nil && r.URL.Path == "/v1/push" {
		resp.Body = &signalBody{ReadCloser: resp.Body, closed: s.closed}
	}
	return resp, err
}

type signalBody struct {
	io.ReadCloser
	closed chan<- struct{}
	once   sync.Once
}

func (b *signalBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.closed <- struct{}{} })
	return err
}

// TestClose_AppliesAnswersThatArrived: Close while a pipelined push waits for its first
// answer applies the answer to the batch behind it that had already arrived: the hub
// wrote it, so it must not be left open (and sent again). The first batch stays open.
func TestClose_AppliesAnswersThatArrived(t *testing.T) {
	bodies := make(chan struct{}, 16)
	tr := signalTransport{rt: http.DefaultTransport.(*http.Transport).Clone(), closed: bodies}
	h, a, db := syncedItems(t, func(c *Config) {
		c.PushBatch, c.PushPipeline = 1, 3
		c.HTTPClient = &http.Client{Transport: tr}
	})
	learnPushAfter(t, a, db)
	<-bodies // learnPushAfter's answer
	insertItems(t, db, 10, 12)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the fake hub's server closes
	h.onPush = func(n int, req *syncproto.PushRequest) (int, any) {
		if keyIDs(h.t, *req)[0] == 10 {
			<-release // never answered while the agent runs: Close gives up on it
		}
		return 0, nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.PushNow(context.Background())
		done <- err
	}()
	select {
	case <-bodies: // the answer to row 11's batch is in the agent's hands
	case <-time.After(holdLimit):
		t.Fatal("the second batch was not answered")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("PushNow returned %v, want ErrClosed", err)
		}
	case <-time.After(holdLimit):
		t.Fatal("PushNow did not return after Close")
	}
	rows := readOutboxRows(t, db)
	if len(rows) != 1 || rows[0].ktext != "10" || !rows[0].batch.Valid {
		t.Fatalf("outbox after Close %+v; want only row 10, in its open batch (row 11's answer applied)", rows)
	}
	// The next agent re-sends the first batch only.
	h.mu.Lock()
	h.onPush = nil
	h.mu.Unlock()
	k := len(h.pushed())
	b := openAgent(t, testConfig(t, h.url(), a.db.path))
	pushNow(t, b)
	if p := h.pushed()[k:]; len(p) != 1 || fmt.Sprint(keyIDs(t, p[0])) != "[10]" {
		t.Errorf("after reopening, pushes %+v; want only row 10's batch", p)
	}
}
