package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Edge holds an edge agent's collectors (subsystem "agent", so they never clash with the
// hub's per-edge series). One agent process is one edge, so no series carries an edge
// id; Prometheus' instance label tells agents apart. Its methods are safe for
// concurrent use.
type Edge struct {
	// Pulls counts pull requests by result: ok, empty (long-poll ended without
	// changes), gone (410, re-bootstrap), error.
	Pulls *prometheus.CounterVec // labels: result
	// PullSeconds is the duration of one pull request, long-poll wait included.
	PullSeconds prometheus.Histogram
	// AppliedChanges counts changes applied to the local database.
	AppliedChanges prometheus.Counter
	// Watermark is the last version applied locally.
	Watermark prometheus.Gauge
	// HubHead is the hub's head version as of the latest pull.
	HubHead prometheus.Gauge
	// VersionsBehind is HubHead minus Watermark as of the latest pull.
	VersionsBehind prometheus.Gauge
	// LastSync is the Unix time of the latest pull that reached the hub's head.
	LastSync prometheus.Gauge
	// Rebootstraps counts re-bootstraps (watermark older than the hub's horizon).
	Rebootstraps prometheus.Counter
	// OutboxPending is the number of local writes not yet answered by the hub.
	OutboxPending prometheus.Gauge
	// PushChanges counts pushed changes by the hub's answer: applied, conflict, rejected.
	PushChanges *prometheus.CounterVec // labels: status
	// PushSeconds is the duration of one push request.
	PushSeconds prometheus.Histogram
	// PushErrors counts push requests that failed (network, 5xx); the batch is re-sent.
	PushErrors prometheus.Counter
}

// NewEdge creates an edge agent's collectors and registers them on reg.
func NewEdge(reg prometheus.Registerer) (*Edge, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "agent", Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "agent", Name: name, Help: help})
	}
	durations := []float64{0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60}
	e := &Edge{
		Pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "agent", Name: "pulls_total",
			Help: "Pull requests by result: ok, empty, gone (re-bootstrap), error.",
		}, []string{"result"}),
		PullSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "agent", Name: "pull_duration_seconds",
			Help: "Duration of one pull request, long-poll wait included.", Buckets: durations,
		}),
		AppliedChanges: counter("applied_changes_total", "Changes from the hub applied to the local database."),
		Watermark:      gauge("watermark_version", "Last change-log version applied locally."),
		HubHead:        gauge("hub_head_version", "The hub's head version as of the latest pull."),
		VersionsBehind: gauge("versions_behind", "Hub head minus local watermark as of the latest pull."),
		LastSync:       gauge("last_sync_timestamp_seconds", "Unix time of the latest pull that reached the hub's head."),
		Rebootstraps:   counter("rebootstraps_total", "Re-bootstraps because the watermark was older than the hub's horizon."),
		OutboxPending:  gauge("outbox_pending_changes", "Local writes not yet answered by the hub."),
		PushChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "agent", Name: "push_changes_total",
			Help: "Pushed local changes by the hub's answer: applied, conflict, rejected.",
		}, []string{"status"}),
		PushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "agent", Name: "push_duration_seconds",
			Help: "Duration of one push request.", Buckets: durations,
		}),
		PushErrors: counter("push_errors_total", "Push requests that failed and will be re-sent."),
	}
	for _, c := range []prometheus.Collector{
		e.Pulls, e.PullSeconds, e.AppliedChanges, e.Watermark, e.HubHead, e.VersionsBehind, e.LastSync,
		e.Rebootstraps, e.OutboxPending, e.PushChanges, e.PushSeconds, e.PushErrors,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register edge metrics: %w (is a second agent using the same registry?)", err)
		}
	}
	return e, nil
}

// Pulled records one pull: its result (ok, empty, gone, error), duration, the changes
// applied, and for a successful pull the new watermark and the hub's head.
func (e *Edge) Pulled(result string, d time.Duration, applied int, watermark, head int64) {
	e.Pulls.WithLabelValues(result).Inc()
	e.PullSeconds.Observe(d.Seconds())
	if result != "ok" && result != "empty" {
		if result == "gone" {
			e.Rebootstraps.Inc()
		}
		return
	}
	e.AppliedChanges.Add(float64(applied))
	e.Watermark.Set(float64(watermark))
	e.HubHead.Set(float64(head))
	e.VersionsBehind.Set(float64(max(head-watermark, 0)))
	if watermark >= head {
		e.LastSync.Set(float64(time.Now().UnixNano()) / 1e9)
	}
}

// Pushed records one push request: its duration and, when err is nil, how many changes
// the hub applied, found in conflict and rejected.
func (e *Edge) Pushed(d time.Duration, err error, applied, conflicts, rejected int) {
	e.PushSeconds.Observe(d.Seconds())
	if err != nil {
		e.PushErrors.Inc()
		return
	}
	e.PushChanges.WithLabelValues("applied").Add(float64(applied))
	e.PushChanges.WithLabelValues("conflict").Add(float64(conflicts))
	e.PushChanges.WithLabelValues("rejected").Add(float64(rejected))
}
