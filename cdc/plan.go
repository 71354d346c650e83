package cdc

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// UnknownColumnError is an Applier's refusal of a change naming a column its table
// does not have.
type UnknownColumnError struct {
	Table, Column string
}

func (e *UnknownColumnError) Error() string {
	return fmt.Sprintf("table %s has no column %q: the edge's schema is out of date (re-sync it) or the column must be added to the central table", e.Table, e.Column)
}

// PlanChanges is the validation step Appliers share: it builds one statement per
// change, in order, and hands each to keep with the change's index. A change on a table
// lookup does not know gets an error naming the known tables; a change that build
// refuses with an *UnknownColumnError makes the table's definition be read again
// (reload, once per table, as a DDL may have added the column) and is built again. A
// change that still cannot be built gets its error in results and no statement.
func PlanChanges[T, S any](ctx context.Context, changes []Change, results []ApplyResult, known []string,
	lookup func(table string) (T, bool), reload func(ctx context.Context, table string) (T, error),
	build func(T, *Change) (S, error), keep func(i int, s S)) {
	reloaded := map[string]bool{}
	for i := range changes {
		ch := &changes[i]
		t, ok := lookup(ch.Table)
		if !ok {
			results[i].Err = fmt.Errorf("table %q is not one of the applier's tables (%s): correct the change's table name or add the table to the configured tables", ch.Table, strings.Join(known, ", "))
			continue
		}
		s, err := build(t, ch)
		var uc *UnknownColumnError
		if errors.As(err, &uc) && !reloaded[ch.Table] {
			reloaded[ch.Table] = true
			nt, rerr := reload(ctx, ch.Table)
			if rerr != nil {
				results[i].Err = fmt.Errorf("%w; re-reading the table's definition failed: %v", err, rerr)
				continue
			}
			s, err = build(nt, ch)
		}
		if err != nil {
			results[i].Err = err
			continue
		}
		keep(i, s)
	}
}
