package push

import (
	"context"
	"fmt"
	"time"

	"github.com/synchub/synchub/hub/syncproto"
)

// Landing says that the write-back transaction of a batch was committed to the change
// log as Version.
type Landing struct {
	Batch   string
	Version int64
}

// Landed is called by the ingest loop after each change-log commit with the batches
// whose transactions it held (cdc.Tx.Batch != ""). It records them, so that a re-sent
// batch interrupted by a hub stop can learn its outcome, and wakes the pushes waiting
// for them. It never fails: a landing it cannot record is logged, and the row index
// still reveals it (see the package comment).
func (s *Service) Landed(ctx context.Context, landings []Landing) {
	if len(landings) == 0 {
		return
	}
	now := micros(s.now())
	if err := s.recordLandings(ctx, landings, now); err != nil {
		s.log.Warn("record landed push batches", "batches", len(landings), "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range landings {
		for _, ch := range s.waiters[l.Batch] {
			ch <- l.Version
		}
		delete(s.waiters, l.Batch)
		for _, ref := range s.byBatch[l.Batch] {
			// A later batch (another edge's, say) may have written the row since;
			// its entry stays until that batch lands.
			if p, ok := s.pending[ref]; ok && p.batch == l.Batch {
				delete(s.pending, ref)
			}
		}
		delete(s.byBatch, l.Batch)
	}
}

func (s *Service) recordLandings(ctx context.Context, landings []Landing, now int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, l := range landings {
		// A batch answered already (its push stopped waiting) needs no landing record.
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO landed_batches (batch_id, version, landed)
			SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM push_batches WHERE batch_id = ?1 AND state = 'done')`,
			l.Batch, l.Version, now); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// addWaiter registers interest in a batch's landing; register before writing so a
// fast landing is not missed.
func (s *Service) addWaiter(batch string) chan int64 {
	ch := make(chan int64, 1)
	s.mu.Lock()
	s.waiters[batch] = append(s.waiters[batch], ch)
	s.mu.Unlock()
	return ch
}

func (s *Service) removeWaiter(batch string, ch chan int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.waiters[batch]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(s.waiters, batch)
	} else {
		s.waiters[batch] = ws
	}
}

// wait returns the batch's version once it landed, or 0 after WaitTimeout or when ctx
// ends.
func (s *Service) wait(ctx context.Context, batch string, ch chan int64) int64 {
	if s.cfg.WaitTimeout <= 0 {
		s.removeWaiter(batch, ch)
		return 0
	}
	t := time.NewTimer(s.cfg.WaitTimeout)
	defer t.Stop()
	select {
	case v := <-ch:
		return v
	case <-t.C:
	case <-ctx.Done():
	}
	s.removeWaiter(batch, ch)
	// The landing may have been delivered between the timeout and the removal.
	select {
	case v := <-ch:
		return v
	default:
		return 0
	}
}

// addPending remembers a row written by a batch not captured yet. Entries older than
// LandingGrace are dropped as new ones come, so a batch that never lands does not keep
// them.
func (s *Service) addPending(batch string, ref rowRef, edge string, at time.Time, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[ref] = pendingWrite{edge: edge, batch: batch, at: at, deleted: deleted}
	s.byBatch[batch] = append(s.byBatch[batch], ref)
	if len(s.byBatch) > 1024 {
		for b, refs := range s.byBatch {
			stale := true
			for _, r := range refs {
				if p, ok := s.pending[r]; ok && at.Sub(p.at) < s.cfg.LandingGrace {
					stale = false
					break
				}
			}
			if stale {
				for _, r := range refs {
					if p, ok := s.pending[r]; ok && at.Sub(p.at) >= s.cfg.LandingGrace {
						delete(s.pending, r)
					}
				}
				delete(s.byBatch, b)
			}
		}
	}
}

// awaitEarlierWrites waits until the same edge's earlier batches that wrote rows of
// this batch, and are not captured yet, have landed (at most WaitTimeout; then
// KindPending). The batch's recorded head then covers those writes, so that recovering
// it after an interruption (see recoverBatch) cannot take an earlier batch's write of
// the same row for its own. An edge that pipelines keeps the rows of its unanswered
// batches apart, so this normally finds nothing.
func (s *Service) awaitEarlierWrites(ctx context.Context, req syncproto.PushRequest, cs []*change) error {
	now := s.now()
	waits := map[string]chan int64{}
	s.mu.Lock()
	for _, c := range cs {
		if c == nil {
			continue
		}
		pw, ok := s.pending[rowRef{c.tbl.Name, c.keyText}]
		if !ok || pw.edge != req.Edge || pw.batch == req.BatchID || now.Sub(pw.at) >= s.cfg.LandingGrace {
			continue
		}
		if _, ok := waits[pw.batch]; !ok {
			ch := make(chan int64, 1)
			s.waiters[pw.batch] = append(s.waiters[pw.batch], ch)
			waits[pw.batch] = ch
		}
	}
	s.mu.Unlock()
	if len(waits) == 0 {
		return nil
	}
	t := time.NewTimer(s.cfg.WaitTimeout)
	defer t.Stop()
	var err error
	for batch, ch := range waits {
		if err != nil {
			s.removeWaiter(batch, ch)
			continue
		}
		select {
		case <-ch:
		case <-t.C:
			s.removeWaiter(batch, ch)
			err = errorf(KindPending, "batch %s writes rows that batch %s of the same edge wrote, and that write is not captured yet after %v (push.wait_timeout); re-send batch %s unchanged later",
				req.BatchID, batch, s.cfg.WaitTimeout, req.BatchID)
		case <-ctx.Done():
			s.removeWaiter(batch, ch)
			err = fmt.Errorf("wait for the capture of batch %s: %w", batch, ctx.Err())
		}
	}
	return err
}
