package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// selectedTable is a captured table the edge syncs, with its local name.
type selectedTable struct {
	src   *cdc.Table
	local string
}

// selectTables validates the schema's tables that pass the filter and names them
// locally. It refuses the whole schema if any selected table is unusable, before any
// DDL runs. unmatched lists filter entries that name no captured table.
func selectTables(s *cdc.Schema, filter []string) (sel []selectedTable, unmatched []string, err error) {
	want := make(map[string]bool, len(filter))
	for _, f := range filter {
		want[strings.TrimSpace(f)] = true
	}
	matched := make(map[string]bool, len(filter))
	byLocal := map[string]string{}
	for i := range s.Tables {
		t := &s.Tables[i]
		local := LocalTableName(t.Name)
		if len(want) > 0 {
			if !want[t.Name] && !want[local] {
				continue
			}
			matched[t.Name], matched[local] = true, true
		}
		if err := checkTable(t); err != nil {
			return nil, nil, fmt.Errorf("hub schema version %d: %w; fix the table on the hub or leave it out with the edge's tables setting", s.Version, err)
		}
		if err := checkIdent("local table", local); err != nil {
			return nil, nil, fmt.Errorf("hub schema version %d: captured table %s: %w", s.Version, t.Name, err)
		}
		lower := strings.ToLower(local)
		if other, dup := byLocal[lower]; dup {
			return nil, nil, fmt.Errorf("hub schema version %d: captured tables %s and %s both map to the local table %q; leave one out with the edge's tables setting", s.Version, other, t.Name, local)
		}
		byLocal[lower] = t.Name
		sel = append(sel, selectedTable{src: t, local: local})
	}
	for _, f := range filter {
		if !matched[strings.TrimSpace(f)] {
			unmatched = append(unmatched, f)
		}
	}
	return sel, unmatched, nil
}

// filterKey is the canonical text of a table filter, stored to notice changes.
func filterKey(filter []string) string {
	f := make([]string, 0, len(filter))
	for _, t := range filter {
		f = append(f, strings.TrimSpace(t))
	}
	slices.Sort(f)
	return strings.Join(slices.Compact(f), ",")
}

// applySchema makes the local tables match s inside the open transaction and installs
// the new catalogue. It reports whether a table had to be rebuilt, which empties it
// until the caller re-bootstraps.
func (a *Agent) applySchema(ctx context.Context, s *cdc.Schema) (rebuilt bool, err error) {
	sel, unmatched, err := selectTables(s, a.cfg.Tables)
	if err != nil {
		return false, err
	}
	if len(unmatched) > 0 {
		a.log.Warn("tables setting names tables the hub does not capture", "tables", unmatched, "schema_version", s.Version)
	}
	captured, err := capturedTables(ctx, a.db.conn)
	if err != nil {
		return false, err
	}
	for _, st := range sel {
		if captured[st.src.Name] {
			if err := dropTriggers(ctx, a.db.conn, st.local); err != nil {
				return false, err
			}
		}
	}
	for _, st := range sel {
		r, err := a.syncTableDef(ctx, st)
		if err != nil {
			return false, err
		}
		rebuilt = rebuilt || r
	}
	body, err := json.Marshal(syncproto.SchemaResponse{Version: s.Version, Tables: s.Tables})
	if err != nil {
		return false, fmt.Errorf("encode schema: %w", err)
	}
	if err := a.db.setMeta(ctx, metaSchema, string(body)); err != nil {
		return false, err
	}
	if err := a.db.setMeta(ctx, metaSchemaVersion, strconv.FormatInt(s.Version, 10)); err != nil {
		return false, err
	}
	tables := make(map[string]*table, len(sel))
	for _, st := range sel {
		t, err := newTable(st.src, st.local, nil)
		if err != nil {
			return false, err
		}
		tables[st.src.Name] = t
		if captured[st.src.Name] {
			if err := installTriggers(ctx, a.db.conn, t); err != nil {
				return false, err
			}
		}
	}
	a.setCatalogue(s, tables)
	a.log.Info("applied hub schema", "schema_version", s.Version, "tables", len(tables), "rebuilt", rebuilt)
	return rebuilt, nil
}

// syncTableDef creates or alters one local table to match its captured definition.
func (a *Agent) syncTableDef(ctx context.Context, st selectedTable) (rebuilt bool, err error) {
	info, err := a.db.tableInfo(ctx, st.local)
	if err != nil {
		return false, err
	}
	if len(info) > 0 && !samePrimaryKey(info, st.src.PrimaryKey) {
		a.log.Warn("primary key of a synced table changed; rebuilding it and re-bootstrapping", "table", st.src.Name, "local_table", st.local)
		if _, err := a.db.conn.ExecContext(ctx, "DROP TABLE "+quoteIdent(st.local)); err != nil {
			return false, fmt.Errorf("drop local table %s to rebuild it: %w", st.local, err)
		}
		info, rebuilt = nil, true
	}
	if len(info) == 0 {
		q, err := createTableSQL(st)
		if err != nil {
			return false, err
		}
		if _, err := a.db.conn.ExecContext(ctx, q); err != nil {
			return false, fmt.Errorf("create local table %s: %w", st.local, err)
		}
		return rebuilt, nil
	}
	have := make(map[string]bool, len(info))
	for _, c := range info {
		have[strings.ToLower(c.name)] = true
	}
	want := make(map[string]bool, len(st.src.Columns))
	for i := range st.src.Columns {
		c := &st.src.Columns[i]
		want[strings.ToLower(c.Name)] = true
		if have[strings.ToLower(c.Name)] {
			continue
		}
		typ, err := columnType(st.src.Name, c)
		if err != nil {
			return false, err
		}
		if _, err := a.db.conn.ExecContext(ctx, "ALTER TABLE "+quoteIdent(st.local)+" ADD COLUMN "+quoteIdent(c.Name)+" "+typ); err != nil {
			return false, fmt.Errorf("add column %s to local table %s: %w", c.Name, st.local, err)
		}
		if c.Default != "" {
			// The rows that existed when the column was added hold this value at the
			// source, which wrote no change for them.
			v, err := cdc.ParseJSONValue(c.Kind, []byte(c.Default))
			if err != nil {
				return false, fmt.Errorf("added column %s of %s: default %s: %w", c.Name, st.src.Name, c.Default, err)
			}
			if _, err := a.db.conn.ExecContext(ctx, "UPDATE "+quoteIdent(st.local)+" SET "+quoteIdent(c.Name)+" = ?", v.SQLiteArg()); err != nil {
				return false, fmt.Errorf("set the existing rows' value of added column %s in local table %s: %w", c.Name, st.local, err)
			}
		}
		a.log.Info("added column", "table", st.src.Name, "column", c.Name)
	}
	for _, c := range info {
		if want[strings.ToLower(c.name)] {
			continue
		}
		if err := checkIdent("column", c.name); err != nil {
			continue
		}
		if _, err := a.db.conn.ExecContext(ctx, "ALTER TABLE "+quoteIdent(st.local)+" DROP COLUMN "+quoteIdent(c.name)); err != nil {
			a.log.Warn("cannot drop a column the hub dropped; keeping it, it will stay unchanged", "table", st.src.Name, "column", c.name, "err", err)
			continue
		}
		a.log.Info("dropped column", "table", st.src.Name, "column", c.name)
	}
	return false, nil
}

func samePrimaryKey(info []localColumn, pk []string) bool {
	var have []localColumn
	for _, c := range info {
		if c.pk > 0 {
			have = append(have, c)
		}
	}
	if len(have) != len(pk) {
		return false
	}
	slices.SortFunc(have, func(a, b localColumn) int { return a.pk - b.pk })
	for i := range pk {
		if !strings.EqualFold(have[i].name, pk[i]) {
			return false
		}
	}
	return true
}

func createTableSQL(st selectedTable) (string, error) {
	var b strings.Builder
	b.WriteString("CREATE TABLE ")
	b.WriteString(quoteIdent(st.local))
	b.WriteString(" (")
	for i := range st.src.Columns {
		c := &st.src.Columns[i]
		typ, err := columnType(st.src.Name, c)
		if err != nil {
			return "", err
		}
		b.WriteString(quoteIdent(c.Name))
		b.WriteByte(' ')
		b.WriteString(typ)
		b.WriteString(", ")
	}
	b.WriteString("PRIMARY KEY (")
	for i, k := range st.src.PrimaryKey {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(k))
	}
	b.WriteString("))")
	return b.String(), nil
}

// loadCatalogue rebuilds the catalogue from the schema stored in the local database
// and the tables SQLite has. It reports whether a selected table is missing locally,
// which needs a re-bootstrap to fill.
func (a *Agent) loadCatalogue(ctx context.Context) (missing bool, err error) {
	body, ok, err := a.db.getMeta(ctx, metaSchema)
	if err != nil {
		return false, err
	}
	if !ok {
		a.setCatalogue(nil, map[string]*table{})
		return false, nil
	}
	var sr syncproto.SchemaResponse
	if err := json.Unmarshal([]byte(body), &sr); err != nil {
		return false, fmt.Errorf("decode the schema stored in _synchub_meta: %w; delete the local database to re-bootstrap", err)
	}
	s := &cdc.Schema{Version: sr.Version, Tables: sr.Tables}
	sel, _, err := selectTables(s, a.cfg.Tables)
	if err != nil {
		return false, err
	}
	tables := make(map[string]*table, len(sel))
	for _, st := range sel {
		info, err := a.db.tableInfo(ctx, st.local)
		if err != nil {
			return false, err
		}
		if len(info) == 0 || !samePrimaryKey(info, st.src.PrimaryKey) {
			missing = true
			continue
		}
		present := make(map[string]bool, len(info))
		for _, c := range info {
			present[strings.ToLower(c.name)] = true
		}
		t, err := newTable(st.src, st.local, present)
		if err != nil {
			return false, err
		}
		tables[st.src.Name] = t
	}
	a.setCatalogue(s, tables)
	return missing, nil
}

// setCatalogue installs a new set of synced tables, closing the old statements.
func (a *Agent) setCatalogue(s *cdc.Schema, tables map[string]*table) {
	for _, t := range a.tables {
		if err := t.close(); err != nil {
			a.log.Debug("close prepared statements", "table", t.source, "err", err)
		}
	}
	a.catMu.Lock()
	a.schema, a.tables = s, tables
	a.catMu.Unlock()
}

func (a *Agent) schemaVersion() int64 {
	if a.schema == nil {
		return 0
	}
	return a.schema.Version
}
