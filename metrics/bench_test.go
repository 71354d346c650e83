package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkHub_ObserveRequest is the per-request cost of the API's Observe hook.
func BenchmarkHub_ObserveRequest(b *testing.B) {
	m := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveRequest(RouteChanges, 200, 3*time.Millisecond, 100, 20000)
	}
}

// BenchmarkHub_ScrapeEdges is the cost of one scrape of a hub with 100 000 edges, with
// and without per-edge series.
func BenchmarkHub_ScrapeEdges(b *testing.B) {
	edges := make([]EdgeState, 100_000)
	now := time.Now()
	for i := range edges {
		edges[i] = EdgeState{ID: fmt.Sprintf("edge-%06d", i), VersionsBehind: int64(i % 5000), LastSeen: now, Connected: i%3 == 0, Stale: i%10 == 0}
	}
	for _, perEdge := range []bool{false, true} {
		b.Run(fmt.Sprintf("per_edge=%v", perEdge), func(b *testing.B) {
			reg := prometheus.NewRegistry()
			m := New(Options{PerEdge: perEdge})
			if err := m.Register(reg); err != nil {
				b.Fatal(err)
			}
			m.SetEdges(func() []EdgeState { return edges })
			b.ReportAllocs()
			for b.Loop() {
				mfs, err := reg.Gather()
				if err != nil {
					b.Fatal(err)
				}
				if len(mfs) == 0 {
					b.Fatal("nothing gathered")
				}
			}
		})
	}
}
