package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/synchub/synchub/edge"
)

func runEdge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := edge.DefaultConfig()
	hubURL := fs.String("hub", "", "URL of the hub's sync API, e.g. http://127.0.0.1:8080 (env SYNCHUB_EDGE_HUB)")
	dbPath := fs.String("db", "", "path of the local SQLite database (env SYNCHUB_EDGE_DB)")
	id := fs.String("id", "", "this edge's id (default: derived from the host name)")
	once := fs.Bool("once", false, "pull until caught up, then exit (for scripts)")
	wait := fs.Duration("wait", def.Wait, "long-poll wait per pull")
	limit := fs.Int("limit", def.PageLimit, "changes per page")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *hubURL == "" {
		*hubURL = envOr("SYNCHUB_EDGE_HUB", "")
	}
	if *dbPath == "" {
		*dbPath = envOr("SYNCHUB_EDGE_DB", "")
	}
	if *hubURL == "" || *dbPath == "" {
		return usageError{fmt.Errorf("--hub and --db are required, e.g. synchub edge --hub http://127.0.0.1:8080 --db edge.db")}
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	cfg := def
	cfg.HubURL, cfg.DBPath, cfg.Wait, cfg.PageLimit = *hubURL, *dbPath, *wait, *limit
	if *id != "" {
		cfg.EdgeID = *id
	}
	agent, err := edge.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer agent.Close()
	if *once {
		start := time.Now()
		n, err := agent.SyncNow(ctx)
		if err != nil {
			return err
		}
		st := agent.Status()
		fmt.Fprintf(stdout, "applied %d changes in %v; watermark %d\n", n, time.Since(start).Round(time.Millisecond), st.Watermark)
		return nil
	}
	err = agent.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
