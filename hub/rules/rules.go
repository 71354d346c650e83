// Package rules holds the hub's sync rules: which tables, columns and rows each group
// of edges receives and may write. Rules are configured per edge group; an edge's
// group and the values its filters compare with come from its credential's claims.
//
// Every table rule with a row filter splits its table into buckets, one per filter
// value ("stores/public.orders/7"); a table with filter "all" is one bucket per group
// ("stores/public.products"). The change log indexes changes by bucket at ingest, so a
// pull reads only the buckets of the edge asking.
package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/synchub/synchub/cdc"
)

// Config is the rules section of the hub's configuration. With no groups, rules are
// off: every edge receives every table and may write every row.
type Config struct {
	// GroupClaim is the claim naming an edge's group; default "group".
	GroupClaim string
	// DefaultGroup is the group of an edge whose credential has no group claim; empty
	// means such an edge receives nothing.
	DefaultGroup string
	// Groups maps a group name to its tables.
	Groups map[string]GroupConfig
}

// GroupConfig is one group's tables.
type GroupConfig struct {
	Tables map[string]TableConfig
}

// TableConfig is one table's rule in a group.
type TableConfig struct {
	// Filter selects the rows (see Filter); "all" for every row.
	Filter string
	// Columns is the column allow-list; empty means every column. It must include the
	// table's primary key.
	Columns []string
}

// DefaultGroupClaim is the claim read for an edge's group when GroupClaim is empty.
const DefaultGroupClaim = "group"

// TableRule is one group's compiled rule for one table.
type TableRule struct {
	Group  string
	Table  string
	Filter Filter
	// Columns is the allow-list in configured order; nil means every column.
	Columns []string
	allowed map[string]bool
}

// AllowsColumn reports whether the rule lets edges see and write column.
func (r *TableRule) AllowsColumn(column string) bool {
	return r.allowed == nil || r.allowed[column]
}

// TableBucket is the bucket name of a table that is one bucket for the group.
func (r *TableRule) TableBucket() string { return r.Group + "/" + r.Table }

// ValueBucket is the bucket of rows whose filter column has the canonical text value.
func (r *TableRule) ValueBucket(value string) string {
	return r.Group + "/" + r.Table + "/" + value
}

// Bucket returns the bucket of a row image, and false when the row is in none (its
// filter column is NULL or missing from the image).
func (r *TableRule) Bucket(row cdc.Row) (string, bool) {
	if r.Filter.Op == OpAll {
		return r.TableBucket(), true
	}
	v, ok := row.Get(r.Filter.Column)
	if !ok {
		return "", false
	}
	text, ok := ValueText(v)
	if !ok {
		return "", false
	}
	return r.ValueBucket(text), true
}

// AppendRow appends the JSON object of row limited to the allow-list.
func (r *TableRule) AppendRow(b []byte, row cdc.Row) []byte {
	b = append(b, '{')
	first := true
	for i := range row {
		f := &row[i]
		if f.Unchanged || !r.AllowsColumn(f.Name) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = cdc.AppendJSONString(b, f.Name)
		b = append(b, ':')
		b = f.Value.AppendJSON(b)
	}
	return append(b, '}')
}

// ValueText is the canonical text of a column value in a bucket name; NULL has none.
func ValueText(v cdc.Value) (string, bool) {
	if v.IsNull() {
		return "", false
	}
	return v.String(), true
}

// Set is a compiled rule set. A nil *Set means rules are off.
type Set struct {
	groupClaim   string
	defaultGroup string
	groups       map[string]map[string]*TableRule // group → table → rule
	byTable      map[string][]*TableRule          // table → rules of every group, by group name
	fingerprint  string

	logMu  sync.Mutex
	logged map[string]bool // edge and problem already logged (see EdgeScope)
}

// Compile parses and checks cfg without a schema (see Set.Check). It returns nil, nil
// when cfg has no groups: rules are off.
func Compile(cfg Config) (*Set, error) {
	if len(cfg.Groups) == 0 {
		if cfg.DefaultGroup != "" {
			return nil, fmt.Errorf("rules: default_group %q is set but no groups are configured; add it under rules.groups", cfg.DefaultGroup)
		}
		return nil, nil
	}
	s := &Set{
		groupClaim:   cfg.GroupClaim,
		defaultGroup: cfg.DefaultGroup,
		groups:       map[string]map[string]*TableRule{},
		byTable:      map[string][]*TableRule{},
	}
	if s.groupClaim == "" {
		s.groupClaim = DefaultGroupClaim
	}
	if s.defaultGroup != "" {
		if _, ok := cfg.Groups[s.defaultGroup]; !ok {
			return nil, fmt.Errorf("rules: default_group %q is not one of rules.groups", s.defaultGroup)
		}
	}
	names := make([]string, 0, len(cfg.Groups))
	for g := range cfg.Groups {
		names = append(names, g)
	}
	sort.Strings(names)
	var fp strings.Builder
	fmt.Fprintf(&fp, "claim=%q\n", s.groupClaim)
	for _, g := range names {
		if err := checkName("group", g); err != nil {
			return nil, err
		}
		gc := cfg.Groups[g]
		if len(gc.Tables) == 0 {
			return nil, fmt.Errorf("rules: group %s has no tables; list the tables its edges receive under rules.groups.%s.tables", g, g)
		}
		tables := make([]string, 0, len(gc.Tables))
		for t := range gc.Tables {
			tables = append(tables, t)
		}
		sort.Strings(tables)
		s.groups[g] = map[string]*TableRule{}
		for _, t := range tables {
			r, err := compileTable(g, t, gc.Tables[t])
			if err != nil {
				return nil, err
			}
			s.groups[g][t] = r
			s.byTable[t] = append(s.byTable[t], r)
			fmt.Fprintf(&fp, "%q %q %q %q\n", g, t, r.Filter.String(), r.Columns)
		}
	}
	sum := sha256.Sum256([]byte(fp.String()))
	s.fingerprint = hex.EncodeToString(sum[:16])
	return s, nil
}

// checkName accepts group names that cannot be confused inside a bucket name.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("rules: a %s name is empty", what)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isIdent(c) && c != '-' && c != '.' {
			return fmt.Errorf("rules: %s name %q: use only letters, digits, _, -, . and $", what, name)
		}
	}
	return nil
}

func compileTable(group, table string, tc TableConfig) (*TableRule, error) {
	if table == "" || strings.Contains(table, "/") {
		return nil, fmt.Errorf("rules: group %s: table name %q must be a non-empty schema-qualified name without /", group, table)
	}
	f, err := ParseFilter(tc.Filter)
	if err != nil {
		return nil, fmt.Errorf("rules: group %s table %s: %w", group, table, err)
	}
	r := &TableRule{Group: group, Table: table, Filter: f}
	if len(tc.Columns) > 0 {
		r.Columns = slices.Clone(tc.Columns)
		r.allowed = make(map[string]bool, len(tc.Columns))
		for _, c := range tc.Columns {
			if r.allowed[c] {
				return nil, fmt.Errorf("rules: group %s table %s: column %q is listed twice", group, table, c)
			}
			r.allowed[c] = true
		}
	}
	return r, nil
}

// Fingerprint identifies what the rules put in which bucket; the change log rebuilds
// its bucket index when it changes.
func (s *Set) Fingerprint() string {
	if s == nil {
		return ""
	}
	return s.fingerprint
}

// Tables returns the rules of every group for table, ordered by group name.
func (s *Set) Tables(table string) []*TableRule {
	if s == nil {
		return nil
	}
	return s.byTable[table]
}

// Groups returns the group names, sorted.
func (s *Set) Groups() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.groups))
	for g := range s.groups {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// Check validates the rules against captured tables: every table and column a rule
// names must exist, a filter column must have a comparable kind, and a column
// allow-list must include the primary key. The error names what is wrong.
func (s *Set) Check(tables []cdc.Table) error {
	if s == nil {
		return nil
	}
	byName := make(map[string]*cdc.Table, len(tables))
	for i := range tables {
		byName[tables[i].Name] = &tables[i]
	}
	var errs []error
	for _, g := range s.Groups() {
		for _, r := range sortedRules(s.groups[g]) {
			if err := r.check(byName[r.Table]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func sortedRules(m map[string]*TableRule) []*TableRule {
	out := make([]*TableRule, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Table < out[j].Table })
	return out
}

func (r *TableRule) check(t *cdc.Table) error {
	if t == nil {
		return fmt.Errorf("rules: group %s names table %s, which the source does not capture; fix the name or add the table to the source", r.Group, r.Table)
	}
	if r.Filter.Op != OpAll {
		col, ok := t.Column(r.Filter.Column)
		if !ok {
			return fmt.Errorf("rules: group %s table %s: filter column %q is not a column of %s", r.Group, r.Table, r.Filter.Column, r.Table)
		}
		switch col.Kind {
		case cdc.KindFloat, cdc.KindJSON, cdc.KindArray, cdc.KindBytes:
			return fmt.Errorf("rules: group %s table %s: filter column %q has kind %s; filter on an integer, text, decimal, uuid, enum, bool or date column", r.Group, r.Table, r.Filter.Column, col.Kind)
		}
	}
	for _, c := range r.Columns {
		if _, ok := t.Column(c); !ok {
			return fmt.Errorf("rules: group %s table %s: column %q in the allow-list is not a column of %s", r.Group, r.Table, c, r.Table)
		}
	}
	for _, k := range t.PrimaryKey {
		if !r.AllowsColumn(k) {
			return fmt.Errorf("rules: group %s table %s: the column allow-list must include primary key column %q", r.Group, r.Table, k)
		}
	}
	return nil
}
