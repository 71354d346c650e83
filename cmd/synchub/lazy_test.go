package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
)

type fakeApplier struct{ applied, closed int }

func (f *fakeApplier) Apply(_ context.Context, _ cdc.Tag, ch []cdc.Change) ([]cdc.ApplyResult, error) {
	f.applied += len(ch)
	return make([]cdc.ApplyResult, len(ch)), nil
}
func (f *fakeApplier) ReadRow(context.Context, string, cdc.Row) (cdc.Row, bool, error) {
	return nil, false, nil
}
func (f *fakeApplier) Close() { f.closed++ }

// TestLazyApplier: while the central database cannot be reached, pushes get a
// retryable error and the applier is not re-dialled more often than the retry
// interval; once it can, writes go through, and Close closes it once.
func TestLazyApplier(t *testing.T) {
	down := true
	dials := 0
	fa := &fakeApplier{}
	l := &lazyApplier{retry: 50 * time.Millisecond, open: func(context.Context) (closingApplier, error) {
		dials++
		if down {
			return nil, errors.New("connection refused")
		}
		return fa, nil
	}}
	ctx := context.Background()
	one := []cdc.Change{{Table: "public.t", Op: cdc.OpInsert}}
	for range 3 {
		if _, err := l.Apply(ctx, cdc.Tag{}, one); err == nil || !cdc.IsRetryable(err) {
			t.Fatalf("Apply while the database is down: %v, want a retryable error", err)
		}
	}
	if dials != 1 {
		t.Fatalf("dialled %d times within the retry interval, want 1", dials)
	}
	down = false
	time.Sleep(60 * time.Millisecond)
	if _, err := l.Apply(ctx, cdc.Tag{}, one); err != nil {
		t.Fatalf("Apply once the database is up: %v", err)
	}
	if _, _, err := l.ReadRow(ctx, "public.t", nil); err != nil {
		t.Fatal(err)
	}
	if fa.applied != 1 || dials != 2 {
		t.Fatalf("applied %d, dials %d; want 1 and 2", fa.applied, dials)
	}
	l.Close()
	l.Close()
	if fa.closed != 1 {
		t.Fatalf("closed %d times, want 1", fa.closed)
	}
}
