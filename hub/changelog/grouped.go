package changelog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// groupedInsert buffers the rows of one INSERT and writes them with multi-row
// statements: a statement's fixed cost (driver calls, binding, VM setup) is larger
// than the b-tree work of a small row. Rows are written in the order they were added,
// so for an upsert a later row for the same key wins, as if written one by one.
type groupedInsert struct {
	what  string
	width int   // parameters per row
	sizes []int // rows per statement, largest first, ending with 1
	stmts []*sql.Stmt
	args  []any // pending rows, flattened
}

// groupedSQL returns the statement for n rows: head, n groups of width placeholders,
// then tail.
func groupedSQL(head string, width, n int, tail string) string {
	var sb strings.Builder
	sb.WriteString(head)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for j := range width {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('?')
		}
		sb.WriteByte(')')
	}
	sb.WriteString(tail)
	return sb.String()
}

// groupedSpec describes a grouped insert: what it writes (for errors), the statement
// text before and after the VALUES groups, parameters per row, and the group sizes,
// largest first, ending with 1.
type groupedSpec struct {
	what  string
	head  string
	width int
	tail  string
	sizes []int
}

func (g groupedSpec) queries() []string {
	q := make([]string, len(g.sizes))
	for i, n := range g.sizes {
		q[i] = groupedSQL(g.head, g.width, n, g.tail)
	}
	return q
}

func prepareGrouped(ctx context.Context, prepare func(context.Context, string) (*sql.Stmt, error), spec groupedSpec) (*groupedInsert, error) {
	g := &groupedInsert{what: spec.what, width: spec.width, sizes: spec.sizes}
	for _, q := range spec.queries() {
		st, err := prepare(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("prepare %s: %w", spec.what, err)
		}
		g.stmts = append(g.stmts, st)
	}
	return g, nil
}

// add buffers one row.
func (g *groupedInsert) add(args ...any) { g.args = append(g.args, args...) }

// rows reports how many rows are buffered.
func (g *groupedInsert) rows() int { return len(g.args) / g.width }

// full reports whether a largest statement's worth of rows is buffered.
func (g *groupedInsert) full() bool { return g.rows() >= g.sizes[0] }

// write executes every buffered row.
func (g *groupedInsert) write(ctx context.Context) error {
	a := g.args
	for i, n := range g.sizes {
		for len(a) >= n*g.width {
			if _, err := g.stmts[i].ExecContext(ctx, a[:n*g.width]...); err != nil {
				return fmt.Errorf("write %s: %w", g.what, err)
			}
			a = a[n*g.width:]
		}
	}
	g.discard()
	return nil
}

// discard drops the buffered rows.
func (g *groupedInsert) discard() {
	clear(g.args)
	g.args = g.args[:0]
}
