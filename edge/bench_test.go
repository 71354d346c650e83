package edge

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// benchRows is the number of rows BenchmarkEdge_Bootstrap applies; override with
// SYNCHUB_BENCH_ROWS.
func benchRows(b *testing.B) int {
	if s := os.Getenv("SYNCHUB_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1000 {
			b.Fatalf("SYNCHUB_BENCH_ROWS=%q: want an integer of at least 1000", s)
		}
		return n
	}
	return 200_000
}

var benchTable = cdc.Table{
	Name: "public.bench",
	Columns: []cdc.Column{
		{Name: "id", SourceType: "bigint", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "name", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT"},
		{Name: "amount", SourceType: "numeric(12,2)", Kind: cdc.KindDecimal, SQLiteType: "TEXT"},
		{Name: "qty", SourceType: "integer", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "created", SourceType: "timestamptz", Kind: cdc.KindTimestampTZ, SQLiteType: "TEXT"},
	},
	PrimaryKey: []string{"id"},
}

func benchRow(i int) (name, amount string, qty int64, created string) {
	return "customer " + strconv.Itoa(i), strconv.Itoa(i%100000) + "." + fmt.Sprintf("%02d", i%100), int64(i % 97),
		fmt.Sprintf("2024-03-%02dT%02d:%02d:%02d.%06dZ", 1+i%28, i%24, i%60, (i/60)%60, i%1000000)
}

// BenchmarkEdge_Bootstrap applies a bootstrap of benchRows rows of a 5-column table
// from a local server serving pre-built gzip pages of 1000 changes, and in the same run
// has the sqlite3 CLI execute the same rows as one transaction of INSERT statements
// read from a SQL file, then prints both rates and their ratio.
func BenchmarkEdge_Bootstrap(b *testing.B) {
	n := benchRows(b)
	const perPage = 1000
	pages := buildBenchPages(b, n, perPage)
	schema := mustJSON(b, syncproto.SchemaResponse{Version: 1, Tables: []cdc.Table{benchTable}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/schema" {
			_, _ = w.Write(schema)
			return
		}
		since, _ := strconv.Atoi(r.URL.Query().Get("since"))
		if since > len(pages) {
			http.Error(w, "bad since", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(pages[since])
	}))
	defer srv.Close()

	dir := b.TempDir()
	var edgeTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cfg := DefaultConfig()
		cfg.HubURL, cfg.DBPath, cfg.PageLimit, cfg.Wait = srv.URL, filepath.Join(dir, fmt.Sprintf("edge%d.db", i)), perPage, 0
		a, err := Open(context.Background(), cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		applied, err := a.SyncNow(context.Background())
		edgeTime += time.Since(start)
		b.StopTimer()
		if err != nil || applied != n {
			b.Fatalf("SyncNow applied %d of %d: %v", applied, n, err)
		}
		if c := count(b, a.DB(), "bench"); c != n {
			b.Fatalf("edge holds %d rows, want %d", c, n)
		}
		_ = a.Close()
		b.StartTimer()
	}
	b.StopTimer()
	edgeRate := float64(n) * float64(b.N) / edgeTime.Seconds()
	b.ReportMetric(edgeRate, "rows/s")

	cliRate, err := sqliteCLIRate(b, dir, n)
	if err != nil {
		fmt.Printf("BenchmarkEdge_Bootstrap: edge %.0f rows/s (%d rows); sqlite3 CLI half skipped: %v\n", edgeRate, n, err)
		return
	}
	fmt.Printf("BenchmarkEdge_Bootstrap: edge %.0f rows/s, sqlite3 CLI %.0f rows/s (%d rows, 5 columns); edge/CLI = %.2f\n",
		edgeRate, cliRate, n, edgeRate/cliRate)
}

func buildBenchPages(b *testing.B, n, perPage int) [][]byte {
	versions := (n + perPage - 1) / perPage
	pages := make([][]byte, versions+1)
	var raw []byte
	for v := 1; v <= versions; v++ {
		since := v - 1
		raw = append(raw[:0], fmt.Sprintf(`{"since":%d,"next":%d,"cursor":"","commit":true,"head":%d,"schema_version":1,"entries":[{"v":%d,"seq":0,"last":true,"origin":"","ts":1700000000000000,"schema":1,"changes":[`,
			since, v, versions, v)...)
		for i := since*perPage + 1; i <= min(v*perPage, n); i++ {
			if i > since*perPage+1 {
				raw = append(raw, ',')
			}
			name, amount, qty, created := benchRow(i)
			c := cdc.Change{Table: benchTable.Name, Op: cdc.OpInsert, After: cdc.Row{
				{Name: "id", Value: cdc.Int(int64(i))}, {Name: "name", Value: cdc.Text(cdc.KindText, name)},
				{Name: "amount", Value: cdc.Text(cdc.KindDecimal, amount)}, {Name: "qty", Value: cdc.Int(qty)},
				{Name: "created", Value: cdc.Text(cdc.KindTimestampTZ, created)},
			}}
			raw = syncproto.AppendChange(raw, &c, &benchTable)
		}
		raw = append(raw, "]}]}"...)
		pages[since] = gzipBytes(b, raw)
	}
	pages[versions] = gzipBytes(b, []byte(fmt.Sprintf(`{"since":%d,"next":%d,"cursor":"","commit":true,"head":%d,"schema_version":1,"entries":[]}`, versions, versions, versions)))
	return pages
}

func gzipBytes(b *testing.B, raw []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := w.Write(raw); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// sqliteCLIRate times /usr/bin/sqlite3 executing the same rows as INSERT statements
// in one transaction, on a WAL database with the edge's synchronous setting.
func sqliteCLIRate(b *testing.B, dir string, n int) (float64, error) {
	const cli = "/usr/bin/sqlite3"
	if _, err := os.Stat(cli); err != nil {
		return 0, fmt.Errorf("%s is missing (apt-get install sqlite3)", cli)
	}
	st, _, err := selectTables(&cdc.Schema{Version: 1, Tables: []cdc.Table{benchTable}}, nil)
	if err != nil {
		return 0, err
	}
	ddl, err := createTableSQL(st[0])
	if err != nil {
		return 0, err
	}
	var sqlText strings.Builder
	sqlText.WriteString("PRAGMA journal_mode=WAL;\nPRAGMA synchronous=NORMAL;\n" + ddl + ";\nBEGIN;\n")
	for i := 1; i <= n; i++ {
		name, amount, qty, created := benchRow(i)
		fmt.Fprintf(&sqlText, "INSERT INTO \"bench\" (\"id\", \"name\", \"amount\", \"qty\", \"created\") VALUES (%d, '%s', '%s', %d, '%s');\n", i, name, amount, qty, created)
	}
	sqlText.WriteString("COMMIT;\n")
	sqlPath := filepath.Join(dir, "bench.sql")
	if err := os.WriteFile(sqlPath, []byte(sqlText.String()), 0o644); err != nil {
		return 0, err
	}
	dbPath := filepath.Join(dir, "cli.db")
	_ = os.Remove(dbPath)
	start := time.Now()
	out, err := exec.Command(cli, dbPath, ".read "+sqlPath).CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("sqlite3: %v: %s", err, out)
	}
	check, err := exec.Command(cli, dbPath, "SELECT count(*) FROM bench").Output()
	if err != nil || strings.TrimSpace(string(check)) != strconv.Itoa(n) {
		return 0, fmt.Errorf("sqlite3 inserted %q rows, want %d (%v)", check, n, err)
	}
	return float64(n) / took.Seconds(), nil
}
