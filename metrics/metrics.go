// Package metrics defines every Prometheus collector synchub exposes, in one place, with
// its name, labels and meaning. Collectors are registered on an injected Registerer; no
// global registry is used. Labels are bounded: source kind, table (captured tables
// only), op, route, status code, conflict policy and outcome, rejection code, auth
// failure reason — never a row key. Edge ids appear as a label only when
// Options.PerEdge is set; otherwise edges are summarised by counts and a histogram.
// README.md's "Metrics" section lists every metric with its meaning.
package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "synchub"

// Options choose optional series.
type Options struct {
	// PerEdge adds one series per edge (synchub_edges_behind_versions and
	// synchub_edges_last_seen_timestamp_seconds, labelled by edge). Leave it off when
	// edges are many: each edge then costs two series.
	PerEdge bool
}

// Hub holds the hub's collectors. Create it with New and register it with Register, or
// both at once with NewHub. Its methods are safe for concurrent use.
type Hub struct {
	// IngestTransactions counts source transactions appended to the change log.
	IngestTransactions *prometheus.CounterVec // labels: source
	// IngestChanges counts row changes appended to the change log.
	IngestChanges *prometheus.CounterVec // labels: source, table, op
	// IngestCommits counts change-log store commits (each may group many transactions).
	IngestCommits prometheus.Counter
	// IngestCommitSeconds is the duration of one change-log store commit.
	IngestCommitSeconds prometheus.Histogram
	// IngestErrors counts source stream failures (each is followed by a reconnect).
	IngestErrors *prometheus.CounterVec // labels: source
	// SourceLagSeconds is the time between a transaction's commit at the source and its
	// commit in the change log, for the latest transaction.
	SourceLagSeconds prometheus.Gauge
	// SourceLagBytes is the WAL/binlog the source retains for the hub (PostgreSQL: bytes
	// between the server's current LSN and the slot's confirmed flush LSN).
	SourceLagBytes prometheus.Gauge
	// SourceUp is 1 while the hub streams from the source, 0 otherwise.
	SourceUp prometheus.Gauge
	// SnapshotRows counts rows read by initial snapshots.
	SnapshotRows *prometheus.CounterVec // labels: table
	// ChangelogHeadVersion is the last complete version in the change log.
	ChangelogHeadVersion prometheus.Gauge
	// ChangelogEntries is the number of changes stored in the change log.
	ChangelogEntries prometheus.Gauge
	// ChangelogBytes is the size of stored change data.
	ChangelogBytes prometheus.Gauge
	// ChangelogSchemaVersion is the latest schema version.
	ChangelogSchemaVersion prometheus.Gauge
	// CompactionRemoved counts changes removed by compaction.
	CompactionRemoved prometheus.Counter
	// HTTPRequestSeconds is the duration of sync API requests, long-poll waits included.
	HTTPRequestSeconds *prometheus.HistogramVec // labels: route, code
	// PullChanges counts changes served to edges.
	PullChanges prometheus.Counter
	// PullBytes counts page bytes served to edges, before compression.
	PullBytes prometheus.Counter
	// PullGone counts pulls answered 410 (watermark older than the horizon).
	PullGone prometheus.Counter
	// ResponseBytes is the size of sync API response bodies, before compression.
	ResponseBytes *prometheus.HistogramVec // labels: route
	// PullPageChanges is the number of changes in one pull answer.
	PullPageChanges prometheus.Histogram
	// PushBatchChanges is the number of changes in one answered push batch.
	PushBatchChanges prometheus.Histogram
	// PushChanges counts pushed changes by result: applied, conflict or rejected.
	PushChanges *prometheus.CounterVec // labels: status
	// PushConflicts counts conflicts detected on push.
	PushConflicts *prometheus.CounterVec // labels: table, policy, outcome
	// PushRejected counts pushed changes the hub or the central database refused.
	PushRejected *prometheus.CounterVec // labels: code
	// AuthFailures counts requests refused for their credentials.
	AuthFailures *prometheus.CounterVec // labels: reason
	// RateLimitedRequests counts requests refused by a rate limit.
	RateLimitedRequests *prometheus.CounterVec // labels: route

	reasons, routes *labelSet
	state           *stateCollector
}

// NewHub creates the hub's collectors with default Options and registers them on reg.
// It panics if a collector is already registered there; use New and Register to get
// an error instead.
func NewHub(reg prometheus.Registerer) *Hub {
	m := New(Options{})
	if err := m.Register(reg); err != nil {
		panic(err)
	}
	return m
}

// Register registers every collector of the hub on reg.
func (m *Hub) Register(reg prometheus.Registerer) error {
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register hub metrics: %w (is a second hub using the same registry?)", err)
		}
	}
	return nil
}

// Describe sends the descriptors of every collector of the hub, so a Hub is itself a
// prometheus.Collector.
func (m *Hub) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect collects every collector of the hub.
func (m *Hub) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

var _ prometheus.Collector = (*Hub)(nil)

func (m *Hub) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.IngestTransactions, m.IngestChanges, m.IngestCommits, m.IngestCommitSeconds, m.IngestErrors,
		m.SourceLagSeconds, m.SourceLagBytes, m.SourceUp, m.SnapshotRows,
		m.ChangelogHeadVersion, m.ChangelogEntries, m.ChangelogBytes, m.ChangelogSchemaVersion,
		m.CompactionRemoved, m.HTTPRequestSeconds, m.PullChanges, m.PullBytes, m.PullGone,
		m.ResponseBytes, m.PullPageChanges, m.PushBatchChanges, m.PushChanges, m.PushConflicts,
		m.PushRejected, m.AuthFailures, m.RateLimitedRequests, m.state,
	}
}

// New creates the hub's collectors without registering them.
func New(opts Options) *Hub {
	m := &Hub{
		IngestTransactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "ingest", Name: "transactions_total",
			Help: "Source transactions appended to the change log.",
		}, []string{"source"}),
		IngestChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "ingest", Name: "changes_total",
			Help: "Row changes appended to the change log, by table and operation.",
		}, []string{"source", "table", "op"}),
		IngestCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "ingest", Name: "commits_total",
			Help: "Change-log store commits; each groups one or more source transactions.",
		}),
		IngestCommitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "ingest", Name: "commit_duration_seconds",
			Help:    "Duration of one change-log store commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		IngestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "ingest", Name: "errors_total",
			Help: "Source stream failures; each is followed by a reconnect with backoff.",
		}, []string{"source"}),
		SourceLagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "source", Name: "lag_seconds",
			Help: "Seconds between the latest transaction's source commit and its change-log commit.",
		}),
		SourceLagBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "source", Name: "lag_bytes",
			Help: "WAL or binlog bytes the source retains for the hub.",
		}),
		SourceUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "source", Name: "up",
			Help: "1 while the hub streams from the source, 0 otherwise.",
		}),
		SnapshotRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "source", Name: "snapshot_rows_total",
			Help: "Rows read by initial snapshots.",
		}, []string{"table"}),
		ChangelogHeadVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "changelog", Name: "head_version",
			Help: "Last complete version in the change log.",
		}),
		ChangelogEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "changelog", Name: "entries",
			Help: "Changes stored in the change log.",
		}),
		ChangelogBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "changelog", Name: "data_bytes",
			Help: "Bytes of stored change data.",
		}),
		ChangelogSchemaVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "changelog", Name: "schema_version",
			Help: "Latest schema version of the captured tables.",
		}),
		CompactionRemoved: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "changelog", Name: "compaction_removed_changes_total",
			Help: "Superseded changes and expired tombstones removed by compaction.",
		}),
		HTTPRequestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "api", Name: "request_duration_seconds",
			Help:    "Duration of sync API requests, long-poll waits included.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60},
		}, []string{"route", "code"}),
		PullChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "pull_changes_total",
			Help: "Changes served to edges.",
		}),
		PullBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "pull_bytes_total",
			Help: "Page bytes served to edges, before compression.",
		}),
		PullGone: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "pull_gone_total",
			Help: "Pulls answered 410 because the watermark was older than the horizon.",
		}),
		ResponseBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "api", Name: "response_size_bytes",
			Help:    "Size of sync API response bodies, before compression.",
			Buckets: prometheus.ExponentialBuckets(256, 4, 9),
		}, []string{"route"}),
		PullPageChanges: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "api", Name: "pull_page_changes",
			Help:    "Changes in one successful pull answer (0 for a long-poll that timed out empty).",
			Buckets: []float64{0, 1, 10, 100, 1000, 10000},
		}),
		PushBatchChanges: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "api", Name: "push_batch_changes",
			Help:    "Changes in one successfully answered push batch.",
			Buckets: []float64{1, 10, 100, 1000, 10000},
		}),
		PushChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "push", Name: "changes_total",
			Help: "Pushed changes by result (applied, conflict, rejected), counted once per batch, not per re-send.",
		}, []string{"status"}),
		PushConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "push", Name: "conflicts_total",
			Help: "Conflicts detected on push, by table, conflict policy and outcome (server_won, client_won, merged, manual, error).",
		}, []string{"table", "policy", "outcome"}),
		PushRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "push", Name: "rejected_changes_total",
			Help: "Pushed changes refused, by code: bad_change (does not fit the schema), constraint (refused by the central database), resolver (custom resolver failed).",
		}, []string{"code"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "auth_failures_total",
			Help: "Requests refused for their credentials, by reason.",
		}, []string{"reason"}),
		RateLimitedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "rate_limited_total",
			Help: "Requests refused by a rate limit, by route.",
		}, []string{"route"}),
		reasons: newLabelSet(maxLabelValues),
		routes:  newLabelSet(maxLabelValues),
		state:   newStateCollector(opts.PerEdge),
	}
	return m
}
