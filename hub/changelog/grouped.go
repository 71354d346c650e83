package changelog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strconv"
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
// A grouped insert may share its rows' first values (shared, at most 2): they are
// bound once per statement, as ?1 and ?2, and a row whose shared values differ from
// the previous row's starts a new segment, written by statements of its own.
type groupedInsert struct {
	what   string
	conn   *sql.Conn
	shared int
	width  int   // parameters per row, after the shared ones
	sizes  []int // rows per statement, largest first, ending with 1
	stmts  []driver.StmtExecContext
	args   []driver.NamedValue // pending rows, flattened, without the shared values
	segs   []groupSeg          // with shared values: where each segment starts in args
	exec   []driver.NamedValue // with shared values: one statement's arguments
}

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

func (g groupedSpec) queries() []string {
	q := make([]string, len(g.sizes))
	for i, n := range g.sizes {
		q[i] = groupedSQL(g.head, g.row, n, g.tail)
	}
	return q
}

// newGrouped returns a grouped insert running the statements prepared for spec.
func (s *SQLiteStore) newGrouped(spec groupedSpec) *groupedInsert {
	g := &groupedInsert{what: spec.what, conn: s.wconn, shared: spec.shared, width: spec.width(), sizes: spec.sizes}
	for _, q := range spec.queries() {
		g.stmts = append(g.stmts, s.driverStmts[q])
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
			return g.writeRows(ctx, g.args, nil)
		}
		for k, seg := range g.segs {
			end := len(g.args)
			if k+1 < len(g.segs) {
				end = g.segs[k+1].start
			}
			if err := g.writeRows(ctx, g.args[seg.start:end], seg.vals[:g.shared]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", g.what, err)
	}
	g.discard()
	return nil
}

// writeRows executes the rows a, all with the shared values vals.
func (g *groupedInsert) writeRows(ctx context.Context, a []driver.NamedValue, vals []any) error {
	for i, n := range g.sizes {
		for len(a) >= n*g.width {
			args := a[:n*g.width]
			if len(vals) > 0 {
				g.exec = g.exec[:0]
				for _, v := range vals {
					g.exec = append(g.exec, driver.NamedValue{Value: v})
				}
				args = append(g.exec, args...)
				g.exec = args
			}
			if err := execDriver(ctx, g.stmts[i], args); err != nil {
				return err
			}
			a = a[n*g.width:]
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

// versionRun writes the version rows of single-chunk versions, the common case of
// small transactions. The versions a batch completes are consecutive, and mostly
// share their origin and schema version, so a statement binds those once: row i of
// a statement is (?1+i, ?2, ?3, commit_us, changes, bytes, 1, 0).
type versionRun struct {
	conn  *sql.Conn
	sizes []int // rows per statement, largest first, ending with 1
	stmts []driver.StmtExecContext

	first  int64 // version of the first buffered row
	origin string
	schema int64
	rows   []driver.NamedValue // commit_us, changes, bytes of each buffered row
	exec   []driver.NamedValue // one statement's arguments
}

const versionRunHead = `INSERT INTO versions (version, origin, schema_version, commit_us, changes, bytes, chunks, last_seq) VALUES `

var versionRunSizes = []int{64, 8, 1}

// versionRunSQL returns the statement for n rows.
func versionRunSQL(n int) string {
	var sb strings.Builder
	sb.WriteString(versionRunHead)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?1")
		if i > 0 {
			sb.WriteByte('+')
			sb.WriteString(strconv.Itoa(i))
		}
		sb.WriteString(",?2,?3,?,?,?,1,0)")
	}
	return sb.String()
}

func versionRunQueries() []string {
	q := make([]string, len(versionRunSizes))
	for i, n := range versionRunSizes {
		q[i] = versionRunSQL(n)
	}
	return q
}

func (s *SQLiteStore) newVersionRun() *versionRun {
	r := &versionRun{conn: s.wconn, sizes: versionRunSizes}
	for _, q := range versionRunQueries() {
		r.stmts = append(r.stmts, s.driverStmts[q])
	}
	return r
}

// n reports how many rows are buffered.
func (r *versionRun) n() int { return len(r.rows) / 3 }

// add buffers the row of version, first writing the buffered rows when version does
// not continue them.
func (r *versionRun) add(ctx context.Context, version int64, origin string, schema, commitUS, changes, bytes int64) error {
	if n := r.n(); n > 0 && (version != r.first+int64(n) || origin != r.origin || schema != r.schema) {
		if err := r.write(ctx); err != nil {
			return err
		}
	}
	if r.n() == 0 {
		r.first, r.origin, r.schema = version, origin, schema
	}
	r.rows = append(r.rows, driver.NamedValue{Value: commitUS}, driver.NamedValue{Value: changes}, driver.NamedValue{Value: bytes})
	return nil
}

// full reports whether a largest statement's worth of rows is buffered.
func (r *versionRun) full() bool { return r.n() >= r.sizes[0] }

// write executes every buffered row.
func (r *versionRun) write(ctx context.Context) error {
	if len(r.rows) == 0 {
		return nil
	}
	err := r.conn.Raw(func(any) error {
		done := 0
		for i, n := range r.sizes {
			for r.n()-done >= n {
				r.exec = append(r.exec[:0],
					driver.NamedValue{Value: r.first + int64(done)},
					driver.NamedValue{Value: r.origin},
					driver.NamedValue{Value: r.schema})
				r.exec = append(r.exec, r.rows[3*done:3*(done+n)]...)
				if err := execDriver(ctx, r.stmts[i], r.exec); err != nil {
					return err
				}
				done += n
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write versions: %w", err)
	}
	r.discard()
	return nil
}

// discard drops the buffered rows.
func (r *versionRun) discard() {
	clear(r.rows)
	r.rows = r.rows[:0]
	clear(r.exec)
	r.exec = r.exec[:0]
}
