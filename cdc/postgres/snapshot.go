package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/synchub/synchub/cdc"
)

var snapshotName = regexp.MustCompile(`^[0-9A-Fa-f-]+$`)

// createSlotAndSnapshot creates the slot, imports its exported snapshot into a
// repeatable-read transaction on a connection of its own, and reloads the table
// definitions inside that snapshot so they describe exactly the rows it will read.
func (s *Source) createSlotAndSnapshot(ctx context.Context) error {
	consistent, name, err := s.createSlot(ctx)
	if err != nil {
		return err
	}
	if !snapshotName.MatchString(name) {
		return &cdc.Error{Op: "create replication slot", Err: fmt.Errorf("unexpected snapshot name %q", name)}
	}
	snap, err := s.connect(ctx)
	if err != nil {
		return err
	}
	s.snap = snap
	if _, err := snap.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return classify("begin snapshot", err)
	}
	if _, err := snap.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+name+"'"); err != nil {
		return classify("import snapshot", err)
	}
	for _, table := range s.order {
		def, err := s.loadTable(ctx, snap, table)
		if err != nil {
			return err
		}
		s.tables[table] = def
	}
	s.startLSN = consistent
	return nil
}

// Snapshot reads every captured table inside the exported snapshot and emits its rows
// as inserts in pages of SnapshotPageRows. It returns the slot's consistent point, the
// position Stream continues from. See cdc.Source.
func (s *Source) Snapshot(ctx context.Context, emit func(ctx context.Context, changes []cdc.Change) error) (cdc.Position, error) {
	if !s.needSnap || s.snap == nil {
		return nil, errors.New("postgres: Snapshot called without a prepared snapshot (Start did not ask for one, or it was already read)")
	}
	defer s.releaseSnapshot()
	started := time.Now()
	var total int64
	for _, name := range s.order {
		n, err := s.snapshotTable(ctx, s.tables[name], emit)
		total += n
		if err != nil {
			return nil, err
		}
	}
	s.needSnap = false
	s.log.Info("snapshot done", "tables", len(s.order), "rows", total, "seconds", time.Since(started).Seconds(), "position", s.startLSN.String())
	return s.startLSN, nil
}

func (s *Source) releaseSnapshot() {
	if s.snap == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.snap.Exec(ctx, "ROLLBACK"); err != nil {
		s.log.Debug("end snapshot transaction", "err", err)
	}
	if err := s.snap.Close(ctx); err != nil {
		s.log.Debug("close snapshot connection", "err", err)
	}
	s.snap = nil
}

// snapshotTable streams one table with a single text-format query: one sequential scan
// read as it arrives, so memory stays bounded by one page whatever the table's size.
func (s *Source) snapshotTable(ctx context.Context, def *tableDef, emit func(context.Context, []cdc.Change) error) (int64, error) {
	cols := make([]string, len(def.table.Columns))
	for i, c := range def.table.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	sql := "SELECT " + strings.Join(cols, ", ") + " FROM ONLY " + ident(def.table.Name)
	name := def.table.Name
	pageRows := s.cfg.SnapshotPageRows
	started := time.Now()
	lastLog := started
	var rows int64

	var dec rowDecoder
	rr := s.snap.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil)
	page := make([]cdc.Change, 0, min(pageRows, 1024))
	flush := func() error {
		if len(page) == 0 {
			return nil
		}
		if err := emit(ctx, page); err != nil {
			return err
		}
		rows += int64(len(page))
		page = make([]cdc.Change, 0, min(pageRows, 1024))
		if now := time.Now(); now.Sub(lastLog) >= 5*time.Second {
			lastLog = now
			s.log.Info("snapshot progress", "table", name, "rows", rows, "rows_per_second", int64(float64(rows)/now.Sub(started).Seconds()))
		}
		return nil
	}
	fail := func(err error) (int64, error) {
		// Closing the connection ends the query at once instead of draining the rest of the table.
		s.snap.PgConn().Close(context.Background())
		return rows, err
	}
	for rr.NextRow() {
		row, err := dec.values(def, rr.Values())
		if err != nil {
			return fail(&cdc.Error{Op: "snapshot", Err: err})
		}
		page = append(page, cdc.Change{Table: name, Op: cdc.OpInsert, After: row})
		if len(page) >= pageRows {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
	}
	if _, err := rr.Close(); err != nil {
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
		return rows, classify("snapshot", fmt.Errorf("read table %s: %w", name, err))
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	elapsed := time.Since(started)
	s.log.Info("snapshot of table done", "table", name, "rows", rows, "rows_per_second", int64(float64(rows)/max(elapsed.Seconds(), 1e-9)))
	return rows, nil
}
