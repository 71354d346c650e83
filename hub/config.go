// Package hub runs synchub's hub: the ingest loop that tails a cdc.Source into the change
// log, the sync API edges pull from, compaction, and the hub's metrics. It never imports
// a database adapter: cmd/synchub constructs the Source and Store and hands them in.
package hub

import (
	"fmt"
	"time"

	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/dashboard"
	"github.com/synchub/synchub/hub/edges"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/hub/rules"
	"github.com/synchub/synchub/metrics"
)

// GCPercent is the garbage-collection target synchub's binary sets for a hub when
// GOGC is not set. Ingest allocates many short-lived decode and statement buffers
// while its live heap stays small; collecting less often measured about 10% more
// small transactions per second, for a heap that may grow to five times the live one.
const GCPercent = 400

// Config tunes a Hub.
type Config struct {
	// Listen is the sync API's address, e.g. "127.0.0.1:8080".
	Listen string
	// SourceKind names the source for logs, metrics and the change log ("postgres").
	SourceKind string
	// GroupMaxChanges: the ingest loop commits the change log at the latest after this many
	// changes, and earlier whenever the source has nothing more buffered.
	GroupMaxChanges int
	// ReconnectMin and ReconnectMax bound the backoff between source reconnects.
	ReconnectMin, ReconnectMax time.Duration
	// CompactInterval is how often compaction runs; 0 disables it.
	CompactInterval time.Duration
	// Compact says what compaction may remove.
	Compact changelog.CompactOptions
	// LagInterval is how often the source's retained bytes are measured.
	LagInterval time.Duration
	// ShutdownTimeout bounds the soft shutdown (finish the current append, send the last
	// ack, let long-polls return) before connections are cut.
	ShutdownTimeout time.Duration
	// API configures the sync API.
	API api.Config
	// Push configures edge pushes: conflict policies per table, the batch limit, how
	// long a push waits for its write to be captured, and the meta database's path
	// (push.DefaultMetaPath gives the usual place next to the change log). Its
	// policies are checked by New, which knows the registered custom resolvers.
	Push push.Config
	// Dashboard configures the admin dashboard under /ui: admin users, sessions, cookies.
	Dashboard dashboard.Config
	// Edges configures the edge registry the dashboard shows (its file, if any).
	Edges edges.Config
	// Metrics chooses optional series (metrics.per_edge in hub.yaml).
	Metrics metrics.Options
	// Rules are the sync rules: which tables, columns and rows each group of edges
	// receives and may write. No groups: every edge gets everything.
	Rules rules.Config
}

// DefaultConfig returns the defaults documented in README.md.
func DefaultConfig() Config {
	return Config{
		Listen:          "127.0.0.1:8080",
		SourceKind:      "postgres",
		GroupMaxChanges: 20000,
		ReconnectMin:    200 * time.Millisecond,
		ReconnectMax:    30 * time.Second,
		CompactInterval: 10 * time.Minute,
		Compact: changelog.CompactOptions{
			Retention:          7 * 24 * time.Hour,
			TombstoneRetention: 30 * 24 * time.Hour,
		},
		LagInterval:     5 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		API:             api.DefaultConfig(),
		Push:            push.DefaultConfig(),
		Dashboard:       dashboard.DefaultConfig(),
		Edges:           edges.DefaultConfig(),
	}
}

// Validate reports the first invalid setting, naming it.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return fmt.Errorf("listen: empty; set an address such as 127.0.0.1:8080")
	case c.GroupMaxChanges < 1:
		return fmt.Errorf("ingest.group_max_changes: %d; must be at least 1", c.GroupMaxChanges)
	case c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin:
		return fmt.Errorf("ingest reconnect backoff: min %v, max %v; need 0 < min <= max", c.ReconnectMin, c.ReconnectMax)
	case c.CompactInterval < 0:
		return fmt.Errorf("changelog.compact_interval: %v; must not be negative", c.CompactInterval)
	case c.Compact.Retention < 0 || c.Compact.TombstoneRetention < c.Compact.Retention:
		return fmt.Errorf("changelog.retention %v / tombstone_retention %v: tombstone retention must be at least the retention", c.Compact.Retention, c.Compact.TombstoneRetention)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("shutdown timeout: %v; must be positive", c.ShutdownTimeout)
	}
	if _, err := rules.Compile(c.Rules); err != nil {
		return err
	}
	return c.API.Validate()
}
