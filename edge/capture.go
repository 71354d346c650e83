package edge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/synchub/synchub/cdc"
)

// InitSync makes local writes to one synced table flow back to the hub: it installs
// triggers that record every insert, update and delete of the local table into the
// outbox (_synchub_outbox), in the same transaction as the write. table is the hub's
// name ("public.orders") or the local one ("orders"). The choice is stored: the
// triggers are re-created whenever the hub's schema changes the table, and installed
// as soon as the table exists when it has not been created yet. Calling it again is
// harmless. It waits for a pull in flight (with Run, up to Config.Wait). Writes made
// before InitSync are not captured.
func (a *Agent) InitSync(ctx context.Context, table string) error {
	a.pullMu.Lock()
	defer a.pullMu.Unlock()
	if a.closed.Load() {
		return ErrClosed
	}
	src, err := a.resolveTable(table)
	if err != nil {
		return err
	}
	return a.initSync(ctx, []string{src})
}

// InitSyncAll calls InitSync for every table of the schema the edge syncs. Before the
// first pull, when the edge knows no schema yet, it returns an error.
func (a *Agent) InitSyncAll(ctx context.Context) error {
	a.pullMu.Lock()
	defer a.pullMu.Unlock()
	if a.closed.Load() {
		return ErrClosed
	}
	if a.schema == nil {
		return errors.New("init sync: the edge has no schema yet; pull once (SyncNow) or name the tables with InitSync")
	}
	sel, _, err := selectTables(a.schema, a.cfg.Tables)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(sel))
	for _, st := range sel {
		names = append(names, st.src.Name)
	}
	return a.initSync(ctx, names)
}

// resolveTable maps a hub or local table name to the hub's name. Without a schema the
// name is taken as given (a hub name is expected then).
func (a *Agent) resolveTable(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", errors.New("init sync: the table name is empty")
	}
	if a.schema == nil {
		if !strings.Contains(name, ".") {
			return "", fmt.Errorf("init sync %q: the edge has no schema yet, so only a hub table name (schema.table) can be given; pull once first or use the hub's name", name)
		}
		return name, nil
	}
	sel, _, err := selectTables(a.schema, a.cfg.Tables)
	if err != nil {
		return "", err
	}
	for _, st := range sel {
		if st.src.Name == name || st.local == name {
			return st.src.Name, nil
		}
	}
	return "", fmt.Errorf("init sync %q: the edge does not sync such a table; name one of the hub's captured tables (and include it in the tables setting)", name)
}

func (a *Agent) initSync(ctx context.Context, names []string) (err error) {
	if err := a.db.begin(ctx); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, a.abort(ctx))
		}
	}()
	for _, n := range names {
		if _, err := a.db.conn.ExecContext(ctx, `INSERT OR IGNORE INTO _synchub_capture (tbl) VALUES (?)`, n); err != nil {
			return fmt.Errorf("init sync %s: %w", n, err)
		}
		if t := a.tables[n]; t != nil {
			if err := installTriggers(ctx, a.db.conn, t); err != nil {
				return err
			}
		}
	}
	if err := a.db.commit(ctx); err != nil {
		return err
	}
	a.log.Info("local writes are captured", "tables", names)
	return nil
}

// capturedTables returns the hub names of the tables whose local writes are captured.
func capturedTables(ctx context.Context, q querier) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT tbl FROM _synchub_capture`)
	if err != nil {
		return nil, fmt.Errorf("read _synchub_capture: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("read _synchub_capture: %w", err)
		}
		out[n] = true
	}
	return out, rows.Err()
}

// querier is what *sql.Conn and *sql.DB share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// triggerNames are the names of a local table's capture triggers.
func triggerNames(local string) [3]string {
	return [3]string{"_synchub_ai_" + local, "_synchub_au_" + local, "_synchub_ad_" + local}
}

// dropTriggers removes a local table's capture triggers, if any. A schema change runs
// it before altering the table: SQLite refuses to drop a column a trigger names.
func dropTriggers(ctx context.Context, q querier, local string) error {
	for _, n := range triggerNames(local) {
		if _, err := q.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+quoteIdent(n)); err != nil {
			return fmt.Errorf("drop trigger %s: %w", n, err)
		}
	}
	return nil
}

// installTriggers (re)creates the capture triggers of t.
func installTriggers(ctx context.Context, q querier, t *table) error {
	if err := dropTriggers(ctx, q, t.local); err != nil {
		return err
	}
	for _, s := range triggerSQL(t) {
		if _, err := q.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("create capture trigger on %s: %w", t.local, err)
		}
	}
	return nil
}

// triggerSQL returns the CREATE TRIGGER statements capturing writes to t.
//
// Each trigger stays silent while _synchub_ctl.applying is 1 (the agent's own
// transactions). It stores the raw SQLite values as a JSON object (BLOB columns as hex,
// since JSON cannot hold them); the agent converts them to the hub's JSON form when it
// forms a batch. Rows are identified by ktext, quote() of each key column joined by
// commas, which the agent computes the same way from pulled keys. The base version and
// base image come from the row's first pending outbox entry when it has one, and
// otherwise from _synchub_rowver or the version floor and the old row.
func triggerSQL(t *table) []string {
	tbl := sqlString(t.source)
	names := triggerNames(t.local)
	guard := "(SELECT applying FROM _synchub_ctl WHERE id = 1) = 0"
	wall := "CAST(unixepoch('subsec') * 1000000 AS INTEGER)"
	// The row's first pending entry, looked up by the (tbl, nktext) index; scalar
	// subqueries keep each lookup a single index probe.
	pending := func(col, k string) string {
		return "(SELECT " + col + " FROM _synchub_outbox WHERE tbl = " + tbl + " AND nktext = " + k + " ORDER BY seq LIMIT 1)"
	}
	hasPending := func(k string) string {
		return "EXISTS (SELECT 1 FROM _synchub_outbox WHERE tbl = " + tbl + " AND nktext = " + k + ")"
	}
	known := "COALESCE((SELECT version FROM _synchub_rowver WHERE tbl = " + tbl + " AND ktext = k.o), " +
		"(SELECT CAST(v AS INTEGER) FROM _synchub_meta WHERE k = '" + metaVersionFloor + "'), 0)"
	cols := "(tbl, ktext, nktext, key_json, op, row_json, base_version, base_json, wall)"

	ins := "CREATE TRIGGER " + quoteIdent(names[0]) + " AFTER INSERT ON " + t.quoted + " WHEN " + guard + " BEGIN " +
		"INSERT INTO _synchub_outbox " + cols + " SELECT " + tbl + ", k.n, k.n, " + keyJSON(t, "NEW") + ", 'i', " + rowJSON(t, "NEW") + ", " +
		"COALESCE(" + pending("base_version", "k.n") + ", 0), " + pending("base_json", "k.n") + ", " + wall +
		" FROM (SELECT " + keyText(t, "NEW") + " AS n) AS k; END"

	var changed []string
	for _, c := range t.cols {
		changed = append(changed, "OLD."+c.quoted+" IS NOT NEW."+c.quoted)
	}
	upd := "CREATE TRIGGER " + quoteIdent(names[1]) + " AFTER UPDATE ON " + t.quoted + " WHEN " + guard +
		" AND (" + strings.Join(changed, " OR ") + ") BEGIN " +
		"INSERT INTO _synchub_outbox " + cols + " SELECT " + tbl + ", k.o, k.n, " + keyJSON(t, "OLD") + ", 'u', " + rowJSON(t, "NEW") + ", " +
		"COALESCE(" + pending("base_version", "k.o") + ", " + known + "), " +
		"CASE WHEN " + hasPending("k.o") + " THEN " + pending("base_json", "k.o") + " ELSE " + rowJSON(t, "OLD") + " END, " + wall +
		" FROM (SELECT " + keyText(t, "OLD") + " AS o, " + keyText(t, "NEW") + " AS n) AS k; END"

	del := "CREATE TRIGGER " + quoteIdent(names[2]) + " AFTER DELETE ON " + t.quoted + " WHEN " + guard + " BEGIN " +
		"INSERT INTO _synchub_outbox " + cols + " SELECT " + tbl + ", k.o, k.o, " + keyJSON(t, "OLD") + ", 'd', NULL, " +
		"COALESCE(" + pending("base_version", "k.o") + ", " + known + "), " +
		"CASE WHEN " + hasPending("k.o") + " THEN " + pending("base_json", "k.o") + " ELSE " + rowJSON(t, "OLD") + " END, " + wall +
		" FROM (SELECT " + keyText(t, "OLD") + " AS o) AS k; END"
	return []string{ins, upd, del}
}

// keyText is the SQL expression of a row's key text: quote() of each key column,
// joined by commas. ref is NEW, OLD or empty (the table's own columns); with ref "?"
// the key columns are numbered parameters starting at ?2.
func keyText(t *table, ref string) string {
	parts := make([]string, len(t.pk))
	for i, k := range t.pk {
		switch ref {
		case "?":
			parts[i] = fmt.Sprintf("quote(?%d)", i+2)
		case "":
			parts[i] = "quote(" + t.cols[k].quoted + ")"
		default:
			parts[i] = "quote(" + ref + "." + t.cols[k].quoted + ")"
		}
	}
	return strings.Join(parts, " || ',' || ")
}

// rowJSON is the SQL expression of a row as a JSON object of its raw values.
func rowJSON(t *table, ref string) string {
	idx := make([]int, len(t.cols))
	for i := range idx {
		idx[i] = i
	}
	return jsonObject(t, ref, idx)
}

// keyJSON is the SQL expression of a row's key columns as a JSON object.
func keyJSON(t *table, ref string) string { return jsonObject(t, ref, t.pk) }

func jsonObject(t *table, ref string, idx []int) string {
	var b strings.Builder
	b.WriteString("json_object(")
	for i, ci := range idx {
		c := t.cols[ci]
		if i > 0 {
			b.WriteString(", ")
		}
		v := ref + "." + c.quoted
		b.WriteString(sqlString(c.name))
		b.WriteString(", ")
		if c.kind == cdc.KindBytes {
			b.WriteString("CASE WHEN " + v + " IS NULL THEN NULL ELSE hex(" + v + ") END")
		} else {
			// A BLOB written into a column of another kind is read as text: JSON cannot
			// hold it, and failing the application's write would be worse.
			b.WriteString("CASE WHEN typeof(" + v + ") = 'blob' THEN CAST(" + v + " AS TEXT) ELSE " + v + " END")
		}
	}
	b.WriteString(")")
	return b.String()
}

// sqlString quotes a checked name as an SQL string literal. Trigger bodies cannot take
// parameters; every name passed here was validated by checkIdent or checkTable.
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
