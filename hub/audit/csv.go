package audit

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"
)

// CSVHeader is the header row WriteCSV writes, one column per Event field.
var CSVHeader = []string{"id", "time", "actor", "action", "edge", "table", "key", "outcome", "detail", "before", "after"}

// WriteCSV writes a header row and one row per event as RFC 4180 CSV (comma-separated,
// CRLF line ends, fields quoted when needed). Time is RFC 3339 UTC with microseconds
// when present; row images are their JSON text, empty when absent. Values are written
// as recorded: a spreadsheet that treats a cell starting with = as a formula should be
// given the file through its text import.
func WriteCSV(w io.Writer, events []Event) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("write audit csv header: %w", err)
	}
	rec := make([]string, len(CSVHeader))
	for i := range events {
		e := &events[i]
		rec[0] = strconv.FormatInt(e.ID, 10)
		rec[1] = e.Time.UTC().Format(time.RFC3339Nano)
		rec[2] = e.Actor
		rec[3] = e.Action
		rec[4] = e.Edge
		rec[5] = e.Table
		rec[6] = e.Key
		rec[7] = e.Outcome
		rec[8] = e.Detail
		rec[9] = string(e.Before)
		rec[10] = string(e.After)
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("write audit csv event %d: %w", e.ID, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write audit csv: %w", err)
	}
	return nil
}
