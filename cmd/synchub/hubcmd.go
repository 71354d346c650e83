package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/mysql"
	"github.com/synchub/synchub/cdc/postgres"
	"github.com/synchub/synchub/hub"
	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/changelog"
)

func runHub(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path to hub.yaml (see README.md); SYNCHUB_* environment variables override it")
	listen := fs.String("listen", "", "override listen: (address of the sync API)")
	logLevel := fs.String("log-level", "", "override log_level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := loadConfig(*configPath, os.Environ())
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *logLevel != "" {
		cfg.LogLevel = *logLevel
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	tuneGC()
	return serveHub(ctx, cfg, log, nil)
}

// serveHub opens the store and the source named by cfg and runs a hub until ctx ends.
// started, if not nil, is called with the running hub once it listens.
func serveHub(ctx context.Context, cfg fileConfig, log *slog.Logger, started func(*hub.Hub)) error {
	hcfg := cfg.hubConfig()
	if err := hcfg.Validate(); err != nil {
		return err
	}
	// Refuse an unauthenticated public listener before opening anything.
	if err := api.CheckListen(cfg.Listen, len(cfg.Auth.Methods) > 0); err != nil {
		return err
	}
	for _, path := range []string{cfg.Store.Path, cfg.Push.MetaPath, cfg.Audit.Path, cfg.Dashboard.EdgesPath} {
		if dir := filepath.Dir(path); dir != "" && path != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create data folder %s: %w", dir, err)
			}
		}
	}
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = cfg.Store.Path
	scfg.Synchronous = strings.ToUpper(cfg.Store.Synchronous)
	store, err := changelog.OpenSQLite(ctx, scfg, log.With("component", "changelog"))
	if err != nil {
		return fmt.Errorf("open change log %s: %w", cfg.Store.Path, err)
	}
	defer store.Close()
	auditLog, err := audit.OpenSQLite(ctx, cfg.Audit.Path, log.With("component", "audit"))
	if err != nil {
		return fmt.Errorf("open audit log %s: %w", cfg.Audit.Path, err)
	}
	defer auditLog.Close()
	go pruneAudit(ctx, auditLog, cfg.Audit.Retention, log)

	src, err := openSource(cfg.Source, log.With("component", "source"))
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	// The central database may be down when the hub starts: the hub still serves the
	// change log to edges, and the applier connects on the first push that needs it.
	alog := log.With("component", "applier")
	applier := &lazyApplier{open: func(ctx context.Context) (closingApplier, error) {
		return openApplier(ctx, cfg.Source, alog)
	}}
	if _, err := applier.get(ctx); err != nil {
		alog.Warn("write-back to the central database is not available yet; pushes are answered 503 until it is", "err", err)
	}
	defer applier.Close()
	authn, closeKeys, err := openAuth(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeKeys()
	h, err := hub.New(hcfg, hub.Deps{Source: src, Store: store, Applier: applier, Audit: auditLog, Log: log, Auth: authn})
	if err != nil {
		return err
	}
	if started != nil {
		go func() {
			if h.Addr() != nil {
				started(h)
			}
		}()
	}
	return h.Run(ctx)
}

// openAuth opens the key database and builds the authenticator. Without edge
// methods the key database is opened only when it exists (admin keys presented on a
// loopback hub are then checked), so a hub without authentication creates no file.
func openAuth(ctx context.Context, cfg fileConfig) (*auth.Authenticator, func(), error) {
	noop := func() {}
	if len(cfg.Auth.Methods) == 0 {
		if _, err := os.Stat(cfg.Auth.KeysPath); err != nil {
			return nil, noop, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Auth.KeysPath), 0o755); err != nil {
		return nil, noop, fmt.Errorf("create data folder for auth.keys_path: %w", err)
	}
	keys, err := auth.OpenKeys(ctx, cfg.Auth.KeysPath)
	if err != nil {
		return nil, noop, err
	}
	a, err := auth.New(cfg.authConfig(), keys)
	if err != nil {
		keys.Close()
		return nil, noop, err
	}
	return a, func() { keys.Close() }, nil
}

// openSource returns the change source for the configured kind.
func openSource(c sourceConfig, log *slog.Logger) (cdc.Source, error) {
	switch c.Kind {
	case "mysql":
		mcfg := mysql.DefaultConfig()
		mcfg.DSN, mcfg.Tables = c.DSN, c.Tables
		mcfg.SnapshotPageRows = c.SnapshotPageRows
		if c.ServerID != 0 {
			mcfg.ServerID = c.ServerID
		}
		return mysql.New(mcfg, log)
	default:
		pcfg := postgres.DefaultConfig()
		pcfg.DSN = c.DSN
		pcfg.Tables = c.Tables
		pcfg.Slot, pcfg.Publication = c.Slot, c.Publication
		pcfg.SnapshotPageRows, pcfg.StatusInterval = c.SnapshotPageRows, c.StatusInterval
		return postgres.New(pcfg, log)
	}
}

// closingApplier is a write-back applier the hub closes on shutdown.
type closingApplier interface {
	cdc.Applier
	Close()
}

// openApplier returns the write-back applier for the configured kind: edges' pushes
// are written to the same database and tables the source captures.
func openApplier(ctx context.Context, c sourceConfig, log *slog.Logger) (closingApplier, error) {
	if c.Kind == "mysql" {
		return mysql.NewApplier(ctx, mysql.ApplierConfig{DSN: c.DSN, Tables: c.Tables}, log)
	}
	return postgres.NewApplier(ctx, postgres.ApplierConfig{DSN: c.DSN, Tables: c.Tables}, log)
}

// lazyApplier opens the write-back applier when first needed and again after a failed
// attempt (at most every lazyRetry), so a central database that is down when the hub
// starts only delays pushes.
type lazyApplier struct {
	open  func(context.Context) (closingApplier, error)
	retry time.Duration // least time between attempts; 0 means lazyRetry

	mu      sync.Mutex
	a       closingApplier
	tried   time.Time
	lastErr error
}

const lazyRetry = 2 * time.Second

func (l *lazyApplier) get(ctx context.Context) (closingApplier, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.a != nil {
		return l.a, nil
	}
	retry := l.retry
	if retry == 0 {
		retry = lazyRetry
	}
	if l.lastErr != nil && time.Since(l.tried) < retry {
		return nil, l.lastErr
	}
	l.tried = time.Now()
	a, err := l.open(ctx)
	if err != nil {
		l.lastErr = &cdc.Error{Op: "write-back", Err: fmt.Errorf("the central database is not reachable: %w", err), Transient: true}
		return nil, l.lastErr
	}
	l.a, l.lastErr = a, nil
	return a, nil
}

// Apply writes through the applier once it is open.
func (l *lazyApplier) Apply(ctx context.Context, tag cdc.Tag, changes []cdc.Change) ([]cdc.ApplyResult, error) {
	a, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return a.Apply(ctx, tag, changes)
}

// ReadRow reads through the applier once it is open.
func (l *lazyApplier) ReadRow(ctx context.Context, table string, key cdc.Row) (cdc.Row, bool, error) {
	a, err := l.get(ctx)
	if err != nil {
		return nil, false, err
	}
	return a.ReadRow(ctx, table, key)
}

// Close closes the applier if it was opened.
func (l *lazyApplier) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.a != nil {
		l.a.Close()
		l.a = nil
	}
}

// pruneAudit deletes audit events older than retention once an hour (0 keeps all).
func pruneAudit(ctx context.Context, a *audit.SQLite, retention time.Duration, log *slog.Logger) {
	if retention <= 0 {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := a.Prune(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Warn("audit retention: prune failed", "err", err)
		} else if n > 0 {
			log.Info("audit retention: pruned old events", "events", n, "retention", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tuneGC applies hub.GCPercent unless the operator chose a GOGC.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(hub.GCPercent)
	}
}
