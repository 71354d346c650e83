package push

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/syncproto"
)

// Rejection codes sent in syncproto.PushResult.Code.
const (
	CodeBadChange  = "bad_change" // the change does not fit the schema
	CodeConstraint = "constraint" // the central database refused it
	CodeResolver   = "resolver"   // a custom conflict resolver failed
	// CodeAnswerExpired: a re-sent batch was answered long ago and its answer is no
	// longer kept (push.answer_retention); the result carries the row as the central
	// database has it now.
	CodeAnswerExpired = "answer_expired"
)

// Deps are what a Service works with.
type Deps struct {
	Store   changelog.Store
	Applier cdc.Applier
	// Audit receives push, conflict, rejection and resolution events; nil records none.
	Audit audit.Log
	// Resolvers are the custom conflict resolvers, by the name used in "custom:<name>".
	Resolvers map[string]conflict.Resolver
	Log       *slog.Logger
	// Now is the hub's clock; nil means time.Now.
	Now func() time.Time
	// Observer counts the outcome of every stored batch's changes; nil counts nothing.
	Observer Observer
}

// Service handles edge pushes, the manual conflict queue and rejected changes. Its
// methods are safe for concurrent use. See the package comment for the guarantees.
type Service struct {
	cfg     Config
	store   changelog.Store
	applier cdc.Applier
	audit   audit.Log
	rules   conflict.Rules
	log     *slog.Logger
	now     func() time.Time
	db      *sql.DB
	// observer counts outcomes; nil counts nothing.
	observer Observer

	batchLocks keyedLocks
	flights    flights // batches whose push is running, for the batches that follow them
	// orderWaitHook, when set, is called as a batch starts waiting for the batch it
	// follows (tests use it to know the batch is waiting).
	orderWaitHook func(batch, after string)
	writeMu       sync.Mutex // conflict detection through the central-database write
	resolveMu     sync.Mutex // conflict resolutions and rejected-change actions

	mu      sync.Mutex
	waiters map[string][]chan int64
	pending map[rowRef]pendingWrite
	byBatch map[string][]rowRef
}

// rowRef names one row: table and syncproto.KeyText.
type rowRef struct{ table, key string }

// pendingWrite is a row written by a batch whose transaction has not been captured yet.
type pendingWrite struct {
	edge    string
	batch   string // the batch that wrote it; only its landing clears the entry
	at      time.Time
	deleted bool
}

// Open opens the meta database at cfg.MetaPath and returns a ready Service.
func Open(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(deps.Resolvers); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Applier == nil {
		return nil, errors.New("push service: Store and Applier are required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	db, err := openMeta(ctx, cfg.MetaPath)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg: cfg, store: deps.Store, applier: deps.Applier, audit: deps.Audit,
		rules: cfg.Rules(deps.Resolvers), log: deps.Log, now: deps.Now, db: db, observer: deps.Observer,
		waiters: make(map[string][]chan int64),
		pending: make(map[rowRef]pendingWrite),
		byBatch: make(map[string][]rowRef),
	}, nil
}

// Close closes the meta database.
func (s *Service) Close() error { return s.db.Close() }

// Push handles one batch. The answer has one result per change, in order. A re-sent
// batch id gets the stored answer. A new batch with After is decided and written only
// after the write of the batch it follows has completed (see the package comment).
// Errors are *Error: KindInvalid for a malformed request, KindTooLarge for too many
// changes, KindState for a batch id used by another edge, KindPending and
// KindUnavailable when the edge should retry later.
func (s *Service) Push(ctx context.Context, req syncproto.PushRequest) (syncproto.PushResponse, error) {
	received := s.now()
	if err := checkID("edge", req.Edge); err != nil {
		return syncproto.PushResponse{}, errorf(KindInvalid, "%v; send the edge's id", err)
	}
	if err := checkID("batch_id", req.BatchID); err != nil {
		return syncproto.PushResponse{}, errorf(KindInvalid, "%v; send a unique id per batch and re-send it unchanged on retry", err)
	}
	if req.After != "" {
		if err := checkID("after", req.After); err != nil {
			return syncproto.PushResponse{}, errorf(KindInvalid, "%v; send the batch id of this edge's previous unanswered batch, or leave it empty", err)
		}
		if req.After == req.BatchID {
			return syncproto.PushResponse{}, errorf(KindInvalid, "after names the batch itself (%s); send the batch id of this edge's previous unanswered batch, or leave it empty", req.BatchID)
		}
	}
	unlock := s.batchLocks.lock(req.BatchID)
	defer unlock()
	rec, found, err := s.loadBatch(ctx, req.BatchID)
	if err != nil {
		return syncproto.PushResponse{}, err
	}
	if found {
		if rec.edge != req.Edge {
			return syncproto.PushResponse{}, errorf(KindState, "batch id %s was already used by edge %s; every batch needs a new unique id", req.BatchID, rec.edge)
		}
		if rec.state == stateDone && len(rec.response) == 0 {
			return s.expiredAnswer(ctx, req, rec)
		}
		if rec.state == stateDone {
			var resp syncproto.PushResponse
			if err := json.Unmarshal(rec.response, &resp); err != nil {
				return resp, fmt.Errorf("stored answer of batch %s: %w", req.BatchID, err)
			}
			return resp, nil
		}
	} else if n := len(req.Changes); n > s.cfg.MaxBatchChanges {
		// Checked for new batches only: a recorded one is answered whatever the limit
		// is now.
		s.flights.refuse(req.BatchID, req.Edge, received)
		return syncproto.PushResponse{}, errorf(KindTooLarge, "batch %s holds %d changes; the hub accepts at most %d per batch, send smaller batches",
			req.BatchID, n, s.cfg.MaxBatchChanges)
	}
	// From here the batch is in flight: a batch that follows it waits for its write.
	// The deferred end lands the flight as failed on any exit before the write
	// completed, a panic included.
	fl := s.flights.start(req.BatchID, req.Edge)
	ok := false
	defer func() { s.flights.end(req.BatchID, fl, ok) }()
	var resp syncproto.PushResponse
	if found {
		// A re-send of a recorded batch ignores After: it was ordered when it first ran.
		resp, err = s.recoverBatch(ctx, req, rec, fl)
	} else {
		o := runOpts{origin: req.Edge, flight: fl, received: received}
		if req.After != "" {
			o.await = func() error { return s.awaitPredecessor(ctx, req) }
		}
		resp, err = s.run(ctx, req, o)
	}
	ok = err == nil
	return resp, err
}

// runOpts vary a batch run for retries of rejected changes.
type runOpts struct {
	origin  string // the write's Tag.Origin
	retryOf int64  // the rejected change being retried; 0 for a push
	// flight is landed once the batch's central-database write completed; nil for
	// runs no batch can follow (retries of rejected changes).
	flight *flight
	// await, when set, returns once the batch may be decided (the write of the batch
	// it follows completed); it runs after the changes are decoded.
	await func() error
	// received is when the batch reached the hub, for the edge's clock skew; zero
	// means the time of the decision.
	received time.Time
}

// plan is a batch's decisions, persisted while its write is in flight.
type plan struct {
	Results   []syncproto.PushResult `json:"results"`
	Writes    []plannedWrite         `json:"writes,omitempty"`
	Conflicts []conflictRecord       `json:"conflicts,omitempty"`
	Rejected  []rejectRecord         `json:"rejected,omitempty"`
	Events    []audit.Event          `json:"events,omitempty"`
	RetryOf   int64                  `json:"retry_of,omitempty"`
	Origin    string                 `json:"origin"`
}

// plannedWrite is one change sent to the Applier; Result indexes plan.Results.
type plannedWrite struct {
	Result int    `json:"result"`
	Table  string `json:"t"`
	Key    string `json:"key"`
	Failed bool   `json:"failed,omitempty"`
}

type conflictRecord struct {
	Result      int             `json:"result"`
	Event       int             `json:"event"`
	Table       string          `json:"t"`
	Key         string          `json:"key"`
	KeyRow      json.RawMessage `json:"key_row"`
	Op          string          `json:"op"`
	Kind        string          `json:"kind"`
	BaseVersion int64           `json:"base_version"`
	Base        json.RawMessage `json:"base,omitempty"`
	Client      json.RawMessage `json:"client,omitempty"`
	Server      json.RawMessage `json:"server,omitempty"`
}

type rejectRecord struct {
	Result int             `json:"result"`
	Table  string          `json:"t"`
	Key    string          `json:"key"`
	Op     string          `json:"op"`
	Change json.RawMessage `json:"change"`
	Reason string          `json:"reason"`
	Code   string          `json:"code"`
}

// run decides, records, writes and answers a batch that has no record yet.
func (s *Service) run(ctx context.Context, req syncproto.PushRequest, o runOpts) (syncproto.PushResponse, error) {
	sch, _, err := s.store.Schema(ctx)
	if err != nil {
		return syncproto.PushResponse{}, fmt.Errorf("read schema: %w", err)
	}
	if sch == nil {
		return syncproto.PushResponse{}, errorf(KindUnavailable, "the hub has not captured the central database's schema yet; retry when it is streaming")
	}
	// Decoding needs no lock: only what follows depends on the rows' current state.
	decoded := make([]*change, len(req.Changes))
	invalid := make([]error, len(req.Changes))
	for i := range req.Changes {
		decoded[i], invalid[i] = decodeChange(sch, &req.Changes[i])
	}
	if o.await != nil {
		if err := o.await(); err != nil {
			return syncproto.PushResponse{}, err
		}
	}
	st, err := s.store.State(ctx)
	if err != nil {
		return syncproto.PushResponse{}, fmt.Errorf("read change log state: %w", err)
	}
	p := &plan{Results: make([]syncproto.PushResult, len(req.Changes)), RetryOf: o.retryOf, Origin: o.origin}

	s.writeMu.Lock()
	locked := true
	defer func() {
		if locked {
			s.writeMu.Unlock()
		}
	}()
	now := s.now()
	var writes []cdc.Change
	for i := range req.Changes {
		pc := &req.Changes[i]
		p.Results[i].ID = pc.ID
		c := decoded[i]
		if invalid[i] != nil {
			s.reject(p, i, req.Edge, pc, "", CodeBadChange, invalid[i].Error())
			continue
		}
		if sc := scopeFrom(ctx); sc != nil {
			why, err := s.checkScope(ctx, sc, c)
			if err != nil {
				return syncproto.PushResponse{}, err
			}
			if why != "" {
				s.reject(p, i, req.Edge, pc, c.keyText, CodeForbidden, "forbidden: "+why)
				decoded[i] = nil
				continue
			}
		}
	}
	if err := s.lookUpRows(ctx, decoded); err != nil {
		return syncproto.PushResponse{}, err
	}
	for i, c := range decoded {
		if c == nil {
			continue
		}
		w, err := s.decide(ctx, req, p, i, c, cmp.Or(o.received, now), now)
		if err != nil {
			return syncproto.PushResponse{}, err
		}
		if w != nil {
			p.Writes = append(p.Writes, plannedWrite{Result: i, Table: c.tbl.Name, Key: c.keyText})
			writes = append(writes, *w)
		}
	}
	if sc := scopeFrom(ctx); sc != nil {
		limitResultRows(sc, req, p)
	}
	if err := s.beginBatch(ctx, req, st.Head, p); err != nil {
		return syncproto.PushResponse{}, err
	}
	var wait chan int64
	written := 0
	if len(writes) > 0 {
		wait = s.addWaiter(req.BatchID)
		results, err := s.applier.Apply(ctx, cdc.Tag{Origin: o.origin, Batch: req.BatchID}, writes)
		if err != nil || len(results) != len(writes) {
			s.removeWaiter(req.BatchID, wait)
			if err == nil {
				// The write's outcome is unclear; the record stays "applying" and a
				// re-send resolves it from the change log.
				return syncproto.PushResponse{}, &Error{Kind: KindUnavailable,
					Message: "the central database's answer did not match the batch; its outcome will be known on re-send",
					Err:     fmt.Errorf("applier returned %d results for %d changes", len(results), len(writes))}
			}
			if errors.Is(err, cdc.ErrOutcomeUnknown) {
				// The transaction may have committed: the record stays "applying", and a
				// re-send learns the outcome from the change log (see recoverBatch).
				return syncproto.PushResponse{}, &Error{Kind: KindUnavailable,
					Message: "the connection to the central database failed around COMMIT, so the batch's outcome is not known yet; re-send it unchanged (same batch id) and the hub answers from the change log", Err: err}
			}
			if ctx.Err() == nil {
				// Apply failed as a whole: nothing was written, so the batch may run again.
				if derr := s.deleteBatch(context.WithoutCancel(ctx), req.BatchID); derr != nil {
					s.log.Error("drop record of a failed batch", "batch", req.BatchID, "err", derr)
				}
			}
			return syncproto.PushResponse{}, &Error{Kind: KindUnavailable,
				Message: "the central database did not accept the batch's transaction; nothing was written; retry later", Err: err}
		}
		for j, r := range results {
			pw := &p.Writes[j]
			if r.Err != nil {
				pw.Failed = true
				pc := &req.Changes[pw.Result]
				s.reject(p, pw.Result, req.Edge, pc, pw.Key, CodeConstraint, r.Err.Error())
				continue
			}
			written++
			s.addPending(req.BatchID, rowRef{pw.Table, pw.Key}, req.Edge, now, writes[j].Op == cdc.OpDelete, wait)
		}
	}
	s.writeMu.Unlock()
	locked = false
	// The write is done (or there was none): the batch that follows may run.
	o.flight.land(true)

	var version int64
	if written > 0 {
		version = s.wait(ctx, req.BatchID, wait)
	} else if wait != nil {
		s.removeWaiter(req.BatchID, wait)
	}
	for _, pw := range p.Writes {
		if !pw.Failed {
			p.Results[pw.Result].Version = version
		}
	}
	return s.finish(context.WithoutCancel(ctx), req, p)
}

// decide checks one valid change for a conflict, resolves it, and returns the change to
// write (nil: nothing to write). It fills the change's result.
func (s *Service) decide(ctx context.Context, req syncproto.PushRequest, p *plan, i int, c *change, received, now time.Time) (*cdc.Change, error) {
	pc := &req.Changes[i]
	res := &p.Results[i]
	latest, err := s.latest(ctx, req.Edge, c, now)
	if err != nil {
		return nil, err
	}
	kind, isConflict := conflict.Detect(c.op, pc.BaseVersion, req.Edge, latest)
	if !isConflict {
		res.Status = syncproto.PushApplied
		return plainWrite(c), nil
	}
	server, found, err := s.applier.ReadRow(ctx, c.tbl.Name, c.key)
	if err != nil {
		return nil, &Error{Kind: KindUnavailable, Message: fmt.Sprintf("read the current row of %s %s from the central database; retry later", c.tbl.Name, c.keyText), Err: err}
	}
	if !found {
		server = nil
	}
	cf := conflict.Conflict{Kind: kind, Edge: req.Edge, Table: c.tbl, Op: c.op, Key: c.key, Base: c.base, Client: c.row, Server: server, Latest: latest}
	if c.hasHLC {
		cf.ClientTime = conflict.ClientTime(c.hlc, req.SentAt, received, now)
	}
	d, pol, rerr := s.rules.Resolve(ctx, cf)
	res.Status = syncproto.PushConflict
	res.Policy = string(pol.Policy)
	ev := audit.Event{
		Time: now, Actor: audit.EdgeActor(req.Edge), Action: audit.ActionConflict, Edge: req.Edge,
		Table: c.tbl.Name, Key: c.keyText, Outcome: d.Outcome,
		Detail: fmt.Sprintf("policy=%s kind=%s op=%s base_version=%d server_version=%s batch=%s",
			pol.Policy, kind, c.op, pc.BaseVersion, versionText(latest.Version), req.BatchID),
		Before: rowJSON(server), After: rowJSON(c.row),
	}
	if rerr != nil {
		ev.Outcome = "error"
		p.Events = append(p.Events, ev)
		s.reject(p, i, req.Edge, pc, c.keyText, CodeResolver, "conflict resolver failed: "+rerr.Error())
		return nil, nil
	}
	p.Events = append(p.Events, ev)
	res.Outcome = d.Outcome
	var desired cdc.Row
	switch d.Outcome {
	case syncproto.OutcomeServerWon:
		res.Row = rowJSON(server)
		return nil, nil
	case syncproto.OutcomeManual:
		res.Row = rowJSON(server)
		p.Conflicts = append(p.Conflicts, conflictRecord{
			Result: i, Event: len(p.Events) - 1, Table: c.tbl.Name, Key: c.keyText, KeyRow: rowJSON(c.key),
			Op: c.op.Code(), Kind: string(kind), BaseVersion: pc.BaseVersion,
			Base: rowJSON(c.base), Client: rowJSON(c.row), Server: rowJSON(server),
		})
		return nil, nil
	case syncproto.OutcomeClientWon:
		desired = c.row
	case syncproto.OutcomeMerged:
		desired = d.Row
	}
	res.Row = rowJSON(desired)
	return writeTo(c.tbl.Name, c.key, desired, server != nil), nil
}

func versionText(v int64) string {
	if v == math.MaxInt64 {
		return "uncaptured"
	}
	return fmt.Sprint(v)
}

// latest returns the change log's entry for the row, or the write of a batch not yet
// captured.
func (s *Service) latest(ctx context.Context, edge string, c *change, now time.Time) (conflict.Latest, error) {
	s.mu.Lock()
	pw, ok := s.pending[rowRef{c.tbl.Name, c.keyText}]
	s.mu.Unlock()
	if ok && pw.edge != edge && now.Sub(pw.at) < s.cfg.LandingGrace {
		return conflict.Latest{Exists: true, Version: math.MaxInt64, Origin: pw.edge, Deleted: pw.deleted, CommitTime: pw.at}, nil
	}
	info, found := c.known.info, c.known.found
	if !c.known.set {
		var err error
		if info, found, err = s.store.Row(ctx, c.tbl.Name, c.keyText); err != nil {
			return conflict.Latest{}, fmt.Errorf("read row index of %s %s: %w", c.tbl.Name, c.keyText, err)
		}
	}
	return conflict.Latest{Exists: found, Version: info.Version, Origin: info.Origin, Deleted: info.Deleted, CommitTime: info.CommitTime}, nil
}

// lookUpRows reads the change-log entries of a batch's rows with one query per table
// (and per 250 rows) when the store can, instead of one per change.
func (s *Service) lookUpRows(ctx context.Context, cs []*change) error {
	rr, ok := s.store.(changelog.RowsReader)
	if !ok {
		return nil
	}
	byTable := map[string][]*change{}
	for _, c := range cs {
		if c != nil {
			byTable[c.tbl.Name] = append(byTable[c.tbl.Name], c)
		}
	}
	for table, group := range byTable {
		keys := make([]string, len(group))
		for i, c := range group {
			keys[i] = c.keyText
		}
		found, err := rr.RowsOf(ctx, table, keys)
		if err != nil {
			return fmt.Errorf("read row index of %s: %w", table, err)
		}
		for _, c := range group {
			c.known.info, c.known.found = found[c.keyText]
			c.known.set = true
		}
	}
	return nil
}

// plainWrite is the change as the edge sent it.
func plainWrite(c *change) *cdc.Change {
	switch c.op {
	case cdc.OpInsert:
		return &cdc.Change{Table: c.tbl.Name, Op: cdc.OpInsert, After: c.row}
	case cdc.OpUpdate:
		return &cdc.Change{Table: c.tbl.Name, Op: cdc.OpUpdate, Before: c.key, After: c.row}
	}
	return &cdc.Change{Table: c.tbl.Name, Op: cdc.OpDelete, Before: c.key}
}

// writeTo returns the change that brings the row with key to desired (nil: deleted),
// given whether the central database has the row now; nil when nothing is to be done.
func writeTo(table string, key, desired cdc.Row, serverExists bool) *cdc.Change {
	switch {
	case desired == nil && !serverExists:
		return nil
	case desired == nil:
		return &cdc.Change{Table: table, Op: cdc.OpDelete, Before: key}
	case serverExists:
		return &cdc.Change{Table: table, Op: cdc.OpUpdate, Before: key, After: desired}
	}
	return &cdc.Change{Table: table, Op: cdc.OpInsert, After: desired}
}

// reject marks result i rejected and records it for the rejected list and the audit.
func (s *Service) reject(p *plan, i int, edge string, pc *syncproto.PushChange, key, code, reason string) {
	res := &p.Results[i]
	*res = syncproto.PushResult{ID: pc.ID, Status: syncproto.PushRejected, Reason: reason, Code: code}
	raw, err := json.Marshal(pc)
	if err != nil {
		raw = []byte("{}")
	}
	p.Rejected = append(p.Rejected, rejectRecord{Result: i, Table: pc.Table, Key: key, Op: pc.Op, Change: raw, Reason: reason, Code: code})
	p.Events = append(p.Events, audit.Event{
		Time: s.now(), Actor: audit.EdgeActor(edge), Action: audit.ActionReject, Edge: edge,
		Table: pc.Table, Key: key, Outcome: code, Detail: reason, After: validJSON(pc.Row),
	})
}

// validJSON returns raw if it is valid JSON, else nil (the audit log stores JSON only).
func validJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || !json.Valid(raw) {
		return nil
	}
	return raw
}

// keyedLocks serialises work per key.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// WaitTimeout is how long a push may wait for its write to be captured; the API adds
// it to the request timeout of push routes.
func (s *Service) WaitTimeout() time.Duration { return s.cfg.WaitTimeout }

// OrderWait is how long a push may wait for the batch it follows; the API adds it to
// the request timeout of push routes.
func (s *Service) OrderWait() time.Duration { return s.cfg.OrderWait }
