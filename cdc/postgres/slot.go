package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/synchub/synchub/cdc"
)

// ensurePublication creates the publication for exactly the configured tables, or
// alters an existing one to match. It returns the configured tables the publication
// did not hold before: their rows were not streamed, so resuming needs a snapshot.
//
// With mayAdd false (resuming from a position) it adds nothing: it only reports the
// tables the publication lacks, so that the loss of the position is reported again on
// every Start until the consumer has reset and starts without a position. Adding them
// here would make the next Start resume as if they had always been streamed.
func (s *Source) ensurePublication(ctx context.Context, conn *pgx.Conn, mayAdd bool) (added []string, err error) {
	pub := pgx.Identifier{s.cfg.Publication}.Sanitize()
	var quoted []string
	for _, name := range s.order {
		quoted = append(quoted, "ONLY "+ident(name))
	}
	tableList := strings.Join(quoted, ", ")
	const publish = "insert, update, delete, truncate"

	var allTables, ins, upd, del, trunc bool
	err = conn.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate
		FROM pg_publication WHERE pubname = $1`, s.cfg.Publication).Scan(&allTables, &ins, &upd, &del, &trunc)
	if errors.Is(err, pgx.ErrNoRows) {
		if !mayAdd {
			return slices.Clone(s.order), nil
		}
		if _, err := conn.Exec(ctx, "CREATE PUBLICATION "+pub+" FOR TABLE "+tableList+" WITH (publish = '"+publish+"')"); err != nil {
			return nil, classify("create publication", err)
		}
		s.log.Info("created publication", "publication", s.cfg.Publication, "tables", len(s.order))
		return slices.Clone(s.order), nil
	}
	if err != nil {
		return nil, classify("read publication", err)
	}
	if allTables {
		return nil, configError("check publication", fmt.Errorf("publication %s is FOR ALL TABLES", s.cfg.Publication),
			fmt.Sprintf("drop it (DROP PUBLICATION %s) or configure another publication name; synchub manages its own publication", pub))
	}
	rows, err := conn.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1`, s.cfg.Publication)
	if err != nil {
		return nil, classify("read publication", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify("read publication", err)
	}
	for _, name := range s.order {
		if !slices.Contains(have, name) {
			added = append(added, name)
		}
	}
	if len(added) > 0 && !mayAdd {
		return added, nil
	}
	if len(added) > 0 || len(have) != len(s.order) {
		if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+pub+" SET TABLE "+tableList); err != nil {
			return nil, classify("alter publication", err)
		}
		s.log.Info("publication now holds the configured tables", "publication", s.cfg.Publication, "added", len(added))
	}
	if !(ins && upd && del && trunc) {
		if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+pub+" SET (publish = '"+publish+"')"); err != nil {
			return nil, classify("alter publication", err)
		}
	}
	return added, nil
}

type slotInfo struct {
	exists    bool
	active    bool
	plugin    string
	slotType  string
	database  string
	confirmed LSN
	walStatus string
	walEnd    LSN // the server's current WAL insert position
}

func (s *Source) slotState(ctx context.Context, conn *pgx.Conn) (slotInfo, error) {
	var (
		si        slotInfo
		confirmed string
		curDB     string
		walEnd    string
	)
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&walEnd); err != nil {
		return slotInfo{}, classify("read WAL position", err)
	}
	end, err := ParseLSN(walEnd)
	if err != nil {
		return slotInfo{}, &cdc.Error{Op: "read WAL position", Err: err}
	}
	err = conn.QueryRow(ctx, `SELECT s.active, coalesce(s.plugin, ''), s.slot_type, coalesce(s.database::text, ''),
			coalesce(s.confirmed_flush_lsn::text, ''), coalesce(s.wal_status, ''), current_database()::text
		FROM pg_replication_slots s WHERE s.slot_name = $1`, s.cfg.Slot).
		Scan(&si.active, &si.plugin, &si.slotType, &si.database, &confirmed, &si.walStatus, &curDB)
	if errors.Is(err, pgx.ErrNoRows) {
		return slotInfo{walEnd: end}, nil
	}
	if err != nil {
		return slotInfo{}, classify("read replication slot", err)
	}
	si.exists, si.walEnd = true, end
	if confirmed != "" {
		if si.confirmed, err = ParseLSN(confirmed); err != nil {
			return slotInfo{}, &cdc.Error{Op: "read replication slot", Err: err}
		}
	}
	if si.slotType != "logical" || si.plugin != "pgoutput" || si.database != curDB {
		return slotInfo{}, configError("check replication slot",
			fmt.Errorf("replication slot %s exists but is a %s slot for plugin %q in database %q, not a pgoutput slot in %q", s.cfg.Slot, si.slotType, si.plugin, si.database, curDB),
			"configure another slot name, or drop that slot with SELECT pg_drop_replication_slot('"+s.cfg.Slot+"') if nothing uses it")
	}
	return si, nil
}

// waitSlotReleased waits for a previous connection (usually this hub's own, still
// shutting down) to release the slot.
func (s *Source) waitSlotReleased(ctx context.Context, conn *pgx.Conn) error {
	deadline := time.Now().Add(s.cfg.SlotBusyWait)
	for {
		var active bool
		var pid *int32
		err := conn.QueryRow(ctx, `SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&active, &pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return classify("wait for replication slot", err)
		}
		if !active {
			return nil
		}
		if time.Now().After(deadline) {
			p := int32(0)
			if pid != nil {
				p = *pid
			}
			return transientError("wait for replication slot",
				fmt.Errorf("slot %s is in use by server process %d for longer than %v: is another synchub hub running with the same slot?", s.cfg.Slot, p, s.cfg.SlotBusyWait))
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Source) dropSlot(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, s.cfg.Slot); err != nil {
		return classify("drop replication slot", err)
	}
	s.log.Info("dropped the previous replication slot", "slot", s.cfg.Slot)
	return nil
}

// createSlot creates the logical slot and exports a snapshot of the database at the
// slot's consistent point. The snapshot stays importable only until the replication
// connection runs its next command.
func (s *Source) createSlot(ctx context.Context) (consistent LSN, snapshot string, err error) {
	res, err := pglogrepl.CreateReplicationSlot(ctx, s.repl, s.cfg.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Mode:           pglogrepl.LogicalReplication,
		SnapshotAction: "EXPORT_SNAPSHOT",
	})
	if err != nil {
		return 0, "", classify("create replication slot", err)
	}
	consistent, err = ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, "", &cdc.Error{Op: "create replication slot", Err: err}
	}
	s.log.Info("created replication slot", "slot", s.cfg.Slot, "position", consistent.String())
	return consistent, res.SnapshotName, nil
}
