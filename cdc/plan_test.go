package cdc

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestPlanChanges: unknown tables are refused by name, an unknown column makes the
// table be re-read once and the change built again, other refusals stay with their
// change, and the rest are kept in order with their indexes.
func TestPlanChanges(t *testing.T) {
	cols := map[string][]string{"public.a": {"id"}}
	reloads := 0
	lookup := func(table string) ([]string, bool) { c, ok := cols[table]; return c, ok }
	reload := func(_ context.Context, table string) ([]string, error) {
		reloads++
		cols[table] = []string{"id", "added"}
		return cols[table], nil
	}
	build := func(c []string, ch *Change) (string, error) {
		for _, f := range ch.After {
			if !strings.Contains(strings.Join(c, ","), f.Name) {
				return "", &UnknownColumnError{Table: ch.Table, Column: f.Name}
			}
			if f.Name == "id" && f.Value.IsNull() {
				return "", errors.New("null key")
			}
		}
		return ch.Table, nil
	}
	row := func(names ...string) Row {
		var r Row
		for _, n := range names {
			r = append(r, Field{Name: n, Value: Int(1)})
		}
		return r
	}
	changes := []Change{
		{Table: "public.a", Op: OpInsert, After: row("id")},
		{Table: "public.nope", Op: OpInsert, After: row("id")},
		{Table: "public.a", Op: OpInsert, After: row("id", "added")},
		{Table: "public.a", Op: OpInsert, After: row("id", "ghost")},
		{Table: "public.a", Op: OpInsert, After: Row{{Name: "id"}}},
	}
	results := make([]ApplyResult, len(changes))
	var kept []int
	PlanChanges(context.Background(), changes, results, []string{"public.a"}, lookup, reload, build, func(i int, _ string) { kept = append(kept, i) })
	if len(kept) != 2 || kept[0] != 0 || kept[1] != 2 {
		t.Fatalf("kept changes %v, want [0 2]", kept)
	}
	if reloads != 1 {
		t.Fatalf("table re-read %d times, want once", reloads)
	}
	if err := results[1].Err; err == nil || !strings.Contains(err.Error(), "public.nope") || !strings.Contains(err.Error(), "public.a") {
		t.Errorf("unknown table: %v", err)
	}
	var uc *UnknownColumnError
	if !errors.As(results[3].Err, &uc) || uc.Column != "ghost" {
		t.Errorf("unknown column after the re-read: %v", results[3].Err)
	}
	if results[4].Err == nil || results[0].Err != nil || results[2].Err != nil {
		t.Errorf("results %+v", results)
	}
}
