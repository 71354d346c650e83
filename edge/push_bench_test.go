package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
)

// BenchmarkEdge_StreamedApply pulls the same changes twice in one run: once while
// bootstrapping (no per-row versions) and once as streamed changes after the edge caught
// up (a _synchub_rowver write per change), and prints both rates and their ratio.
func BenchmarkEdge_StreamedApply(b *testing.B) {
	const n = 20000
	for range b.N {
		h := newFakeHub(b, itemsTable())
		h.commit(0, ins(0, "seed"))
		a, _ := newAgent(b, h, func(c *Config) { c.PageLimit = 1000 })
		a.log = testLogger(nopTB{b})
		start := time.Now()
		for i := int64(1); i <= n; i += 100 {
			h.commit(0, inserts(i, i+99)...)
		}
		// Bootstrap: everything from version 0.
		t0 := time.Now()
		pullOnlyB(b, a)
		boot := time.Since(t0)
		// Streamed: the same number of updates after catching up.
		for i := int64(1); i <= n; i += 100 {
			var ch []cdc.Change
			for j := i; j < i+100; j++ {
				ch = append(ch, upd(j, fmt.Sprintf("item %d v2", j)))
			}
			h.commit(0, ch...)
		}
		t1 := time.Now()
		pullOnlyB(b, a)
		stream := time.Since(t1)
		_ = start
		br, sr := float64(n)/boot.Seconds(), float64(n)/stream.Seconds()
		b.ReportMetric(sr, "streamed_rows/s")
		fmt.Printf("BenchmarkEdge_StreamedApply: bootstrap %.0f rows/s, streamed %.0f rows/s (%d changes); streamed/bootstrap = %.2f\n", br, sr, n, sr/br)
	}
}

// BenchmarkEdge_CaptureAndPush measures the application's write rate into a captured
// table against the same writes into an uncaptured copy, in one transaction each, and
// then the rate of PushNow sending them to the fake hub.
func BenchmarkEdge_CaptureAndPush(b *testing.B) {
	const n = 20000
	for range b.N {
		h := newFakeHub(b, itemsTable())
		h.commit(0, ins(0, "seed"))
		a, path := newAgent(b, h)
		a.log = testLogger(nopTB{b})
		pullOnlyB(b, a)
		if err := a.InitSync(context.Background(), "items"); err != nil {
			b.Fatal(err)
		}
		db := reader(b, path)
		if _, err := db.Exec(`CREATE TABLE plain_items (id INTEGER PRIMARY KEY, name TEXT, price TEXT)`); err != nil {
			b.Fatal(err)
		}
		write := func(table string) time.Duration {
			t0 := time.Now()
			tx, err := db.Begin()
			if err != nil {
				b.Fatal(err)
			}
			st, err := tx.Prepare(`INSERT INTO ` + table + ` (id, name, price) VALUES (?, ?, ?)`)
			if err != nil {
				b.Fatal(err)
			}
			for i := 1; i <= n; i++ {
				if _, err := st.Exec(i, fmt.Sprintf("item %d", i), fmt.Sprintf("%d.50", i)); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			return time.Since(t0)
		}
		plain := write("plain_items")
		captured := write("items")
		t0 := time.Now()
		rep, err := a.PushNow(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		push := time.Since(t0)
		if rep.Sent != n {
			b.Fatalf("pushed %d changes, want %d", rep.Sent, n)
		}
		pr, cr, ur := float64(n)/plain.Seconds(), float64(n)/captured.Seconds(), float64(n)/push.Seconds()
		b.ReportMetric(ur, "pushed_rows/s")
		fmt.Printf("BenchmarkEdge_CaptureAndPush: uncaptured inserts %.0f rows/s, captured %.0f rows/s (captured/uncaptured = %.2f); push %.0f changes/s in batches of %d\n",
			pr, cr, cr/pr, ur, a.cfg.PushBatch)
	}
}

func pullOnlyB(b *testing.B, a *Agent) {
	b.Helper()
	for range 100000 {
		res, err := a.step(context.Background(), 0)
		if err != nil {
			b.Fatal(err)
		}
		if res.caughtUp {
			return
		}
	}
	b.Fatal("pull did not catch up")
}

// nopTB silences the agent's logs in benchmarks.
type nopTB struct{ testing.TB }

func (nopTB) Log(...any) {}
