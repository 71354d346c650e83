package push

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/synchub/synchub/hub/syncproto"
)

// flight is a batch of this process whose push is running: registered under the
// batch's lock before anything of it is recorded, removed when its push returns. A
// batch sent with After waits on the flight of the batch it follows.
type flight struct {
	edge string
	done chan struct{} // closed by land
	once sync.Once
	// ok, set before done is closed: the batch's central-database write completed
	// (or it had nothing to write). False: the batch failed before that, or the
	// outcome of its write is unknown.
	ok bool
}

// land records the outcome of the flight's write; only the first call counts. A nil
// flight (a retry of a rejected change) ignores it.
func (f *flight) land(ok bool) {
	if f == nil {
		return
	}
	f.once.Do(func() {
		f.ok = ok
		close(f.done)
	})
}

// flights tracks the batches in flight and wakes waiters when a new one registers.
type flights struct {
	mu      sync.Mutex
	byBatch map[string]*flight
	// arrived is closed and replaced whenever a flight registers.
	arrived chan struct{}
	// refused are new batches refused as a whole for too many changes: they will
	// never be written, so a batch that follows one need not wait for it. Kept for
	// refusedFor, at most maxRefused of them. (Refusals before the push service, such
	// as a body too large for the API, are not known here: the batch that follows waits
	// Config.OrderWait and is answered KindPending.)
	refused map[string]refusal
}

type refusal struct {
	edge string
	at   time.Time
}

const (
	refusedFor = 10 * time.Minute
	maxRefused = 10000
)

// refuse records that batch of edge was refused as a whole, and wakes waiters.
func (fs *flights) refuse(batch, edge string, now time.Time) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.refused == nil {
		fs.refused = make(map[string]refusal)
	}
	if len(fs.refused) >= maxRefused {
		for b, r := range fs.refused {
			if now.Sub(r.at) > refusedFor || len(fs.refused) >= maxRefused {
				delete(fs.refused, b)
			}
		}
	}
	fs.refused[batch] = refusal{edge: edge, at: now}
	if fs.arrived != nil {
		close(fs.arrived)
	}
	fs.arrived = make(chan struct{})
}

// wasRefused reports whether batch of edge was refused as a whole lately.
func (fs *flights) wasRefused(batch, edge string, now time.Time) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	r, ok := fs.refused[batch]
	return ok && r.edge == edge && now.Sub(r.at) <= refusedFor
}

// start registers batch as in flight. The caller holds the batch's lock, so a batch
// has at most one flight.
func (fs *flights) start(batch, edge string) *flight {
	f := &flight{edge: edge, done: make(chan struct{})}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.byBatch == nil {
		fs.byBatch = make(map[string]*flight)
	}
	fs.byBatch[batch] = f
	if fs.arrived != nil {
		close(fs.arrived)
	}
	fs.arrived = make(chan struct{})
	return f
}

// end lands f with ok unless it landed already, and removes it.
func (fs *flights) end(batch string, f *flight, ok bool) {
	f.land(ok)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.byBatch[batch] == f {
		delete(fs.byBatch, batch)
	}
}

// lookup returns the flight of batch (nil if none) and a channel closed when the next
// flight registers.
func (fs *flights) lookup(batch string) (*flight, <-chan struct{}) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.arrived == nil {
		fs.arrived = make(chan struct{})
	}
	return fs.byBatch[batch], fs.arrived
}

// awaitPredecessor returns nil once the central-database write of req.After, the same
// edge's previous batch, has completed: at once when that batch is done, after its
// write returned when it is in flight. It waits at most OrderWait for the batch to
// arrive and its write to return; the caller holds only req's batch lock, which the
// predecessor never needs. Errors: KindInvalid when After names another edge's batch;
// KindPending when the predecessor failed, is in an unknown state or did not arrive in
// time (the edge re-sends it, then req unchanged); ctx's error when ctx ends.
func (s *Service) awaitPredecessor(ctx context.Context, req syncproto.PushRequest) error {
	after := req.After
	start := time.Now()
	timer := time.NewTimer(s.cfg.OrderWait)
	defer timer.Stop()
	waited := false
	giveUp := func(why string) error {
		s.log.Warn("push batch gave up waiting for the batch it follows", "batch", req.BatchID, "after", after,
			"edge_id", req.Edge, "reason", why, "waited_ms", time.Since(start).Milliseconds())
		return errorf(KindPending, "batch %s follows batch %s, which %s; re-send %s first, then this batch unchanged",
			req.BatchID, after, why, after)
	}
	for {
		f, arrived := s.flights.lookup(after)
		if f == nil && s.flights.wasRefused(after, req.Edge, s.now()) {
			// Refused as a whole, it is never written: nothing to wait for.
			s.log.Debug("push batch follows a refused batch", "batch", req.BatchID, "after", after, "edge_id", req.Edge)
			return nil
		}
		if f != nil {
			if f.edge != req.Edge {
				return otherEdgeBatch(req, f.edge)
			}
			waited = true
			s.orderWaiting(req)
			// Arrived: its write is under way, however long it queues for the central
			// database; push.order_wait bounds only the wait for it to arrive.
			select {
			case <-f.done:
			case <-ctx.Done():
				return fmt.Errorf("wait for batch %s, which batch %s follows: %w", after, req.BatchID, ctx.Err())
			}
			if !f.ok {
				return giveUp("failed")
			}
			s.log.Debug("push batch waited for the batch it follows", "batch", req.BatchID, "after", after,
				"edge_id", req.Edge, "waited_ms", time.Since(start).Milliseconds())
			return nil
		}
		rec, found, err := s.loadBatch(ctx, after)
		if err != nil {
			return err
		}
		if found && rec.state == stateApplying {
			// A push of the batch may have started since the flight lookup: wait for it.
			if f, _ := s.flights.lookup(after); f != nil {
				continue
			}
			// None runs now, so the record is final (a push that ended since the first
			// read wrote its final state before it ended); read it once more.
			if rec, found, err = s.loadBatch(ctx, after); err != nil {
				return err
			}
		}
		if found {
			switch {
			case rec.edge != req.Edge:
				return otherEdgeBatch(req, rec.edge)
			case rec.state == stateDone:
				if waited {
					s.log.Debug("push batch waited for the batch it follows", "batch", req.BatchID, "after", after,
						"edge_id", req.Edge, "waited_ms", time.Since(start).Milliseconds())
				}
				return nil
			}
			return giveUp("was interrupted and its outcome is not known yet")
		}
		// Not here yet: it may still be on its way. Wait for the next flight to register.
		waited = true
		s.orderWaiting(req)
		select {
		case <-arrived:
		case <-timer.C:
			s.log.Warn("push batch gave up waiting for the batch it follows", "batch", req.BatchID, "after", after,
				"edge_id", req.Edge, "reason", "not received", "waited_ms", time.Since(start).Milliseconds())
			return errorf(KindPending, "batch %s, which batch %s follows, has not reached the hub within %v (push.order_wait); re-send %s first, then this batch unchanged",
				after, req.BatchID, s.cfg.OrderWait, after)
		case <-ctx.Done():
			return fmt.Errorf("wait for batch %s, which batch %s follows: %w", after, req.BatchID, ctx.Err())
		}
	}
}

func (s *Service) orderWaiting(req syncproto.PushRequest) {
	if s.orderWaitHook != nil {
		s.orderWaitHook(req.BatchID, req.After)
	}
}

func otherEdgeBatch(req syncproto.PushRequest, other string) error {
	return errorf(KindInvalid, "after %q names a batch of edge %s, not of %s; after must be the id of this edge's own previous batch (or empty)",
		req.After, other, req.Edge)
}
