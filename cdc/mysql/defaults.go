package mysql

import (
	"context"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/synchub/synchub/cdc"
)

// fillAddedDefaults sets Column.Default for the columns of def that known does not have:
// the value rows that existed before ALTER TABLE … ADD COLUMN hold. The binlog has no
// row events for them, so edges learn it from the announced definition. The value is
// read with DEFAULT(column) in the column's own type, decoded as the snapshot decodes,
// and only for constant defaults: an expression default (CURRENT_TIMESTAMP, …) was
// evaluated at ALTER time and cannot be known now, so it is left out (and a NULL
// default needs nothing).
func fillAddedDefaults(conn *client.Conn, def, known *tableDef) error {
	r, err := conn.Execute(`SELECT COLUMN_NAME, COLUMN_DEFAULT, EXTRA FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, def.db, def.name)
	if err != nil {
		return classify("read column defaults of "+def.table.Name, err)
	}
	constant := map[string]bool{}
	for i := range r.RowNumber() {
		name, _ := r.GetString(i, 0)
		isNull, _ := r.IsNull(i, 1)
		text, _ := r.GetString(i, 1)
		extra, _ := r.GetString(i, 2)
		constant[name] = !isNull && isConstantDefault(text, extra)
	}
	for i := range def.table.Columns {
		col := &def.table.Columns[i]
		if _, had := known.table.Column(col.Name); had || !constant[col.Name] {
			continue
		}
		// The argument makes go-mysql use a prepared statement, so values arrive in
		// the binary protocol as the snapshot reads them.
		v, err := conn.Execute("SELECT DEFAULT("+quoteIdent(col.Name)+") FROM "+def.qualified()+" WHERE ? LIMIT 1", 1)
		if err != nil {
			return classify("read the default of "+def.table.Name+"."+col.Name, err)
		}
		if v.RowNumber() == 1 {
			val, err := snapshotValue(col, &def.cols[i], &v.Values[0][0])
			if err != nil {
				v.Close()
				return &cdc.Error{Op: "read the default of " + def.table.Name + "." + col.Name, Err: err}
			}
			if !val.IsNull() {
				col.Default = cdc.JSONText(val.AppendJSON(nil))
			}
		}
		v.Close()
	}
	return nil
}

// isConstantDefault reports whether information_schema's COLUMN_DEFAULT text is a
// literal. MariaDB quotes string literals and writes expressions as calls
// (current_timestamp(6)); MySQL 8 marks expression defaults DEFAULT_GENERATED.
func isConstantDefault(text, extra string) bool {
	if strings.Contains(strings.ToUpper(extra), "DEFAULT_GENERATED") {
		return false
	}
	t := strings.TrimSpace(text)
	if strings.EqualFold(t, "NULL") {
		return false
	}
	if strings.HasPrefix(t, "'") {
		return true
	}
	return !strings.Contains(t, "(")
}

// fillDefaults runs fillAddedDefaults on the catalog connection. A failure is logged,
// not returned: edges then hold NULL in the added column's old rows until they change,
// which is no reason to stop the stream.
func (s *Source) fillDefaults(def, known *tableDef) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if s.meta == nil {
		return
	}
	err := s.withMeta(context.Background(), func(c *client.Conn) error { return fillAddedDefaults(c, def, known) })
	if err != nil {
		s.log.Warn("cannot read the default of an added column; edges keep NULL in existing rows until they change", "table", def.table.Name, "err", err)
	}
}
