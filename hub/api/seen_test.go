package api_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/edges"
)

type seenCall struct {
	edge      string
	kind      edges.Kind
	watermark int64
	scope     string
}

func TestAPI_SeenAfterPullAndPush(t *testing.T) {
	store := newFakeStore(ordersTable)
	store.commit(insertOrder(1, "a"))
	var (
		mu    sync.Mutex
		calls []seenCall
	)
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store, Seen: func(id string, k edges.Kind, w int64, scope string) {
		mu.Lock()
		calls = append(calls, seenCall{id, k, w, scope})
		mu.Unlock()
	}})
	if resp, body := get(t, s, "/v1/changes?since=1&wait=0", "X-Synchub-Edge-Id", "till-1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("pull: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(t, s, "/v1/changes?since=0", auth.EdgeHeader, "till-2"); resp.StatusCode != http.StatusOK {
		t.Fatalf("pull: %d %s", resp.StatusCode, body)
	}
	// A request that names no edge and a malformed pull are not recorded.
	get(t, s, "/v1/changes?since=0")
	get(t, s, "/v1/changes?since=x", "X-Synchub-Edge-Id", "till-3")
	// Without an Applier the push is refused (503) but the edge has still made contact.
	req, _ := http.NewRequest(http.MethodPost, "/v1/push", strings.NewReader(`{"edge":"till-4","batch_id":"b1","sent_at":1,"changes":[]}`))
	do(t, s, req)

	mu.Lock()
	defer mu.Unlock()
	want := []seenCall{{"till-1", edges.Pull, 1, ""}, {"till-2", edges.Pull, 0, ""}}
	if len(calls) != len(want) {
		t.Fatalf("Seen calls = %+v, want %+v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("Seen call %d = %+v, want %+v", i, calls[i], want[i])
		}
	}
}

func TestAPI_SeenUsesIdentity(t *testing.T) {
	store := newFakeStore(ordersTable)
	var got []seenCall
	s := newServer(t, api.DefaultConfig(), api.Deps{Store: store, Seen: func(id string, k edges.Kind, w int64, scope string) {
		got = append(got, seenCall{id, k, w, scope})
	}})
	// The auth middleware runs in front of the API, as when the hub mounts it.
	app := fiber.New()
	app.Use(func(c *fiber.Ctx) error {
		auth.WithIdentity(c, &auth.Identity{Edge: "till-9", Method: "api_key", Claims: map[string]any{"store_id": "7"}})
		return c.Next()
	})
	app.Mount("/", s.App())
	req, _ := http.NewRequest(http.MethodGet, "/v1/changes?since=0", nil)
	req.Header.Set("X-Synchub-Edge-Id", "spoofed")
	resp, err := app.Test(req, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 1 || got[0].edge != "till-9" || got[0].scope != `{"store_id":"7"}` {
		t.Fatalf("Seen calls = %+v, want till-9 from the identity with its claims", got)
	}
}
