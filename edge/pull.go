package edge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// pullResult is what one pull did.
type pullResult struct {
	applied  int  // changes applied to synced tables
	echoes   int  // the edge's own pushed changes coming back (only versions recorded)
	rebased  int  // changes to rows with pending local changes, left to the push
	stale    int  // changes older than a push answer's state of the row
	caughtUp bool // the last page reached the hub's head
}

// pull fetches and applies one committed unit: pages up to and including the first
// with commit=true, all in one local transaction with the new watermark. A failure
// rolls the transaction back; the watermark then still names the last committed unit.
func (a *Agent) pull(ctx context.Context, wait time.Duration) (res pullResult, err error) {
	defer func() {
		if err != nil && a.db.inTx {
			err = errors.Join(err, a.abort(ctx))
		}
	}()
	since, cursor := a.watermark, ""
	rebootstrapping := false
	a.pullMaxTS = 0
	if since == 0 {
		a.bootstrapping = true
	}
	if a.needBootstrap {
		if err := a.startRebootstrap(ctx, "the table selection changed or a synced table is missing"); err != nil {
			return res, err
		}
		since, rebootstrapping = 0, true
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		w := wait
		if a.db.inTx {
			w = 0
		}
		if w > 0 {
			a.setState(StateWaiting)
		} else if !rebootstrapping {
			a.setState(StatePulling)
		}
		scope := a.scope
		if since == 0 {
			scope = ""
		}
		p, err := a.client.page(ctx, since, cursor, scope, w)
		if err != nil {
			var he *HubError
			if errors.As(err, &he) && he.mustRebootstrap() && !rebootstrapping {
				a.log.Warn("the hub cannot continue this edge's watermark; re-bootstrapping from version 0",
					"watermark", since, "code", he.Code, "horizon", he.Horizon, "hub_message", he.Message)
				if err := a.startRebootstrap(ctx, he.Code); err != nil {
					return res, err
				}
				since, cursor, rebootstrapping = 0, "", true
				continue
			}
			return res, err
		}
		a.updateStatus(func(s *Status) { s.HeadSeen, s.LastPull = p.Head, time.Now() })

		if p.SchemaVersion > a.schemaVersion() {
			rebuilt, err := a.refreshSchema(ctx, p.SchemaVersion)
			if err != nil {
				return res, err
			}
			if rebuilt && !rebootstrapping {
				if err := a.startRebootstrap(ctx, "a table was rebuilt"); err != nil {
					return res, err
				}
				since, cursor, rebootstrapping = 0, "", true
				continue
			}
		}
		if len(p.Entries) == 0 && p.Commit && !a.db.inTx && p.Next == since {
			if err := a.endBootstrap(ctx); err != nil {
				return res, err
			}
			return pullResult{caughtUp: true}, nil
		}
		if !a.db.inTx {
			if err := a.db.begin(ctx); err != nil {
				return res, err
			}
		}
		st, err := a.applyPage(p)
		res.applied += st.applied
		res.echoes += st.echoes
		res.rebased += st.rebased
		res.stale += st.stale
		if err != nil {
			return res, err
		}
		if !p.Commit {
			if p.Cursor == "" {
				return res, errNoCursor
			}
			cursor = p.Cursor
			continue
		}
		if p.Next < since {
			return res, fmt.Errorf("the hub committed a page at %d, behind its since %d", p.Next, since)
		}
		res.caughtUp = len(p.Entries) == 0 || p.Next >= p.Head
		if err := a.commit(ctx, p.Next, rebootstrapping, res.caughtUp); err != nil {
			return res, err
		}
		a.updateStatus(func(s *Status) {
			s.Watermark, s.SchemaVersion, s.LastCommit = p.Next, a.schemaVersion(), time.Now()
			s.Applied += int64(res.applied)
			s.AppliedForeign += int64(res.applied)
			s.EchoesSkipped += int64(res.echoes)
			s.Rebased += int64(res.rebased)
			s.Stale += int64(res.stale)
		})
		if rebootstrapping {
			a.log.Info("re-bootstrap committed", "watermark", p.Next, "changes", res.applied)
		}
		return res, nil
	}
}

// commit writes the watermark, the version floor while bootstrapping and the clock, and
// ends the open transaction.
func (a *Agent) commit(ctx context.Context, next int64, rebootstrapped, caughtUp bool) error {
	if err := a.db.setMeta(ctx, metaWatermark, strconv.FormatInt(next, 10)); err != nil {
		return err
	}
	if a.bootstrapping {
		// Every row without a recorded version is as of this watermark.
		if err := a.db.setMeta(ctx, metaVersionFloor, strconv.FormatInt(next, 10)); err != nil {
			return err
		}
		flag := "1"
		if caughtUp {
			flag = "0"
		}
		if err := a.db.setMeta(ctx, metaBootstrapping, flag); err != nil {
			return err
		}
	}
	if a.pullMaxTS > 0 {
		if err := a.db.setMeta(ctx, metaHLC, a.clock.observe(a.pullMaxTS).String()); err != nil {
			return err
		}
	}
	if a.filterDirty {
		if err := a.db.setMeta(ctx, metaTables, filterKey(a.cfg.Tables)); err != nil {
			return err
		}
	}
	scope := a.client.scopeIn
	if scope != a.scope {
		if err := a.db.setMeta(ctx, metaScope, scope); err != nil {
			return err
		}
	}
	if err := a.db.commit(ctx); err != nil {
		return err
	}
	a.scope = scope
	a.watermark = next
	a.filterDirty = false
	a.pullMaxTS = 0
	if caughtUp {
		a.bootstrapping = false
	}
	if rebootstrapped {
		a.needBootstrap = false
	}
	return nil
}

// abort rolls back the open transaction and reloads what it may have changed in
// memory (schema, tables). A connection that cannot roll back is discarded.
func (a *Agent) abort(ctx context.Context) error {
	var errs []error
	a.pullMaxTS = 0
	if err := a.db.rollback(); err != nil {
		errs = append(errs, err)
		a.setCatalogue(nil, nil)
		if err := a.db.replaceConn(context.WithoutCancel(ctx)); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	if _, err := a.loadCatalogue(context.WithoutCancel(ctx)); err != nil {
		errs = append(errs, fmt.Errorf("reload local schema after rollback: %w", err))
	}
	b, _, err := a.db.getMeta(context.WithoutCancel(ctx), metaBootstrapping)
	if err != nil {
		errs = append(errs, err)
	}
	a.bootstrapping = b == "1" || a.watermark == 0
	return errors.Join(errs...)
}

// refreshSchema fetches the hub's schema and applies it in the open transaction
// (opening one if needed).
func (a *Agent) refreshSchema(ctx context.Context, atLeast int64) (rebuilt bool, err error) {
	s, err := a.client.schema(ctx)
	if err != nil {
		return false, err
	}
	if s.Version < atLeast {
		return false, fmt.Errorf("the hub served schema version %d, older than the page's %d; retrying later", s.Version, atLeast)
	}
	if !a.db.inTx {
		if err := a.db.begin(ctx); err != nil {
			return false, err
		}
	}
	return a.applySchema(ctx, s)
}

// startRebootstrap empties every synced table and resets the watermark, in the open
// transaction (opening one if needed) so that readers keep the old data until the
// refill commits. The hub's schema is fetched and applied whatever its version.
func (a *Agent) startRebootstrap(ctx context.Context, reason string) error {
	a.setState(StateBootstrapping)
	a.updateStatus(func(s *Status) { s.Rebootstraps++ })
	s, err := a.client.schema(ctx)
	if err != nil {
		return err
	}
	if !a.db.inTx {
		if err := a.db.begin(ctx); err != nil {
			return err
		}
	}
	if _, err := a.applySchema(ctx, s); err != nil {
		return err
	}
	busy, err := a.outboxBusy(ctx)
	if err != nil {
		return err
	}
	for _, t := range a.tables {
		if err := a.emptyTable(ctx, t, busy); err != nil {
			return fmt.Errorf("empty local table %s for re-bootstrap: %w", t.local, err)
		}
	}
	if _, err := a.db.conn.ExecContext(ctx, `DELETE FROM _synchub_rowver`); err != nil {
		return fmt.Errorf("forget row versions for re-bootstrap: %w", err)
	}
	a.bootstrapping = true
	if err := a.db.setMeta(ctx, metaWatermark, "0"); err != nil {
		return err
	}
	a.log.Info("re-bootstrap started", "reason", reason, "tables", len(a.tables), "schema_version", s.Version)
	return nil
}

// endBootstrap records that the edge has caught up after pulling from version 0, so
// later pulls record per-row versions.
func (a *Agent) endBootstrap(ctx context.Context) error {
	if !a.bootstrapping {
		return nil
	}
	if a.watermark > 0 {
		if err := a.db.setMeta(ctx, metaBootstrapping, "0"); err != nil {
			return err
		}
	}
	a.bootstrapping = false
	return nil
}
