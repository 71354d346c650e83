package audit

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWriteCSV(t *testing.T) {
	events := []Event{
		{
			ID:      7,
			Time:    time.Date(2026, 3, 1, 12, 0, 0, 1000, time.FixedZone("CET", 3600)),
			Actor:   EdgeActor("till,1"),
			Action:  ActionConflict,
			Edge:    "till,1",
			Table:   "public.orders",
			Key:     `{"id":"a,b"}`,
			Outcome: "manual",
			Detail:  "line one\nline \"two\", with comma\r\nline three",
			Before:  json.RawMessage(`{"note":"say \"hi\", then\nleave"}`),
			After:   json.RawMessage(`{"note":null}`),
		},
		{ID: 8, Time: base, Actor: ActorSystem, Action: ActionAdmin},
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, events); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "id,time,actor,action,edge,table,key,outcome,detail,before,after\r\n") {
		t.Errorf("header line: %q", strings.SplitN(out, "\n", 2)[0])
	}
	if !strings.Contains(out, `"{""id"":""a,b""}"`) {
		t.Errorf("key not quoted with doubled quotes: %q", out)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("parse back: %v", err)
	}
	want := [][]string{
		CSVHeader,
		{"7", "2026-03-01T11:00:00.000001Z", "edge:till,1", "conflict", "till,1", "public.orders", `{"id":"a,b"}`, "manual",
			// encoding/csv reads a quoted \r\n as \n.
			"line one\nline \"two\", with comma\nline three",
			`{"note":"say \"hi\", then\nleave"}`, `{"note":null}`},
		{"8", "2026-03-01T12:00:00Z", "system", "admin", "", "", "", "", "", "", ""},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want %d: %q", len(recs), len(want), recs)
	}
	for i := range want {
		if !slices.Equal(recs[i], want[i]) {
			t.Errorf("record %d:\n got %q\nwant %q", i, recs[i], want[i])
		}
	}
	// Row images stay valid JSON after the round trip.
	if !json.Valid([]byte(recs[1][9])) || !json.Valid([]byte(recs[1][10])) {
		t.Errorf("row images not valid JSON after parsing: %q %q", recs[1][9], recs[1][10])
	}
}

func TestWriteCSV_Empty(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteCSV(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(CSVHeader, ",") + "\r\n"; buf.String() != want {
		t.Errorf("empty csv = %q, want %q", buf.String(), want)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errFail }

var errFail = errors.New("disk full")

func TestWriteCSV_WriterError(t *testing.T) {
	if err := WriteCSV(failWriter{}, []Event{{ID: 1, Actor: ActorSystem, Action: ActionAdmin}}); !errors.Is(err, errFail) {
		t.Errorf("WriteCSV to a failing writer: %v, want the writer's error", err)
	}
}
