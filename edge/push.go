package edge

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/synchub/synchub/hub/syncproto"
)

// ConflictEvent reports a pushed change the hub did not apply as sent: a conflict (with
// how it was resolved) or a rejection. Config.OnConflict receives it after the answer
// has been applied locally.
type ConflictEvent struct {
	BatchID    string
	Table      string          // the hub's table name
	Key        json.RawMessage // key columns of the row as pushed
	Op         string          // "i", "u" or "d"
	Status     string          // syncproto.PushConflict or syncproto.PushRejected
	Outcome    string          // for conflicts: syncproto.OutcomeServerWon, …
	Policy     string          // the table's conflict policy on the hub
	ConflictID int64           // the hub's conflict record, for the dashboard
	Local      json.RawMessage // the row the edge pushed; nil for a delete
	Winner     json.RawMessage // the row as the hub now has it; nil when absent or deleted
	Version    int64           // the change-log version of Winner, when known
	Reason     string          // why a change was rejected
	Code       string          // the rejection's machine-readable code
}

// PushReport says what a push did.
type PushReport struct {
	Batches   int   // batches the hub answered
	Sent      int   // changes sent in those batches
	Applied   int   // changes the hub applied as sent
	Conflicts int   // changes that met a conflict
	Rejected  int   // changes rejected, by the hub or locally (values that fit no column kind)
	Collapsed int   // outbox entries that needed no push (rows inserted and deleted again)
	Pending   int64 // outbox entries left afterwards
}

func (r *PushReport) add(o PushReport) {
	r.Batches += o.Batches
	r.Sent += o.Sent
	r.Applied += o.Applied
	r.Conflicts += o.Conflicts
	r.Rejected += o.Rejected
	r.Collapsed += o.Collapsed
	r.Pending = o.Pending
}

// Rejection codes the edge assigns itself.
const (
	codeBadValue     = "bad_value"     // a captured value does not fit its column's kind
	codeUnknownTable = "unknown_table" // the edge no longer syncs the table
	codeBadRequest   = "bad_request"   // the hub refused the whole batch without a code
	codeBadAnswer    = "bad_answer"    // the hub answered with an unknown status
)

// PushNow sends the outbox to the hub, batch after batch, until it is empty or a push
// fails. A batch whose answer was lost is re-sent with the same batch id, which the hub
// applies only once. Network errors and 5xx answers leave the outbox as it was (retry
// later); a 4xx answer to a whole batch moves its changes to _synchub_rejected with
// the hub's message.
//
// Batches are pipelined: up to Config.PushPipeline are on their way at once, each
// naming the batch it follows (PushRequest.After) so that the hub writes them in outbox
// order. Until a push response shows that the hub honours After (the
// X-Synchub-Push-After header), one batch at a time is sent, as an older hub may write
// batches that arrive together in any order. Either way the agent forms the next batch
// while the hub works on the ones sent, and applies answers while the hub works on
// later batches.
func (a *Agent) PushNow(ctx context.Context) (PushReport, error) {
	var total PushReport
	for {
		rep, more, err := a.pushOnce(ctx)
		total.add(rep)
		if err != nil || !more {
			return total, err
		}
	}
}

// pushLoop pushes every Config.PushInterval while the outbox has entries, backing off
// after failures, until ctx ends or the agent is closed.
func (a *Agent) pushLoop(ctx context.Context) {
	bo := backoff{min: a.cfg.BackoffMin, max: a.cfg.BackoffMax}
	el := errorLog{log: a.log, interval: a.cfg.ErrorLogInterval, what: "push to hub"}
	pause := time.Duration(0)
	for {
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			case <-a.stopCtx.Done():
				t.Stop()
				return
			}
		}
		pause = a.cfg.PushInterval
		if a.Status().Pending == 0 {
			if err := a.countPending(ctx); err != nil {
				if ctx.Err() != nil || a.closed.Load() {
					return
				}
				a.log.Warn("read the outbox", "err", err)
				continue
			}
			if a.Status().Pending == 0 {
				continue
			}
		}
		_, err := a.PushNow(ctx)
		switch {
		case ctx.Err() != nil || a.closed.Load():
			return
		case err != nil:
			pause = bo.next()
			el.failed(err, pause)
		default:
			el.succeeded()
			bo.reset()
		}
	}
}

// countPending refreshes the outbox counts in Status from the push connection.
func (a *Agent) countPending(ctx context.Context) error {
	a.pushMu.Lock()
	defer a.pushMu.Unlock()
	conn, err := a.pushConn(ctx)
	if err != nil {
		return err
	}
	return a.refreshCounts(ctx, conn)
}

// refreshCounts reads the outbox and rejection counts into Status.
func (a *Agent) refreshCounts(ctx context.Context, q querier) error {
	var pending, rejected int64
	if err := q.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM _synchub_outbox), (SELECT count(*) FROM _synchub_rejected)`).Scan(&pending, &rejected); err != nil {
		return fmt.Errorf("count the outbox: %w", err)
	}
	a.updateStatus(func(s *Status) { s.Pending, s.RejectedTotal = pending, rejected })
	if m := a.cfg.Metrics; m != nil {
		m.OutboxPending.Set(float64(pending))
	}
	return nil
}

// pushConn returns the push's connection, opening it on first use. Called with pushMu.
func (a *Agent) pushConn(ctx context.Context) (*sql.Conn, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	if a.pconn == nil {
		c, err := a.db.db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("open a connection for pushing: %w", err)
		}
		a.pconn = c
	}
	return a.pconn, nil
}

// catalogue returns the synced tables by hub name, for the push.
func (a *Agent) catalogue() map[string]*table {
	a.catMu.RLock()
	defer a.catMu.RUnlock()
	return a.tables
}

// batchItem is one change of a batch: the group of outbox entries and what is sent.
type batchItem struct {
	g      *outGroup
	t      *table
	c      collapsed
	change syncproto.PushChange
}

// pushOnce forms (or re-forms, after a lost answer) batches, sends them and applies
// the answers, for as long as the outbox has whole batches to send and no push fails
// (see PushNow). more reports whether the outbox may hold more to send.
//
// Up to pushDepth batches are on their way at once. Each names the batch sent before
// it that is still unanswered (PushRequest.After), and the hub writes it only after
// that one; no two unanswered batches write the same row (see formBatch). While that
// many are on their way, one more batch is formed and kept ready, unsent, to go as soon
// as an answer frees a place, so the hub does not wait for the agent to form it. Its
// rows count as busy and its id is left out of later forming, as for a sent batch.
// Answers are applied in the order the batches were sent. When a push fails, no new
// batch is sent; the answers of those already sent are still applied when they come
// (an answer that arrived is applied even when ctx ends meanwhile, so what the hub
// wrote is not left open), and the failed batch (with any that failed behind it, and
// the batch formed but not sent) stays open, to be sent first next time.
func (a *Agent) pushOnce(ctx context.Context) (rep PushReport, more bool, err error) {
	a.pushMu.Lock()
	defer a.pushMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(a.stopCtx, cancel)
	defer stop()
	defer func() {
		if errors.Is(err, context.Canceled) && a.closed.Load() {
			err = ErrClosed
		}
		if err != nil && a.pconn != nil && !a.closed.Load() {
			_ = a.refreshCounts(context.WithoutCancel(ctx), a.pconn)
		}
		now := time.Now()
		a.updateStatus(func(s *Status) {
			if err != nil {
				s.LastPushError, s.LastPushErrorTime = err.Error(), now
			} else if rep.Batches > 0 {
				s.LastPushError = ""
			}
			s.Pushed += int64(rep.Sent)
			s.Conflicts += int64(rep.Conflicts)
		})
	}()
	conn, err := a.pushConn(ctx)
	if err != nil {
		return rep, false, err
	}
	var sent []*outgoing // in sending order, unanswered
	var ready *outgoing  // formed and not sent yet: its entries carry its batch id
	busy := rowSet{}     // the rows of sent and ready
	send := func(out *outgoing) {
		if len(sent) > 0 {
			out.req.After = sent[len(sent)-1].id
		}
		// sent_at is the moment of sending: the hub measures the edge's clock offset
		// by it, so it must not include the time the batch waited to be sent.
		out.req.SentAt = time.Now().Add(a.cfg.ClockSkew).UnixMicro()
		out.answer = make(chan pushAnswer, 1)
		go func() {
			resp, err := a.client.push(ctx, out.req)
			out.answer <- pushAnswer{resp, err}
		}()
		sent = append(sent, out)
	}
	more = true
	var failed error // the first failure; nothing more is sent after it
	for {
		for failed == nil && !a.closed.Load() {
			depth := a.pushDepth()
			if ready != nil {
				if len(sent) >= depth {
					break // sent as soon as an answer frees a place
				}
				send(ready)
				ready = nil
				continue
			}
			if !more || len(sent) > depth {
				break
			}
			// No batch is formed while one is ready, so sent names every batch that
			// must not be formed again.
			ids := make([]string, len(sent))
			for i, o := range sent {
				ids[i] = o.id
			}
			var next *outgoing
			next, more, err = a.prepareBatch(ctx, conn, ids, busy, &rep)
			if err != nil {
				failed = err
				break
			}
			if next == nil {
				break // nothing to send now; more says whether it waits for an answer
			}
			busy.addItems(next.items)
			if len(sent) < depth {
				send(next)
			} else {
				ready = next
			}
		}
		if len(sent) == 0 {
			// A batch still ready here (after a failure or Close) stays open in the
			// outbox and is sent first next time.
			if failed != nil {
				return rep, false, failed
			}
			if err := a.refreshCounts(ctx, conn); err != nil {
				return rep, false, err
			}
			rep.Pending = a.Status().Pending
			return rep, more && !a.closed.Load(), nil
		}
		out := sent[0]
		sent = sent[1:]
		ans := <-out.answer
		if failed != nil && ans.err != nil && !refusedBatch(ans.err) {
			continue // stays open, re-sent after the batch that failed first
		}
		if err := a.finishBatch(ctx, conn, out, ans, &rep); err != nil {
			if failed == nil {
				failed = err
			} else {
				a.log.Warn("a push batch stays open after an earlier push failed", "batch", out.id, "err", err)
			}
			continue
		}
		// The answer frees its rows: what waited behind them (or was written while
		// the batch was away) may go now.
		more = true
		busy = rowSet{}
		for _, o := range sent {
			busy.addItems(o.items)
		}
		if ready != nil {
			busy.addItems(ready.items)
		}
	}
}

// pushDepth is how many batches may be on their way at once: Config.PushPipeline once
// the hub has shown that it writes batches in the order After gives (pushAfterHeader),
// else 1.
func (a *Agent) pushDepth() int {
	if !a.client.pushAfter.Load() {
		return 1
	}
	return max(a.cfg.PushPipeline, 1)
}

// outgoing is a formed batch ready to send.
type outgoing struct {
	id     string
	items  []batchItem
	req    *syncproto.PushRequest
	answer chan pushAnswer // set when sent
}

type pushAnswer struct {
	resp *syncproto.PushResponse
	err  error
}

// prepareBatch forms the next batch (see formBatch), leaving out the batches inFlight
// and the rows busy; nil when there is nothing to send.
func (a *Agent) prepareBatch(ctx context.Context, conn *sql.Conn, inFlight []string, busy rowSet, rep *PushReport) (*outgoing, bool, error) {
	batchID, items, more, err := a.formBatch(ctx, conn, inFlight, busy, rep)
	if err != nil || batchID == "" {
		return nil, more, err
	}
	// SentAt is set when the batch is sent (pushOnce).
	req := &syncproto.PushRequest{Edge: a.cfg.EdgeID, BatchID: batchID, Changes: make([]syncproto.PushChange, len(items))}
	for i := range items {
		req.Changes[i] = items[i].change
	}
	return &outgoing{id: batchID, items: items, req: req}, more, nil
}

// finishBatch applies the hub's answer to a sent batch: the answer's rows and versions,
// or, when the hub refused the batch as such, its move to _synchub_rejected. A failed
// push (network, 5xx) is returned as it is; the batch stays open for a re-send.
//
// An answer that arrived (applied changes or a refusal) is recorded even when ctx
// ends meanwhile: the hub has written or refused the batch, and leaving it open would
// send it again.
func (a *Agent) finishBatch(ctx context.Context, conn *sql.Conn, out *outgoing, ans pushAnswer, rep *PushReport) error {
	start := time.Now()
	err := ans.err
	if err == nil || refusedBatch(err) {
		ctx = context.WithoutCancel(ctx)
	}
	if m := a.cfg.Metrics; m != nil && (err != nil && !refusedBatch(err)) {
		m.Pushed(time.Since(start), err, 0, 0, 0)
	}
	var events []ConflictEvent
	switch {
	case err == nil:
		before := *rep
		events, err = a.applyAnswer(ctx, conn, out.id, out.items, ans.resp, rep)
		if err != nil {
			return err
		}
		rep.Batches++
		rep.Sent += len(out.items)
		a.updateStatus(func(s *Status) { s.LastPush = time.Now() })
		if m := a.cfg.Metrics; m != nil {
			m.Pushed(time.Since(start), nil, rep.Applied-before.Applied, rep.Conflicts-before.Conflicts, rep.Rejected-before.Rejected)
		}
	case refusedBatch(err):
		var he *HubError
		errors.As(err, &he)
		code := he.Code
		if code == "" {
			code = codeBadRequest
		}
		a.log.Warn("the hub refused a push batch; its changes are moved to _synchub_rejected", "batch", out.id,
			"changes", len(out.items), "status", he.Status, "code", code, "hub_message", he.Message)
		events, err = a.rejectBatch(ctx, conn, out.id, out.items, he.Message, code, rep)
		if err != nil {
			return err
		}
		rep.Batches++
		if m := a.cfg.Metrics; m != nil {
			m.Pushed(time.Since(start), nil, 0, 0, len(out.items))
		}
	default:
		return err
	}
	for _, ev := range events {
		if a.cfg.OnConflict != nil {
			a.cfg.OnConflict(ev)
		}
	}
	return nil
}

// refusedBatch reports whether err is the hub refusing a batch as such (a 4xx other
// than timeouts, rate limits, authentication and a missing endpoint): sending it again
// would not help.
func refusedBatch(err error) bool {
	var he *HubError
	if !errors.As(err, &he) {
		return false
	}
	switch he.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		// Credentials or the hub's configuration, not the batch: retry once fixed.
		return false
	}
	return he.Status >= 400 && he.Status < 500 && !he.Retryable()
}
