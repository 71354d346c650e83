package push

import (
	"context"
	"fmt"
	"time"
)

// pruneStep bounds the rows one prune statement touches, so that pushes waiting for
// the meta database are not held up for long.
const pruneStep = 500

// Prune discards what the meta database no longer needs: the answers of batches
// finished more than Config.AnswerRetention ago (their records stay, so that a late
// re-send is refused instead of applied again), and landing records of finished
// batches (kept by versions that did not drop them on finishing). It returns the
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
