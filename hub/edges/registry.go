// Package edges keeps the hub's registry of edges: who pulled and pushed, when, and
// how far each edge's watermark is. The sync API feeds it (Seen) after every pull and
// push; the dashboard reads it. The registry lives in memory and, when given a path,
// is written to a small SQLite file every FlushInterval and at shutdown, so a restarted
// hub still knows its edges.
package edges

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"sync"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Kind says what an edge did.
type Kind uint8

// Kinds of contact.
const (
	// Pull is a GET /v1/changes; its watermark is the request's since.
	Pull Kind = iota + 1
	// Push is a POST /v1/push.
	Push
)

// String returns "pull" or "push".
func (k Kind) String() string {
	switch k {
	case Pull:
		return "pull"
	case Push:
		return "push"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Edge is what the hub knows about one edge.
type Edge struct {
	ID        string
	FirstSeen time.Time
	LastSeen  time.Time
	// LastPull is the time of the last pull; Watermark its since (the version the edge
	// had committed). Watermark is -1 until the edge pulled.
	LastPull  time.Time
	Watermark int64
	LastPush  time.Time
	Pushes    int64
	Pulls     int64
	// Scope is the text of the edge's credential claims (empty without edge auth).
	Scope string
}

// Online reports whether the edge was seen within window of now.
func (e Edge) Online(now time.Time, window time.Duration) bool {
	return !e.LastSeen.IsZero() && now.Sub(e.LastSeen) <= window
}

// Behind returns how many versions the edge is behind head (0 when unknown).
func (e Edge) Behind(head int64) int64 {
	if e.Watermark < 0 || head <= e.Watermark {
		return 0
	}
	return head - e.Watermark
}

// Config configures a Registry.
type Config struct {
	// Path is the SQLite file the registry is kept in; empty keeps it in memory only.
	Path string
	// FlushInterval is how often Run writes changed edges to Path.
	FlushInterval time.Duration
	// MaxEdges bounds how many edges are tracked; contacts from further new edge ids
	// are counted in Dropped and not recorded.
	MaxEdges int
}

// DefaultConfig returns an in-memory registry flushed every 5 s with up to 100 000 edges.
func DefaultConfig() Config {
	return Config{FlushInterval: 5 * time.Second, MaxEdges: 100_000}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.FlushInterval <= 0:
		return fmt.Errorf("edges: flush interval %v must be positive", c.FlushInterval)
	case c.MaxEdges <= 0:
		return fmt.Errorf("edges: max edges %d must be positive", c.MaxEdges)
	}
	return nil
}

// Registry is the set of known edges. Seen, List and Get are safe for concurrent use.
// Run, when a Path is configured, persists changes until its context ends.
type Registry struct {
	cfg Config
	log *slog.Logger
	db  *sql.DB
	now func() time.Time

	mu      sync.Mutex
	edges   map[string]*Edge
	dirty   map[string]struct{}
	dropped int64
}

// Open returns a registry, loading the edges stored at cfg.Path when it is set.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{cfg: cfg, log: log, now: time.Now, edges: map[string]*Edge{}, dirty: map[string]struct{}{}}
	if cfg.Path == "" {
		return r, nil
	}
	dsn := "file:" + url.PathEscape(cfg.Path) + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open edge registry %s: %w", cfg.Path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS edges (
		id TEXT PRIMARY KEY, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
		last_pull INTEGER NOT NULL, watermark INTEGER NOT NULL, last_push INTEGER NOT NULL,
		pulls INTEGER NOT NULL, pushes INTEGER NOT NULL, scope TEXT NOT NULL)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("create edge registry table in %s: %w (is the folder writable?)", cfg.Path, err)
	}
	r.db = db
	if err := r.load(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return r, nil
}

func (r *Registry) load(ctx context.Context) error {
	rows, err := r.db.QueryContext(ctx, `SELECT id, first_seen, last_seen, last_pull, watermark, last_push, pulls, pushes, scope FROM edges`)
	if err != nil {
		return fmt.Errorf("load edge registry: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e                         Edge
			first, last, pull, pushed int64
		)
		if err := rows.Scan(&e.ID, &first, &last, &pull, &e.Watermark, &pushed, &e.Pulls, &e.Pushes, &e.Scope); err != nil {
			return fmt.Errorf("load edge registry: %w", err)
		}
		e.FirstSeen, e.LastSeen, e.LastPull, e.LastPush = fromMicros(first), fromMicros(last), fromMicros(pull), fromMicros(pushed)
		r.edges[e.ID] = &e
	}
	return rows.Err()
}

// Seen records a contact of edge id. For a Pull, watermark is the version the edge
// asked to continue from; for a Push it is ignored. scope is the text of the edge's
// claims; empty leaves the recorded scope as it was. An empty id is ignored.
func (r *Registry) Seen(id string, kind Kind, watermark int64, scope string) {
	if id == "" {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.edges[id]
	if !ok {
		if len(r.edges) >= r.cfg.MaxEdges {
			r.dropped++
			return
		}
		e = &Edge{ID: id, FirstSeen: now, Watermark: -1}
		r.edges[id] = e
	}
	e.LastSeen = now
	switch kind {
	case Pull:
		e.LastPull = now
		e.Watermark = watermark
		e.Pulls++
	case Push:
		e.LastPush = now
		e.Pushes++
	}
	if scope != "" {
		e.Scope = scope
	}
	r.dirty[id] = struct{}{}
}

// List returns every known edge, ordered by id.
func (r *Registry) List() []Edge {
	r.mu.Lock()
	out := make([]Edge, 0, len(r.edges))
	for _, e := range r.edges {
		out = append(out, *e)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Get returns one edge.
func (r *Registry) Get(id string) (Edge, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.edges[id]
	if !ok {
		return Edge{}, false
	}
	return *e, true
}

// Dropped returns how many contacts of new edges were not recorded because MaxEdges
// edges are tracked already.
func (r *Registry) Dropped() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// Run writes changed edges to the registry's file every FlushInterval until ctx ends,
// then once more. Without a Path it returns when ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	if r.db == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(r.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return r.Flush(fctx)
		case <-t.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("persist edge registry", "err", err)
			}
		}
	}
}

// Flush writes the edges changed since the last flush to the registry's file.
func (r *Registry) Flush(ctx context.Context) error {
	if r.db == nil {
		return nil
	}
	r.mu.Lock()
	batch := make([]Edge, 0, len(r.dirty))
	for id := range r.dirty {
		batch = append(batch, *r.edges[id])
	}
	r.dirty = map[string]struct{}{}
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := r.write(ctx, batch)
	if err != nil {
		// Keep the edges dirty so the next flush writes them.
		r.mu.Lock()
		for _, e := range batch {
			r.dirty[e.ID] = struct{}{}
		}
		r.mu.Unlock()
	}
	return err
}

func (r *Registry) write(ctx context.Context, batch []Edge) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("persist edge registry: %w", err)
	}
	defer tx.Rollback()
	for _, e := range batch {
		if _, err := tx.ExecContext(ctx, `INSERT INTO edges (id, first_seen, last_seen, last_pull, watermark, last_push, pulls, pushes, scope)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, last_pull = excluded.last_pull,
			watermark = excluded.watermark, last_push = excluded.last_push, pulls = excluded.pulls,
			pushes = excluded.pushes, scope = excluded.scope`,
			e.ID, micros(e.FirstSeen), micros(e.LastSeen), micros(e.LastPull), e.Watermark, micros(e.LastPush), e.Pulls, e.Pushes, e.Scope); err != nil {
			return fmt.Errorf("persist edge %s: %w", e.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("persist edge registry: %w", err)
	}
	return nil
}

// Close closes the registry's file; call it after Run returned.
func (r *Registry) Close() error {
	if r.db == nil {
		return nil
	}
	err := r.db.Close()
	if err != nil && !errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("close edge registry: %w", err)
	}
	return nil
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}
