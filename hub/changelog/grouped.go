package changelog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
)

// groupedInsert buffers the rows of one INSERT and writes them with multi-row
// statements: a statement's fixed cost (driver calls, binding, VM setup) is larger
// than the b-tree work of a small row. Rows are written in the order they were added,
// so for an upsert a later row for the same key wins, as if written one by one.
//
// The statements are the driver's own, run on the writer connection through
// sql.Conn.Raw with a reused argument slice: database/sql would convert and copy
// every argument of every statement.
//
// A grouped insert may share its rows' first values (shared, at most 2, comparable
// values such as strings): a segment of consecutive rows with the same shared values
// binds them once per statement, as ?1 and ?2. Short segments are written together
// by plain statements that bind every value of every row, so that rows whose shared
// values keep changing still go many to a statement.
type groupedInsert struct {
	what   string
	conn   *sql.Conn
	shared int
	width  int   // parameters per row, after the shared ones
	sizes  []int // rows per statement, largest first, ending with 1
	stmts  []driver.StmtExecContext
	plain  []driver.StmtExecContext // with shared values: statements binding every value
	args   []driver.NamedValue      // pending rows, flattened, without the shared values
	segs   []groupSeg               // with shared values: where each segment starts in args
	exec   []driver.NamedValue      // with shared values: one statement's arguments
}

// minSharedRows is the fewest rows a segment needs to be written with its shared
// values bound once: below that the extra statements cost more than the binding.
const minSharedRows = 16

// groupSeg is a run of rows with the same shared values.
type groupSeg struct {
	start int
	vals  [2]any
}

// groupedSQL returns the statement for n rows: head, n copies of row (one VALUES
// group), then tail.
func groupedSQL(head, row string, n int, tail string) string {
	var sb strings.Builder
	sb.Grow(len(head) + n*(len(row)+1) + len(tail))
	sb.WriteString(head)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(row)
	}
	sb.WriteString(tail)
	return sb.String()
}

// groupedSpec describes a grouped insert: what it writes (for errors), the statement
// text before and after the VALUES groups, one VALUES group (its parameters are the
// shared ones, ?1 and ?2 first, then the row's own; it may hold constants too), the
// group sizes, largest first, ending with 1, and how many leading values the rows
// share.
type groupedSpec struct {
	what   string
	head   string
	row    string
	tail   string
	sizes  []int
	shared int
}

func (g groupedSpec) width() int { return strings.Count(g.row, "?") - g.shared }

// queries returns the statements for each group size and, with shared values, then
// the plain ones.
func (g groupedSpec) queries() []string {
	var q []string
	for _, n := range g.sizes {
		q = append(q, groupedSQL(g.head, g.row, n, g.tail))
	}
	if g.shared > 0 {
		plain := strings.NewReplacer("?1", "?", "?2", "?").Replace(g.row)
		for _, n := range g.sizes {
			q = append(q, groupedSQL(g.head, plain, n, g.tail))
		}
	}
	return q
}

// newGrouped returns a grouped insert running the statements prepared for spec.
func (s *SQLiteStore) newGrouped(spec groupedSpec) *groupedInsert {
	g := &groupedInsert{what: spec.what, conn: s.wconn, shared: spec.shared, width: spec.width(), sizes: spec.sizes}
	for i, q := range spec.queries() {
		if i < len(spec.sizes) {
			g.stmts = append(g.stmts, s.driverStmts[q])
		} else {
			g.plain = append(g.plain, s.driverStmts[q])
		}
	}
	return g
}

// add buffers one row, shared values first; its values must be driver values
// (int64, string, bool, []byte).
func (g *groupedInsert) add(args ...any) {
	if g.shared > 0 {
		var vals [2]any
		copy(vals[:g.shared], args)
		if k := len(g.segs); k == 0 || g.segs[k-1].vals != vals {
			g.segs = append(g.segs, groupSeg{start: len(g.args), vals: vals})
		}
		args = args[g.shared:]
	}
	for _, a := range args {
		g.args = append(g.args, driver.NamedValue{Value: a})
	}
}

// rows reports how many rows are buffered.
func (g *groupedInsert) rows() int { return len(g.args) / g.width }

// full reports whether a largest statement's worth of rows is buffered.
func (g *groupedInsert) full() bool { return g.rows() >= g.sizes[0] }

// write executes every buffered row.
func (g *groupedInsert) write(ctx context.Context) error {
	if len(g.args) == 0 {
		return nil
	}
	err := g.conn.Raw(func(any) error {
		if g.shared == 0 {
			return g.writeRows(ctx, g.stmts, g.width, g.args, nil)
		}
		short := 0 // first segment of the pending run of short segments
		for k, seg := range g.segs {
			if g.segRows(k) < minSharedRows {
				continue
			}
			if err := g.writePlain(ctx, short, k); err != nil {
				return err
			}
			if err := g.writeRows(ctx, g.stmts, g.width, g.args[seg.start:g.segEnd(k)], seg.vals[:g.shared]); err != nil {
				return err
			}
			short = k + 1
		}
		return g.writePlain(ctx, short, len(g.segs))
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", g.what, err)
	}
	g.discard()
	return nil
}

func (g *groupedInsert) segEnd(k int) int {
	if k+1 < len(g.segs) {
		return g.segs[k+1].start
	}
	return len(g.args)
}

func (g *groupedInsert) segRows(k int) int { return (g.segEnd(k) - g.segs[k].start) / g.width }

// writePlain executes the rows of segments from..to-1 with the plain statements.
func (g *groupedInsert) writePlain(ctx context.Context, from, to int) error {
	if from >= to {
		return nil
	}
	flat := g.exec[:0]
	for k := from; k < to; k++ {
		a := g.args[g.segs[k].start:g.segEnd(k)]
		for ; len(a) > 0; a = a[g.width:] {
			for _, v := range g.segs[k].vals[:g.shared] {
				flat = append(flat, driver.NamedValue{Value: v})
			}
			flat = append(flat, a[:g.width]...)
		}
	}
	g.exec = flat
	err := g.writeRows(ctx, g.plain, g.shared+g.width, flat, nil)
	g.exec = flat[:0]
	return err
}

// writeRows executes the rows a, each width values, with stmts (one per group size),
// and the shared values vals bound once per statement.
func (g *groupedInsert) writeRows(ctx context.Context, stmts []driver.StmtExecContext, width int, a []driver.NamedValue, vals []any) error {
	for i, n := range g.sizes {
		for len(a) >= n*width {
			args := a[:n*width]
			if len(vals) > 0 {
				g.exec = g.exec[:0]
				for _, v := range vals {
					g.exec = append(g.exec, driver.NamedValue{Value: v})
				}
				args = append(g.exec, args...)
				g.exec = args
			}
			if err := execDriver(ctx, stmts[i], args); err != nil {
				return err
			}
			a = a[n*width:]
		}
	}
	return nil
}

// writeOne executes the one-row statement with args at once, bypassing the buffer.
func (g *groupedInsert) writeOne(ctx context.Context, args ...any) error {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Value: a}
	}
	return g.conn.Raw(func(any) error { return execDriver(ctx, g.stmts[len(g.stmts)-1], nv) })
}

// execDriver runs st with args, numbering them as the statement's parameters 1..n.
func execDriver(ctx context.Context, st driver.StmtExecContext, args []driver.NamedValue) error {
	for j := range args {
		args[j].Ordinal = j + 1
	}
	_, err := st.ExecContext(ctx, args)
	return err
}

// discard drops the buffered rows.
func (g *groupedInsert) discard() {
	clear(g.args)
	g.args = g.args[:0]
	clear(g.segs)
	g.segs = g.segs[:0]
	clear(g.exec)
	g.exec = g.exec[:0]
}
