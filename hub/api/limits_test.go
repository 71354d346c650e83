package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/syncproto"
)

func TestLimits_BodyTooLarge(t *testing.T) {
	cfg := api.DefaultConfig()
	cfg.BodyLimit = 1024
	env := newAuthEnv(t, authEnvOpts{cfg: cfg, push: true, pcfg: noWaitConfig()})
	key := env.key(t, auth.KeySpec{Edge: "till-1"})
	base, _ := serve(t, env.srv)
	send := func(body []byte, enc string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/push", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key.Key)
		req.Header.Set("Content-Type", "application/json")
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		return resp, rb
	}
	big := pushBody("b1", orderInsert(1, 1, strings.Repeat("x", 2000)))
	resp, body := send(big, "")
	wantRefused(t, resp, body, http.StatusRequestEntityTooLarge, "body_too_large")
	// Compressed under the limit but larger once decompressed: also 413.
	resp, body = send(gz(t, big), "gzip")
	wantRefused(t, resp, body, http.StatusRequestEntityTooLarge, "body_too_large")
	if resp, body := send(pushBody("b2", orderInsert(1, 1, "small")), ""); resp.StatusCode != 200 {
		t.Fatalf("a body under the limit: %d %s", resp.StatusCode, body)
	}
}

func TestLimits_TooManyChanges(t *testing.T) {
	pcfg := noWaitConfig()
	pcfg.MaxBatchChanges = 2
	env := newAuthEnv(t, authEnvOpts{push: true, pcfg: pcfg})
	key := env.key(t, auth.KeySpec{Edge: "till-1"})
	resp, body := post(t, env.srv, "/v1/push", pushBody("b1", orderInsert(1, 1, "a"), orderInsert(2, 2, "b"), orderInsert(3, 3, "c")), bearer(key.Key)...)
	wantRefused(t, resp, body, http.StatusRequestEntityTooLarge, "batch_too_large")
	resp, body = post(t, env.srv, "/v1/push", pushBody("b2", orderInsert(1, 1, "a"), orderInsert(2, 2, "b")), bearer(key.Key)...)
	if resp.StatusCode != 200 {
		t.Fatalf("a batch at the limit: %d %s", resp.StatusCode, body)
	}
}

func TestLimits_RatePerEdge(t *testing.T) {
	cfg := api.DefaultConfig()
	cfg.Limits = api.Limits{RatePerSecond: 0.2, Burst: 2}
	env := newAuthEnv(t, authEnvOpts{cfg: cfg})
	k1 := env.key(t, auth.KeySpec{Edge: "till-1"})
	k2 := env.key(t, auth.KeySpec{Edge: "till-2"})
	for i := range 2 {
		if resp, body := get(t, env.srv, "/v1/schema", bearer(k1.Key)...); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body := get(t, env.srv, "/v1/schema", bearer(k1.Key)...)
	wantRefused(t, resp, body, http.StatusTooManyRequests, "rate_limited")
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 5 {
		t.Fatalf("Retry-After %q, want 1..5 seconds at 0.2 requests/s", resp.Header.Get("Retry-After"))
	}
	// Another edge has its own bucket.
	if resp, body := get(t, env.srv, "/v1/schema", bearer(k2.Key)...); resp.StatusCode != 200 {
		t.Fatalf("another edge: %d %s", resp.StatusCode, body)
	}
	// Open routes are not limited.
	for range 5 {
		if resp, _ := get(t, env.srv, "/healthz"); resp.StatusCode != 200 {
			t.Fatalf("healthz limited: %d", resp.StatusCode)
		}
	}
	_, limited := env.obs.counts()
	if limited["/v1/schema"] != 1 {
		t.Fatalf("observer rate-limited counts %v, want one on /v1/schema", limited)
	}
}

// authedPoll long-polls url with a bearer credential.
func authedPoll(ctx context.Context, url, cred string) <-chan pollResult {
	out := make(chan pollResult, 1)
	go func() {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- pollResult{err: err, took: time.Since(start)}
			return
		}
		defer resp.Body.Close()
		r := pollResult{status: resp.StatusCode}
		if resp.StatusCode == 200 {
			r.err = json.NewDecoder(resp.Body).Decode(&r.page)
		}
		r.took = time.Since(start)
		out <- r
	}()
	return out
}

func TestLimits_LongPollsPerEdge(t *testing.T) {
	cfg := api.DefaultConfig()
	cfg.Limits = api.Limits{MaxLongPolls: 1, LongPollRetryAfter: 3 * time.Second}
	env := newAuthEnv(t, authEnvOpts{cfg: cfg})
	env.store.commit(insertOrder(1, "a"))
	k1 := env.key(t, auth.KeySpec{Edge: "till-1"})
	k2 := env.key(t, auth.KeySpec{Edge: "till-2"})
	base, _ := serve(t, env.srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	reads := env.store.readCalls.Load()
	first := authedPoll(ctx, base+"/v1/changes?since=1&wait=15s", k1.Key)
	waitFor(t, 5*time.Second, "the first long-poll to wait", func() bool { return env.store.readCalls.Load() > reads })

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/changes?since=1&wait=15s", nil)
	req.Header.Set("Authorization", "Bearer "+k1.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e syncproto.Error
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || e.Code != "too_many_long_polls" || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("second long-poll: %d %+v Retry-After %q; want 429 too_many_long_polls, Retry-After 3", resp.StatusCode, e, resp.Header.Get("Retry-After"))
	}
	// A pull without wait and another edge's long-poll are not affected.
	plain := authedPoll(ctx, base+"/v1/changes?since=0", k1.Key)
	if r := <-plain; r.status != 200 {
		t.Fatalf("pull without wait: %+v", r)
	}
	other := authedPoll(ctx, base+"/v1/changes?since=1&wait=15s", k2.Key)

	env.store.commit(insertOrder(2, "b"))
	for _, ch := range []<-chan pollResult{first, other} {
		if r := <-ch; r.status != 200 || r.err != nil {
			t.Fatalf("long-poll after commit: %+v", r)
		}
	}
	// The slot is free again.
	again := authedPoll(ctx, base+"/v1/changes?since=2&wait=0.2", k1.Key)
	if r := <-again; r.status != 200 {
		t.Fatalf("long-poll after the first returned: %+v", r)
	}
	_, limited := env.obs.counts()
	if limited["/v1/changes"] != 1 {
		t.Fatalf("observer rate-limited counts %v", limited)
	}
}

func TestLimits_Validate(t *testing.T) {
	for _, l := range []api.Limits{
		{RatePerSecond: -1},
		{RatePerSecond: 5, Burst: 0},
		{MaxLongPolls: -1},
		{MaxLongPolls: 1, LongPollRetryAfter: 0},
	} {
		if err := l.Validate(); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	if err := api.DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
}
