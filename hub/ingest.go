package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/metrics"
)

// SourceState is where the ingest loop is.
type SourceState string

// The ingest loop's states, as shown by /v1/status and logs.
const (
	StateStarting     SourceState = "starting"
	StateSnapshot     SourceState = "snapshot"
	StateStreaming    SourceState = "streaming"
	StateReconnecting SourceState = "reconnecting"
	StateStopped      SourceState = "stopped"
)

// ingester tails a Source into the change log. It owns the store's writer.
type ingester struct {
	cfg   Config
	src   cdc.Source
	store changelog.Store
	m     *metrics.Hub
	log   *slog.Logger

	mu        sync.Mutex
	state     SourceState
	lastErr   error
	describe  string
	lagSec    float64
	lagBytes  int64
	lastState changelog.State
	tables    map[string]bool
	// landed, when set, is told after each change-log commit which push batches'
	// write-back transactions (Tx.Batch) it held, and at which versions.
	landed func(ctx context.Context, landings []push.Landing)
}

func newIngester(cfg Config, src cdc.Source, store changelog.Store, m *metrics.Hub, log *slog.Logger) *ingester {
	return &ingester{cfg: cfg, src: src, store: store, m: m, log: log, state: StateStarting}
}

func (in *ingester) setState(s SourceState, err error) {
	in.mu.Lock()
	in.state, in.lastErr = s, err
	in.mu.Unlock()
	if s == StateStreaming || s == StateSnapshot {
		in.m.SourceUp.Set(1)
	} else {
		in.m.SourceUp.Set(0)
	}
}

func (in *ingester) status() (SourceState, error, string, float64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state, in.lastErr, in.describe, in.lagSec
}

// run streams until ctx is cancelled, reconnecting with capped exponential backoff and
// jitter after failures. Configuration errors are retried too (an operator may fix the
// database while the hub waits), at the maximum backoff, and logged at error level.
func (in *ingester) run(ctx context.Context) error {
	backoff := in.cfg.ReconnectMin
	var lastLogged time.Time
	for {
		started := time.Now()
		err := in.session(ctx)
		if ctx.Err() != nil {
			in.setState(StateStopped, nil)
			return nil
		}
		if err == nil {
			err = errors.New("source stream ended")
		}
		in.m.IngestErrors.WithLabelValues(in.cfg.SourceKind).Inc()
		in.setState(StateReconnecting, err)
		if time.Since(started) > 30*time.Second {
			backoff = in.cfg.ReconnectMin
		}
		wait := backoff
		if !cdc.IsRetryable(err) {
			wait = in.cfg.ReconnectMax
		}
		wait = wait/2 + rand.N(wait/2+1)
		if time.Since(lastLogged) > 10*time.Second || !cdc.IsRetryable(err) {
			level := slog.LevelWarn
			if !cdc.IsRetryable(err) {
				level = slog.LevelError
			}
			in.log.Log(ctx, level, "source failed; reconnecting", "source", in.cfg.SourceKind, "err", err, "retry_in", wait.Round(time.Millisecond))
			lastLogged = time.Now()
		}
		select {
		case <-ctx.Done():
			in.setState(StateStopped, nil)
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, in.cfg.ReconnectMax)
	}
}

// session is one Start → (Snapshot) → Stream cycle of the source.
func (in *ingester) session(ctx context.Context) (err error) {
	in.setState(StateStarting, nil)
	st, err := in.store.State(ctx)
	if err != nil {
		return fmt.Errorf("read change log state: %w", err)
	}
	var from cdc.Position
	if st.Position != "" {
		if st.SourceKind != "" && st.SourceKind != in.cfg.SourceKind {
			return &cdc.Error{Op: "resume", Err: fmt.Errorf("the change log was written by a %s source, this hub is configured for %s", st.SourceKind, in.cfg.SourceKind),
				Fix: "point store.path at a new file, or configure the original source kind"}
		}
		if from, err = in.src.ParsePosition(st.Position); err != nil {
			return &cdc.Error{Op: "resume", Err: fmt.Errorf("stored source position %q: %w", st.Position, err), Fix: "the change log file does not belong to this source; use a new store.path"}
		}
	}
	info, err := in.src.Start(ctx, from)
	defer func() {
		if cerr := in.src.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err != nil {
		return err
	}
	if info.PositionLost {
		// The reset is committed before the source prepares a new stream, so a hub
		// that dies in between starts from scratch rather than from the new stream.
		in.log.Warn("source position lost; resetting the change log, re-snapshotting and telling every edge to re-bootstrap",
			"source", in.cfg.SourceKind, "position", st.Position)
		if err := in.resetLog(ctx); err != nil {
			return err
		}
		if err := in.src.Close(); err != nil {
			return fmt.Errorf("close source after position loss: %w", err)
		}
		if info, err = in.src.Start(ctx, nil); err != nil {
			return err
		}
	}
	in.mu.Lock()
	in.describe = info.Describe
	in.tables = make(map[string]bool, len(info.Tables))
	for _, t := range info.Tables {
		in.tables[t.Name] = true
	}
	in.mu.Unlock()
	in.log.Info("source started", "source", in.cfg.SourceKind, "describe", info.Describe,
		"tables", len(info.Tables), "snapshot", info.NeedSnapshot, "from", st.Position)

	w := &writer{in: in}
	if err := w.begin(ctx); err != nil {
		return err
	}
	defer w.rollback()
	// A transaction cut off by the previous session's end arrives again from its start.
	if err := w.batch.DiscardUnfinished(ctx); err != nil {
		return fmt.Errorf("discard unfinished transaction: %w", err)
	}
	if err := w.batch.SetTables(info.Tables); err != nil {
		return fmt.Errorf("record schema: %w", err)
	}
	if info.NeedSnapshot {
		in.setState(StateSnapshot, nil)
		if err := w.snapshot(ctx); err != nil {
			return err
		}
	}
	if err := w.commit(ctx); err != nil {
		return err
	}
	in.setState(StateStreaming, nil)
	p := startPipe(ctx, w)
	err = in.src.Stream(ctx, p)
	if perr := p.stop(); perr != nil && (err == nil || errors.Is(err, errPipeFailed)) {
		err = perr
	}
	if ctx.Err() != nil && w.batch != nil && w.lastPos != nil {
		// Soft shutdown: keep what was already received, and let Close report it.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.ShutdownTimeout)
		defer cancel()
		if cerr := w.commit(sctx); cerr != nil {
			in.log.Warn("could not commit the last group on shutdown; it will be streamed again", "err", cerr)
		} else {
			in.log.Info("committed the last group on shutdown")
		}
	}
	return err
}

// resetLog invalidates the change log in its own committed store transaction.
func (in *ingester) resetLog(ctx context.Context) error {
	b, err := in.store.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin change log reset: %w", err)
	}
	if err := b.Reset(ctx, in.cfg.SourceKind); err != nil {
		b.Rollback()
		return fmt.Errorf("reset change log: %w", err)
	}
	st, err := b.Commit(ctx)
	if err != nil {
		return fmt.Errorf("commit change log reset: %w", err)
	}
	in.observeState(st)
	return nil
}

// writer is the cdc.Handler that appends the stream to the change log in groups.
type writer struct {
	in      *ingester
	batch   changelog.Batch
	lastPos cdc.Position // final position appended since the last commit
	lastTS  time.Time
	txs     int
	counts  map[countKey]int
	// batchID is the push batch of the transaction being appended (any part may
	// carry it); landed lists the push batches completed in this group, each with its
	// index among the group's completed transactions.
	batchID string
	landed  []landedTx
}

// landedTx is a push batch's transaction completed in the current group: it is the
// idx-th (from 0) of the group's completed transactions.
type landedTx struct {
	batch string
	idx   int
}

type countKey struct {
	table string
	op    cdc.Op
}

func (w *writer) begin(ctx context.Context) error {
	b, err := w.in.store.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin change log batch: %w", err)
	}
	w.batch = b
	if w.counts == nil {
		w.counts = make(map[countKey]int)
	}
	return nil
}

func (w *writer) rollback() {
	if w.batch != nil {
		_ = w.batch.Rollback()
		w.batch = nil
	}
	w.landed, w.batchID = w.landed[:0], ""
}

// Tx appends one transaction (or part) and commits when the group is full. Store calls
// are not cut short by a shutdown: an append in progress finishes, so the group can
// still be committed.
func (w *writer) Tx(ctx context.Context, tx *cdc.Tx) error {
	if w.batch == nil {
		if err := w.begin(ctx); err != nil {
			return err
		}
	}
	if err := w.batch.AppendTx(context.WithoutCancel(ctx), tx); err != nil {
		return fmt.Errorf("append to change log: %w", err)
	}
	for i := range tx.Changes {
		w.counts[countKey{tx.Changes[i].Table, tx.Changes[i].Op}]++
	}
	if tx.Batch != "" {
		w.batchID = tx.Batch
	}
	if !tx.More {
		if w.batchID != "" {
			w.landed = append(w.landed, landedTx{batch: w.batchID, idx: w.txs})
			w.batchID = ""
		}
		w.lastPos, w.lastTS = tx.Pos, tx.CommitTime
		w.txs++
	}
	if w.batch.Pending() >= w.in.cfg.GroupMaxChanges {
		return w.commit(context.WithoutCancel(ctx))
	}
	return nil
}

// Idle commits the group: the source has nothing more buffered. Between groups no store
// transaction is open, so compaction can run while the source is quiet.
func (w *writer) Idle(ctx context.Context) error {
	if w.batch == nil || (w.batch.Pending() == 0 && w.lastPos == nil) {
		return nil
	}
	return w.commit(context.WithoutCancel(ctx))
}

// commit makes the group durable, then acknowledges its last position to the source —
// never before. The next group begins with the next transaction.
func (w *writer) commit(ctx context.Context) error {
	if w.batch == nil {
		return nil
	}
	start := time.Now()
	st, err := w.batch.Commit(ctx)
	w.batch = nil
	if err != nil {
		return fmt.Errorf("commit change log: %w", err)
	}
	in := w.in
	in.m.IngestCommits.Inc()
	in.m.IngestCommitSeconds.Observe(time.Since(start).Seconds())
	if w.lastPos != nil {
		in.src.Ack(w.lastPos)
		lag := 0.0
		if !w.lastTS.IsZero() {
			lag = max(0, time.Since(w.lastTS).Seconds())
		}
		in.m.SourceLagSeconds.Set(lag)
		in.mu.Lock()
		in.lagSec = lag
		in.mu.Unlock()
	}
	in.m.IngestTransactions.WithLabelValues(in.cfg.SourceKind).Add(float64(w.txs))
	for k, n := range w.counts {
		in.m.IngestChanges.WithLabelValues(in.cfg.SourceKind, k.table, k.op.String()).Add(float64(n))
		delete(w.counts, k)
	}
	in.observeState(st)
	w.notifyLanded(ctx, st.Head)
	w.lastPos, w.lastTS, w.txs = nil, time.Time{}, 0
	return nil
}

// notifyLanded tells the push service which batches the committed group held. Each
// completed source transaction is one version and versions have no gaps, so the
// group's completed transactions are versions head-txs+1 .. head, in order.
func (w *writer) notifyLanded(ctx context.Context, head int64) {
	if len(w.landed) == 0 {
		return
	}
	if w.in.landed != nil {
		first := head - int64(w.txs) + 1
		ls := make([]push.Landing, len(w.landed))
		for i, l := range w.landed {
			ls[i] = push.Landing{Batch: l.batch, Version: first + int64(l.idx)}
		}
		w.in.landed(context.WithoutCancel(ctx), ls)
	}
	w.landed = w.landed[:0]
}

func (in *ingester) observeState(st changelog.State) {
	in.m.ChangelogHeadVersion.Set(float64(st.Head))
	in.m.ChangelogEntries.Set(float64(st.Entries))
	in.m.ChangelogBytes.Set(float64(st.Bytes))
	in.m.ChangelogSchemaVersion.Set(float64(st.SchemaVersion))
	in.mu.Lock()
	in.lastState = st
	in.mu.Unlock()
}

// snapshot appends the source's snapshot as one version, so an edge applies it whole.
func (w *writer) snapshot(ctx context.Context) error {
	in := w.in
	start := time.Now()
	rows := 0
	lastLog := time.Now()
	pos, err := in.src.Snapshot(ctx, func(ctx context.Context, changes []cdc.Change) error {
		if w.batch == nil {
			if err := w.begin(ctx); err != nil {
				return err
			}
		}
		if err := w.batch.AppendTx(ctx, &cdc.Tx{Changes: changes, More: true}); err != nil {
			return fmt.Errorf("append snapshot: %w", err)
		}
		rows += len(changes)
		for i := range changes {
			w.counts[countKey{changes[i].Table, changes[i].Op}]++
		}
		if len(changes) > 0 {
			in.m.SnapshotRows.WithLabelValues(changes[0].Table).Add(float64(len(changes)))
		}
		if w.batch.Pending() >= in.cfg.GroupMaxChanges*5 {
			if err := w.commit(ctx); err != nil {
				return err
			}
		}
		if time.Since(lastLog) > 5*time.Second {
			in.log.Info("snapshot progress", "rows", rows, "rows_per_sec", int(float64(rows)/time.Since(start).Seconds()))
			lastLog = time.Now()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if w.batch == nil {
		if err := w.begin(ctx); err != nil {
			return err
		}
	}
	if err := w.batch.AppendTx(ctx, &cdc.Tx{Pos: pos, CommitTime: time.Now()}); err != nil {
		return fmt.Errorf("complete snapshot: %w", err)
	}
	w.lastPos, w.lastTS = pos, time.Time{}
	w.txs++
	in.log.Info("snapshot done", "rows", rows, "seconds", time.Since(start).Seconds(), "position", pos.String())
	return nil
}

// errPipeFailed is what the pipe answers the source once the writer has failed; the
// writer's own error is returned by stop.
var errPipeFailed = errors.New("change log writer stopped")

// pipe hands the stream to the writer on its own goroutine, so the source decodes the
// next transaction while the writer stores the previous one. Transactions are queued
// (boundedly); Idle waits until the writer has committed everything queued before it,
// so the source's next status report can confirm it, as with a direct handler.
type pipe struct {
	ch   chan pipeItem
	done chan struct{} // closed when the writer goroutine has exited
	err  error         // the writer's error, set before done is closed
}

type pipeItem struct {
	tx   *cdc.Tx
	idle chan error // set for Idle: answered once the group is committed
}

// pipeDepth bounds the transaction parts queued between source and writer; with parts
// of at most a few thousand changes it also bounds the memory the queue holds.
const pipeDepth = 64

func startPipe(ctx context.Context, w *writer) *pipe {
	p := &pipe{ch: make(chan pipeItem, pipeDepth), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for it := range p.ch {
			if it.idle != nil {
				err := w.Idle(ctx)
				it.idle <- err
				if err != nil {
					p.err = err
					return
				}
				continue
			}
			if err := w.Tx(ctx, it.tx); err != nil {
				p.err = err
				return
			}
		}
	}()
	return p
}

// Tx queues one transaction part for the writer.
func (p *pipe) Tx(ctx context.Context, tx *cdc.Tx) error {
	select {
	case p.ch <- pipeItem{tx: tx}:
		return nil
	case <-p.done:
		return errPipeFailed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Idle waits until the writer has stored and committed everything queued.
func (p *pipe) Idle(ctx context.Context) error {
	ack := make(chan error, 1)
	select {
	case p.ch <- pipeItem{idle: ack}:
	case <-p.done:
		return errPipeFailed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ack:
		return err
	case <-p.done:
		return errPipeFailed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop lets the writer store what is queued, waits for it, and returns its error.
// It must be called once the source no longer calls Tx or Idle.
func (p *pipe) stop() error {
	close(p.ch)
	<-p.done
	return p.err
}
