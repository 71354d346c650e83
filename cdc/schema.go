package cdc

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Column describes one column of a captured table.
type Column struct {
	Name       string `json:"name"`
	SourceType string `json:"source_type"` // the source's own type name, e.g. "numeric(12,2)"
	Kind       Kind   `json:"kind"`
	SQLiteType string `json:"sqlite_type"` // declared type an edge creates the column with
	Nullable   bool   `json:"nullable"`
	// Default is the value, in the column's JSON form, that rows which existed when the
	// column was added hold (a constant default of ALTER TABLE ADD COLUMN); empty when
	// unknown or NULL. The source writes nothing for those rows, so an edge that adds the
	// column sets it in its existing rows.
	Default JSONText `json:"default,omitempty"`
}

// JSONText is a JSON value kept as its text. Unlike json.RawMessage it is comparable,
// so the structs holding it are too.
type JSONText string

// MarshalJSON writes the text as it is (null when empty).
func (j JSONText) MarshalJSON() ([]byte, error) {
	if j == "" {
		return []byte("null"), nil
	}
	if !json.Valid([]byte(j)) {
		return nil, fmt.Errorf("JSONText %.40q is not valid JSON", string(j))
	}
	return []byte(j), nil
}

// UnmarshalJSON keeps the JSON text; null becomes empty.
func (j *JSONText) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*j = ""
		return nil
	}
	*j = JSONText(b)
	return nil
}

// Table describes one captured table.
type Table struct {
	Name       string   `json:"name"` // schema-qualified, e.g. "public.orders"
	Columns    []Column `json:"columns"`
	PrimaryKey []string `json:"primary_key"` // column names, in key order
}

// Column returns the named column.
func (t *Table) Column(name string) (*Column, bool) {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i], true
		}
	}
	return nil, false
}

// Validate checks that the table can be synchronised: a name, columns with unique
// names and a primary key made of existing columns.
func (t *Table) Validate() error {
	if t.Name == "" {
		return fmt.Errorf("table has no name")
	}
	if len(t.Columns) == 0 {
		return fmt.Errorf("table %s has no columns", t.Name)
	}
	seen := make(map[string]bool, len(t.Columns))
	for _, c := range t.Columns {
		if c.Name == "" {
			return fmt.Errorf("table %s has a column with no name", t.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("table %s has column %q twice", t.Name, c.Name)
		}
		seen[c.Name] = true
	}
	if len(t.PrimaryKey) == 0 {
		return fmt.Errorf("table %s has no primary key: add one (ALTER TABLE %s ADD PRIMARY KEY (...)) so rows can be identified", t.Name, t.Name)
	}
	for _, k := range t.PrimaryKey {
		if !seen[k] {
			return fmt.Errorf("table %s: primary key column %q is not a column", t.Name, k)
		}
	}
	return nil
}

// Schema is the set of captured tables at one schema version of the change log.
type Schema struct {
	Version int64   `json:"version"`
	Tables  []Table `json:"tables"`
}

// Table returns the named table.
func (s *Schema) Table(name string) (*Table, bool) {
	for i := range s.Tables {
		if s.Tables[i].Name == name {
			return &s.Tables[i], true
		}
	}
	return nil, false
}

// SplitTableName splits "schema.table" into its parts; a name without a dot has an
// empty schema.
func SplitTableName(name string) (schema, table string) {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

// SameColumns reports whether two table definitions have the same columns, kinds and key.
func SameColumns(a, b *Table) bool {
	if len(a.Columns) != len(b.Columns) || len(a.PrimaryKey) != len(b.PrimaryKey) {
		return false
	}
	for i := range a.Columns {
		x, y := a.Columns[i], b.Columns[i]
		if x.Name != y.Name || x.Kind != y.Kind || x.SourceType != y.SourceType {
			return false
		}
	}
	for i := range a.PrimaryKey {
		if a.PrimaryKey[i] != b.PrimaryKey[i] {
			return false
		}
	}
	return true
}
