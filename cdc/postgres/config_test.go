package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/synchub/synchub/cdc"
)

func TestConfig_Validate(t *testing.T) {
	good := DefaultConfig()
	good.DSN = "postgres://u@localhost:5432/db"
	good.Tables = []string{"public.orders", "sales.Items"}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no DSN", func(c *Config) { c.DSN = "" }, "DSN is empty"},
		{"bad DSN", func(c *Config) { c.DSN = "postgres://u@host:notaport/db" }, "DSN is not a valid"},
		{"no tables", func(c *Config) { c.Tables = nil }, "no tables"},
		{"unqualified table", func(c *Config) { c.Tables = []string{"orders"} }, "not schema-qualified"},
		{"duplicate table", func(c *Config) { c.Tables = []string{"public.a", "public.a"} }, "listed twice"},
		{"bad slot", func(c *Config) { c.Slot = "My-Slot" }, "slot name"},
		{"bad publication", func(c *Config) { c.Publication = "" }, "publication name"},
		{"zero page", func(c *Config) { c.SnapshotPageRows = 0 }, "SnapshotPageRows"},
		{"zero parts", func(c *Config) { c.MaxTxChanges = 0 }, "MaxTxChanges"},
		{"zero interval", func(c *Config) { c.StatusInterval = 0 }, "StatusInterval"},
		{"negative idle", func(c *Config) { c.IdleWait = -time.Millisecond }, "IdleWait"},
	}
	for _, c := range cases {
		cfg := good
		cfg.Tables = append([]string(nil), good.Tables...)
		c.mutate(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate() = %v, want an error mentioning %q", c.name, err, c.want)
		}
		if _, nerr := New(cfg, nil); nerr == nil {
			t.Errorf("%s: New accepted an invalid config", c.name)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err       error
		retryable bool
		fix       string
	}{
		{errors.New("read tcp: connection reset by peer"), true, ""},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, true, ""},
		{&pgconn.PgError{Code: "08006"}, true, ""},
		{&pgconn.PgError{Code: "55006", Message: "replication slot is active"}, true, ""},
		{&pgconn.PgError{Code: "28P01"}, false, "password"},
		{&pgconn.PgError{Code: "42501"}, false, "grant"},
		{&pgconn.PgError{Code: "53400"}, false, "max_replication_slots"},
		{&pgconn.PgError{Code: "55000", Message: "logical decoding requires wal_level >= logical"}, false, "wal_level = logical"},
		{&pgconn.PgError{Code: "42601"}, false, ""},
	}
	for _, c := range cases {
		err := classify("op", fmt.Errorf("wrapped: %w", c.err))
		var ce *cdc.Error
		if !errors.As(err, &ce) {
			t.Fatalf("classify(%v) = %T", c.err, err)
		}
		if cdc.IsRetryable(err) != c.retryable || !strings.Contains(ce.Fix, c.fix) {
			t.Errorf("classify(%v): retryable %v fix %q, want %v and a fix mentioning %q", c.err, cdc.IsRetryable(err), ce.Fix, c.retryable, c.fix)
		}
		if !errors.Is(err, c.err) {
			t.Errorf("classify(%v) lost the cause", c.err)
		}
	}
	if classify("op", nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}
