package push

import (
	"context"
	"time"

	"github.com/synchub/synchub/hub/changelog"
)

// Landing says that the write-back transaction of a batch was committed to the change
// log as Version.
type Landing struct {
	Batch   string
	Version int64
}

// Landed is called by the ingest loop after each change-log commit with the batches
// whose transactions it held (cdc.Tx.Batch != ""). It wakes the pushes waiting for
// them, and, for a store that does not record batches itself (changelog.BatchVersioner),
// records them, so that a re-sent batch interrupted by a hub stop can learn its
// outcome. It never fails: a landing it cannot record is logged.
func (s *Service) Landed(ctx context.Context, landings []Landing) {
	if len(landings) == 0 {
		return
	}
	now := micros(s.now())
	// Waiting pushes are woken first: recording the landings syncs the meta database,
	// which they need not wait for. A push that finishes first drops its batch's
	// landing record, or makes recordLandings skip it.
	s.mu.Lock()
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
	s.mu.Unlock()
	if _, exact := s.store.(changelog.BatchVersioner); exact {
		return // the change log recorded them with their versions
	}
	if err := s.recordLandings(ctx, landings, now); err != nil {
		s.log.Warn("record landed push batches", "batches", len(landings), "err", err)
	}
}

func (s *Service) recordLandings(ctx context.Context, landings []Landing, now int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, l := range landings {
		// Only a batch still being written (or interrupted) needs the record: one
		// answered already has its answer, and admin resolutions have no batch record.
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO landed_batches (batch_id, version, landed)
			SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM push_batches WHERE batch_id = ?1 AND state = 'applying')`,
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
//
// landed is the channel of the batch's push waiter (nil when there is none): when the
// landing was delivered to it already, the write was captured before it returned, the
// row index has it, and no later landing would clear the entry, so none is added.
// Landed delivers under s.mu, as this checks.
func (s *Service) addPending(batch string, ref rowRef, edge string, at time.Time, deleted bool, landed chan int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if landed != nil && len(landed) > 0 {
		return
	}
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
