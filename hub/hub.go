package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/dashboard"
	"github.com/synchub/synchub/hub/edges"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/hub/rules"
	"github.com/synchub/synchub/hub/syncproto"
	"github.com/synchub/synchub/metrics"
)

// Deps are the parts cmd/synchub constructs and hands to a Hub.
type Deps struct {
	Source cdc.Source
	Store  changelog.Store
	// Registry receives the hub's collectors; Gatherer serves /metrics. Both default to a
	// new registry with the Go and process collectors.
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
	Log      *slog.Logger
	// Applier writes edge pushes to the central database; nil disables pushes (the
	// push routes answer 503) for sources that cannot be written to.
	Applier cdc.Applier
	// Audit receives push, conflict, resolution and rejection events; nil records none.
	Audit audit.Log
	// Resolvers are custom conflict resolvers, by the name a table's policy uses in
	// "custom:<name>".
	Resolvers map[string]conflict.Resolver
	// Auth authenticates edges and admins on the sync API. nil, or one without edge
	// methods, serves without edge authentication, which New allows only on a
	// loopback Listen address.
	Auth *auth.Authenticator
}

// Hub is a running hub: ingest, sync API, compaction and lag measurement.
type Hub struct {
	cfg   Config
	deps  Deps
	m     *metrics.Hub
	in    *ingester
	api   *api.Server
	log   *slog.Logger
	ready chan struct{}
	addr  net.Addr
	push  *push.Service // nil without an Applier
	edges *edges.Registry
	dash  *dashboard.Dashboard
}

// New wires a hub; nothing runs until Run.
func New(cfg Config, deps Deps) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Source == nil || deps.Store == nil {
		return nil, errors.New("hub: Source and Store are required")
	}
	if err := api.CheckListen(cfg.Listen, deps.Auth.EdgeAuthConfigured()); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Registry == nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
		deps.Registry, deps.Gatherer = reg, reg
	}
	if deps.Gatherer == nil {
		return nil, errors.New("hub: Gatherer is required when Registry is given")
	}
	if err := cfg.Push.Validate(deps.Resolvers); err != nil {
		return nil, err
	}
	set, err := openRules(cfg.Rules, deps.Store)
	if err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, deps: deps, log: deps.Log, ready: make(chan struct{}), m: metrics.New(cfg.Metrics)}
	if deps.Applier != nil {
		svc, err := push.Open(context.Background(), cfg.Push, push.Deps{
			Store: deps.Store, Applier: deps.Applier, Audit: deps.Audit, Resolvers: deps.Resolvers,
			Log: deps.Log.With("component", "push"), Observer: h.m,
		})
		if err != nil {
			return nil, fmt.Errorf("push service: %w", err)
		}
		h.push = svc
		h.m.SetQueueCounts(h.queueCounts)
	}
	if err := h.m.Register(deps.Registry); err != nil {
		h.closePush()
		return nil, err
	}
	h.in = newIngester(cfg, deps.Source, deps.Store, h.m, deps.Log.With("component", "ingest"))
	if h.push != nil {
		h.in.landed = h.push.Landed
	}
	if h.edges, err = edges.Open(context.Background(), cfg.Edges, deps.Log.With("component", "edges")); err != nil {
		h.closePush()
		return nil, fmt.Errorf("edge registry: %w", err)
	}
	h.m.SetEdges(h.edgeStates)
	srv, err := api.New(cfg.API, api.Deps{
		Store:        deps.Store,
		Status:       h.Status,
		Ready:        h.readyErr,
		Observe:      h.observeRequest,
		Push:         h.push,
		Audit:        deps.Audit,
		Seen:         h.edges.Seen,
		AuthObserver: h.m,
		Auth:         deps.Auth,
		Rules:        set,
	}, deps.Log.With("component", "api"))
	if err != nil {
		h.closePush()
		return nil, fmt.Errorf("sync API: %w", err)
	}
	app := srv.App()
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{})))
	h.dash, err = dashboard.New(cfg.Dashboard, dashboard.Deps{
		Store: deps.Store, Status: h.Status, Push: h.push, Audit: deps.Audit, Edges: h.edges,
		Keys: deps.Auth.Keys(), Log: deps.Log.With("component", "dashboard"),
	})
	if err == nil {
		err = h.dash.Mount(app)
	}
	if err != nil {
		h.closePush()
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	h.api = srv
	return h, nil
}

// rulesStore is a change log that keeps a bucket index for sync rules.
type rulesStore interface {
	SetRules(ctx context.Context, set *rules.Set) error
}

// openRules compiles the sync rules and hands them to the change log, which checks
// them against the captured schema and (re)builds its bucket index to match.
func openRules(cfg rules.Config, store changelog.Store) (*rules.Set, error) {
	set, err := rules.Compile(cfg)
	if err != nil {
		return nil, err
	}
	rs, ok := store.(rulesStore)
	switch {
	case ok:
		if err := rs.SetRules(context.Background(), set); err != nil {
			return nil, fmt.Errorf("sync rules: %w", err)
		}
	case set != nil:
		return nil, fmt.Errorf("sync rules: the change log store (%T) keeps no bucket index; use the SQLite change log or remove rules.groups", store)
	}
	return set, nil
}

func (h *Hub) observeRequest(route string, code int, d time.Duration, changes int, bytes int) {
	h.m.ObserveRequest(route, code, d, changes, bytes)
}

// Metrics returns the hub's collectors (they are also the API's AuthObserver).
func (h *Hub) Metrics() *metrics.Hub { return h.m }

// edgeStates reports the registry's edges to the metrics at a scrape: an edge seen
// within the dashboard's online window is connected, any other is stale, as on the
// dashboard.
func (h *Hub) edgeStates() []metrics.EdgeState {
	h.in.mu.Lock()
	head := h.in.lastState.Head
	h.in.mu.Unlock()
	now := time.Now()
	list := h.edges.List()
	out := make([]metrics.EdgeState, len(list))
	for i, e := range list {
		online := e.Online(now, h.cfg.Dashboard.OnlineWindow)
		out[i] = metrics.EdgeState{ID: e.ID, VersionsBehind: e.Behind(head), LastSeen: e.LastSeen, Connected: online, Stale: !online}
	}
	return out
}

// queueCounts reads the push service's open queues for a scrape.
func (h *Hub) queueCounts() (metrics.QueueCounts, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, r, err := h.push.OpenCounts(ctx)
	if err != nil {
		h.log.Warn("metrics: count open conflicts", "err", err)
		return metrics.QueueCounts{}, false
	}
	return metrics.QueueCounts{Conflicts: c, Rejected: r}, true
}

// Status reports the hub's state for /v1/status and the demo.
func (h *Hub) Status() syncproto.Status {
	state, err, describe, lag := h.in.status()
	h.in.mu.Lock()
	st := h.in.lastState
	h.in.mu.Unlock()
	s := syncproto.Status{
		Head:          st.Head,
		SchemaVersion: st.SchemaVersion,
		Source:        h.cfg.SourceKind,
		SourceState:   string(state),
		LagSeconds:    lag,
	}
	if describe != "" {
		s.Source += " (" + describe + ")"
	}
	if err != nil {
		s.SourceState += ": " + err.Error()
	}
	h.in.mu.Lock()
	s.LagBytes = h.in.lagBytes
	h.in.mu.Unlock()
	return s
}

func (h *Hub) readyErr() error {
	state, err, _, _ := h.in.status()
	if state == StateStreaming {
		return nil
	}
	if err != nil {
		return fmt.Errorf("source is %s: %w", state, err)
	}
	return fmt.Errorf("source is %s", state)
}

// Addr returns the API's listening address once Run has bound it.
func (h *Hub) Addr() net.Addr {
	<-h.ready
	return h.addr
}

func (h *Hub) closePush() {
	if h.edges != nil {
		if err := h.edges.Close(); err != nil {
			h.log.Warn("close edge registry", "err", err)
		}
	}
	if h.push != nil {
		if err := h.push.Close(); err != nil {
			h.log.Warn("close push meta database", "err", err)
		}
	}
}

// Run serves until ctx is cancelled, then shuts down softly: the ingest loop finishes its
// current append and ack, long-polls return, and connections close within
// ShutdownTimeout. The push service's meta database, opened by New, is closed when Run
// returns; a Hub runs once.
func (h *Hub) Run(ctx context.Context) error {
	defer h.closePush()
	ln, err := net.Listen("tcp", h.cfg.Listen)
	if err != nil {
		close(h.ready)
		return fmt.Errorf("listen on %s: %w (is another process using it? set listen: to a free address)", h.cfg.Listen, err)
	}
	h.addr = ln.Addr()
	close(h.ready)
	if st, err := h.deps.Store.State(ctx); err == nil {
		h.in.observeState(st)
	}
	h.log.Info("hub listening", "addr", ln.Addr().String(), "source", h.cfg.SourceKind)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return h.in.run(gctx) })
	g.Go(func() error { return h.api.Serve(gctx, ln) })
	g.Go(func() error { return h.edges.Run(gctx) })
	g.Go(func() error { return h.dash.Run(gctx) })
	if h.cfg.CompactInterval > 0 {
		g.Go(func() error { h.compactLoop(gctx); return nil })
	}
	if h.push != nil {
		g.Go(func() error { h.pruneLoop(gctx); return nil })
	}
	if l, ok := h.deps.Source.(cdc.Lagger); ok && h.cfg.LagInterval > 0 {
		g.Go(func() error { h.lagLoop(gctx, l); return nil })
	}
	return g.Wait()
}

func (h *Hub) compactLoop(ctx context.Context) {
	t := time.NewTicker(h.cfg.CompactInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stats, err := h.deps.Store.Compact(ctx, h.cfg.Compact)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn("compaction failed", "err", err)
			}
			continue
		}
		h.m.CompactionRemoved.Add(float64(stats.ChangesRemoved))
		if stats.ChangesRemoved > 0 {
			h.log.Info("compacted change log", "removed", stats.ChangesRemoved,
				"compacted_through", stats.CompactedThrough, "tombstone_horizon", stats.TombstoneHorizon)
		}
	}
}

// pruneLoop discards push answers older than push.answer_retention, at once and then
// every PruneInterval.
func (h *Hub) pruneLoop(ctx context.Context) {
	t := time.NewTicker(h.push.PruneInterval())
	defer t.Stop()
	for {
		n, err := h.push.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			h.log.Warn("pruning push answers failed", "err", err)
		case n > 0:
			h.log.Info("discarded push answers past push.answer_retention", "batches", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *Hub) lagLoop(ctx context.Context, l cdc.Lagger) {
	t := time.NewTicker(h.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if state, _, _, _ := h.in.status(); state != StateStreaming {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, h.cfg.LagInterval)
		n, err := l.LagBytes(qctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				h.log.Debug("measure source lag", "err", err)
			}
			continue
		}
		h.m.SourceLagBytes.Set(float64(n))
		h.in.mu.Lock()
		h.in.lagBytes = n
		h.in.mu.Unlock()
	}
}
