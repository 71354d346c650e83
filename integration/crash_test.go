package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synchub/synchub/cdc/postgres/pgserver"
	"github.com/synchub/synchub/cdc/postgres/pgtest"
	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub/syncproto"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// synchubBinary builds cmd/synchub once per test run.
func synchubBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "synchub-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "synchub")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/synchub").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// hubProcess runs `synchub hub` as a child process.
type hubProcess struct {
	t       testing.TB
	bin     string
	config  string
	logPath string
	cmd     *exec.Cmd
}

func (p *hubProcess) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, "hub", "--config", p.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	logf.Close()
	p.cmd = cmd
}

func (p *hubProcess) kill9() {
	p.t.Helper()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.cmd = nil
}

func (p *hubProcess) term() error {
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		p.cmd = nil
		return err
	case <-time.After(30 * time.Second):
		p.kill9()
		return fmt.Errorf("hub did not exit within 30s of SIGTERM")
	}
}

func (p *hubProcess) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// TestIntegration_PostgresKill9: the hub runs as a separate process and is killed with
// SIGKILL several times while a workload commits numbered transactions. Afterwards the
// change log holds every transaction exactly once, in commit order, with no gap, and the
// edge equals PostgreSQL.
func TestIntegration_PostgresKill9(t *testing.T) {
	pg := pgtest.Start(t, pgserver.Options{})
	db := pgtest.CreateDB(t, pg)
	pgtest.MustExec(t, pg, db, `CREATE TABLE public.ledger (n int PRIMARY KEY, note text);`)
	p, url := newHubProcess(t, "postgres", pg.DSN(db), "public.ledger", 50)
	dir := t.TempDir()
	p.start()
	waitHTTP(t, url+"/readyz", 60*time.Second)

	ecfg := edge.DefaultConfig()
	ecfg.HubURL, ecfg.DBPath, ecfg.EdgeID, ecfg.Wait = url, filepath.Join(dir, "edge.db"), "crash-edge", time.Second
	a, err := edge.Open(context.Background(), ecfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	runEdge(t, a)

	const total = 3000
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	workDone := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, pg.DSN(db))
		if err != nil {
			workDone <- err
			return
		}
		defer conn.Close(context.Background())
		for n := 1; n <= total; n++ {
			if _, err := conn.Exec(ctx, `INSERT INTO ledger VALUES ($1, $2)`, n, fmt.Sprintf("tx %d", n)); err != nil {
				workDone <- fmt.Errorf("insert %d: %w", n, err)
				return
			}
			if n%3 == 0 {
				if _, err := conn.Exec(ctx, `UPDATE ledger SET note = 'updated' WHERE n = $1`, n-1); err != nil {
					workDone <- err
					return
				}
			}
		}
		workDone <- nil
	}()
	// Kill the hub whenever it has ingested another slice of the workload, so each kill
	// lands mid-stream, with transactions committed but not yet in the change log.
	for kill := 1; kill <= 3; kill++ {
		threshold := int64(kill * (total + total/3) / 5)
		pgtest.WaitFor(t, time.Minute, fmt.Sprintf("head passes %d before kill %d", threshold, kill), func() bool {
			return hubHead(url) >= threshold
		})
		p.kill9()
		p.start()
		waitHTTP(t, url+"/healthz", 30*time.Second)
	}
	if err := <-workDone; err != nil {
		t.Fatalf("workload: %v", err)
	}
	// One more kill while caught up or catching up, then a clean run to the end.
	p.kill9()
	p.start()
	waitHTTP(t, url+"/readyz", 60*time.Second)
	target := pgtest.MustExec(t, pg, db, "SELECT pg_current_wal_insert_lsn()")
	pgtest.WaitFor(t, 2*time.Minute, "hub ingested the whole workload", func() bool {
		out, err := pg.Exec(context.Background(), db, "SELECT confirmed_flush_lsn >= '"+target+"'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'synchub'")
		return err == nil && out == "t"
	})

	// Read the whole log through the API and check exactly-once, in order.
	wantTx := total + total/3
	entries := readWholeLog(t, url)
	var versions []int64
	seenInsert := map[int]int{}
	lastInsert := 0
	for _, e := range entries {
		if len(versions) == 0 || versions[len(versions)-1] != e.Version {
			versions = append(versions, e.Version)
		}
		for _, c := range e.Changes {
			if c.Op != "i" || e.Version == 1 {
				continue
			}
			var row struct {
				N int `json:"n"`
			}
			if err := json.Unmarshal(c.Row, &row); err != nil {
				t.Fatal(err)
			}
			seenInsert[row.N]++
			if row.N <= lastInsert {
				t.Fatalf("insert %d arrived after insert %d: commit order broken", row.N, lastInsert)
			}
			lastInsert = row.N
		}
	}
	// Version 1 is the (empty) snapshot, which has no entries.
	if len(versions) == 0 || versions[0] != 2 {
		t.Fatalf("first versions after the empty snapshot: %v, want to start at 2", versions[:min(3, len(versions))])
	}
	for i, v := range versions {
		if v != int64(i+2) {
			t.Fatalf("version %d at position %d: the change log has a gap or a duplicate", v, i)
		}
	}
	for n := 1; n <= total; n++ {
		if seenInsert[n] != 1 {
			t.Fatalf("insert of ledger row %d is in the change log %d times, want exactly once", n, seenInsert[n])
		}
	}
	if got := len(versions); got != wantTx {
		t.Fatalf("change log holds %d transactions after the snapshot, want %d", got, wantTx)
	}
	head := int64(len(versions)) + 1
	if got := hubHead(url); got != head {
		t.Fatalf("hub head %d, want %d", got, head)
	}
	pgtest.WaitFor(t, time.Minute, "edge reaches the head", func() bool { return a.Status().Watermark >= head })
	var n, updated int
	if err := a.DB().QueryRow(`SELECT count(*), count(*) FILTER (WHERE note = 'updated') FROM ledger`).Scan(&n, &updated); err != nil {
		t.Fatal(err)
	}
	if n != total || updated != total/3 {
		t.Fatalf("edge has %d rows (%d updated), want %d (%d)", n, updated, total, total/3)
	}
	if err := p.term(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// hubHead reads the head version from /v1/status; -1 when the hub does not answer.
func hubHead(url string) int64 {
	resp, err := http.Get(url + "/v1/status")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var st syncproto.Status
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return -1
	}
	return st.Head
}

// newHubProcess writes a hub.yaml for a hub on a free loopback port that captures table
// from dsn (source kind postgres or mysql), and returns the (not yet started) process and its URL. The process is
// killed when the test ends, and its log is shown if the test failed.
func newHubProcess(t *testing.T, kind, dsn, table string, groupMax int) (*hubProcess, string) {
	t.Helper()
	dir := t.TempDir()
	port, err := pgserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "hub.yaml")
	err = os.WriteFile(config, []byte(fmt.Sprintf(`listen: 127.0.0.1:%d
log_level: info
source:
  kind: %s
  dsn: %s
  tables: [%s]
store:
  kind: sqlite
  path: %s
push:
  meta_path: %s
audit:
  path: %s
auth:
  keys_path: %s
dashboard:
  edges_path: %s
ingest:
  group_max_changes: %d
  reconnect_min: 50ms
  reconnect_max: 1s
`, port, kind, dsn, table, filepath.Join(dir, "changelog.db"), filepath.Join(dir, "hub-meta.db"),
		filepath.Join(dir, "audit.db"), filepath.Join(dir, "keys.db"), filepath.Join(dir, "edges.db"), groupMax)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p := &hubProcess{t: t, bin: synchubBinary(t), config: config, logPath: filepath.Join(dir, "hub.log")}
	t.Cleanup(func() {
		p.kill9()
		if t.Failed() {
			t.Logf("hub log tail:\n%s", p.logTail())
		}
	})
	return p, fmt.Sprintf("http://127.0.0.1:%d", port)
}

func waitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	pgtest.WaitFor(t, timeout, "GET "+url+" answers 200", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// readWholeLog pages through /v1/changes from version 0 to the head.
func readWholeLog(t testing.TB, url string) []syncproto.Entry {
	t.Helper()
	var out []syncproto.Entry
	since, cursor := int64(0), ""
	for i := 0; i < 100000; i++ {
		resp, err := http.Get(url + "/v1/changes?limit=1000&since=" + strconv.FormatInt(since, 10) + "&cursor=" + cursor)
		if err != nil {
			t.Fatal(err)
		}
		var page syncproto.Page
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("read log page since %d: status %d, %v", since, resp.StatusCode, err)
		}
		out = append(out, page.Entries...)
		if page.Commit {
			if page.Next == since && len(page.Entries) == 0 {
				return out
			}
			since, cursor = page.Next, ""
		} else {
			cursor = page.Cursor
		}
	}
	t.Fatal("log never ended")
	return nil
}

// metricValue reads one unlabelled gauge or counter from /metrics; -1 when unavailable.
func metricValue(url, name string) float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestIntegration_PostgresKill9MidSnapshotAndLargeTx: the hub is killed while its
// snapshot is half committed, and again while a transaction larger than one group is
// half committed. Each time the restarted hub discards the unfinished version and takes
// it again, so the change log holds every row exactly once.
func TestIntegration_PostgresKill9MidSnapshotAndLargeTx(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode")
	}
	pg := pgtest.Start(t, pgserver.Options{})
	db := pgtest.CreateDB(t, pg)
	const snapRows, txRows = 200000, 60000
	pgtest.MustExec(t, pg, db, fmt.Sprintf(`CREATE TABLE public.big (id int PRIMARY KEY, v text);
		INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, %d) g;`, snapRows))
	p, url := newHubProcess(t, "postgres", pg.DSN(db), "public.big", 2000)
	dir := t.TempDir()
	entries := func() float64 { return metricValue(url, "synchub_changelog_entries") }
	head := func() float64 { return metricValue(url, "synchub_changelog_head_version") }

	p.start()
	pgtest.WaitFor(t, time.Minute, "part of the snapshot committed", func() bool {
		e, h := entries(), head()
		return e > 0 && e < snapRows && h == 0
	})
	p.kill9()
	p.start()
	pgtest.WaitFor(t, 2*time.Minute, "snapshot complete after the restart", func() bool { return head() == 1 })
	if e := entries(); e != snapRows {
		t.Fatalf("change log holds %v changes after the retried snapshot, want exactly %d", e, snapRows)
	}

	pgtest.MustExec(t, pg, db, fmt.Sprintf(`INSERT INTO big SELECT g, 'tx ' || g FROM generate_series(%d, %d) g`, snapRows+1, snapRows+txRows))
	pgtest.WaitFor(t, 2*time.Minute, "part of the large transaction committed", func() bool {
		e, h := entries(), head()
		return e > snapRows && e < snapRows+txRows && h == 1
	})
	p.kill9()
	p.start()
	pgtest.WaitFor(t, 2*time.Minute, "large transaction complete after the restart", func() bool { return head() == 2 })
	if e := entries(); e != snapRows+txRows {
		t.Fatalf("change log holds %v changes, want exactly %d", e, snapRows+txRows)
	}

	ecfg := edge.DefaultConfig()
	ecfg.HubURL, ecfg.DBPath, ecfg.EdgeID = url, filepath.Join(dir, "edge.db"), "e"
	a, err := edge.Open(context.Background(), ecfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n, tx int
	if err := a.DB().QueryRow(`SELECT count(*), count(*) FILTER (WHERE v LIKE 'tx %') FROM big`).Scan(&n, &tx); err != nil {
		t.Fatal(err)
	}
	if n != snapRows+txRows || tx != txRows {
		t.Fatalf("edge has %d rows (%d from the large transaction), want %d (%d)", n, tx, snapRows+txRows, txRows)
	}
	if err := p.term(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}
