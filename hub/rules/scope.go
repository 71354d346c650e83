package rules

import (
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"

	"github.com/synchub/synchub/cdc"
)

// Scope is what one edge may receive and write: its group's tables, each with the
// filter values its claims give.
type Scope struct {
	// Group is the edge's group; empty when it has none (it then gets nothing).
	Group string
	// Problems lists why parts of the scope are empty (a missing group or claim), for
	// logging.
	Problems []string
	tables   map[string]*TableScope
}

// TableScope is one table of a scope.
type TableScope struct {
	Rule   *TableRule
	values map[string]bool // filter values; nil for OpAll
}

// Scope evaluates the rules for an edge with the given claims. A group or claim that
// is missing or unusable leaves the affected tables out and is listed in Problems.
func (s *Set) Scope(claims map[string]any) *Scope {
	sc := &Scope{tables: map[string]*TableScope{}}
	group := s.defaultGroup
	if raw, ok := claims[s.groupClaim]; ok {
		g, ok := scalarText(raw)
		if !ok {
			sc.Problems = append(sc.Problems, fmt.Sprintf("claim %q is not a group name", s.groupClaim))
			return sc
		}
		group = g
	}
	if group == "" {
		sc.Problems = append(sc.Problems, fmt.Sprintf("no claim %q and no rules.default_group: the edge receives nothing", s.groupClaim))
		return sc
	}
	tables, ok := s.groups[group]
	if !ok {
		sc.Problems = append(sc.Problems, fmt.Sprintf("group %q has no rules: the edge receives nothing", group))
		return sc
	}
	sc.Group = group
	for name, r := range tables {
		ts := &TableScope{Rule: r}
		if r.Filter.Op != OpAll {
			vals, problem := claimValues(claims, r.Filter)
			if problem != "" {
				sc.Problems = append(sc.Problems, fmt.Sprintf("table %s: %s: the edge receives none of its rows", name, problem))
				continue
			}
			ts.values = vals
		}
		sc.tables[name] = ts
	}
	sort.Strings(sc.Problems)
	return sc
}

// maxLogged bounds the remembered (edge, problem) pairs; past it the memory starts
// over, so a problem is logged again at worst once per that many.
const maxLogged = 10000

// EdgeScope is Scope for the edge named edge, logging each of its problems (a
// missing group or claim) once, as a warning naming the edge.
func (s *Set) EdgeScope(edge string, claims map[string]any, log *slog.Logger) *Scope {
	sc := s.Scope(claims)
	if len(sc.Problems) == 0 || log == nil {
		return sc
	}
	for _, p := range sc.Problems {
		k := edge + "\x00" + p
		s.logMu.Lock()
		seen := s.logged[k]
		if !seen {
			if s.logged == nil || len(s.logged) >= maxLogged {
				s.logged = map[string]bool{}
			}
			s.logged[k] = true
		}
		s.logMu.Unlock()
		if !seen {
			log.Warn("sync rules leave part of an edge's scope empty", "edge_id", edge, "group", sc.Group, "problem", p)
		}
	}
	return sc
}

// claimValues returns the canonical texts of the claim a filter compares with.
func claimValues(claims map[string]any, f Filter) (map[string]bool, string) {
	raw, ok := claims[f.Claim]
	if !ok || raw == nil {
		return nil, fmt.Sprintf("claim %q is missing", f.Claim)
	}
	vals := map[string]bool{}
	if list, ok := raw.([]any); ok {
		if f.Op == OpEq {
			return nil, fmt.Sprintf("claim %q is a list; filter %s wants one value (use IN)", f.Claim, f)
		}
		for _, x := range list {
			t, ok := scalarText(x)
			if !ok {
				return nil, fmt.Sprintf("claim %q holds a value that is not a string, number or bool", f.Claim)
			}
			vals[t] = true
		}
		return vals, ""
	}
	if list, ok := raw.([]string); ok {
		if f.Op == OpEq {
			return nil, fmt.Sprintf("claim %q is a list; filter %s wants one value (use IN)", f.Claim, f)
		}
		for _, x := range list {
			vals[x] = true
		}
		return vals, ""
	}
	t, ok := scalarText(raw)
	if !ok {
		return nil, fmt.Sprintf("claim %q is not a string, number, bool or list of them", f.Claim)
	}
	vals[t] = true
	return vals, ""
}

// scalarText is the canonical text of a claim value, matching ValueText of a column
// value: integers without a fraction or exponent, text as it is.
func scalarText(x any) (string, bool) {
	switch v := x.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "", false
		}
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return strconv.FormatInt(int64(v), 10), true
		}
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case interface{ String() string }: // json.Number
		return v.String(), true
	}
	return "", false
}

// Table returns the scope of one table; ok is false when the edge may not see it.
func (sc *Scope) Table(name string) (*TableScope, bool) {
	ts, ok := sc.tables[name]
	return ts, ok
}

// Buckets returns the edge's bucket names, sorted.
func (sc *Scope) Buckets() []string {
	var out []string
	for _, ts := range sc.tables {
		if ts.values == nil {
			out = append(out, ts.Rule.TableBucket())
			continue
		}
		for v := range ts.values {
			out = append(out, ts.Rule.ValueBucket(v))
		}
	}
	sort.Strings(out)
	return out
}

// Tables filters a schema's tables to the scope: only its tables, each with only its
// allowed columns. The result shares nothing with tables.
func (sc *Scope) Tables(tables []cdc.Table) []cdc.Table {
	out := []cdc.Table{}
	for _, t := range tables {
		ts, ok := sc.tables[t.Name]
		if !ok {
			continue
		}
		ft := cdc.Table{Name: t.Name, PrimaryKey: append([]string(nil), t.PrimaryKey...)}
		for _, c := range t.Columns {
			if ts.Rule.AllowsColumn(c.Name) {
				ft.Columns = append(ft.Columns, c)
			}
		}
		out = append(out, ft)
	}
	return out
}

// Contains reports whether a row image is inside the table's scope. A row whose
// filter column is missing or NULL is outside.
func (ts *TableScope) Contains(row cdc.Row) bool {
	if ts.values == nil {
		return true
	}
	v, ok := row.Get(ts.Rule.Filter.Column)
	if !ok {
		return false
	}
	t, ok := ValueText(v)
	return ok && ts.values[t]
}

// CheckColumns returns the first column of row the rule does not allow, if any.
func (ts *TableScope) CheckColumns(row cdc.Row) (string, bool) {
	for i := range row {
		if !ts.Rule.AllowsColumn(row[i].Name) {
			return row[i].Name, false
		}
	}
	return "", true
}
