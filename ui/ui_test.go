package ui

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"
)

var update = flag.Bool("update", false, "rewrite golden files")

var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func testPage(title, active string) Page {
	return Page{Title: title, Active: active, Admin: "alice", Role: RoleOperator, CSRF: "tok-123", Now: testNow}
}

func render(t *testing.T, c templ.Component) string {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// golden compares got with testdata/name; go test ./ui -update rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./ui -update to create it): %v", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from %s (run go test ./ui -update after checking the change):\n%s", name, path, got)
	}
}

func conflictProps() ConflictProps {
	return ConflictProps{
		Page: testPage("Conflict 7", "conflicts"),
		Conflict: ConflictRow{ID: 7, Edge: "till-1", Table: "public.notes", Key: "[1]", Op: "u", Kind: "update_vs_update",
			BaseVersion: 41, Created: testNow.Add(-5 * time.Minute), Status: "open"},
		Fields: []FieldRow{
			{Name: "id", Kind: "int", Key: true, Base: Cell{Text: "1"}, Server: Cell{Text: "1"}, Client: Cell{Text: "1"}, Merged: Cell{Text: "1"}},
			{Name: "title", Kind: "text", Base: Cell{Text: "t"}, Server: Cell{Text: "t"}, Client: Cell{Text: "<script>x</script>"}, Merged: Cell{Text: "<script>x</script>"}},
			{Name: "body", Kind: "text", Base: Cell{Text: "b"}, Server: Cell{Text: "server"}, Client: Cell{Null: true}, Merged: Cell{Null: true}},
		},
	}
}

func TestConflictPage_Golden(t *testing.T) {
	got := render(t, ConflictPage(conflictProps()))
	golden(t, "conflict.golden.html", got)
	if strings.Contains(got, "<script>x") {
		t.Fatal("a row value was not HTML-escaped")
	}
}

func TestConflictPage_Highlights(t *testing.T) {
	got := render(t, ConflictPage(conflictProps()))
	// title: client changed; body: both changed; id: nothing.
	if n := strings.Count(got, `class="mono changed"`); n != 3 {
		t.Fatalf("%d highlighted cells, want 3", n)
	}
	if n := strings.Count(got, `class="differs"`); n != 2 {
		t.Fatalf("%d rows marked as differing, want 2", n)
	}
	for _, want := range []string{`id="take-client"`, `id="keep-server"`, `name="col:title"`, `name="null:body" checked`, `name="col:id" value="1" readonly`, `value="tok-123"`} {
		if !strings.Contains(got, want) {
			t.Errorf("conflict page lacks %s", want)
		}
	}
}

func TestConflictPage_ViewerHasNoActions(t *testing.T) {
	p := conflictProps()
	p.Role = RoleViewer
	got := render(t, ConflictPage(p))
	if strings.Contains(got, `id="take-client"`) || strings.Contains(got, "/resolve") || !strings.Contains(got, "may look but not resolve") {
		t.Fatal("a viewer's conflict page offers actions")
	}
	p = conflictProps()
	p.Conflict.Status, p.Conflict.Resolution, p.Conflict.ResolvedBy = "resolved", "take_client", "alice"
	got = render(t, ConflictPage(p))
	if strings.Contains(got, `id="take-client"`) || !strings.Contains(got, "take_client by alice") {
		t.Fatal("a resolved conflict still offers actions or hides its resolution")
	}
}

func TestOverviewLive_Golden(t *testing.T) {
	p := OverviewProps{
		Page: testPage("Overview", "overview"), Source: "postgres (PostgreSQL 15)", SourceState: "streaming",
		LagSeconds: 0.012, LagBytes: 8192, Head: 4242, SchemaVersion: 3, LogEntries: 9000, LogBytes: 3 << 20,
		Rate: 12.5, RateWindow: 5 * time.Minute, Samples: []float64{0, 10, 20, 5},
		EdgesTotal: 3, EdgesOnline: 2, EdgesStale: 1, OpenConflicts: 4, OpenRejected: -1,
	}
	golden(t, "overview_live.golden.html", render(t, OverviewLive(p)))
}

func TestLayout_CSRFAndNav(t *testing.T) {
	got := render(t, ErrorPage(ErrorProps{Page: testPage("Oops", "audit"), Message: "bad <thing>"}))
	for _, want := range []string{`hx-headers="{&#34;X-Csrf-Token&#34;:&#34;tok-123&#34;}"`, `<a href="/ui/audit" class="active">`,
		`action="/ui/logout"`, "bad &lt;thing&gt;", `<script src="/ui/static/htmx.min.js" defer>`} {
		if !strings.Contains(got, want) {
			t.Errorf("layout lacks %s", want)
		}
	}
}

func TestChartPoints(t *testing.T) {
	if got := chartPoints(nil); got != "" {
		t.Fatalf("no samples: %q", got)
	}
	if got := chartPoints([]float64{0, 10, 5}); got != "0.0,58.0 150.0,2.0 300.0,30.0" {
		t.Fatalf("chartPoints = %q", got)
	}
	if got := chartPoints([]float64{0, 0}); got != "0.0,58.0 300.0,58.0" {
		t.Fatalf("all-zero rates: %q", got)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{bytesText(512), "512 B"},
		{bytesText(8192), "8.0 KiB"},
		{bytesText(3 << 30), "3.0 GiB"},
		{ago(testNow, testNow.Add(-90*time.Second)), "1m ago"},
		{ago(testNow, time.Time{}), "never"},
		{ago(testNow, testNow.Add(-72*time.Hour)), "3d ago"},
		{lagText(0.25), "250 ms"},
		{watermarkText(-1), "never pulled"},
		{countText(-1), "n/a"},
		{link("/ui/audit", "actor", "admin:a b", "edge", ""), "/ui/audit?actor=admin%3Aa+b"},
		{edgeLink("till/1"), "/ui/edges/till%2F1"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestStatic_Embedded(t *testing.T) {
	for _, name := range []string{"static/style.css", "static/htmx.min.js"} {
		b, err := Static.ReadFile(name)
		if err != nil || len(b) == 0 {
			t.Fatalf("%s not embedded: %v", name, err)
		}
	}
}
