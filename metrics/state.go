package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// EdgeState is one edge as the hub last saw it; SetEdges' function returns them.
type EdgeState struct {
	// ID is the edge's id; it becomes a label only with Options.PerEdge.
	ID string
	// VersionsBehind is the change log's head minus the edge's watermark (0 when the
	// edge has caught up).
	VersionsBehind int64
	// LastSeen is the time of the edge's latest request.
	LastSeen time.Time
	// Connected: the edge has a request in flight or made one recently (its owner
	// decides what recently means). Stale: the edge has not been seen for longer than
	// the hub's staleness threshold. An edge can be neither (idle, not yet stale).
	Connected, Stale bool
}

// QueueCounts are the open items of the push service's queues.
type QueueCounts struct {
	// Conflicts is the number of conflicts waiting for an admin (policy manual).
	Conflicts int
	// Rejected is the number of rejected changes neither retried nor discarded.
	Rejected int
}

// VersionsBehindBuckets are the upper bounds of synchub_edges_versions_behind.
var VersionsBehindBuckets = []float64{0, 1, 10, 100, 1000, 10000, 100000, 1000000}

// SetEdges sets the function the hub's metrics read the edges from at every scrape.
// Until it is set, the edge metrics are absent. fn must be fast and safe for
// concurrent use; it must not call back into the metrics.
func (m *Hub) SetEdges(fn func() []EdgeState) {
	m.state.mu.Lock()
	m.state.edges = fn
	m.state.mu.Unlock()
}

// SetQueueCounts sets the function that reports the open conflicts and rejected changes
// at every scrape; ok false (e.g. the meta database did not answer) omits the gauges
// from that scrape rather than reporting a wrong zero.
func (m *Hub) SetQueueCounts(fn func() (c QueueCounts, ok bool)) {
	m.state.mu.Lock()
	m.state.queues = fn
	m.state.mu.Unlock()
}

// stateCollector reads edge and queue state when scraped.
type stateCollector struct {
	perEdge bool

	mu     sync.Mutex
	edges  func() []EdgeState
	queues func() (QueueCounts, bool)

	connected, stale, behind   *prometheus.Desc
	edgeBehind, edgeLastSeen   *prometheus.Desc
	openConflicts, openRejects *prometheus.Desc
}

func newStateCollector(perEdge bool) *stateCollector {
	name := func(sub, n string) string { return prometheus.BuildFQName(namespace, sub, n) }
	return &stateCollector{
		perEdge: perEdge,
		connected: prometheus.NewDesc(name("edges", "connected"),
			"Edges with a request in flight or a recent one.", nil, nil),
		stale: prometheus.NewDesc(name("edges", "stale"),
			"Edges not seen for longer than the hub's staleness threshold.", nil, nil),
		behind: prometheus.NewDesc(name("edges", "versions_behind"),
			"Distribution over known edges of versions between the change log's head and the edge's watermark.", nil, nil),
		edgeBehind: prometheus.NewDesc(name("edges", "behind_versions"),
			"Versions between the change log's head and this edge's watermark (only with metrics.per_edge).", []string{"edge"}, nil),
		edgeLastSeen: prometheus.NewDesc(name("edges", "last_seen_timestamp_seconds"),
			"Unix time of this edge's latest request (only with metrics.per_edge).", []string{"edge"}, nil),
		openConflicts: prometheus.NewDesc(name("push", "open_conflicts"),
			"Conflicts waiting for an admin's resolution.", nil, nil),
		openRejects: prometheus.NewDesc(name("push", "open_rejected_changes"),
			"Rejected changes neither retried nor discarded yet.", nil, nil),
	}
}

func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.connected
	ch <- s.stale
	ch <- s.behind
	if s.perEdge {
		ch <- s.edgeBehind
		ch <- s.edgeLastSeen
	}
	ch <- s.openConflicts
	ch <- s.openRejects
}

func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	edges, queues := s.edges, s.queues
	s.mu.Unlock()
	if edges != nil {
		s.collectEdges(ch, edges())
	}
	if queues != nil {
		if c, ok := queues(); ok {
			ch <- prometheus.MustNewConstMetric(s.openConflicts, prometheus.GaugeValue, float64(c.Conflicts))
			ch <- prometheus.MustNewConstMetric(s.openRejects, prometheus.GaugeValue, float64(c.Rejected))
		}
	}
}

func (s *stateCollector) collectEdges(ch chan<- prometheus.Metric, edges []EdgeState) {
	var connected, stale int
	var sum float64
	// counts[i] is the number of edges whose value falls in bucket i alone; the last
	// slot holds those above every bound.
	counts := make([]uint64, len(VersionsBehindBuckets)+1)
	for _, e := range edges {
		if e.Connected {
			connected++
		}
		if e.Stale {
			stale++
		}
		behind := float64(max(e.VersionsBehind, 0))
		sum += behind
		i := 0
		for i < len(VersionsBehindBuckets) && behind > VersionsBehindBuckets[i] {
			i++
		}
		counts[i]++
	}
	buckets := make(map[float64]uint64, len(VersionsBehindBuckets))
	var cumulative uint64
	for i, b := range VersionsBehindBuckets {
		cumulative += counts[i]
		buckets[b] = cumulative
	}
	ch <- prometheus.MustNewConstMetric(s.connected, prometheus.GaugeValue, float64(connected))
	ch <- prometheus.MustNewConstMetric(s.stale, prometheus.GaugeValue, float64(stale))
	ch <- prometheus.MustNewConstHistogram(s.behind, uint64(len(edges)), sum, buckets)
	if !s.perEdge {
		return
	}
	seen := make(map[string]bool, len(edges))
	for _, e := range edges {
		if e.ID == "" || seen[e.ID] {
			continue // a duplicate label set would fail the whole scrape
		}
		seen[e.ID] = true
		ch <- prometheus.MustNewConstMetric(s.edgeBehind, prometheus.GaugeValue, float64(max(e.VersionsBehind, 0)), e.ID)
		if !e.LastSeen.IsZero() {
			ch <- prometheus.MustNewConstMetric(s.edgeLastSeen, prometheus.GaugeValue, float64(e.LastSeen.UnixNano())/1e9, e.ID)
		}
	}
}
