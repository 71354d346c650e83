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
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestStatusPage_Golden(t *testing.T) {
	props := StatusProps{
		Source:        "postgres (PostgreSQL 15.19, slot synchub)",
		SourceState:   "streaming",
		Head:          4242,
		SchemaVersion: 3,
		LagSeconds:    0.012,
		LagBytes:      8192,
		Tables: []TableProps{
			{Name: "public.customers", Columns: 23, Key: "id"},
			{Name: `public."odd<name>"`, Columns: 2, Key: "a, b"},
		},
		Now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC),
	}
	var buf bytes.Buffer
	if err := StatusPage(props).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "status.golden.html")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run go test ./ui -update to create it): %v", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("status page differs from %s (run go test ./ui -update after checking the change):\n%s", golden, buf.String())
	}
	if strings.Contains(buf.String(), "<name>") {
		t.Fatal("table name was not HTML-escaped")
	}
}

func TestStatic_Embedded(t *testing.T) {
	b, err := Static.ReadFile("static/style.css")
	if err != nil || len(b) == 0 {
		t.Fatalf("style.css not embedded: %v", err)
	}
}
