package metrics

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// exercisedHub returns a registry holding a Hub (with opts), the Go and process
// collectors, and at least one series of every hub metric.
func exercisedHub(t *testing.T, opts Options) (*prometheus.Registry, *Hub) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m := New(opts)
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	m.IngestTransactions.WithLabelValues("postgres").Add(3)
	m.IngestChanges.WithLabelValues("postgres", "public.items", "insert").Add(5)
	m.IngestCommits.Inc()
	m.IngestCommitSeconds.Observe(0.002)
	m.IngestErrors.WithLabelValues("postgres").Inc()
	m.SourceLagSeconds.Set(0.5)
	m.SourceLagBytes.Set(4096)
	m.SourceUp.Set(1)
	m.SnapshotRows.WithLabelValues("public.items").Add(10)
	m.ChangelogHeadVersion.Set(42)
	m.ChangelogEntries.Set(100)
	m.ChangelogBytes.Set(2048)
	m.ChangelogSchemaVersion.Set(1)
	m.CompactionRemoved.Add(2)
	m.ObserveRequest(RouteChanges, 200, 20*time.Millisecond, 7, 900)
	m.ObserveRequest(RouteChanges, 410, time.Millisecond, 0, 100)
	m.ObserveRequest(RoutePush, 200, 30*time.Millisecond, 3, 300)
	m.PushResult("applied")
	m.Conflict("public.items", "manual", "manual")
	m.Rejected("constraint")
	m.AuthFailed("bad_token")
	m.RateLimited(RoutePush)
	m.SetEdges(func() []EdgeState {
		return []EdgeState{
			{ID: "a", VersionsBehind: 0, LastSeen: time.Unix(1700000000, 0), Connected: true},
			{ID: "b", VersionsBehind: 5, LastSeen: time.Unix(1700000100, 0), Connected: true},
			{ID: "c", VersionsBehind: 5000, Stale: true},
		}
	})
	m.SetQueueCounts(func() (QueueCounts, bool) { return QueueCounts{Conflicts: 4, Rejected: 2}, true })
	return reg, m
}

// describedNames returns the metric names a collector describes.
func describedNames(c prometheus.Collector) []string {
	ch := make(chan *prometheus.Desc, 256)
	go func() { c.Describe(ch); close(ch) }()
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	return names
}

func gathered(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// TestHub_NamesAndLint: every hub metric carries the synchub_ prefix, follows
// Prometheus' naming conventions (promlint) and is gathered once exercised.
func TestHub_NamesAndLint(t *testing.T) {
	reg, m := exercisedHub(t, Options{PerEdge: true})
	names := describedNames(m)
	if len(names) < 30 {
		t.Fatalf("hub describes %d metrics, want at least 30: %v", len(names), names)
	}
	got := gathered(t, reg)
	for _, n := range names {
		if !strings.HasPrefix(n, "synchub_") {
			t.Errorf("metric %s lacks the synchub_ prefix", n)
		}
		if got[n] == nil {
			t.Errorf("metric %s is described but was not gathered after exercising every hook", n)
		}
	}
	for _, n := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if got[n] == nil {
			t.Errorf("registry lacks %s", n)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "synchub_") {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	}
}

// TestHub_RegisterTwice: a second hub on the same registry is an error, not a panic.
func TestHub_RegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := New(Options{}).Register(reg); err != nil {
		t.Fatal(err)
	}
	err := New(Options{}).Register(reg)
	var are prometheus.AlreadyRegisteredError
	if err == nil || !errors.As(err, &are) {
		t.Fatalf("second Register: %v, want AlreadyRegisteredError", err)
	}
}

// TestHub_ObserveRequest: pulls and pushes feed their own counters and histograms.
func TestHub_ObserveRequest(t *testing.T) {
	m := New(Options{})
	m.ObserveRequest(RouteChanges, 200, time.Millisecond, 7, 900)
	m.ObserveRequest(RouteChanges, 200, time.Millisecond, 3, 100)
	m.ObserveRequest(RouteChanges, 410, time.Millisecond, 0, 50)
	m.ObserveRequest(RoutePush, 200, time.Millisecond, 4, 70)
	m.ObserveRequest(RoutePush, 503, time.Millisecond, 0, 70)
	m.ObserveRequest("/v1/status", 200, time.Millisecond, 0, 70)
	for name, tc := range map[string]struct{ got, want float64 }{
		"pull changes":     {testutil.ToFloat64(m.PullChanges), 10},
		"pull bytes":       {testutil.ToFloat64(m.PullBytes), 1000},
		"pull gone":        {testutil.ToFloat64(m.PullGone), 1},
		"pull pages":       {float64(histCount(t, m.PullPageChanges)), 2},
		"push batches":     {float64(histCount(t, m.PushBatchChanges)), 1},
		"push batch sum":   {histSum(t, m.PushBatchChanges), 4},
		"changes 200 reqs": {float64(histCount(t, m.HTTPRequestSeconds.WithLabelValues(RouteChanges, "200").(prometheus.Histogram))), 2},
		"push 503 reqs":    {float64(histCount(t, m.HTTPRequestSeconds.WithLabelValues(RoutePush, "503").(prometheus.Histogram))), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", name, tc.got, tc.want)
		}
	}
}

func histMetric(t *testing.T, h prometheus.Metric) *dto.Histogram {
	t.Helper()
	var d dto.Metric
	if err := h.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetHistogram()
}

func histCount(t *testing.T, h prometheus.Histogram) uint64 { return histMetric(t, h).GetSampleCount() }
func histSum(t *testing.T, h prometheus.Histogram) float64  { return histMetric(t, h).GetSampleSum() }

// TestHub_BoundedLabels: label values given by other packages are capped, so a bug
// there cannot create unbounded series.
func TestHub_BoundedLabels(t *testing.T) {
	m := New(Options{})
	for i := range 100 {
		m.AuthFailed(fmt.Sprintf("reason_%d", i))
		m.RateLimited(fmt.Sprintf("/route/%d", i))
	}
	m.AuthFailed("")
	if n := testutil.CollectAndCount(m.AuthFailures); n != maxLabelValues+2 {
		t.Errorf("auth failure series = %d, want %d (32 reasons, other, unknown)", n, maxLabelValues+2)
	}
	if got := testutil.ToFloat64(m.AuthFailures.WithLabelValues("other")); got != 100-maxLabelValues {
		t.Errorf(`auth failures with reason "other" = %v, want %d`, got, 100-maxLabelValues)
	}
	if n := testutil.CollectAndCount(m.RateLimitedRequests); n != maxLabelValues+1 {
		t.Errorf("rate-limited series = %d, want %d", n, maxLabelValues+1)
	}
	m.AuthFailed("reason_3")
	if got := testutil.ToFloat64(m.AuthFailures.WithLabelValues("reason_3")); got != 2 {
		t.Errorf("a known reason stays its own series: got %v, want 2", got)
	}
}

// TestHub_Edges: edge counts and the versions-behind histogram are computed at scrape
// time; per-edge series exist only with PerEdge.
func TestHub_Edges(t *testing.T) {
	edges := []EdgeState{
		{ID: "a", VersionsBehind: 0, Connected: true, LastSeen: time.Unix(1700000000, 500e6)},
		{ID: "b", VersionsBehind: 7, Connected: true},
		{ID: "c", VersionsBehind: 2000, Stale: true},
		{ID: "d", VersionsBehind: -3},              // a watermark ahead of a stale head counts as 0
		{ID: "a", VersionsBehind: 1, Stale: false}, // duplicate id: no second per-edge series
	}
	for _, perEdge := range []bool{false, true} {
		t.Run(fmt.Sprintf("per_edge=%v", perEdge), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := New(Options{PerEdge: perEdge})
			if err := m.Register(reg); err != nil {
				t.Fatal(err)
			}
			if got := gathered(t, reg); got["synchub_edges_connected"] != nil {
				t.Fatal("edge metrics gathered before SetEdges")
			}
			m.SetEdges(func() []EdgeState { return edges })
			got := gathered(t, reg)
			if v := got["synchub_edges_connected"].GetMetric()[0].GetGauge().GetValue(); v != 2 {
				t.Errorf("connected = %v, want 2", v)
			}
			if v := got["synchub_edges_stale"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
				t.Errorf("stale = %v, want 1", v)
			}
			h := got["synchub_edges_versions_behind"].GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 5 || h.GetSampleSum() != 2008 {
				t.Errorf("versions behind count %d sum %v, want 5 and 2008", h.GetSampleCount(), h.GetSampleSum())
			}
			want := map[float64]uint64{0: 2, 1: 3, 10: 4, 100: 4, 1000: 4, 10000: 5}
			for _, b := range h.GetBucket() {
				if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
					t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
				}
			}
			per := got["synchub_edges_behind_versions"]
			if !perEdge {
				if per != nil {
					t.Fatalf("per-edge series without PerEdge: %v", per)
				}
				return
			}
			if n := len(per.GetMetric()); n != 4 {
				t.Fatalf("per-edge series = %d, want 4 (one per distinct id)", n)
			}
			seen := got["synchub_edges_last_seen_timestamp_seconds"].GetMetric()
			if len(seen) != 1 || seen[0].GetGauge().GetValue() != 1700000000.5 {
				t.Errorf("last seen series: %v, want one at 1700000000.5", seen)
			}
		})
	}
}

// TestHub_QueueCounts: the open-queue gauges follow the function and are left out of a
// scrape when it cannot answer.
func TestHub_QueueCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(Options{})
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	ok := true
	m.SetQueueCounts(func() (QueueCounts, bool) { return QueueCounts{Conflicts: 3, Rejected: 1}, ok })
	got := gathered(t, reg)
	if v := got["synchub_push_open_conflicts"].GetMetric()[0].GetGauge().GetValue(); v != 3 {
		t.Errorf("open conflicts = %v, want 3", v)
	}
	if v := got["synchub_push_open_rejected_changes"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("open rejected = %v, want 1", v)
	}
	ok = false
	if got := gathered(t, reg); got["synchub_push_open_conflicts"] != nil {
		t.Error("open conflicts reported although the count failed")
	}
}

// TestEdge_Collectors: the agent's collectors register, lint clean and follow Pulled
// and Pushed.
func TestEdge_Collectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := NewEdge(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewEdge(reg); err == nil {
		t.Error("a second NewEdge on the same registry succeeded")
	}
	e.Pulled("ok", 10*time.Millisecond, 12, 90, 100)
	e.Pulled("gone", time.Millisecond, 0, 0, 0)
	e.Pulled("ok", 10*time.Millisecond, 10, 100, 100)
	e.Pushed(5*time.Millisecond, nil, 3, 1, 1)
	e.Pushed(5*time.Millisecond, errors.New("connection refused"), 0, 0, 0)
	for name, tc := range map[string]struct{ got, want float64 }{
		"applied":     {testutil.ToFloat64(e.AppliedChanges), 22},
		"watermark":   {testutil.ToFloat64(e.Watermark), 100},
		"behind":      {testutil.ToFloat64(e.VersionsBehind), 0},
		"rebootstrap": {testutil.ToFloat64(e.Rebootstraps), 1},
		"pulls ok":    {testutil.ToFloat64(e.Pulls.WithLabelValues("ok")), 2},
		"push conf":   {testutil.ToFloat64(e.PushChanges.WithLabelValues("conflict")), 1},
		"push errors": {testutil.ToFloat64(e.PushErrors), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", name, tc.got, tc.want)
		}
	}
	if testutil.ToFloat64(e.LastSync) == 0 {
		t.Error("last sync not set after a pull that reached the head")
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	for _, n := range describedNames(e.Pulls) {
		if !strings.HasPrefix(n, "synchub_agent_") {
			t.Errorf("edge metric %s is not under synchub_agent_", n)
		}
	}
}
