package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/metrics"
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
	capture := fs.String("capture", "all", "tables whose local writes are pushed to the hub: all, none, or a comma-separated list (public.orders,customers)")
	pushBatch := fs.Int("push-batch", def.PushBatch, "most changes per push")
	pushPipeline := fs.Int("push-pipeline", def.PushPipeline, "push batches on their way to the hub at once (1: wait for each answer)")
	apiKey := fs.String("api-key", "", "the edge's API key from `synchub keys create --edge ID` (env SYNCHUB_EDGE_API_KEY)")
	token := fs.String("token", "", "a JWT for hubs that authenticate edges by token (env SYNCHUB_EDGE_TOKEN)")
	signingKeyID := fs.String("signing-key-id", "", "key id for request signing (keys created with --signing)")
	signingSecret := fs.String("signing-secret", "", "secret for request signing (env SYNCHUB_EDGE_SIGNING_SECRET)")
	caFile := fs.String("ca-file", "", "PEM file of the authority that signed the hub's certificate (private CA)")
	metricsListen := fs.String("metrics-listen", "", "serve the agent's Prometheus metrics on this address (e.g. 127.0.0.1:9108); empty: none")
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
	cfg.PushBatch, cfg.PushPipeline = *pushBatch, *pushPipeline
	cfg.APIKey = firstNonEmpty(*apiKey, envOr("SYNCHUB_EDGE_API_KEY", ""))
	cfg.Token = firstNonEmpty(*token, envOr("SYNCHUB_EDGE_TOKEN", ""))
	cfg.SigningKeyID = *signingKeyID
	cfg.SigningSecret = firstNonEmpty(*signingSecret, envOr("SYNCHUB_EDGE_SIGNING_SECRET", ""))
	cfg.CAFile = *caFile
	if *metricsListen != "" {
		stopMetrics, m, err := serveEdgeMetrics(ctx, *metricsListen, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
		cfg.Metrics = m
	}
	if *id != "" {
		cfg.EdgeID = *id
	}
	agent, err := edge.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer agent.Close()
	if err := initCapture(ctx, agent, *capture); err != nil {
		return err
	}
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

// serveEdgeMetrics serves /metrics with the agent's collectors plus the Go and process
// collectors, until the returned stop is called.
func serveEdgeMetrics(ctx context.Context, addr string, log *slog.Logger) (func(), *metrics.Edge, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.NewEdge(reg)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("edge metrics server stopped", "err", err)
		}
	}()
	log.Info("serving edge metrics", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, m, nil
}

// initCapture installs the capture triggers the --capture flag names. Tables are known
// only once the edge has the hub's schema, so a new edge first pulls it.
func initCapture(ctx context.Context, agent *edge.Agent, capture string) error {
	if capture == "none" || capture == "" {
		return nil
	}
	if agent.Status().SchemaVersion == 0 {
		if _, err := agent.SyncNow(ctx); err != nil {
			return fmt.Errorf("first sync before capturing local writes: %w", err)
		}
	}
	if capture == "all" {
		return agent.InitSyncAll(ctx)
	}
	for _, t := range strings.Split(capture, ",") {
		if t = strings.TrimSpace(t); t != "" {
			if err := agent.InitSync(ctx, t); err != nil {
				return err
			}
		}
	}
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
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
