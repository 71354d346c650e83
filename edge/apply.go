package edge

import (
	"context"
	"fmt"

	"github.com/synchub/synchub/cdc"
)

// applyPage applies a page's changes to the synced tables in the open transaction and
// returns how many it applied. Changes to tables the edge does not sync are skipped.
//
// Statements run with a context that is never cancelled: a cancelled context makes the
// SQLite driver watch every statement with a goroutine, which halves the apply rate,
// and a page is short. Cancellation is honoured between pages.
func (a *Agent) applyPage(p *page) (int, error) {
	ctx := context.Background()
	n := 0
	for ei := range p.Entries {
		e := &p.Entries[ei]
		for ci := range e.Changes {
			ch := &e.Changes[ci]
			t := a.tables[string(ch.Table)]
			if t == nil {
				continue
			}
			var err error
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
			case cdc.OpTruncate:
				if _, err = a.db.conn.ExecContext(ctx, "DELETE FROM "+t.quoted); err != nil {
					err = fmt.Errorf("truncate %s: %w", t.local, err)
				}
			default:
				err = fmt.Errorf("unknown op %s", ch.Op)
			}
			if err != nil {
				return n, fmt.Errorf("apply version %d change %d (%s on %s): %w", e.Version, ci, ch.Op, ch.Table, err)
			}
			n++
		}
	}
	return n, nil
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
