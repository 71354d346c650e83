package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/synchub/synchub/cdc/postgres/pgserver"
	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub"
	"github.com/synchub/synchub/hub/dashboard"
)

// demoSchema is the sample database: two related tables that use every type the
// PostgreSQL source maps.
const demoSchema = `
CREATE TYPE demo_tier AS ENUM ('bronze', 'silver', 'gold');
CREATE TABLE public.customers (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    email       varchar(200),
    tier        demo_tier NOT NULL DEFAULT 'bronze',
    balance     numeric(20,4) NOT NULL DEFAULT 0,
    lifetime    bigint NOT NULL DEFAULT 0,
    score       double precision,
    rating      real,
    visits      integer NOT NULL DEFAULT 0,
    floor       smallint,
    active      boolean NOT NULL DEFAULT true,
    code        char(4),
    avatar      bytea,
    ref         uuid,
    prefs       jsonb,
    raw_prefs   json,
    birthday    date,
    opens_at    time,
    created     timestamp NOT NULL DEFAULT now(),
    updated     timestamptz NOT NULL DEFAULT now(),
    grace       interval,
    tags        text[],
    lucky       integer[]
);
CREATE TABLE public.orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES public.customers(id),
    total       numeric(12,2) NOT NULL,
    status      text NOT NULL DEFAULT 'new',
    placed_at   timestamptz NOT NULL DEFAULT now(),
    notes       text
);
`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	source := fs.String("source", "postgres", "central database: postgres (PostgreSQL) or mysql (MariaDB/MySQL)")
	dsn := fs.String("dsn", "", "use this database instead of a throwaway one (postgres://… with wal_level=logical, or mysql://… with binlog_format=ROW); the demo creates its tables there")
	listen := fs.String("listen", "127.0.0.1:8080", "address of the hub's sync API (a free port is used if it is taken)")
	rate := fs.Float64("rate", 5, "workload transactions per second")
	interval := fs.Duration("interval", 3*time.Second, "how often to print status")
	keep := fs.Bool("keep", false, "keep the demo's folder (change log, edge databases) on exit")
	logLevel := fs.String("log-level", "warn", "hub and edge log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rate <= 0 || *rate > 10000 {
		return usageError{fmt.Errorf("--rate %v: use a value between 0 and 10000", *rate)}
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	tuneGC()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	dir, err := os.MkdirTemp("", "synchub-demo-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(stdout, "demo folder (kept): %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	var demo demoDatabase
	switch *source {
	case "postgres":
		demo = postgresDemo()
	case "mysql":
		demo = mysqlDemo()
	default:
		return usageError{fmt.Errorf("--source %q: use postgres or mysql", *source)}
	}
	sourceDSN := *dsn
	if sourceDSN == "" {
		fmt.Fprintf(stdout, "starting a throwaway %s…\n", demo.server)
		url, stop, err := demo.start(ctx)
		if err != nil {
			return fmt.Errorf("start %s: %w\nor run the demo against your own server: synchub demo --source %s --dsn %s", demo.server, err, *source, demo.exampleDSN)
		}
		defer stop()
		sourceDSN = url
		fmt.Fprintf(stdout, "%s: %s\n", demo.server, sourceDSN)
	}
	if err := demo.setup(ctx, sourceDSN); err != nil {
		return err
	}

	addr := *listen
	if ln, err := net.Listen("tcp", addr); err != nil {
		addr = "127.0.0.1:0"
	} else {
		ln.Close()
	}
	cfg := defaultFileConfig()
	cfg.Listen = addr
	cfg.Source.Kind = *source
	cfg.Source.DSN = sourceDSN
	cfg.Source.Tables = demo.tables
	cfg.Source.Slot, cfg.Source.Publication = "synchub_demo", "synchub_demo"
	cfg.Store.Path = filepath.Join(dir, "changelog.db")
	cfg.Push.MetaPath = filepath.Join(dir, "hub-meta.db")
	cfg.Audit.Path = filepath.Join(dir, "audit.db")
	cfg.API.MaxWait = 30 * time.Second
	cfg.Dashboard.EdgesPath = filepath.Join(dir, "edges.db")
	demoPassword := rand.Text()
	demoHash, err := dashboard.HashPassword(demoPassword)
	if err != nil {
		return err
	}
	cfg.Dashboard.Users = []dashboardUser{{Name: "demo", PasswordHash: demoHash, Role: "operator"}}

	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	hubUp := make(chan *hub.Hub, 1)
	hubErr := make(chan error, 1)
	go func() { hubErr <- serveHub(hubCtx, cfg, log.With("role", "hub"), func(h *hub.Hub) { hubUp <- h }) }()
	var h *hub.Hub
	select {
	case h = <-hubUp:
	case err := <-hubErr:
		return fmt.Errorf("hub: %w", err)
	case <-ctx.Done():
		return nil
	}
	url := "http://" + h.Addr().String()
	fmt.Fprintf(stdout, "dashboard: %s/ui   (sign in as demo, password %s)\nhub API:   %s   (status %s/v1/status, metrics %s/metrics)\n", url, demoPassword, url, url, url)

	g, gctx := errgroup.WithContext(ctx)
	var agents []*edge.Agent
	for _, name := range []string{"edge-a", "edge-b"} {
		ecfg := edge.DefaultConfig()
		ecfg.HubURL = url
		ecfg.DBPath = filepath.Join(dir, name+".db")
		ecfg.EdgeID = name
		a, err := edge.Open(ctx, ecfg, log.With("role", name))
		if err != nil {
			return fmt.Errorf("open %s: %w", name, err)
		}
		defer a.Close()
		// Both edges capture their local writes; edge-b makes some (see demoEdgeWrites).
		if err := firstSync(ctx, a); err != nil {
			return fmt.Errorf("%s: first sync: %w", name, err)
		}
		if err := a.InitSyncAll(ctx); err != nil {
			return fmt.Errorf("%s: capture local writes: %w", name, err)
		}
		agents = append(agents, a)
		fmt.Fprintf(stdout, "%s:    %s\n", name, ecfg.DBPath)
		g.Go(func() error {
			if err := a.Run(gctx); err != nil && gctx.Err() == nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	fmt.Fprintf(stdout, "inspect an edge while it runs: sqlite3 %s 'SELECT * FROM %s ORDER BY id DESC LIMIT 5'\n",
		agents[0].Status().DBPath, edge.LocalTableName(demo.tables[1]))
	if *duration > 0 {
		fmt.Fprintf(stdout, "running for %v (Ctrl-C stops earlier)\n", *duration)
	} else {
		fmt.Fprintln(stdout, "running until Ctrl-C")
	}

	var txs atomic.Int64
	g.Go(func() error { return demo.workload(gctx, sourceDSN, *rate, &txs) })
	g.Go(func() error { return demoEdgeWrites(gctx, agents[1], edge.LocalTableName(demo.tables[1])) })
	g.Go(func() error {
		t := time.NewTicker(*interval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				printDemoStatus(stdout, h, agents, txs.Load())
			}
		}
	})
	werr := g.Wait()
	fmt.Fprintln(stdout, "stopping…")
	printDemoStatus(stdout, h, agents, txs.Load())
	stopHub()
	if err := <-hubErr; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("hub: %w", err)
	}
	if werr != nil && !errors.Is(werr, context.Canceled) && !errors.Is(werr, context.DeadlineExceeded) {
		return werr
	}
	return nil
}

// firstSync pulls until the edge has the hub's schema (the hub may still be taking its
// snapshot), for at most a minute.
func firstSync(ctx context.Context, a *edge.Agent) error {
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := a.SyncNow(ctx); err != nil {
			return err
		}
		if a.Status().SchemaVersion > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the hub has not served a schema within a minute; is its source streaming? (see /v1/status)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// demoEdgeWrites edits an order on the edge every few seconds, as an application on
// the edge would: plain SQL on the local table. The agent pushes it to the hub, which
// writes it to the central database; the other edge receives it from there.
func demoEdgeWrites(ctx context.Context, a *edge.Agent, orders string) error {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		_, err := a.DB().ExecContext(ctx, `UPDATE "`+orders+`" SET notes = ? WHERE id = (SELECT id FROM "`+orders+`" ORDER BY random() LIMIT 1)`,
			"edited on "+a.Status().EdgeID+" at "+time.Now().Format("15:04:05"))
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("local write on %s: %w", a.Status().EdgeID, err)
		}
	}
}

// demoDatabase is what the demo needs to know about one kind of central database.
type demoDatabase struct {
	server     string // what to call it in messages
	exampleDSN string
	tables     []string
	start      func(ctx context.Context) (url string, stop func(), err error)
	setup      func(ctx context.Context, url string) error
	workload   func(ctx context.Context, url string, rate float64, txs *atomic.Int64) error
}

func postgresDemo() demoDatabase {
	return demoDatabase{
		server:     "PostgreSQL (wal_level=logical)",
		exampleDSN: "postgres://user@host/db",
		tables:     []string{"public.customers", "public.orders"},
		start: func(ctx context.Context) (string, func(), error) {
			srv, err := pgserver.Start(ctx, pgserver.Options{})
			if err != nil {
				return "", nil, err
			}
			return srv.DSN("postgres"), func() { srv.Stop() }, nil
		},
		setup:    setupDemoDB,
		workload: demoWorkload,
	}
}

func mysqlDemo() demoDatabase {
	return demoDatabase{
		server:     "MariaDB (binlog_format=ROW)",
		exampleDSN: "mysql://user:password@host:3306/shop",
		tables:     []string{demoMySQLDatabase + ".customers", demoMySQLDatabase + ".orders"},
		start:      startDemoMySQL,
		setup:      setupDemoMySQL,
		workload:   demoMySQLWorkload,
	}
}

func printDemoStatus(w io.Writer, h *hub.Hub, agents []*edge.Agent, txs int64) {
	st := h.Status()
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] source %s, head v%d, source lag %.3fs, %d workload tx",
		time.Now().Format("15:04:05"), shortState(st.SourceState), st.Head, st.LagSeconds, txs)
	for _, a := range agents {
		es := a.Status()
		fmt.Fprintf(&b, " | %s v%d (%d behind, %d pushed)", es.EdgeID, es.Watermark, max(0, st.Head-es.Watermark), es.Pushed)
	}
	fmt.Fprintln(w, b.String())
}

func shortState(s string) string {
	if i := strings.IndexByte(s, ':'); i > 0 {
		return s[:i]
	}
	return s
}

func setupDemoDB(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('public.customers') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("inspect demo schema: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, demoSchema); err != nil {
		return fmt.Errorf("create demo schema: %w", err)
	}
	return seedDemo(ctx, conn, 50)
}
