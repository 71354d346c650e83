package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub/syncproto"
)

// TestIntegration_PushPipelineKeepsOrder: an edge pipelines its batches (parents in one
// batch, their children in the next) and the network delivers the first batch late, so
// the hub receives a batch before the one it follows. The hub writes them in the edge's
// order: no child is refused by its foreign key, and PostgreSQL holds every row.
func TestIntegration_PushPipelineKeepsOrder(t *testing.T) {
	s, _, _ := pushStack(t)
	proxy, arrivals := delayFirstPush(t, s.url, 1, 400*time.Millisecond)
	a := s.newEdgeWith("edge-p", func(c *edge.Config) {
		c.HubURL = proxy
		c.PushBatch, c.PushPipeline = 5, 3
	})
	s.syncEdge(a)
	if err := a.InitSyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	warmUp(t, a) // the edge pipelines once the hub has shown it orders batches
	for _, base := range []int{10, 20} {
		for i := base; i < base+5; i++ {
			edgeExec(t, a, `INSERT INTO parent VALUES (?, ?)`, i, fmt.Sprintf("parent %d", i))
		}
		for i := base; i < base+5; i++ {
			edgeExec(t, a, `INSERT INTO child VALUES (?, ?, ?)`, i, i, fmt.Sprintf("child of %d", i))
		}
	}
	rep := push(t, a)
	if rep.Applied != 20 || rep.Rejected != 0 || rep.Batches != 4 {
		t.Fatalf("push: %+v, want 4 batches, 20 applied and nothing rejected", rep)
	}
	got := arrivals()[1:] // after the warm-up
	if len(got) < 2 || got[0].After == "" {
		t.Fatalf("the hub did not receive a batch before the one it follows (arrivals %+v); the test proves nothing", got)
	}
	if n := s.exec(`SELECT count(*) FROM child WHERE id >= 10`); n != "10" {
		t.Fatalf("PostgreSQL holds %s of the 10 children", n)
	}
	if n := s.exec(`SELECT count(*) FROM parent WHERE id >= 10`); n != "10" {
		t.Fatalf("PostgreSQL holds %s of the 10 parents", n)
	}
	s.waitHubCaughtUp()
	s.syncEdge(a)
	s.assertEdgeEqualsSource(a)
}

// warmUp pushes one change, so that the edge has seen the hub's X-Synchub-Push-After
// answer and pipelines from then on.
func warmUp(t *testing.T, a *edge.Agent) {
	t.Helper()
	edgeExec(t, a, `INSERT INTO parent VALUES (?, ?)`, 9, "warm-up")
	if rep := push(t, a); rep.Applied != 1 {
		t.Fatalf("warm-up push: %+v", rep)
	}
}

// pushArrival is a push request as the hub received it.
type pushArrival struct{ BatchID, After string }

// delayFirstPush starts a loopback proxy to target that, after skip pushes, holds the
// first POST /v1/push that follows no other batch (the head of the edge's pipeline)
// for delay before forwarding it, and records the order in which push requests reach
// target.
func delayFirstPush(t testing.TB, target string, skip int, delay time.Duration) (proxyURL string, arrivals func() []pushArrival) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	var (
		mu      sync.Mutex
		seen    int
		delayed bool
		order   []pushArrival
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/push" {
			rp.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var req syncproto.PushRequest
		plain := body
		if r.Header.Get("Content-Encoding") == "gzip" {
			if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
				plain, _ = io.ReadAll(zr)
			}
		}
		if err := json.Unmarshal(plain, &req); err != nil {
			t.Errorf("proxy: push body: %v", err)
		}
		mu.Lock()
		seen++
		first := seen > skip && req.After == "" && !delayed // the first batch of a pipeline
		delayed = delayed || first
		mu.Unlock()
		if first {
			time.Sleep(delay)
		}
		mu.Lock()
		order = append(order, pushArrival{req.BatchID, req.After})
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), func() []pushArrival {
		mu.Lock()
		defer mu.Unlock()
		return append([]pushArrival(nil), order...)
	}
}

// TestIntegration_PushPipelineLostAnswer: the answer to the first of several pipelined
// batches is lost after the hub committed it. The batches behind it are still written
// and answered; the next push re-sends the lost batch, which gets the stored answer, and
// PostgreSQL saw every row written exactly once.
func TestIntegration_PushPipelineLostAnswer(t *testing.T) {
	s, _, _ := pushStack(t)
	var drops atomic.Int32
	drops.Store(-1) // disarmed for the warm-up push
	proxy := dropFirstPushResponse(t, s.url, &drops)
	a := s.newEdgeWith("edge-q", func(c *edge.Config) {
		c.HubURL = proxy
		c.PushBatch, c.PushPipeline = 5, 3
	})
	s.syncEdge(a)
	if err := a.InitSyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	warmUp(t, a)
	drops.Store(0)
	for i := 100; i < 115; i++ {
		edgeExec(t, a, `INSERT INTO client_notes (id, title, body, n) VALUES (?, ?, 'b', 1)`, i, fmt.Sprintf("t%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := a.PushNow(ctx)
	if err == nil {
		t.Fatal("first push: want an error, the first answer was dropped")
	}
	if drops.Load() != 1 || first.Applied == 0 {
		t.Fatalf("proxy dropped %d answers, first push %+v: want 1 dropped and the batches behind it applied", drops.Load(), first)
	}
	second := push(t, a)
	if first.Applied+second.Applied != 15 {
		t.Fatalf("pushes applied %d + %d changes, want 15", first.Applied, second.Applied)
	}
	s.waitHubCaughtUp()
	if got := s.exec(`SELECT count(*) || '/' || sum(n) FROM writes WHERE tbl = 'client_notes' AND id >= 100`); got != "15/15" {
		t.Fatalf("PostgreSQL wrote rows/times %s, want each of the 15 rows once (15/15)", got)
	}
	if st := a.Status(); st.Pending != 0 {
		t.Fatalf("outbox holds %d entries after the re-send", st.Pending)
	}
}
