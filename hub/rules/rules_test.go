package rules

import (
	"strings"
	"testing"

	"github.com/synchub/synchub/cdc"
)

func TestParseFilter(t *testing.T) {
	cases := []struct {
		in   string
		want Filter
		err  string
	}{
		{in: "all", want: Filter{Op: OpAll}},
		{in: "  ALL ", want: Filter{Op: OpAll}},
		{in: "store_id = {edge.store_id}", want: Filter{Op: OpEq, Column: "store_id", Claim: "store_id"}},
		{in: "store_id={edge.store_id}", want: Filter{Op: OpEq, Column: "store_id", Claim: "store_id"}},
		{in: "region in { edge.regions }", want: Filter{Op: OpIn, Column: "region", Claim: "regions"}},
		{in: `"Store ""Id""" IN {edge.store-id}`, want: Filter{Op: OpIn, Column: `Store "Id"`, Claim: "store-id"}},
		{in: `"all" = {edge.x}`, want: Filter{Op: OpEq, Column: "all", Claim: "x"}},
		{in: "", err: "empty"},
		{in: "all x", err: `nothing may follow "all"`},
		{in: "a", err: `want "=" or "IN"`},
		{in: "a = 7", err: "want {edge.<claim>}"},
		{in: "a = {user.x}", err: `want "edge."`},
		{in: "a = {edge.}", err: "want a claim name"},
		{in: "a = {edge.x", err: "want }"},
		{in: "a = {edge.x} or b = {edge.y}", err: "unexpected text"},
		{in: "a inside {edge.x}", err: `want "=" or "IN"`},
		{in: `"" = {edge.x}`, err: "empty"},
		{in: `"a = {edge.x}`, err: "no closing"},
		{in: "1a = {edge.x}", err: "want a column name"},
		{in: strings.Repeat("a", maxFilterLen+1), err: "at most"},
	}
	for _, c := range cases {
		got, err := ParseFilter(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseFilter(%q) error %v, want one containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseFilter(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		again, err := ParseFilter(got.String())
		if err != nil || again != got {
			t.Errorf("ParseFilter(%q).String() = %q does not read back: %+v, %v", c.in, got.String(), again, err)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	f.Add("store_id = {edge.store_id}")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFilter(s)
		if err != nil {
			return
		}
		again, err := ParseFilter(got.String())
		if err != nil || again != got {
			t.Fatalf("filter %q parsed as %+v, whose form %q reads back as %+v, %v", s, got, got.String(), again, err)
		}
	})
}

var ordersTable = cdc.Table{
	Name: "public.orders",
	Columns: []cdc.Column{
		{Name: "id", Kind: cdc.KindInt},
		{Name: "store_id", Kind: cdc.KindInt},
		{Name: "region", Kind: cdc.KindText},
		{Name: "total", Kind: cdc.KindDecimal},
		{Name: "blob", Kind: cdc.KindBytes},
	},
	PrimaryKey: []string{"id"},
}

func testSet(t *testing.T) *Set {
	t.Helper()
	s, err := Compile(Config{Groups: map[string]GroupConfig{
		"stores": {Tables: map[string]TableConfig{
			"public.orders": {Filter: "store_id = {edge.store_id}", Columns: []string{"id", "store_id", "total"}},
		}},
		"regions": {Tables: map[string]TableConfig{
			"public.orders": {Filter: "region IN {edge.regions}"},
		}},
	}, DefaultGroup: "stores"})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if err := s.Check([]cdc.Table{ordersTable}); err != nil {
		t.Fatalf("check: %v", err)
	}
	return s
}

func TestCompile_Errors(t *testing.T) {
	if s, err := Compile(Config{}); s != nil || err != nil {
		t.Fatalf("no groups: %v, %v; want rules off", s, err)
	}
	bad := []struct {
		cfg  Config
		want string
	}{
		{Config{DefaultGroup: "x"}, "no groups"},
		{Config{DefaultGroup: "x", Groups: map[string]GroupConfig{"a": {Tables: map[string]TableConfig{"t.a": {Filter: "all"}}}}}, `default_group "x"`},
		{Config{Groups: map[string]GroupConfig{"a/b": {Tables: map[string]TableConfig{"t.a": {Filter: "all"}}}}}, "group name"},
		{Config{Groups: map[string]GroupConfig{"a": {}}}, "has no tables"},
		{Config{Groups: map[string]GroupConfig{"a": {Tables: map[string]TableConfig{"t.a": {Filter: "x ="}}}}}, "group a table t.a"},
		{Config{Groups: map[string]GroupConfig{"a": {Tables: map[string]TableConfig{"t/a": {Filter: "all"}}}}}, "without /"},
		{Config{Groups: map[string]GroupConfig{"a": {Tables: map[string]TableConfig{"t.a": {Filter: "all", Columns: []string{"x", "x"}}}}}}, "twice"},
	}
	for _, b := range bad {
		if _, err := Compile(b.cfg); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Compile(%+v) error %v, want %q", b.cfg, err, b.want)
		}
	}
}

func TestSet_Check(t *testing.T) {
	cases := []struct {
		tc   TableConfig
		tbl  string
		want string
	}{
		{TableConfig{Filter: "all"}, "public.nope", "table public.nope, which the source does not capture"},
		{TableConfig{Filter: "shop = {edge.x}"}, "public.orders", `filter column "shop"`},
		{TableConfig{Filter: "blob = {edge.x}"}, "public.orders", "kind bytes"},
		{TableConfig{Filter: "all", Columns: []string{"id", "price"}}, "public.orders", `column "price"`},
		{TableConfig{Filter: "all", Columns: []string{"total"}}, "public.orders", `primary key column "id"`},
	}
	for _, c := range cases {
		s, err := Compile(Config{Groups: map[string]GroupConfig{"g": {Tables: map[string]TableConfig{c.tbl: c.tc}}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Check([]cdc.Table{ordersTable}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%+v) error %v, want %q", c.tc, err, c.want)
		}
	}
	var off *Set
	if err := off.Check(nil); err != nil || off.Fingerprint() != "" || off.Tables("x") != nil {
		t.Fatal("a nil Set must mean rules off")
	}
}

func row(id, store int64, region string) cdc.Row {
	return cdc.Row{
		{Name: "id", Value: cdc.Int(id)},
		{Name: "store_id", Value: cdc.Int(store)},
		{Name: "region", Value: cdc.Text(cdc.KindText, region)},
		{Name: "total", Value: cdc.Text(cdc.KindDecimal, "1.50")},
	}
}

func TestScope(t *testing.T) {
	s := testSet(t)
	// JSON claims decode numbers as float64; string and number claims match alike.
	for _, claims := range []map[string]any{
		{"group": "stores", "store_id": float64(7)},
		{"store_id": "7"}, // default group
	} {
		sc := s.Scope(claims)
		if sc.Group != "stores" || len(sc.Problems) != 0 {
			t.Fatalf("scope of %v: group %q problems %v", claims, sc.Group, sc.Problems)
		}
		if got := strings.Join(sc.Buckets(), " "); got != "stores/public.orders/7" {
			t.Fatalf("buckets of %v: %s", claims, got)
		}
		ts, ok := sc.Table("public.orders")
		if !ok || !ts.Contains(row(1, 7, "eu")) || ts.Contains(row(1, 8, "eu")) {
			t.Fatalf("store 7 scope does not contain exactly store 7's rows")
		}
		if ts.Contains(cdc.Row{{Name: "id", Value: cdc.Int(1)}}) {
			t.Fatal("a row without the filter column is in scope")
		}
		if col, ok := ts.CheckColumns(cdc.Row{{Name: "id"}, {Name: "region"}}); ok || col != "region" {
			t.Fatalf("column allow-list check: %q %v", col, ok)
		}
	}
	sc := s.Scope(map[string]any{"group": "regions", "regions": []any{"eu", "us"}})
	if got := strings.Join(sc.Buckets(), " "); got != "regions/public.orders/eu regions/public.orders/us" {
		t.Fatalf("regions buckets: %s", got)
	}
	tables := sc.Tables([]cdc.Table{ordersTable, {Name: "public.other", Columns: []cdc.Column{{Name: "id"}}, PrimaryKey: []string{"id"}}})
	if len(tables) != 1 || len(tables[0].Columns) != len(ordersTable.Columns) {
		t.Fatalf("regions schema: %+v", tables)
	}
	st := s.Scope(map[string]any{"store_id": 7})
	tables = st.Tables([]cdc.Table{ordersTable})
	if len(tables) != 1 || len(tables[0].Columns) != 3 {
		t.Fatalf("stores schema has columns %+v, want id, store_id, total", tables[0].Columns)
	}

	for _, c := range []struct {
		claims map[string]any
		want   string
	}{
		{map[string]any{"group": "stores"}, `claim "store_id" is missing`},
		{map[string]any{"group": "stores", "store_id": []any{"7"}}, "use IN"},
		{map[string]any{"group": "nobody"}, `group "nobody" has no rules`},
		{map[string]any{"group": 5.5}, "no rules"},
		{map[string]any{"group": map[string]any{}}, "not a group name"},
		{map[string]any{"group": "regions", "regions": []any{map[string]any{}}}, "not a string"},
	} {
		sc := s.Scope(c.claims)
		if len(sc.Buckets()) != 0 || !strings.Contains(strings.Join(sc.Problems, "; "), c.want) {
			t.Errorf("scope of %v: buckets %v problems %v; want none and %q", c.claims, sc.Buckets(), sc.Problems, c.want)
		}
	}
}

func TestTableRule_Bucket(t *testing.T) {
	s := testSet(t)
	r := s.Tables("public.orders")[1] // sorted by group: regions, stores
	if r.Group != "stores" {
		t.Fatalf("rules of public.orders are not ordered by group: %s first", s.Tables("public.orders")[0].Group)
	}
	if b, ok := r.Bucket(row(1, 7, "eu")); !ok || b != "stores/public.orders/7" {
		t.Fatalf("bucket %q %v", b, ok)
	}
	null := row(1, 7, "eu")
	null[1].Value = cdc.Null()
	if b, ok := r.Bucket(null); ok {
		t.Fatalf("a NULL filter value has bucket %q", b)
	}
	if got := string(r.AppendRow(nil, row(1, 7, "eu"))); got != `{"id":1,"store_id":7,"total":"1.50"}` {
		t.Fatalf("allow-listed row %s", got)
	}
	if s.Fingerprint() == "" || s.Fingerprint() == testSetOther(t).Fingerprint() {
		t.Fatal("fingerprints do not tell different rules apart")
	}
}

func testSetOther(t *testing.T) *Set {
	s, err := Compile(Config{Groups: map[string]GroupConfig{
		"stores": {Tables: map[string]TableConfig{"public.orders": {Filter: "store_id = {edge.store_id}"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
