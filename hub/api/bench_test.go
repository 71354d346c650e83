package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/syncproto"
)

// BenchmarkAPI_ChangesPage serves one stored 1000-change page over a loopback
// connection, as stored bytes (with and without gzip) and, for comparison, re-encoded
// with encoding/json from decoded rows on every request as a server without stored
// page bodies would.
func BenchmarkAPI_ChangesPage(b *testing.B) {
	store := newFakeStore(ordersTable)
	changes := make([]cdc.Change, 1000)
	for i := range changes {
		changes[i] = insertOrder(int64(i+1), fmt.Sprintf("order note %d with some text", i))
	}
	store.commit(changes...)
	page, err := store.ReadPage(context.Background(), changelog.PageRequest{Limit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	store.readPage = func(context.Context, changelog.PageRequest) (*changelog.Page, error) { return page, nil }
	s, err := api.New(api.DefaultConfig(), api.Deps{Store: store}, nil)
	if err != nil {
		b.Fatal(err)
	}
	base, _ := serve(b, s)

	decoded := decodeForReencode(b, page.Body)
	naive := fiber.New(fiber.Config{DisableStartupMessage: true})
	naive.Get("/v1/changes", func(c *fiber.Ctx) error {
		body, err := json.Marshal(decoded)
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = naive.Listener(ln) }()
	b.Cleanup(func() { _ = naive.ShutdownWithTimeout(5 * time.Second) })
	naiveBase := "http://" + ln.Addr().String()

	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}}
	fetch := func(b *testing.B, url string, gzip bool) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if gzip {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		b.ReportAllocs()
		var n int64
		for b.Loop() {
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d, err %v", resp.StatusCode, err)
			}
		}
		b.ReportMetric(float64(n), "body_bytes")
	}
	var stored, storedGzip, reencoded time.Duration
	b.Run("stored", func(b *testing.B) {
		fetch(b, base+"/v1/changes?since=0", false)
		stored = b.Elapsed() / time.Duration(b.N)
	})
	b.Run("stored_gzip", func(b *testing.B) {
		fetch(b, base+"/v1/changes?since=0", true)
		storedGzip = b.Elapsed() / time.Duration(b.N)
	})
	b.Run("reencoded", func(b *testing.B) {
		fetch(b, naiveBase+"/v1/changes?since=0", false)
		reencoded = b.Elapsed() / time.Duration(b.N)
	})
	if stored > 0 && reencoded > 0 {
		fmt.Printf("BenchmarkAPI_ChangesPage: 1000-change page: stored %v/op, stored+gzip %v/op, re-encoded with encoding/json %v/op; re-encoding is %.1fx slower than serving stored bytes\n",
			stored, storedGzip, reencoded, float64(reencoded)/float64(stored))
	}
}

// decodeForReencode turns a page body into plain Go values, the form a server that
// does not keep encoded pages would hold before encoding each response.
func decodeForReencode(b testing.TB, body []byte) any {
	var p struct {
		syncproto.Page
		Entries []struct {
			syncproto.Entry
			Changes []struct {
				Table string         `json:"t"`
				Op    string         `json:"op"`
				Row   map[string]any `json:"row,omitempty"`
				Key   map[string]any `json:"key,omitempty"`
			} `json:"changes"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		b.Fatal(err)
	}
	if len(p.Entries) != 1 || len(p.Entries[0].Changes) != 1000 {
		b.Fatalf("decoded %d entries", len(p.Entries))
	}
	return p
}
