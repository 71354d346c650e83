package audit

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// openTest opens a fresh audit log in a temporary folder, closed at the end of the test.
func openTest(t testing.TB) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := OpenSQLite(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

// openRaw opens the audit file with plain SQL, as another tool would.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatalf("open raw: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustAppend(t testing.TB, s *SQLite, events ...Event) {
	t.Helper()
	if err := s.Append(context.Background(), events...); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func mustQuery(t testing.TB, s *SQLite, f Filter) []Event {
	t.Helper()
	got, err := s.Query(context.Background(), f)
	if err != nil {
		t.Fatalf("Query(%+v): %v", f, err)
	}
	return got
}

func ids(events []Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM audit_events`).Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

// base is a fixed time for test events.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
