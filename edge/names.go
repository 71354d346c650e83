package edge

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/synchub/synchub/cdc"
)

// maxIdentLen bounds identifiers; every supported source's limit is lower.
const maxIdentLen = 128

// LocalTableName is the name of the local SQLite table that holds the captured table
// source ("schema.table"): the bare table name for the "public" schema (or none), and
// "schema_table" for any other schema. It is deterministic, so applications can compute
// it too.
func LocalTableName(source string) string {
	schema, table := cdc.SplitTableName(source)
	if schema == "" || schema == "public" {
		return table
	}
	return schema + "_" + table
}

// checkIdent refuses identifiers that are not plain names. Quoting alone would make any
// name safe in SQL, but a schema that names a table `x"; DROP TABLE t; --` is hostile or
// broken, and refusing it says so.
func checkIdent(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty", what)
	}
	if len(name) > maxIdentLen {
		return fmt.Errorf("%s name %.40q… is longer than %d bytes", what, name, maxIdentLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%s name %q is not valid UTF-8", what, name)
	}
	for i, r := range name {
		ok := r == '_' || r == '$' || unicode.IsLetter(r) || (i > 0 && unicode.IsDigit(r))
		if !ok {
			return fmt.Errorf("%s name %q contains %q: only letters, digits, '_' and '$' are allowed (and no leading digit)", what, name, r)
		}
	}
	lower := strings.ToLower(name)
	if strings.HasPrefix(lower, "sqlite_") || strings.HasPrefix(lower, "_synchub_") {
		return fmt.Errorf("%s name %q starts with a reserved prefix (sqlite_ or _synchub_)", what, name)
	}
	return nil
}

// quoteIdent double-quotes a checked identifier for SQLite.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// sqliteTypes are the declared column types an edge accepts from a schema.
var sqliteTypes = map[string]bool{"INTEGER": true, "REAL": true, "TEXT": true, "BLOB": true, "NUMERIC": true}

// columnType returns the declared type for a column: the schema's sqlite_type, or the
// kind's default when the schema gives none.
func columnType(tbl string, c *cdc.Column) (string, error) {
	t := strings.ToUpper(strings.TrimSpace(c.SQLiteType))
	if t == "" {
		return c.Kind.SQLiteType(), nil
	}
	if !sqliteTypes[t] {
		return "", fmt.Errorf("table %s column %s: sqlite_type %q is not one of INTEGER, REAL, TEXT, BLOB, NUMERIC", tbl, c.Name, c.SQLiteType)
	}
	return t, nil
}

// checkTable validates a captured table for use on an edge.
func checkTable(t *cdc.Table) error {
	schema, name := cdc.SplitTableName(t.Name)
	if schema != "" {
		if err := checkIdent("schema", schema); err != nil {
			return fmt.Errorf("captured table %q: %w", t.Name, err)
		}
	}
	if err := checkIdent("table", name); err != nil {
		return fmt.Errorf("captured table %q: %w", t.Name, err)
	}
	if err := t.Validate(); err != nil {
		return err
	}
	seen := make(map[string]string, len(t.Columns))
	for i := range t.Columns {
		c := &t.Columns[i]
		if err := checkIdent("column", c.Name); err != nil {
			return fmt.Errorf("captured table %s: %w", t.Name, err)
		}
		lower := strings.ToLower(c.Name)
		if other, dup := seen[lower]; dup {
			return fmt.Errorf("captured table %s: columns %q and %q differ only in case, which SQLite cannot hold apart", t.Name, other, c.Name)
		}
		seen[lower] = c.Name
		if c.Kind == cdc.KindNull || strings.HasPrefix(c.Kind.String(), "kind(") {
			return fmt.Errorf("captured table %s column %s: unknown kind %v", t.Name, c.Name, c.Kind)
		}
		if _, err := columnType(t.Name, c); err != nil {
			return err
		}
	}
	return nil
}
