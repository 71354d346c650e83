package postgres

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/synchub/synchub/cdc"
)

// configError is a misconfiguration the operator must fix; retrying does not help.
func configError(op string, err error, fix string) error {
	return &cdc.Error{Op: op, Err: err, Fix: fix}
}

// transientError is worth retrying with backoff.
func transientError(op string, err error) error {
	return &cdc.Error{Op: op, Err: err, Transient: true}
}

// classify wraps err from PostgreSQL or the network into a *cdc.Error that says
// whether retrying can help and, for configuration problems, how to fix them. Context
// errors pass through unchanged so callers can return ctx.Err() semantics.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ce *cdc.Error
	if errors.As(err, &ce) {
		return err
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return transientError(op, err)
	}
	switch pgErr.Code {
	case "28000", "28P01":
		return configError(op, err, "check the user and password in the DSN and that pg_hba.conf lets this role connect to the database (and, for the replication connection, that the role has REPLICATION)")
	case "3D000":
		return configError(op, err, "create the database or correct its name in the DSN")
	case "42501":
		return configError(op, err, "grant the role what it lacks: SELECT on the captured tables, CREATE on the database (for the publication) and the REPLICATION attribute")
	case "53400":
		return configError(op, err, "raise max_replication_slots and max_wal_senders in postgresql.conf (then restart PostgreSQL), or drop unused slots with pg_drop_replication_slot")
	case "55000":
		if strings.Contains(pgErr.Message, "wal_level") {
			return configError(op, err, "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")
		}
	case "55006":
		return transientError(op, err)
	}
	switch pgErr.Code[:2] {
	case "08", "40", "53", "57", "58", "XX":
		return transientError(op, err)
	}
	return &cdc.Error{Op: op, Err: err}
}
