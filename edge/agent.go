package edge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/synchub/synchub/cdc"
)

// ErrClosed is returned by an Agent's methods after Close.
var ErrClosed = errors.New("edge agent is closed")

// Agent keeps a local SQLite database in sync with a hub.
//
// Run and SyncNow may be called from any goroutine; pulls are serialised, so a SyncNow
// during Run waits for Run's current pull. Status and DB are safe at any time. Close
// cancels a pull in flight, waits for it, and closes the database; call it once Run
// has returned or concurrently with it (Run then returns ErrClosed).
type Agent struct {
	cfg    Config
	log    *slog.Logger
	client *hubClient
	db     *localDB
	// scope is the hub's fingerprint of the rows this edge may see, as of its data
	// (empty without sync rules); the hub re-bootstraps the edge when it changes.
	scope string

	stopCtx context.Context // cancelled by Close
	stop    context.CancelFunc
	closed  atomic.Bool

	// pullMu serialises pulls and Close, and guards the fields below.
	pullMu        sync.Mutex
	watermark     int64
	schema        *cdc.Schema
	tables        map[string]*table // by captured table name
	needBootstrap bool              // a filter change or a missing table needs a re-bootstrap
	filterDirty   bool              // the table filter differs from the stored one
	scan          rowScanner
	keyArgs       []any
	keyBuf        []byte
	bootstrapping bool  // pulling from version 0 until caught up: no per-row versions
	pullMaxTS     int64 // the latest commit time in the open pull transaction

	// catMu guards schema and tables for readers other than the pull (the push); the
	// pull replaces them holding both pullMu and catMu.
	catMu sync.RWMutex

	// pushMu serialises pushes and guards pconn, the push's own connection: a pull
	// holds pullMu through its long poll, and a push must not wait for it.
	pushMu sync.Mutex
	pconn  *sql.Conn
	// pstmts are statements prepared on pconn, by SQL text (see pushStmt).
	pstmts map[string]*sql.Stmt
	pscan  rowScanner

	clock *clock

	mu     sync.Mutex // guards status
	status Status
}

// Open opens (or creates) the local database and loads the agent's state. It does not
// contact the hub.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("edge_id", cfg.EdgeID)
	db, err := openLocal(ctx, cfg.DBPath, cfg.BusyTimeout)
	if err != nil {
		return nil, err
	}
	client, err := newHubClient(cfg)
	if err != nil {
		_ = db.close()
		return nil, err
	}
	a := &Agent{cfg: cfg, log: log, client: client, db: db}
	a.stopCtx, a.stop = context.WithCancel(context.Background())
	if err := a.load(ctx); err != nil {
		_ = db.close()
		return nil, err
	}
	a.status = Status{EdgeID: cfg.EdgeID, HubURL: cfg.HubURL, DBPath: db.path, State: StateIdle,
		Watermark: a.watermark, SchemaVersion: a.schemaVersion()}
	if err := a.refreshCounts(ctx, a.db.conn); err != nil {
		_ = db.close()
		return nil, err
	}
	log.Info("edge agent opened", "db", db.path, "hub", cfg.HubURL, "watermark", a.watermark,
		"schema_version", a.schemaVersion(), "tables", len(a.tables), "needs_bootstrap", a.needBootstrap)
	return a, nil
}

// load reads the persisted state: watermark, schema and the local tables.
func (a *Agent) load(ctx context.Context) error {
	wm, err := a.db.getMetaInt(ctx, metaWatermark)
	if err != nil {
		return err
	}
	a.watermark = wm
	if a.scope, _, err = a.db.getMeta(ctx, metaScope); err != nil {
		return err
	}
	b, _, err := a.db.getMeta(ctx, metaBootstrapping)
	if err != nil {
		return err
	}
	a.bootstrapping = b == "1" || wm == 0
	if a.clock, err = loadClock(ctx, a.db, a.cfg.EdgeID); err != nil {
		return err
	}
	missing, err := a.loadCatalogue(ctx)
	if err != nil {
		return err
	}
	if hub, ok, err := a.db.getMeta(ctx, metaHubURL); err != nil {
		return err
	} else if ok && hub != a.cfg.HubURL {
		a.log.Warn("hub URL changed since this database was synced; continuing from its watermark (the hub re-bootstraps it if its log differs)",
			"was", hub, "now", a.cfg.HubURL)
	}
	if err := a.db.setMeta(ctx, metaHubURL, a.cfg.HubURL); err != nil {
		return err
	}
	if err := a.db.setMeta(ctx, metaEdgeID, a.cfg.EdgeID); err != nil {
		return err
	}
	stored, _, err := a.db.getMeta(ctx, metaTables)
	if err != nil {
		return err
	}
	a.filterDirty = stored != filterKey(a.cfg.Tables)
	if a.watermark > 0 && (missing || a.filterDirty) {
		a.needBootstrap = true
	}
	return nil
}

// DB returns the local database for the application. Tables are named by
// LocalTableName. Writes to a synced table are pushed to the hub once InitSync was
// called for it; without it they are overwritten by later changes from the hub.
func (a *Agent) DB() *sql.DB { return a.db.db }

// Run pulls from the hub and pushes local writes until ctx is cancelled (it then
// returns nil) or the agent is closed (ErrClosed). When caught up it long-polls with
// Config.Wait. Pushes run on a goroutine Run owns and waits for: every
// Config.PushInterval it sends the outbox, if not empty. Failed pulls and pushes are
// retried with capped exponential backoff and jitter; repeated errors are logged at most
// once per Config.ErrorLogInterval.
func (a *Agent) Run(ctx context.Context) error {
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.pushLoop(pctx)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	return a.runPull(ctx)
}

func (a *Agent) runPull(ctx context.Context) error {
	bo := backoff{min: a.cfg.BackoffMin, max: a.cfg.BackoffMax}
	el := errorLog{log: a.log, interval: a.cfg.ErrorLogInterval}
	for {
		res, err := a.step(ctx, a.cfg.Wait)
		var pause time.Duration
		switch {
		case errors.Is(err, ErrClosed):
			return ErrClosed
		case ctx.Err() != nil:
			a.setState(StateIdle)
			return nil
		case err != nil:
			pause = bo.next()
			el.failed(err, pause)
			a.setState(StateBackoff)
		default:
			el.succeeded()
			bo.reset()
			if res.caughtUp && a.cfg.Wait == 0 {
				pause = a.cfg.BackoffMin
			}
		}
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				a.setState(StateIdle)
				return nil
			case <-a.stopCtx.Done():
				t.Stop()
				return ErrClosed
			}
		}
	}
}

// SyncNow pulls without waiting until the edge has caught up with the hub's head, then
// pushes the outbox if it holds local writes, and returns the number of pulled changes
// applied.
func (a *Agent) SyncNow(ctx context.Context) (applied int, err error) {
	for {
		res, err := a.step(ctx, 0)
		applied += res.applied
		if err != nil {
			return applied, err
		}
		if res.caughtUp {
			a.setState(StateIdle)
			break
		}
	}
	if err := a.countPending(ctx); err != nil {
		return applied, err
	}
	if a.Status().Pending > 0 {
		if _, err := a.PushNow(ctx); err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// step runs one pull under the pull lock, cancelled by ctx or Close.
func (a *Agent) step(ctx context.Context, wait time.Duration) (pullResult, error) {
	a.pullMu.Lock()
	defer a.pullMu.Unlock()
	if a.closed.Load() {
		return pullResult{}, ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(a.stopCtx, cancel)
	defer stop()
	start, reboots := time.Now(), a.Status().Rebootstraps
	res, err := a.pull(ctx, wait)
	if m := a.cfg.Metrics; m != nil && !a.closed.Load() {
		result := "ok"
		switch {
		case err != nil:
			result = "error"
		case a.Status().Rebootstraps > reboots:
			result = "gone"
		case res.applied == 0 && res.caughtUp:
			result = "empty"
		}
		m.Pulled(result, time.Since(start), res.applied, a.watermark, a.Status().HeadSeen)
	}
	if err != nil {
		if a.closed.Load() {
			return res, ErrClosed
		}
		a.updateStatus(func(s *Status) { s.LastError, s.LastErrorTime = err.Error(), time.Now() })
		return res, err
	}
	a.updateStatus(func(s *Status) { s.LastError = "" })
	return res, nil
}

// Close stops a pull in flight (rolling back its open transaction) and closes the
// local database. It is safe to call more than once.
func (a *Agent) Close() error {
	if !a.closed.CompareAndSwap(false, true) {
		return nil
	}
	a.stop()
	a.pullMu.Lock()
	defer a.pullMu.Unlock()
	a.setCatalogue(nil, nil)
	a.pushMu.Lock()
	var errs []error
	if a.pconn != nil {
		for _, st := range a.pstmts {
			_ = st.Close()
		}
		a.pstmts = nil
		errs = append(errs, a.pconn.Close())
		a.pconn = nil
	}
	a.pushMu.Unlock()
	err := errors.Join(append(errs, a.db.close())...)
	a.setState(StateClosed)
	if err != nil {
		return fmt.Errorf("close edge agent: %w", err)
	}
	a.log.Info("edge agent closed", "watermark", a.watermark)
	return nil
}
