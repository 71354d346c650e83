package push

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/syncproto"
)

// Batch record states.
const (
	stateApplying = "applying"
	stateDone     = "done"
)

type batchRecord struct {
	edge     string
	state    string
	head     int64
	plan     []byte
	response []byte // empty for a done batch whose answer was pruned
	created  time.Time
	updated  time.Time
}

func (s *Service) loadBatch(ctx context.Context, id string) (batchRecord, bool, error) {
	var (
		r        batchRecord
		resp     sql.NullString
		created  int64
		updated  int64
		planText string
	)
	err := s.db.QueryRowContext(ctx, `SELECT edge, state, head, plan, response, created, updated FROM push_batches WHERE batch_id = ?`, id).
		Scan(&r.edge, &r.state, &r.head, &planText, &resp, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("read push batch %s: %w", id, err)
	}
	r.plan, r.response, r.created, r.updated = []byte(planText), []byte(resp.String), fromMicros(created), fromMicros(updated)
	return r, true, nil
}

// beginBatch records the batch as applying, with its plan, before anything is written.
func (s *Service) beginBatch(ctx context.Context, req syncproto.PushRequest, head int64, p *plan) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode plan of batch %s: %w", req.BatchID, err)
	}
	now := micros(s.now())
	if _, err := s.db.ExecContext(ctx, `INSERT INTO push_batches (batch_id, edge, state, head, plan, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		req.BatchID, req.Edge, stateApplying, head, string(raw), now, now); err != nil {
		return fmt.Errorf("record push batch %s: %w", req.BatchID, err)
	}
	return nil
}

func (s *Service) deleteBatch(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM push_batches WHERE batch_id = ? AND state = ?`, id, stateApplying)
	return err
}

// finish stores the batch's manual conflicts, rejected changes and answer in one meta
// transaction, then writes the audit events.
func (s *Service) finish(ctx context.Context, req syncproto.PushRequest, p *plan) (syncproto.PushResponse, error) {
	resp := syncproto.PushResponse{BatchID: req.BatchID, Results: p.Results}
	now := s.now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return resp, fmt.Errorf("store answer of batch %s: %w", req.BatchID, err)
	}
	defer tx.Rollback()
	for _, c := range p.Conflicts {
		r, err := tx.ExecContext(ctx, `INSERT INTO conflicts (edge, batch_id, tbl, key, key_json, op, kind, base_version, base, client, server, created, status)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')`,
			req.Edge, req.BatchID, c.Table, c.Key, string(c.KeyRow), c.Op, c.Kind, c.BaseVersion,
			nullText(c.Base), nullText(c.Client), nullText(c.Server), micros(now))
		if err != nil {
			return resp, fmt.Errorf("queue conflict of batch %s: %w", req.BatchID, err)
		}
		id, err := r.LastInsertId()
		if err != nil {
			return resp, fmt.Errorf("queue conflict of batch %s: %w", req.BatchID, err)
		}
		p.Results[c.Result].ConflictID = id
		if c.Event >= 0 && c.Event < len(p.Events) {
			p.Events[c.Event].Detail += fmt.Sprintf(" conflict_id=%d", id)
		}
	}
	for _, r := range p.Rejected {
		var err error
		if p.RetryOf != 0 {
			_, err = tx.ExecContext(ctx, `UPDATE rejected SET reason = ?, code = ? WHERE id = ?`, r.Reason, r.Code, p.RetryOf)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO rejected (edge, batch_id, tbl, key, op, change, reason, code, created, status)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')`,
				req.Edge, req.BatchID, r.Table, r.Key, r.Op, string(r.Change), r.Reason, r.Code, micros(now))
		}
		if err != nil {
			return resp, fmt.Errorf("record rejected change of batch %s: %w", req.BatchID, err)
		}
	}
	raw, err := json.Marshal(resp)
	if err != nil {
		return resp, fmt.Errorf("encode answer of batch %s: %w", req.BatchID, err)
	}
	// The plan and the landing served only to learn an interrupted batch's outcome;
	// once it is answered, the answer is all a re-send needs.
	if _, err := tx.ExecContext(ctx, `UPDATE push_batches SET state = ?, response = ?, plan = '', updated = ? WHERE batch_id = ?`,
		stateDone, string(raw), micros(now), req.BatchID); err != nil {
		return resp, fmt.Errorf("store answer of batch %s: %w", req.BatchID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM landed_batches WHERE batch_id = ?`, req.BatchID); err != nil {
		return resp, fmt.Errorf("store answer of batch %s: %w", req.BatchID, err)
	}
	if err := tx.Commit(); err != nil {
		return resp, fmt.Errorf("store answer of batch %s: %w", req.BatchID, err)
	}
	s.observe(req, p)
	s.auditBatch(ctx, req, p, now)
	return resp, nil
}

// auditBatch appends the batch's events and one push event with its counts. The batch
// is already answered and stored; a failing audit log is logged at error level.
func (s *Service) auditBatch(ctx context.Context, req syncproto.PushRequest, p *plan, now time.Time) {
	if s.audit == nil {
		return
	}
	counts := map[string]int{}
	for _, r := range p.Results {
		counts[r.Status]++
	}
	outcome := "ok"
	if counts[syncproto.PushRejected] > 0 {
		outcome = "partial"
	}
	detail := fmt.Sprintf("batch=%s changes=%d applied=%d conflict=%d rejected=%d",
		req.BatchID, len(p.Results), counts[syncproto.PushApplied], counts[syncproto.PushConflict], counts[syncproto.PushRejected])
	if p.RetryOf != 0 {
		detail += fmt.Sprintf(" retry_of=%d", p.RetryOf)
	}
	events := append([]audit.Event{{Time: now, Actor: audit.EdgeActor(req.Edge), Action: audit.ActionPush, Edge: req.Edge, Outcome: outcome, Detail: detail}}, p.Events...)
	s.appendAudit(ctx, events...)
}

// recoverBatch answers a re-send of a batch left "applying" (see the package comment).
func (s *Service) recoverBatch(ctx context.Context, req syncproto.PushRequest, rec batchRecord, fl *flight) (syncproto.PushResponse, error) {
	var p plan
	if err := json.Unmarshal(rec.plan, &p); err != nil {
		return syncproto.PushResponse{}, fmt.Errorf("stored plan of batch %s: %w", req.BatchID, err)
	}
	if len(p.Writes) == 0 {
		return s.finish(context.WithoutCancel(ctx), req, &p)
	}
	version, landed, err := s.landedVersion(ctx, req.BatchID)
	if err != nil {
		return syncproto.PushResponse{}, err
	}
	if !landed {
		ch := s.addWaiter(req.BatchID)
		if version, landed, err = s.landedVersion(ctx, req.BatchID); err != nil || landed {
			s.removeWaiter(req.BatchID, ch)
		} else if version = s.wait(ctx, req.BatchID, ch); version > 0 {
			landed = true
		}
		if err != nil {
			return syncproto.PushResponse{}, err
		}
	}
	if !landed {
		st, err := s.store.State(ctx)
		if err != nil {
			return syncproto.PushResponse{}, fmt.Errorf("read change log state: %w", err)
		}
		if st.HeadTime.After(rec.created.Add(s.cfg.LandingGrace)) {
			s.log.Warn("interrupted push batch never committed; applying it again", "batch", req.BatchID, "edge_id", req.Edge)
			if err := s.deleteBatch(ctx, req.BatchID); err != nil {
				return syncproto.PushResponse{}, fmt.Errorf("drop record of batch %s: %w", req.BatchID, err)
			}
			return s.run(ctx, req, runOpts{origin: p.Origin, retryOf: p.RetryOf, flight: fl})
		}
		return syncproto.PushResponse{}, errorf(KindPending,
			"batch %s was being written when the hub stopped and its outcome is not known yet; re-send it later, it will not be applied twice", req.BatchID)
	}
	for i := range p.Writes {
		pw := &p.Writes[i]
		if pw.Failed {
			continue
		}
		info, ok, err := s.store.Row(ctx, pw.Table, pw.Key)
		if err != nil {
			return syncproto.PushResponse{}, fmt.Errorf("read row index of %s %s: %w", pw.Table, pw.Key, err)
		}
		if ok && info.Version == version {
			p.Results[pw.Result].Version = version
			continue
		}
		pw.Failed = true
		pc := &req.Changes[pw.Result]
		s.reject(&p, pw.Result, req.Edge, pc, pw.Key, CodeConstraint,
			fmt.Sprintf("the central database did not write this change in the batch's transaction (version %d); its message was lost when the hub stopped", version))
	}
	return s.finish(context.WithoutCancel(ctx), req, &p)
}

// landedVersion returns the version of the batch's write-back: recorded by the change
// log in the transaction that appended it (exact), or in landed_batches.
func (s *Service) landedVersion(ctx context.Context, batch string) (int64, bool, error) {
	if bv, ok := s.store.(changelog.BatchVersioner); ok {
		v, found, err := bv.BatchVersion(ctx, batch)
		if err != nil || found {
			return v, found, err
		}
	}
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT version FROM landed_batches WHERE batch_id = ?`, batch).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read landed batch %s: %w", batch, err)
	}
	return v, true, nil
}
