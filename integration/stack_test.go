package integration

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/mysql"
	"github.com/synchub/synchub/cdc/mysql/myserver"
	"github.com/synchub/synchub/cdc/mysql/mytest"
	"github.com/synchub/synchub/cdc/postgres"
	"github.com/synchub/synchub/cdc/postgres/pgserver"
	"github.com/synchub/synchub/cdc/postgres/pgtest"
	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/changelog"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SYNCHUB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// stack is a hub on a real PostgreSQL or MariaDB with its change log in a temp folder.
type stack struct {
	t      testing.TB
	pg     *pgserver.Server // set for PostgreSQL stacks
	my     *myserver.Server // set for MariaDB stacks
	db     string
	dsn    string
	tables []string
	dir    string
	hub    *hub.Hub
	store  *changelog.SQLiteStore
	url    string
	cancel context.CancelFunc
	done   chan error
	pings  int64 // catch-up markers written (MariaDB)

	configure func(*hub.Config)
	// keys, when set, turns on edge authentication by API key (see newStackKeys).
	keys    *auth.Keys
	applier applier
	audit   *audit.SQLite
}

// newStack starts PostgreSQL, runs schemaSQL in a fresh database and starts a hub that
// captures tables.
func newStack(t testing.TB, schemaSQL string, tables []string) *stack {
	t.Helper()
	return newStackWith(t, schemaSQL, tables, nil)
}

// newStackWith is newStack with a hook that adjusts the hub's configuration.
func newStackWith(t testing.TB, schemaSQL string, tables []string, configure func(*hub.Config)) *stack {
	t.Helper()
	return newStackKeys(t, schemaSQL, tables, configure, false)
}

// newStackKeys is newStackWith; with apiKeys the hub authenticates edges by API keys
// from a key database in the stack's folder (s.keys), as `synchub keys` creates them.
func newStackKeys(t testing.TB, schemaSQL string, tables []string, configure func(*hub.Config), apiKeys bool) *stack {
	t.Helper()
	pg := pgtest.Start(t, pgserver.Options{})
	db := pgtest.CreateDB(t, pg)
	pgtest.MustExec(t, pg, db, schemaSQL)
	s := &stack{t: t, pg: pg, db: db, dsn: pg.DSN(db), tables: tables, dir: t.TempDir(), configure: configure}
	if apiKeys {
		keys, err := auth.OpenKeys(context.Background(), filepath.Join(s.dir, "keys.db"))
		if err != nil {
			t.Fatalf("open key database: %v", err)
		}
		t.Cleanup(func() { keys.Close() })
		s.keys = keys
	}
	s.startHub()
	t.Cleanup(s.stopHub)
	return s
}

// newMySQLStack starts MariaDB, runs schemaSQL in a fresh database and starts a hub
// that captures tables, given without the database name ("items" → "<db>.items"). It
// also creates and captures a one-row table the stack writes to when it waits for the
// hub to catch up (see waitHubCaughtUp).
func newMySQLStack(t testing.TB, schemaSQL string, tables []string) *stack {
	t.Helper()
	my := mytest.Start(t, myserver.Options{})
	db := mytest.CreateDB(t, my)
	mytest.MustExec(t, my, db, schemaSQL+";\nCREATE TABLE "+pingTable+" (id INT PRIMARY KEY, n BIGINT NOT NULL)")
	s := &stack{t: t, my: my, db: db, dsn: my.URL(db), dir: t.TempDir()}
	for _, name := range append(tables, pingTable) {
		s.tables = append(s.tables, db+"."+name)
	}
	s.startHub()
	t.Cleanup(s.stopHub)
	return s
}

// pingTable is the MariaDB stack's catch-up marker table.
const pingTable = "synchub_ping"

// sourceName names the stack's central database in messages.
func (s *stack) sourceName() string {
	if s.my != nil {
		return "MariaDB"
	}
	return "PostgreSQL"
}

// newSource returns a source for the stack's database capturing tables.
func (s *stack) newSource(tables []string, log *slog.Logger) cdc.Source {
	s.t.Helper()
	if s.my != nil {
		cfg := mysql.DefaultConfig()
		cfg.DSN = s.dsn
		cfg.Tables = tables
		src, err := mysql.New(cfg, log)
		if err != nil {
			s.t.Fatalf("mysql source: %v", err)
		}
		return src
	}
	cfg := postgres.DefaultConfig()
	cfg.DSN = s.dsn
	cfg.Tables = tables
	src, err := postgres.New(cfg, log)
	if err != nil {
		s.t.Fatalf("postgres source: %v", err)
	}
	return src
}

// applier is what the stack needs of a write-back applier.
type applier interface {
	cdc.Applier
	Close()
}

// newApplier opens the write-back applier for the stack's database.
func (s *stack) newApplier(ctx context.Context, log *slog.Logger) applier {
	s.t.Helper()
	if s.my != nil {
		a, err := mysql.NewApplier(ctx, mysql.ApplierConfig{DSN: s.dsn, Tables: s.tables}, log)
		if err != nil {
			s.t.Fatalf("mysql applier: %v", err)
		}
		return a
	}
	a, err := postgres.NewApplier(ctx, postgres.ApplierConfig{DSN: s.dsn, Tables: s.tables}, log)
	if err != nil {
		s.t.Fatalf("postgres applier: %v", err)
	}
	return a
}

func (s *stack) startHub() {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := testLogger(t)
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(s.dir, "changelog.db")
	store, err := changelog.OpenSQLite(ctx, scfg, log)
	if err != nil {
		cancel()
		t.Fatalf("open change log: %v", err)
	}
	src := s.newSource(s.tables, log)
	applier := s.newApplier(ctx, log)
	auditLog, err := audit.OpenSQLite(ctx, filepath.Join(s.dir, "audit.db"), log)
	if err != nil {
		cancel()
		t.Fatalf("open audit log: %v", err)
	}
	hcfg := hub.DefaultConfig()
	hcfg.Listen = "127.0.0.1:0"
	if s.url != "" {
		// A restarted hub keeps its address, so edges keep talking to it.
		hcfg.Listen = strings.TrimPrefix(s.url, "http://")
	}
	hcfg.ReconnectMin = 50 * time.Millisecond
	hcfg.ReconnectMax = time.Second
	hcfg.LagInterval = 200 * time.Millisecond
	hcfg.SourceKind = "postgres"
	if s.my != nil {
		hcfg.SourceKind = "mysql"
	}
	hcfg.Push.MetaPath = filepath.Join(s.dir, "hub-meta.db")
	if s.configure != nil {
		s.configure(&hcfg)
	}
	var authn *auth.Authenticator
	if s.keys != nil {
		acfg := auth.DefaultConfig()
		acfg.Methods = []string{auth.MethodAPIKey}
		if authn, err = auth.New(acfg, s.keys); err != nil {
			cancel()
			t.Fatalf("authenticator: %v", err)
		}
	}
	h, err := hub.New(hcfg, hub.Deps{Source: src, Store: store, Applier: applier, Audit: auditLog, Auth: authn, Log: log})
	if err != nil {
		cancel()
		t.Fatalf("hub: %v", err)
	}
	s.hub, s.store, s.cancel, s.done = h, store, cancel, make(chan error, 1)
	s.applier, s.audit = applier, auditLog
	go func() { s.done <- h.Run(ctx) }()
	s.url = "http://" + h.Addr().String()
}

func (s *stack) stopHub() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("hub stopped with: %v", err)
		}
	case <-time.After(30 * time.Second):
		s.t.Errorf("hub did not stop within 30s of cancel")
	}
	s.store.Close()
	s.applier.Close()
	s.audit.Close()
	s.cancel = nil
}

// exec runs SQL on the source database; on PostgreSQL it returns psql's output.
func (s *stack) exec(sql string) string {
	s.t.Helper()
	if s.my != nil {
		mytest.MustExec(s.t, s.my, s.db, sql)
		return ""
	}
	return pgtest.MustExec(s.t, s.pg, s.db, sql)
}

// waitStreaming waits until the hub has taken its snapshot and streams.
func (s *stack) waitStreaming() {
	s.t.Helper()
	pgtest.WaitFor(s.t, 60*time.Second, "hub streaming", func() bool {
		return strings.HasPrefix(s.hub.Status().SourceState, string(hub.StateStreaming))
	})
}

// sourceLSN returns PostgreSQL's current WAL position, to wait for the hub to pass it.
func (s *stack) head() int64 { return s.hub.Status().Head }

// newEdge opens an edge agent on a temp database file.
func (s *stack) newEdge(name string) *edge.Agent {
	s.t.Helper()
	return s.newEdgeWith(name, nil)
}

// newEdgeAt opens an edge agent that talks to the hub through url (e.g. a proxy).
func (s *stack) newEdgeAt(name, url string) *edge.Agent {
	s.t.Helper()
	return s.newEdgeWith(name, func(c *edge.Config) { c.HubURL = url })
}

// newEdgeWith opens an edge agent with a hook that adjusts its configuration.
func (s *stack) newEdgeWith(name string, configure func(*edge.Config)) *edge.Agent {
	s.t.Helper()
	cfg := edge.DefaultConfig()
	cfg.HubURL = s.url
	cfg.DBPath = filepath.Join(s.dir, name+".db")
	cfg.EdgeID = name
	cfg.Wait = 2 * time.Second
	if configure != nil {
		configure(&cfg)
	}
	a, err := edge.Open(context.Background(), cfg, testLogger(s.t))
	if err != nil {
		s.t.Fatalf("open edge %s: %v", name, err)
	}
	s.t.Cleanup(func() { a.Close() })
	return a
}

// runEdge runs an agent's pull loop until the test ends.
func runEdge(t testing.TB, a *edge.Agent) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				t.Errorf("edge run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("edge did not stop within 30s")
		}
	})
}

// syncEdge pulls until the edge has caught up with the hub's current head.
func (s *stack) syncEdge(a *edge.Agent) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := a.SyncNow(ctx); err != nil {
		s.t.Fatalf("edge sync: %v", err)
	}
}

// waitHubCaughtUp waits until the hub has ingested everything the database committed so
// far. PostgreSQL: the slot's confirmed position has reached the current WAL position.
// MariaDB: a marker transaction committed now has reached the change log (binlog order
// is commit order, so everything before it has too).
func (s *stack) waitHubCaughtUp() {
	s.t.Helper()
	if s.my != nil {
		table := s.db + "." + pingTable
		before := s.rowVersion(table, "[1]")
		s.pings++
		s.exec(fmt.Sprintf("REPLACE INTO %s VALUES (1, %d)", pingTable, s.pings))
		pgtest.WaitFor(s.t, 2*time.Minute, "hub ingested the catch-up marker", func() bool {
			return s.rowVersion(table, "[1]") > before
		})
		return
	}
	target := s.exec("SELECT pg_current_wal_insert_lsn()")
	pgtest.WaitFor(s.t, 2*time.Minute, "hub ingested up to "+target, func() bool {
		out, err := s.pg.Exec(context.Background(), s.db,
			"SELECT coalesce(bool_and(confirmed_flush_lsn >= '"+target+"'::pg_lsn), false) FROM pg_replication_slots WHERE database = current_database()")
		return err == nil && out == "t"
	})
}

// rowVersion returns the change log's latest version of a row (0 if it has none).
func (s *stack) rowVersion(table, key string) int64 {
	s.t.Helper()
	info, _, err := s.store.Row(context.Background(), table, key)
	if err != nil {
		s.t.Fatalf("change log row %s %s: %v", table, key, err)
	}
	return info.Version
}

// truth reads the source tables as the PostgreSQL adapter decodes them, through a fresh
// snapshot on a separate slot: the reference an edge must equal row for row.
func (s *stack) truth() map[string][]map[string]any {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var src cdc.Source
	slot := fmt.Sprintf("truth_%d", time.Now().UnixNano()%1e9)
	if s.my != nil {
		src = s.newSource(s.tables, testLogger(s.t))
	} else {
		cfg := postgres.DefaultConfig()
		cfg.DSN = s.dsn
		cfg.Tables = s.tables
		cfg.Slot = slot
		cfg.Publication = "truth_pub"
		var err error
		if src, err = postgres.New(cfg, testLogger(s.t)); err != nil {
			s.t.Fatal(err)
		}
	}
	info, err := src.Start(ctx, nil)
	if err != nil {
		s.t.Fatalf("truth source: %v", err)
	}
	out := map[string][]map[string]any{}
	for _, tb := range info.Tables {
		out[tb.Name] = []map[string]any{}
	}
	if _, err := src.Snapshot(ctx, func(_ context.Context, changes []cdc.Change) error {
		for _, c := range changes {
			row := map[string]any{}
			for _, f := range c.After {
				row[f.Name] = normalise(f.Value.SQLiteArg())
			}
			out[c.Table] = append(out[c.Table], row)
		}
		return nil
	}); err != nil {
		s.t.Fatalf("truth snapshot: %v", err)
	}
	src.Close()
	if s.pg != nil {
		s.exec("SELECT pg_drop_replication_slot('" + slot + "')")
	}
	for name := range out {
		sortRows(out[name], keyOf(info.Tables, name))
	}
	return out
}

func keyOf(tables []cdc.Table, name string) []string {
	for _, t := range tables {
		if t.Name == name {
			return t.PrimaryKey
		}
	}
	return nil
}

func normalise(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case nil:
		return nil
	}
	return v
}

func sortRows(rows []map[string]any, key []string) {
	sort.Slice(rows, func(i, j int) bool {
		return fmt.Sprint(pick(rows[i], key)) < fmt.Sprint(pick(rows[j], key))
	})
}

func pick(r map[string]any, key []string) []any {
	out := make([]any, len(key))
	for i, k := range key {
		out[i] = r[k]
	}
	return out
}

// edgeRows reads one table of an edge's database.
func edgeRows(t testing.TB, db *sql.DB, local string, key []string) []map[string]any {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM "` + local + `"`)
	if err != nil {
		t.Fatalf("read edge table %s: %v", local, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []map[string]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		r := map[string]any{}
		for i, c := range cols {
			r[c] = normalise(vals[i])
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if out == nil {
		out = []map[string]any{}
	}
	sortRows(out, key)
	return out
}

// assertEdgeEqualsSource fails unless every captured table on the edge equals
// PostgreSQL's, row for row and value for value.
func (s *stack) assertEdgeEqualsSource(a *edge.Agent) {
	s.t.Helper()
	want := s.truth()
	ctx := context.Background()
	sch, _, err := s.store.Schema(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	for name, wantRows := range want {
		tbl, _ := sch.Table(name)
		got := edgeRows(s.t, a.DB(), edge.LocalTableName(name), tbl.PrimaryKey)
		if len(got) != len(wantRows) {
			s.t.Fatalf("table %s: edge has %d rows, %s %d", name, len(got), s.sourceName(), len(wantRows))
		}
		for i := range wantRows {
			if !reflect.DeepEqual(got[i], wantRows[i]) {
				s.t.Fatalf("table %s row %d differs:\n edge:   %v\n source: %v", name, i, got[i], wantRows[i])
			}
		}
	}
}
