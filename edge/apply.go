package edge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/synchub/synchub/cdc"
)

// applyStats counts what applying pulled changes did.
type applyStats struct {
	applied int // changes applied (foreign changes and everything during a bootstrap)
	echoes  int // the edge's own changes coming back: only the row version was recorded
	rebased int // changes to rows with pending local changes, left for the push to settle
	stale   int // changes older than the row's state from a push answer
}

// applyPage applies a page's changes to the synced tables in the open transaction.
// Changes to tables the edge does not sync are skipped.
//
// A pulled change never overwrites a row with pending outbox entries (rebase: the local
// write stays on top and the hub settles the difference when it is pushed). An entry
// whose origin is this edge is its own pushed write coming back: outside a bootstrap
// only the row's version is recorded and the data is left as it is.
//
// Statements run with a context that is never cancelled: a cancelled context makes the
// SQLite driver watch every statement with a goroutine, which halves the apply rate,
// and a page is short. Cancellation is honoured between pages.
func (a *Agent) applyPage(p *page) (applyStats, error) {
	ctx := context.Background()
	var st applyStats
	busy, err := a.outboxBusy(ctx)
	if err != nil {
		return st, err
	}
	pushed, err := a.anyPushed(ctx)
	if err != nil {
		return st, err
	}
	for ei := range p.Entries {
		e := &p.Entries[ei]
		if e.TS > a.pullMaxTS {
			a.pullMaxTS = e.TS
		}
		echo := !a.bootstrapping && len(e.Origin) > 0 && string(e.Origin) == a.cfg.EdgeID
		for ci := range e.Changes {
			ch := &e.Changes[ci]
			t := a.tables[string(ch.Table)]
			if t == nil {
				continue
			}
			if err := a.applyChange(ctx, t, ch, e.Version, echo, busy, pushed, &st); err != nil {
				return st, fmt.Errorf("apply version %d change %d (%s on %s): %w", e.Version, ci, ch.Op, ch.Table, err)
			}
		}
	}
	return st, nil
}

// anyPushed reports whether some row's local state comes from a push answer the
// change log has not shown yet; only then must pulled changes be checked for
// staleness.
func (a *Agent) anyPushed(ctx context.Context) (bool, error) {
	var pushed bool
	if err := a.db.conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM _synchub_rowver WHERE pushed = 1)`).Scan(&pushed); err != nil {
		return false, fmt.Errorf("read row versions: %w", err)
	}
	return pushed, nil
}

// outboxBusy reports whether the outbox holds any change; when it is empty (the usual
// case, and always during a first bootstrap) no per-row check is needed.
func (a *Agent) outboxBusy(ctx context.Context) (bool, error) {
	var busy bool
	if err := a.db.conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM _synchub_outbox)`).Scan(&busy); err != nil {
		return false, fmt.Errorf("read the outbox: %w", err)
	}
	return busy, nil
}

// applyChange applies one pulled change. busy says the outbox has entries; pushed says
// some row's state comes from a push answer.
//
// Push answers race with pulls: the answer may arrive before the change log has shown
// changes older than the edge's write, or without the write's version. So a row written
// by a push answer is marked pushed in _synchub_rowver (with the answer's version when
// known). A pulled change not newer than that version is stale and skipped. An echo (the
// edge's own write) of a row whose data is the push's only records the version; but
// when a foreign change was applied to the row after the answer, the echo is applied
// in full, since it is the hub's state after the edge's write.
func (a *Agent) applyChange(ctx context.Context, t *table, ch *change, version int64, echo, busy, pushed bool, st *applyStats) error {
	track := !a.bootstrapping // record per-row versions
	if ch.Op == cdc.OpTruncate {
		st.applied++
		return a.truncate(ctx, t, busy)
	}
	// The keys the change touches: the old key (updates that change it, deletes) and the
	// new row's key.
	var oldKey, newKey []any
	var err error
	if (ch.Op == cdc.OpUpdate || ch.Op == cdc.OpDelete) && len(ch.Key) > 0 && (busy || track || pushed) {
		if oldKey, err = a.keyOf(t, ch.Key); err != nil {
			return err
		}
	}
	if ch.Op != cdc.OpDelete && (busy || track || pushed) {
		if len(ch.Row) == 0 {
			return fmt.Errorf("change has no row")
		}
		if newKey, err = a.keyOf(t, ch.Row); err != nil {
			return err
		}
	}
	rowKey := newKey // the key whose recorded state decides
	if ch.Op == cdc.OpDelete {
		rowKey = oldKey
	}
	applyEcho := false
	if pushed && rowKey != nil {
		ver, fromPush, found, err := a.rowState(ctx, t, rowKey)
		if err != nil {
			return err
		}
		switch {
		case echo:
			applyEcho = found && !fromPush && ver < version
		case found && ver >= version:
			st.stale++
			return nil
		}
	}
	if echo && !applyEcho {
		st.echoes++
		if oldKey != nil && (ch.Op == cdc.OpDelete || !sameArgs(oldKey, newKey)) {
			if err := a.dropVersion(ctx, t, oldKey); err != nil {
				return err
			}
		}
		if newKey != nil {
			return a.setVersion(ctx, t, newKey, version)
		}
		return nil
	}
	if busy {
		for _, k := range [][]any{oldKey, newKey} {
			if k == nil {
				continue
			}
			pend, err := a.hasPending(ctx, t, k)
			if err != nil {
				return err
			}
			if pend {
				st.rebased++
				return nil
			}
		}
	}
	st.applied++
	switch ch.Op {
	case cdc.OpInsert:
		err = a.upsert(ctx, t, ch.Row)
	case cdc.OpUpdate:
		if len(ch.Key) > 0 {
			err = a.deleteKey(ctx, t, ch.Key)
		}
		if err == nil {
			err = a.upsert(ctx, t, ch.Row)
		}
	case cdc.OpDelete:
		err = a.deleteKey(ctx, t, ch.Key)
	default:
		err = fmt.Errorf("unknown op %s", ch.Op)
	}
	if err != nil || !track {
		return err
	}
	if oldKey != nil && (ch.Op == cdc.OpDelete || !sameArgs(oldKey, newKey)) {
		if err := a.dropVersion(ctx, t, oldKey); err != nil {
			return err
		}
	}
	if newKey != nil {
		return a.setVersion(ctx, t, newKey, version)
	}
	return nil
}

// truncate empties a table but keeps the rows with pending local changes.
func (a *Agent) truncate(ctx context.Context, t *table, busy bool) error {
	if err := a.emptyTable(ctx, t, busy); err != nil {
		return fmt.Errorf("truncate %s: %w", t.local, err)
	}
	return nil
}

// emptyTable deletes every row of t that has no pending outbox entry, and their
// recorded versions.
func (a *Agent) emptyTable(ctx context.Context, t *table, busy bool) error {
	if !busy {
		if _, err := a.db.conn.ExecContext(ctx, "DELETE FROM "+t.quoted); err != nil {
			return err
		}
		_, err := a.db.conn.ExecContext(ctx, `DELETE FROM _synchub_rowver WHERE tbl = ?`, t.source)
		return err
	}
	kt := keyText(t, "")
	if _, err := a.db.conn.ExecContext(ctx, "DELETE FROM "+t.quoted+" WHERE "+kt+
		" NOT IN (SELECT ktext FROM _synchub_outbox WHERE tbl = ?1 UNION ALL SELECT nktext FROM _synchub_outbox WHERE tbl = ?1)", t.source); err != nil {
		return err
	}
	_, err := a.db.conn.ExecContext(ctx, `DELETE FROM _synchub_rowver WHERE tbl = ?1
		AND ktext NOT IN (SELECT ktext FROM _synchub_outbox WHERE tbl = ?1 UNION ALL SELECT nktext FROM _synchub_outbox WHERE tbl = ?1)`, t.source)
	return err
}

// keyOf returns the key of a row or key object as statement arguments in key order.
func (a *Agent) keyOf(t *table, raw []byte) ([]any, error) {
	if err := a.scan.scan(t, raw); err != nil {
		return nil, err
	}
	args, err := a.scan.keyArgs(t, nil)
	if err != nil {
		return nil, err
	}
	return args, nil
}

func sameArgs(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if xb, ok := x.([]byte); ok {
			yb, ok := y.([]byte)
			if !ok || string(xb) != string(yb) {
				return false
			}
			continue
		}
		if _, ok := y.([]byte); ok || x != y {
			return false
		}
	}
	return true
}

// rowState returns a row's recorded version and whether its data comes from a push
// answer not yet seen in the change log.
func (a *Agent) rowState(ctx context.Context, t *table, k []any) (version int64, pushed, found bool, err error) {
	st, err := t.stmt(ctx, a.db.conn, &t.rvGet, func() string {
		return "SELECT version, pushed FROM _synchub_rowver WHERE tbl = ?1 AND ktext = " + keyText(t, "?")
	})
	if err != nil {
		return 0, false, false, err
	}
	err = st.QueryRowContext(ctx, append([]any{t.source}, k...)...).Scan(&version, &pushed)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, false, nil
	}
	if err != nil {
		return 0, false, false, fmt.Errorf("read the version of a row of %s: %w", t.local, err)
	}
	return version, pushed, true, nil
}

// hasPending reports whether the row with key k has entries in the outbox.
func (a *Agent) hasPending(ctx context.Context, t *table, k []any) (bool, error) {
	st, err := t.stmt(ctx, a.db.conn, &t.pendQ, func() string {
		kt := keyText(t, "?")
		return "SELECT EXISTS (SELECT 1 FROM _synchub_outbox WHERE tbl = ?1 AND nktext = " + kt +
			") OR EXISTS (SELECT 1 FROM _synchub_outbox WHERE tbl = ?1 AND ktext = " + kt + " AND ktext <> nktext)"
	})
	if err != nil {
		return false, err
	}
	var pend bool
	if err := st.QueryRowContext(ctx, append([]any{t.source}, k...)...).Scan(&pend); err != nil {
		return false, fmt.Errorf("look up pending changes of %s: %w", t.local, err)
	}
	return pend, nil
}

// setVersion records the change-log version of a row; it never lowers a recorded one.
func (a *Agent) setVersion(ctx context.Context, t *table, k []any, version int64) error {
	return setRowVersion(ctx, a.db.conn, t, &t.rvSet, k, version)
}

func setRowVersion(ctx context.Context, conn *sql.Conn, t *table, cache **sql.Stmt, k []any, version int64) error {
	st, err := t.stmt(ctx, conn, cache, func() string {
		return fmt.Sprintf("INSERT INTO _synchub_rowver (tbl, ktext, version) VALUES (?1, %s, ?%d) "+
			"ON CONFLICT (tbl, ktext) DO UPDATE SET version = max(version, excluded.version), pushed = 0", keyText(t, "?"), len(t.pk)+2)
	})
	if err != nil {
		return err
	}
	args := append(append([]any{t.source}, k...), version)
	if _, err := st.ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("record the version of a row of %s: %w", t.local, err)
	}
	return nil
}

// dropVersion forgets the recorded version of a deleted row.
func (a *Agent) dropVersion(ctx context.Context, t *table, k []any) error {
	return dropRowVersion(ctx, a.db.conn, t, &t.rvDel, k)
}

func dropRowVersion(ctx context.Context, conn *sql.Conn, t *table, cache **sql.Stmt, k []any) error {
	st, err := t.stmt(ctx, conn, cache, func() string {
		return "DELETE FROM _synchub_rowver WHERE tbl = ?1 AND ktext = " + keyText(t, "?")
	})
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, append([]any{t.source}, k...)...); err != nil {
		return fmt.Errorf("forget the version of a row of %s: %w", t.local, err)
	}
	return nil
}

func (a *Agent) upsert(ctx context.Context, t *table, row []byte) error {
	if len(row) == 0 {
		return fmt.Errorf("change has no row")
	}
	if err := a.scan.scan(t, row); err != nil {
		return err
	}
	st, kb, err := t.upsertStmt(ctx, a.db, a.scan.cols, a.keyBuf)
	a.keyBuf = kb
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, a.scan.args...); err != nil {
		return fmt.Errorf("upsert into %s: %w", t.local, err)
	}
	return nil
}

func (a *Agent) deleteKey(ctx context.Context, t *table, key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("change has no key")
	}
	if err := a.scan.scan(t, key); err != nil {
		return err
	}
	args, err := a.scan.keyArgs(t, a.keyArgs)
	if err != nil {
		return err
	}
	a.keyArgs = args
	st, err := t.deleteStmt(ctx, a.db)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("delete from %s: %w", t.local, err)
	}
	return nil
}
