package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/hub"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/syncproto"
)

const metricsSchema = `
CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL, n int NOT NULL DEFAULT 0);
CREATE TABLE public.tickets (id int PRIMARY KEY, title text NOT NULL);
INSERT INTO public.tickets VALUES (1, 'first'), (2, 'second');
`

// metricSample is one line of a Prometheus text scrape.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

// metricsScrape is a parsed GET /metrics.
type metricsScrape struct {
	raw     []byte
	samples []metricSample
}

var metricLabelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrapeMetrics fetches and parses the hub's /metrics.
func (s *stack) scrapeMetrics() metricsScrape {
	s.t.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		s.t.Fatalf("scrape /metrics: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("scrape /metrics: status %d, %v", resp.StatusCode, err)
	}
	sc := metricsScrape{raw: raw}
	lines := bufio.NewScanner(bytes.NewReader(raw))
	lines.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for lines.Scan() {
		line := lines.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			s.t.Fatalf("scrape line without a value: %q", line)
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			s.t.Fatalf("scrape line %q: %v", line, err)
		}
		smp := metricSample{name: line[:sp], labels: map[string]string{}, value: v}
		if i := strings.IndexByte(line[:sp], '{'); i >= 0 {
			smp.name = line[:i]
			for _, m := range metricLabelPair.FindAllStringSubmatch(line[i:sp], -1) {
				smp.labels[m[1]] = m[2]
			}
		}
		sc.samples = append(sc.samples, smp)
	}
	return sc
}

// get sums the samples of name whose labels include every pair in labels
// ("k=v" strings); a series that does not exist yet counts as 0.
func (sc metricsScrape) get(name string, labels ...string) float64 {
	var sum float64
next:
	for _, smp := range sc.samples {
		if smp.name != name {
			continue
		}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if smp.labels[k] != v {
				continue next
			}
		}
		sum += smp.value
	}
	return sum
}

func (sc metricsScrape) has(name string) bool {
	for _, smp := range sc.samples {
		if smp.name == name {
			return true
		}
	}
	return false
}

// metricCheck is an expected change of one series between two scrapes.
type metricCheck struct {
	name   string
	labels []string
	delta  float64
}

func checkMetricDeltas(t *testing.T, what string, before, after metricsScrape, checks []metricCheck) {
	t.Helper()
	for _, c := range checks {
		got := after.get(c.name, c.labels...) - before.get(c.name, c.labels...)
		if got != c.delta {
			t.Errorf("%s: %s%v moved by %v, want %v", what, c.name, c.labels, got, c.delta)
		}
	}
}

// metricsPush sends a push batch and returns the answer.
func metricsPush(t *testing.T, url string, req syncproto.PushRequest) syncproto.PushResponse {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hreq, err := http.NewRequest(http.MethodPost, url+"/v1/push", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set(auth.EdgeHeader, req.Edge)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("push: status %d: %s", resp.StatusCode, raw)
	}
	var out syncproto.PushResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("push answer %s: %v", raw, err)
	}
	return out
}

// TestIntegration_Metrics: a known workload on real PostgreSQL moves the hub's counters
// by exactly its size, and the scrape passes promtool check metrics.
func TestIntegration_Metrics(t *testing.T) {
	s := newStackWith(t, metricsSchema, []string{"public.items", "public.tickets"}, func(c *hub.Config) {
		c.Push.Policies = map[string]conflict.TablePolicy{"public.tickets": {Policy: conflict.Manual}}
	})
	s.waitStreaming()
	s.waitHubCaughtUp()
	before := s.scrapeMetrics()
	head0 := s.head()
	if v := before.get("synchub_source_up"); v != 1 {
		t.Errorf("synchub_source_up = %v while streaming, want 1", v)
	}
	if v := before.get("synchub_changelog_head_version"); v != float64(head0) {
		t.Errorf("synchub_changelog_head_version = %v, want the hub's head %d", v, head0)
	}

	// 20 inserts in one transaction, 5 updates in 5, 3 deletes in 1: 7 transactions.
	s.exec("INSERT INTO public.items (id, name) SELECT g, 'item ' || g FROM generate_series(1, 20) g")
	for id := 1; id <= 5; id++ {
		s.exec(fmt.Sprintf("UPDATE public.items SET n = n + 1 WHERE id = %d", id))
	}
	s.exec("DELETE FROM public.items WHERE id IN (18, 19, 20)")
	s.waitHubCaughtUp()
	afterIngest := s.scrapeMetrics()
	checkMetricDeltas(t, "ingest", before, afterIngest, []metricCheck{
		{"synchub_ingest_transactions_total", []string{"source=postgres"}, 7},
		{"synchub_ingest_changes_total", []string{"table=public.items", "op=insert"}, 20},
		{"synchub_ingest_changes_total", []string{"table=public.items", "op=update"}, 5},
		{"synchub_ingest_changes_total", []string{"table=public.items", "op=delete"}, 3},
		{"synchub_ingest_changes_total", []string{"table=public.tickets"}, 0},
		{"synchub_changelog_head_version", nil, 7},
		{"synchub_changelog_entries", nil, 28},
		{"synchub_ingest_errors_total", nil, 0},
	})
	if s.head() != head0+7 {
		t.Errorf("head %d after 7 transactions from %d", s.head(), head0)
	}
	if !afterIngest.has("synchub_source_lag_seconds") || !afterIngest.has("synchub_source_lag_bytes") {
		t.Error("source lag gauges missing")
	}

	// One pull of everything since the old head, as an edge makes it; uncompressed so
	// the counted bytes are the body's.
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/changes?since=%d&limit=1000", s.url, head0), nil)
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set(auth.EdgeHeader, "metrics-edge")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pull: status %d: %s", resp.StatusCode, page)
	}
	afterPull := s.scrapeMetrics()
	checkMetricDeltas(t, "pull", afterIngest, afterPull, []metricCheck{
		{"synchub_api_request_duration_seconds_count", []string{"route=/v1/changes", "code=200"}, 1},
		{"synchub_api_pull_changes_total", nil, 28},
		{"synchub_api_pull_bytes_total", nil, float64(len(page))},
		{"synchub_api_pull_page_changes_count", nil, 1},
		{"synchub_api_pull_page_changes_sum", nil, 28},
		{"synchub_api_response_size_bytes_count", []string{"route=/v1/changes"}, 1},
		{"synchub_api_response_size_bytes_sum", []string{"route=/v1/changes"}, float64(len(page))},
		{"synchub_api_pull_gone_total", nil, 0},
	})
	// The edge registry now knows one edge, connected and 7 versions behind (its
	// watermark is the old head).
	for _, c := range []metricCheck{
		{"synchub_edges_connected", nil, 1},
		{"synchub_edges_stale", nil, 0},
		{"synchub_edges_versions_behind_count", nil, 1},
		{"synchub_edges_versions_behind_sum", nil, 7},
		{"synchub_edges_versions_behind_bucket", []string{"le=1"}, 0},
		{"synchub_edges_versions_behind_bucket", []string{"le=10"}, 1},
	} {
		if got := afterPull.get(c.name, c.labels...); got != c.delta {
			t.Errorf("after the pull: %s%v = %v, want %v", c.name, c.labels, got, c.delta)
		}
	}

	// The central database changes ticket 1 after the edge's base version; the edge
	// pushes a batch with that stale update (a manual conflict), a new ticket (applied)
	// and a change to a table the hub does not sync (rejected).
	base := s.rowVersion("public.tickets", "[1]")
	if base == 0 {
		t.Fatal("ticket 1 has no version in the change log")
	}
	s.exec("UPDATE public.tickets SET title = 'server' WHERE id = 1")
	s.waitHubCaughtUp()
	afterServer := s.scrapeMetrics()
	batch := syncproto.PushRequest{Edge: "metrics-edge", BatchID: "metrics-batch-1", SentAt: time.Now().UnixMicro(),
		Changes: []syncproto.PushChange{
			{ID: 1, Table: "public.tickets", Op: "u", Key: json.RawMessage(`{"id":1}`), Row: json.RawMessage(`{"id":1,"title":"edge"}`),
				BaseVersion: base, Base: json.RawMessage(`{"id":1,"title":"first"}`)},
			{ID: 2, Table: "public.tickets", Op: "i", Key: json.RawMessage(`{"id":3}`), Row: json.RawMessage(`{"id":3,"title":"third"}`)},
			{ID: 3, Table: "public.nowhere", Op: "i", Key: json.RawMessage(`{"id":1}`), Row: json.RawMessage(`{"id":1}`)},
		}}
	answer := metricsPush(t, s.url, batch)
	var statuses []string
	for _, r := range answer.Results {
		statuses = append(statuses, r.Status)
	}
	if want := []string{syncproto.PushConflict, syncproto.PushApplied, syncproto.PushRejected}; strings.Join(statuses, ",") != strings.Join(want, ",") {
		t.Fatalf("push results %v, want %v: %+v", statuses, want, answer.Results)
	}
	metricsPush(t, s.url, batch) // a re-send gets the stored answer and counts nothing new
	s.waitHubCaughtUp()
	after := s.scrapeMetrics()
	checkMetricDeltas(t, "push", afterServer, after, []metricCheck{
		{"synchub_api_request_duration_seconds_count", []string{"route=/v1/push", "code=200"}, 2},
		{"synchub_api_push_batch_changes_count", nil, 2},
		{"synchub_api_push_batch_changes_sum", nil, 6},
		{"synchub_push_changes_total", []string{"status=applied"}, 1},
		{"synchub_push_changes_total", []string{"status=conflict"}, 1},
		{"synchub_push_changes_total", []string{"status=rejected"}, 1},
		{"synchub_push_conflicts_total", []string{"table=public.tickets", "policy=manual", "outcome=manual"}, 1},
		{"synchub_push_conflicts_total", nil, 1},
		{"synchub_push_rejected_changes_total", []string{"code=bad_change"}, 1},
		{"synchub_push_rejected_changes_total", nil, 1},
		{"synchub_push_open_conflicts", nil, 1},
		{"synchub_push_open_rejected_changes", nil, 1},
		// The applied insert is written back and captured as one transaction.
		{"synchub_ingest_transactions_total", nil, 1},
		{"synchub_ingest_changes_total", []string{"table=public.tickets", "op=insert"}, 1},
	})
	checkMetricDeltas(t, "whole run", before, after, []metricCheck{
		{"synchub_ingest_transactions_total", nil, 9},
		{"synchub_ingest_changes_total", nil, 30},
		{"synchub_changelog_head_version", nil, 9},
	})
	if got := after.get("synchub_edges_versions_behind_sum"); got != 9 {
		t.Errorf("the edge is %v versions behind after two more transactions, want 9", got)
	}

	// No series may carry a row key or an unbounded value.
	for _, smp := range after.samples {
		for k, v := range smp.labels {
			if strings.Contains(v, "[") || strings.Contains(v, "metrics-batch") || (k == "edge" && v != "") {
				t.Errorf("series %s has label %s=%q, which is unbounded", smp.name, k, v)
			}
		}
	}
	t.Logf("scrape: %d samples, %d bytes; %d distinct synchub series", len(after.samples), len(after.raw), countSynchub(after))
	promtoolCheckMetrics(t, after.raw)
}

func countSynchub(sc metricsScrape) int {
	n := 0
	for _, smp := range sc.samples {
		if strings.HasPrefix(smp.name, "synchub_") {
			n++
		}
	}
	return n
}

// promtoolCheckMetrics lints a scrape with promtool; without promtool it skips the
// check locally and fails in CI.
func promtoolCheckMetrics(t *testing.T, raw []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found; CI installs it with apt-get install prometheus")
		}
		t.Log("promtool not found (apt-get install prometheus); not linting the scrape")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var problems []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			problems = append(problems, l)
		}
		sort.Strings(problems)
		t.Fatalf("promtool check metrics: %v\n%s", err, strings.Join(problems, "\n"))
	}
}
