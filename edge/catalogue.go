package edge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/synchub/synchub/cdc"
)

// column is a synced column: in the hub's schema and in the local table.
type column struct {
	name   string
	quoted string
	kind   cdc.Kind
}

// table is a synced table with the statements that write it, prepared on the agent's
// connection and reused across transactions until the schema changes.
type table struct {
	source string // name in the hub's schema, "public.orders"
	local  string
	quoted string
	cols   []column
	byName map[string]int
	pk     []int // indexes into cols, in key order

	upserts  map[string]*sql.Stmt // keyed by the column indexes the row holds
	lastCols []int                // the column set of lastStmt
	lastStmt *sql.Stmt
	del      *sql.Stmt

	// Rebase and version statements on the agent's connection.
	pendQ, rvSet, rvDel, rvGet *sql.Stmt
}

// stmt returns *cache, preparing the query build returns on conn the first time.
func (t *table) stmt(ctx context.Context, conn *sql.Conn, cache **sql.Stmt, build func() string) (*sql.Stmt, error) {
	if *cache != nil {
		return *cache, nil
	}
	st, err := conn.PrepareContext(ctx, build())
	if err != nil {
		return nil, fmt.Errorf("prepare a statement on %s: %w", t.local, err)
	}
	*cache = st
	return st, nil
}

func newTable(src *cdc.Table, local string, present map[string]bool) (*table, error) {
	t := &table{source: src.Name, local: local, quoted: quoteIdent(local), byName: map[string]int{}, upserts: map[string]*sql.Stmt{}}
	for i := range src.Columns {
		c := &src.Columns[i]
		if present != nil && !present[strings.ToLower(c.Name)] {
			continue
		}
		t.byName[c.Name] = len(t.cols)
		t.cols = append(t.cols, column{name: c.Name, quoted: quoteIdent(c.Name), kind: c.Kind})
	}
	for _, k := range src.PrimaryKey {
		i, ok := t.byName[k]
		if !ok {
			return nil, fmt.Errorf("local table %s lacks primary key column %s: delete the local database to re-bootstrap", local, k)
		}
		t.pk = append(t.pk, i)
	}
	return t, nil
}

func (t *table) close() error {
	var errs []error
	for _, s := range t.upserts {
		errs = append(errs, s.Close())
	}
	for _, st := range []*sql.Stmt{t.del, t.pendQ, t.rvSet, t.rvDel, t.rvGet} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	t.upserts, t.lastStmt, t.lastCols, t.del = map[string]*sql.Stmt{}, nil, nil, nil
	t.pendQ, t.rvSet, t.rvDel, t.rvGet = nil, nil, nil, nil
	return errors.Join(errs...)
}

// upsertStmt returns the statement writing a full row image holding the columns cols
// (indexes into t.cols, in the row's order).
func (t *table) upsertStmt(ctx context.Context, l *localDB, cols []int, keyBuf []byte) (*sql.Stmt, []byte, error) {
	if t.lastStmt != nil && equalInts(cols, t.lastCols) {
		return t.lastStmt, keyBuf, nil
	}
	keyBuf = keyBuf[:0]
	for _, c := range cols {
		keyBuf = append(keyBuf, byte(c), byte(c>>8), byte(c>>16))
	}
	st := t.upserts[string(keyBuf)]
	if st == nil {
		q, err := t.upsertSQL(cols)
		if err != nil {
			return nil, keyBuf, err
		}
		if st, err = l.conn.PrepareContext(ctx, q); err != nil {
			return nil, keyBuf, fmt.Errorf("prepare upsert into %s: %w", t.local, err)
		}
		t.upserts[string(keyBuf)] = st
	}
	t.lastStmt = st
	t.lastCols = append(t.lastCols[:0], cols...)
	return st, keyBuf, nil
}

func (t *table) upsertSQL(cols []int) (string, error) {
	has := make(map[int]bool, len(cols))
	for _, c := range cols {
		has[c] = true
	}
	for _, k := range t.pk {
		if !has[k] {
			return "", fmt.Errorf("row for %s lacks primary key column %s", t.source, t.cols[k].name)
		}
	}
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(t.quoted)
	b.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.cols[c].quoted)
	}
	b.WriteString(") VALUES (")
	for i := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('?')
	}
	b.WriteString(") ON CONFLICT (")
	for i, k := range t.pk {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.cols[k].quoted)
	}
	b.WriteString(") DO ")
	isKey := make(map[int]bool, len(t.pk))
	for _, k := range t.pk {
		isKey[k] = true
	}
	first := true
	for _, c := range cols {
		if isKey[c] {
			continue
		}
		if first {
			b.WriteString("UPDATE SET ")
			first = false
		} else {
			b.WriteString(", ")
		}
		b.WriteString(t.cols[c].quoted)
		b.WriteString(" = excluded.")
		b.WriteString(t.cols[c].quoted)
	}
	if first {
		b.WriteString("NOTHING")
	}
	return b.String(), nil
}

func (t *table) deleteStmt(ctx context.Context, l *localDB) (*sql.Stmt, error) {
	if t.del != nil {
		return t.del, nil
	}
	st, err := l.conn.PrepareContext(ctx, deleteSQL(t))
	if err != nil {
		return nil, fmt.Errorf("prepare delete from %s: %w", t.local, err)
	}
	t.del = st
	return st, nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
