package push

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/syncproto"
)

// pruneStep bounds the rows one prune statement touches, so that pushes waiting for
// the meta database are not held up for long.
const pruneStep = 500

// Prune discards what is no longer needed: the answers of batches finished more than
// Config.AnswerRetention ago (their records stay, so that a late re-send is not applied
// again), landing records of finished batches, and the change log's records of which
// version holds which batch, up to the oldest batch still being written. It returns the
// number of answers discarded. With AnswerRetention 0 answers are kept.
func (s *Service) Prune(ctx context.Context) (answers int64, err error) {
	for {
		r, err := s.db.ExecContext(ctx, `DELETE FROM landed_batches WHERE batch_id IN (
			SELECT l.batch_id FROM landed_batches l JOIN push_batches b ON b.batch_id = l.batch_id WHERE b.state = 'done' LIMIT ?)`, pruneStep)
		if err != nil {
			return answers, fmt.Errorf("prune landed push batches: %w", err)
		}
		if n, _ := r.RowsAffected(); n < pruneStep {
			break
		}
	}
	if err := s.dropBatchVersions(ctx); err != nil {
		return answers, err
	}
	if s.cfg.AnswerRetention <= 0 {
		return 0, nil
	}
	before := micros(s.now().Add(-s.cfg.AnswerRetention))
	for {
		r, err := s.db.ExecContext(ctx, `UPDATE push_batches SET response = '', plan = '' WHERE batch_id IN (
			SELECT batch_id FROM push_batches WHERE state = 'done' AND updated < ? AND response <> '' LIMIT ?)`, before, pruneStep)
		if err != nil {
			return answers, fmt.Errorf("prune answers of push batches: %w", err)
		}
		n, _ := r.RowsAffected()
		answers += n
		if n < pruneStep {
			return answers, nil
		}
	}
}

// PruneInterval is how often the hub runs Prune.
func (s *Service) PruneInterval() time.Duration {
	if r := s.cfg.AnswerRetention; r > 0 && r/10 < time.Hour {
		return max(r/10, time.Second)
	}
	return time.Hour
}

// expiredAnswer answers a re-send of a batch whose answer Prune discarded. The batch is
// not applied again. Its changes were decided when it first came, with outcomes no
// longer known, so each is answered rejected with code answer_expired and the row as
// the central database has it now (JSON null when it has none), which the edge takes:
// it keeps its changes in _synchub_rejected and ends with the central rows.
func (s *Service) expiredAnswer(ctx context.Context, req syncproto.PushRequest, rec batchRecord) (syncproto.PushResponse, error) {
	sch, _, err := s.store.Schema(ctx)
	if err != nil {
		return syncproto.PushResponse{}, fmt.Errorf("read schema: %w", err)
	}
	reason := fmt.Sprintf("batch %s was answered on %s and its answer has since been discarded (push.answer_retention); its changes were decided then and are not applied again; the row is as the central database has it now",
		req.BatchID, rec.updated.Format(time.RFC3339))
	p := plan{Results: make([]syncproto.PushResult, len(req.Changes))}
	sc := scopeFrom(ctx)
	for i := range req.Changes {
		pc := &req.Changes[i]
		res := &p.Results[i]
		*res = syncproto.PushResult{ID: pc.ID, Status: syncproto.PushRejected, Code: CodeAnswerExpired, Reason: reason}
		if sch == nil {
			continue
		}
		c, err := decodeChange(sch, pc)
		if err != nil {
			continue // the edge keeps its row
		}
		server, found, err := s.currentRow(ctx, c)
		if err != nil {
			return syncproto.PushResponse{}, &Error{Kind: KindUnavailable, Message: fmt.Sprintf("read the current row of %s %s from the central database; retry later", c.tbl.Name, c.keyText), Err: err}
		}
		res.Row = json.RawMessage("null")
		if found {
			res.Row = rowJSON(server)
		}
		if sc != nil {
			if ts, ok := sc.Table(c.tbl.Name); !ok {
				res.Row = nil
			} else if found && !ts.Contains(server) {
				res.Row = json.RawMessage("null") // outside the edge's scope now
			}
		}
	}
	if sc != nil {
		limitResultRows(sc, req, &p)
	}
	s.log.Warn("re-send of a push batch whose answer was discarded; answered with the current rows", "batch", req.BatchID, "edge_id", req.Edge,
		"answered", rec.updated, "changes", len(req.Changes))
	s.appendAudit(ctx, audit.Event{Time: s.now(), Actor: audit.EdgeActor(req.Edge), Action: audit.ActionPush, Edge: req.Edge,
		Outcome: CodeAnswerExpired, Detail: fmt.Sprintf("batch=%s changes=%d answered=%s", req.BatchID, len(req.Changes), rec.updated.Format(time.RFC3339))})
	return syncproto.PushResponse{BatchID: req.BatchID, Results: p.Results}, nil
}

// currentRow reads the central database's row of c: under c's key, as a decision
// would, or when there is none there, under the key c's new row has (a key-changing
// update that was applied).
func (s *Service) currentRow(ctx context.Context, c *change) (cdc.Row, bool, error) {
	row, found, err := s.applier.ReadRow(ctx, c.tbl.Name, c.key)
	if err != nil || found || c.row == nil {
		return row, found, err
	}
	if k := keyRow(c.tbl, c.row); syncproto.KeyText(c.tbl, k) != c.keyText {
		return s.applier.ReadRow(ctx, c.tbl.Name, k)
	}
	return nil, false, nil
}

// dropBatchVersions makes the change log forget the batches of versions that no batch
// still "applying" can have written: versions up to the head read first, and up to the
// oldest head recorded by such a batch (its write, if any, is above its head). A batch
// recorded after that read writes above the head read.
func (s *Service) dropBatchVersions(ctx context.Context) error {
	bv, ok := s.store.(changelog.BatchVersioner)
	if !ok {
		return nil
	}
	st, err := s.store.State(ctx)
	if err != nil {
		return fmt.Errorf("prune push batch records: %w", err)
	}
	var oldest sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT min(head) FROM push_batches WHERE state = 'applying'`).Scan(&oldest); err != nil {
		return fmt.Errorf("prune push batch records: %w", err)
	}
	through := st.Head
	if oldest.Valid {
		through = min(through, oldest.Int64)
	}
	return bv.DropBatchVersions(ctx, through)
}
