package postgres

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/synchub/synchub/cdc"
)

// Config configures a PostgreSQL Source.
type Config struct {
	// DSN is a libpq connection string or URL for the database holding the tables. The
	// role needs the REPLICATION attribute, SELECT on the tables and the right to create
	// a publication for them.
	DSN string
	// Tables are the captured tables, schema-qualified as stored in the catalog, e.g.
	// "public.orders". Every table needs a primary key.
	Tables []string
	// Slot is the logical replication slot's name: lower-case letters, digits and _.
	Slot string
	// Publication is the publication's name: lower-case letters, digits and _. The
	// source creates it, or alters it to hold exactly Tables.
	Publication string
	// SnapshotPageRows is how many rows each emit call of Snapshot carries.
	SnapshotPageRows int
	// MaxTxChanges bounds the changes in one delivered Tx; a larger transaction arrives
	// in parts (Tx.More).
	MaxTxChanges int
	// MaxTxBytes bounds the approximate decoded size of one delivered part.
	MaxTxBytes int
	// StatusInterval is how often the stream reports the acknowledged position to
	// PostgreSQL; it must be well below the server's wal_sender_timeout.
	StatusInterval time.Duration
	// IdleWait is how long the stream waits for more data after a delivery before it
	// calls Handler.Idle.
	IdleWait time.Duration
	// ConnectTimeout bounds each connection attempt.
	ConnectTimeout time.Duration
	// SlotBusyWait is how long Start waits for the slot to be released by a previous
	// connection that is still shutting down.
	SlotBusyWait time.Duration
}

// DefaultConfig returns a Config with every tunable set; DSN and Tables remain empty.
func DefaultConfig() Config {
	return Config{
		Slot:             "synchub",
		Publication:      "synchub",
		SnapshotPageRows: 10000,
		MaxTxChanges:     5000,
		MaxTxBytes:       32 << 20,
		StatusInterval:   time.Second,
		IdleWait:         3 * time.Millisecond,
		ConnectTimeout:   10 * time.Second,
		SlotBusyWait:     10 * time.Second,
	}
}

var objectName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports every configuration problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("postgres: DSN is empty: set it to a connection string like postgres://user@host:5432/db"))
	} else if _, err := pgconn.ParseConfig(c.DSN); err != nil {
		errs = append(errs, fmt.Errorf("postgres: DSN is not a valid connection string: %w", err))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("postgres: no tables configured: list them schema-qualified, e.g. public.orders"))
	}
	seen := make(map[string]bool, len(c.Tables))
	for _, t := range c.Tables {
		schema, name := cdc.SplitTableName(t)
		if schema == "" || name == "" {
			errs = append(errs, fmt.Errorf("postgres: table %q is not schema-qualified: write it as schema.table, e.g. public.%s", t, name))
			continue
		}
		if seen[t] {
			errs = append(errs, fmt.Errorf("postgres: table %q is listed twice", t))
		}
		seen[t] = true
	}
	if !objectName.MatchString(c.Slot) {
		errs = append(errs, fmt.Errorf("postgres: slot name %q is invalid: use 1 to 63 lower-case letters, digits and _", c.Slot))
	}
	if !objectName.MatchString(c.Publication) {
		errs = append(errs, fmt.Errorf("postgres: publication name %q is invalid: use 1 to 63 lower-case letters, digits and _", c.Publication))
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"SnapshotPageRows", int64(c.SnapshotPageRows)},
		{"MaxTxChanges", int64(c.MaxTxChanges)},
		{"MaxTxBytes", int64(c.MaxTxBytes)},
		{"StatusInterval", int64(c.StatusInterval)},
		{"IdleWait", int64(c.IdleWait)},
		{"ConnectTimeout", int64(c.ConnectTimeout)},
		{"SlotBusyWait", int64(c.SlotBusyWait)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			errs = append(errs, fmt.Errorf("postgres: %s must be positive (start from DefaultConfig())", p.name))
		}
	}
	return errors.Join(errs...)
}
