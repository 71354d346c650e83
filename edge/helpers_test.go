package edge

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
)

func itemsTable() cdc.Table {
	return cdc.Table{
		Name: "public.items",
		Columns: []cdc.Column{
			{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
			{Name: "name", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true},
			{Name: "price", SourceType: "numeric(12,2)", Kind: cdc.KindDecimal, SQLiteType: "TEXT", Nullable: true},
		},
		PrimaryKey: []string{"id"},
	}
}

func itemRow(id int64, name string) cdc.Row {
	return cdc.Row{
		{Name: "id", Value: cdc.Int(id)},
		{Name: "name", Value: cdc.Text(cdc.KindText, name)},
		{Name: "price", Value: cdc.Text(cdc.KindDecimal, fmt.Sprintf("%d.50", id))},
	}
}

func ins(id int64, name string) cdc.Change {
	return cdc.Change{Table: "public.items", Op: cdc.OpInsert, After: itemRow(id, name)}
}

func upd(id int64, name string) cdc.Change {
	return cdc.Change{Table: "public.items", Op: cdc.OpUpdate, After: itemRow(id, name)}
}

func del(id int64) cdc.Change {
	return cdc.Change{Table: "public.items", Op: cdc.OpDelete, Before: cdc.Row{{Name: "id", Value: cdc.Int(id)}}}
}

func inserts(from, to int64) []cdc.Change {
	var out []cdc.Change
	for i := from; i <= to; i++ {
		out = append(out, ins(i, fmt.Sprintf("item %d", i)))
	}
	return out
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testConfig(t testing.TB, hubURL, dbPath string) Config {
	cfg := DefaultConfig()
	cfg.HubURL, cfg.DBPath, cfg.EdgeID = hubURL, dbPath, "test-edge"
	cfg.Wait = 0
	cfg.BackoffMin, cfg.BackoffMax = 5*time.Millisecond, 50*time.Millisecond
	// Longer than holdLimit: a fake hub holding a push reports what it waited for
	// before the agent gives up on the request.
	cfg.RequestTimeout = 30 * time.Second
	return cfg
}

func openAgent(t testing.TB, cfg Config) *Agent {
	t.Helper()
	a, err := Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func newAgent(t testing.TB, h *fakeHub, mutate ...func(*Config)) (*Agent, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.db")
	cfg := testConfig(t, h.url(), path)
	for _, m := range mutate {
		m(&cfg)
	}
	return openAgent(t, cfg), path
}

func syncNow(t testing.TB, a *Agent) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := a.SyncNow(ctx)
	if err != nil {
		t.Fatalf("SyncNow: %v", err)
	}
	return n
}

// reader opens a second connection pool on the database file, as an application would.
func reader(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t testing.TB, db *sql.DB, table string) int {
	t.Helper()
	n, err := tryCount(db, table)
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// tryCount is count for goroutines other than the test's own (the fake hub's
// handlers), where t.Fatalf must not be called.
func tryCount(db *sql.DB, table string) (int, error) {
	var n int
	err := db.QueryRow(`SELECT count(*) FROM "` + table + `"`).Scan(&n)
	return n, err
}

// dump returns a table's rows as text, ordered by its first column.
func dump(t testing.TB, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM "` + table + `" ORDER BY 1`)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				parts[i] = fmt.Sprintf("%q", b)
			} else {
				parts[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
