package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"
)

// The deploy files this package's metrics must match.
var (
	dashboardPath = filepath.Join("..", "deploy", "grafana", "synchub.json")
	alertsPath    = filepath.Join("..", "deploy", "prometheus", "alerts.yml")
	readmePath    = filepath.Join("..", "README.md")
)

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

type dashPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

type alertFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// knownSeries returns every series name a hub's /metrics can show (with a histogram's
// _bucket, _sum and _count), and the hub's own metric names.
func knownSeries(t *testing.T) (series map[string]bool, hubNames []string) {
	t.Helper()
	reg, m := exercisedHub(t, Options{PerEdge: true})
	series = map[string]bool{}
	for name, mf := range gathered(t, reg) {
		series[name] = true
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY:
			series[name+"_sum"], series[name+"_count"] = true, true
			if mf.GetType() == dto.MetricType_HISTOGRAM {
				series[name+"_bucket"] = true
			}
		}
	}
	return series, describedNames(m)
}

// metricRef finds metric names in a PromQL expression: identifiers of synchub's,
// Go's and the process collector's families, not followed by "(" (a function).
var metricRef = regexp.MustCompile(`\b((?:synchub|go|process)_[a-zA-Z0-9_:]*)\b`)

func metricNames(expr string) []string {
	var out []string
	for _, m := range metricRef.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

// balanced reports whether (), [] and {} are balanced outside string literals.
func balanced(expr string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inString := false
	for i, r := range expr {
		if r == '"' && (i == 0 || expr[i-1] != '\\') {
			inString = !inString
		}
		if inString {
			continue
		}
		switch r {
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inString
}

// TestDeploy_Dashboard: the Grafana dashboard is well-formed, each panel queries
// something, every metric it queries is one the hub registers, and every hub metric
// appears in the dashboard or the alert rules.
func TestDeploy_Dashboard(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s is not valid dashboard JSON: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q: both must be set", d.UID, d.Title)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] || !vars["instance"] {
		t.Errorf("dashboard variables %v: want datasource and instance", vars)
	}
	series, hubNames := knownSeries(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H < 1 {
			t.Errorf("panel %q: grid position %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || len(p.Targets) == 0 {
			t.Errorf("panel %d (%q, %s) has no title or no targets", p.ID, p.Title, p.Type)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			queries++
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			checkExpr(t, "panel "+p.Title, tg.Expr, series, used)
		}
	}
	if queries < 30 {
		t.Errorf("dashboard has %d queries; expected the full set of panels", queries)
	}
	alerts := loadAlerts(t)
	for _, g := range alerts.Groups {
		for _, r := range g.Rules {
			for _, n := range metricNames(r.Expr) {
				used[n] = true
			}
		}
	}
	for _, n := range hubNames {
		if !used[n] && !used[n+"_bucket"] && !used[n+"_count"] && !used[n+"_sum"] {
			t.Errorf("hub metric %s is used by neither the dashboard nor the alert rules", n)
		}
	}
}

func checkExpr(t *testing.T, where, expr string, series, used map[string]bool) {
	t.Helper()
	if strings.TrimSpace(expr) == "" {
		t.Errorf("%s: empty expression", where)
		return
	}
	if !balanced(expr) {
		t.Errorf("%s: unbalanced brackets in %s", where, expr)
	}
	names := metricNames(expr)
	if len(names) == 0 {
		t.Errorf("%s: %s queries no synchub, go or process metric", where, expr)
	}
	for _, n := range names {
		used[n] = true
		if !series[n] {
			t.Errorf("%s: %s is not a metric the hub registers (in %s)", where, n, expr)
		}
	}
}

func loadAlerts(t *testing.T) alertFile {
	t.Helper()
	raw, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	var f alertFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", alertsPath, err)
	}
	return f
}

// TestDeploy_Alerts: every alert rule has a severity and a summary, queries metrics
// the hub registers, and the file passes promtool check rules.
func TestDeploy_Alerts(t *testing.T) {
	f := loadAlerts(t)
	series, _ := knownSeries(t)
	names := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || names[r.Alert] {
				t.Errorf("group %s: alert name %q empty or repeated", g.Name, r.Alert)
			}
			names[r.Alert] = true
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs a summary and a description", r.Alert)
			}
			checkExpr(t, "alert "+r.Alert, r.Expr, series, map[string]bool{})
		}
	}
	for _, want := range []string{"SynchubSourceLagHigh", "SynchubIngestStalled", "SynchubWALRetainedHigh",
		"SynchubConflictsPilingUp", "SynchubEdgesStale", "SynchubAPIErrorRate"} {
		if !names[want] {
			t.Errorf("alert %s is missing", want)
		}
	}
	out, err := runPromtool(t, "check", "rules", alertsPath)
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// runPromtool runs promtool; without it the test skips locally and fails in CI.
func runPromtool(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found; CI installs it with apt-get install prometheus")
		}
		t.Skip("promtool not found (apt-get install prometheus); skipping its check")
	}
	return exec.Command(path, args...).CombinedOutput()
}

// TestDeploy_ReadmeListsEveryMetric: README.md's Metrics section names every metric
// of the hub and the edge agent.
func TestDeploy_ReadmeListsEveryMetric(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	i := strings.Index(readme, "\n## Metrics")
	if i < 0 {
		t.Fatal(`README.md has no "## Metrics" section`)
	}
	section := readme[i+1:]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	_, hubNames := knownSeries(t)
	e, err := NewEdge(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	names := hubNames
	for _, c := range []prometheus.Collector{e.Pulls, e.PullSeconds, e.AppliedChanges, e.Watermark, e.HubHead,
		e.VersionsBehind, e.LastSync, e.Rebootstraps, e.OutboxPending, e.PushChanges, e.PushSeconds, e.PushErrors} {
		names = append(names, describedNames(c)...)
	}
	for _, n := range names {
		if !strings.Contains(section, "`"+n+"`") && !strings.Contains(section, "`"+n+"{") {
			t.Errorf("README.md's Metrics section does not list `%s`", n)
		}
	}
}
