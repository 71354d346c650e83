// Package pgtest starts throwaway PostgreSQL servers for tests. A test that needs a
// server calls Start; when the binaries are missing it is skipped with a clear message,
// except in CI (CI=true), where it fails loudly.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc/postgres/pgserver"
)

// Start starts a server for the test and stops it when the test ends.
func Start(t testing.TB, opts pgserver.Options) *pgserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgserver.Start(ctx, opts)
	if err != nil {
		if errors.Is(err, pgserver.ErrNoBinaries) && os.Getenv("CI") == "" {
			t.Skipf("skipping: %v", err)
		}
		t.Fatalf("start throwaway PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("PostgreSQL log tail:\n%s", s.LogTail())
		}
		if err := s.Stop(); err != nil {
			t.Logf("stop PostgreSQL: %v", err)
		}
	})
	return s
}

var dbSeq atomic.Int64

// CreateDB creates a fresh database with a unique name and returns its name.
func CreateDB(t testing.TB, s *pgserver.Server) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	if _, err := s.Exec(context.Background(), "postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return name
}

// MustExec runs SQL through psql and fails the test on error.
func MustExec(t testing.TB, s *pgserver.Server, db, sql string) string {
	t.Helper()
	out, err := s.Exec(context.Background(), db, sql)
	if err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
	return out
}

// WaitFor polls cond every 20ms until it returns true or the timeout passes, then
// fails the test with msg.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
