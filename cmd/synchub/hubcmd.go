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

	"github.com/synchub/synchub/cdc/postgres"
	"github.com/synchub/synchub/hub"
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
	if dir := filepath.Dir(cfg.Store.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create store folder: %w", err)
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

	pcfg := postgres.DefaultConfig()
	pcfg.DSN = cfg.Source.DSN
	pcfg.Tables = cfg.Source.Tables
	pcfg.Slot, pcfg.Publication = cfg.Source.Slot, cfg.Source.Publication
	pcfg.SnapshotPageRows, pcfg.StatusInterval = cfg.Source.SnapshotPageRows, cfg.Source.StatusInterval
	src, err := postgres.New(pcfg, log.With("component", "source"))
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	h, err := hub.New(hcfg, hub.Deps{Source: src, Store: store, Log: log})
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
	if cfg.Listen != "" && !isLoopback(cfg.Listen) {
		log.Warn("the sync API has no edge authentication yet; serve it only on a trusted network", "listen", cfg.Listen)
	}
	return h.Run(ctx)
}

// tuneGC applies hub.GCPercent unless the operator chose a GOGC.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(hub.GCPercent)
	}
}
