// Package metrics defines every Prometheus collector synchub exposes, in one place, with
// its name, labels and meaning. Collectors are registered on an injected Registerer; no
// global registry is used. Labels are bounded: source kind, table (configured tables
// only), op, route and status class — never a row key or an edge id.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "synchub"

// Hub holds the hub's collectors.
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
}

// NewHub creates the hub's collectors and registers them on reg.
func NewHub(reg prometheus.Registerer) *Hub {
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
	}
	reg.MustRegister(
		m.IngestTransactions, m.IngestChanges, m.IngestCommits, m.IngestCommitSeconds, m.IngestErrors,
		m.SourceLagSeconds, m.SourceLagBytes, m.SourceUp, m.SnapshotRows,
		m.ChangelogHeadVersion, m.ChangelogEntries, m.ChangelogBytes, m.ChangelogSchemaVersion,
		m.CompactionRemoved, m.HTTPRequestSeconds, m.PullChanges, m.PullBytes, m.PullGone,
	)
	return m
}
