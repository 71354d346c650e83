// Package mytest starts throwaway MariaDB servers for tests. A test that needs a server
// calls Start; when the binaries are missing it is skipped with a clear message, except
// in CI (CI=true), where it fails loudly.
package mytest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc/mysql/myserver"
)

// Start starts a server for the test and stops it when the test ends.
func Start(t testing.TB, opts myserver.Options) *myserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := myserver.Start(ctx, opts)
	if err != nil {
		if errors.Is(err, myserver.ErrNoBinaries) && os.Getenv("CI") == "" {
			t.Skipf("skipping: %v", err)
		}
		t.Fatalf("start throwaway MariaDB: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("MariaDB log tail:\n%s", s.LogTail())
		}
		if err := s.Stop(); err != nil {
			t.Logf("stop MariaDB: %v", err)
		}
	})
	return s
}

var dbSeq atomic.Int64

// CreateDB creates a fresh database and returns its name.
func CreateDB(t testing.TB, s *myserver.Server) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	MustExec(t, s, "", "CREATE DATABASE "+name+" CHARACTER SET utf8mb4")
	return name
}

// MustExec runs SQL on database db or fails the test.
func MustExec(t testing.TB, s *myserver.Server, db, query string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.Exec(ctx, db, query); err != nil {
		t.Fatalf("exec on MariaDB: %v", err)
	}
}

// WaitFor polls cond every 20ms until it holds or timeout passes, then fails the test.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
