package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/synchub/synchub/cdc"
)

// querier is the part of *pgx.Conn the catalog readers use.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// tableDef is a captured table's definition with what decoding its rows needs.
type tableDef struct {
	table cdc.Table
	oid   uint32
	cols  []colDef // parallel to table.Columns
}

type colDef struct {
	typOID uint32
	typMod int32
	typ    *pgType
	// missing is the text form of the value rows that existed before the column was
	// added hold (pg_attribute.attmissingval), nil when there is none.
	missing *string
}

// ident quotes a schema-qualified name for SQL.
func ident(name string) string {
	schema, table := cdc.SplitTableName(name)
	return pgx.Identifier{schema, table}.Sanitize()
}

// loadTable reads a configured table's definition: its columns in attnum order
// (generated columns excluded, as pgoutput excludes them), their types and the primary
// key. A missing table, a table without a primary key and a table that cannot be
// replicated are configuration errors with a fix.
func (s *Source) loadTable(ctx context.Context, q querier, name string) (*tableDef, error) {
	schema, rel := cdc.SplitTableName(name)
	var (
		oid      uint32
		relkind  string
		replicaI string
	)
	err := q.QueryRow(ctx, `SELECT c.oid, c.relkind::text, c.relreplident::text
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, schema, rel).Scan(&oid, &relkind, &replicaI)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, configError("check tables", fmt.Errorf("table %s does not exist", name),
			fmt.Sprintf("create table %s, or correct or remove it in the configured tables (names are schema-qualified and case-sensitive)", name))
	}
	if err != nil {
		return nil, classify("check tables", fmt.Errorf("read table %s: %w", name, err))
	}
	switch relkind {
	case "r":
	case "p":
		return nil, configError("check tables", fmt.Errorf("table %s is partitioned", name),
			fmt.Sprintf("configure the partitions of %s instead of the partitioned table", name))
	default:
		return nil, configError("check tables", fmt.Errorf("%s is not a table (relkind %s)", name, relkind),
			fmt.Sprintf("configure an ordinary table instead of %s", name))
	}
	if replicaI == "n" {
		return nil, configError("check tables", fmt.Errorf("table %s has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be replicated", name),
			fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY DEFAULT", ident(name)))
	}
	def := &tableDef{oid: oid, table: cdc.Table{Name: name}}
	// attmissingval is the value a column added with a constant default has in the
	// rows that existed before it (PostgreSQL 11+); edges need it too, as ALTER TABLE
	// writes nothing to the WAL for those rows. Array columns are left out: their
	// missing value does not unnest to one element.
	rows, err := q.Query(ctx, `SELECT a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
			CASE WHEN a.atthasmissing AND a.attndims = 0
				THEN (SELECT x FROM unnest(a.attmissingval::text::text[]) x LIMIT 1) END
		FROM pg_attribute a
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, oid)
	if err != nil {
		return nil, classify("check tables", fmt.Errorf("read columns of %s: %w", name, err))
	}
	for rows.Next() {
		var c cdc.Column
		var cd colDef
		if err := rows.Scan(&c.Name, &cd.typOID, &cd.typMod, &c.SourceType, &c.Nullable, &cd.missing); err != nil {
			rows.Close()
			return nil, classify("check tables", fmt.Errorf("read columns of %s: %w", name, err))
		}
		def.table.Columns = append(def.table.Columns, c)
		def.cols = append(def.cols, cd)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("check tables", fmt.Errorf("read columns of %s: %w", name, err))
	}
	if err := s.resolveColumns(ctx, q, def); err != nil {
		return nil, err
	}
	pk, err := primaryKey(ctx, q, oid)
	if err != nil {
		return nil, classify("check tables", fmt.Errorf("read primary key of %s: %w", name, err))
	}
	if len(pk) == 0 {
		return nil, configError("check tables", fmt.Errorf("table %s has no primary key; synchub identifies rows by it", name),
			fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (...) with the columns that identify a row (REPLICA IDENTITY FULL is not enough: edges need a key)", ident(name)))
	}
	def.table.PrimaryKey = pk
	if err := def.table.Validate(); err != nil {
		return nil, configError("check tables", err, fmt.Sprintf("give %s a primary key made of ordinary (not generated) columns", ident(name)))
	}
	return def, nil
}

func primaryKey(ctx context.Context, q querier, oid uint32) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT a.attname
		FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = $1 AND i.indisprimary
		ORDER BY k.ord`, oid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// resolveColumns sets each column's decoder, Kind and SQLite type.
func (s *Source) resolveColumns(ctx context.Context, q querier, def *tableDef) error {
	for i := range def.cols {
		t, err := s.resolveType(ctx, q, def.cols[i].typOID, 0)
		if err != nil {
			return classify("resolve column types", fmt.Errorf("table %s column %s: %w", def.table.Name, def.table.Columns[i].Name, err))
		}
		def.cols[i].typ = t
		def.table.Columns[i].Kind = t.kind
		def.table.Columns[i].SQLiteType = t.kind.SQLiteType()
		if m := def.cols[i].missing; m != nil && t.kind != cdc.KindArray {
			v, err := t.decode([]byte(*m), &textArena{})
			if err != nil {
				return classify("resolve column types", fmt.Errorf("table %s column %s: default of existing rows %q: %w", def.table.Name, def.table.Columns[i].Name, *m, err))
			}
			def.table.Columns[i].Default = cdc.JSONText(v.AppendJSON(nil))
		}
	}
	return nil
}

// resolveType returns how to decode values of the type with this OID: from the
// built-in table, the cache, or pg_type (enums, domains, arrays, extension types).
func (s *Source) resolveType(ctx context.Context, q querier, oid uint32, depth int) (*pgType, error) {
	if t, ok := s.types[oid]; ok {
		return t, nil
	}
	if depth > 8 {
		return nil, fmt.Errorf("type %d nests domains or arrays too deeply", oid)
	}
	var (
		typtype, category, name, delim string
		base, elem                     uint32
	)
	err := q.QueryRow(ctx, `SELECT typtype::text, typcategory::text, typname::text, typbasetype, typelem, typdelim::text
		FROM pg_type WHERE oid = $1`, oid).Scan(&typtype, &category, &name, &base, &elem, &delim)
	if errors.Is(err, pgx.ErrNoRows) {
		t := &pgType{oid: oid, name: fmt.Sprintf("type %d", oid), kind: cdc.KindText, delim: ','}
		s.types[oid] = t
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read type %d: %w", oid, err)
	}
	t := &pgType{oid: oid, name: name, kind: cdc.KindText, delim: ','}
	if len(delim) == 1 {
		t.delim = delim[0]
	}
	switch {
	case typtype == "e":
		t.kind = cdc.KindEnum
	case typtype == "d" && base != 0:
		bt, err := s.resolveType(ctx, q, base, depth+1)
		if err != nil {
			return nil, err
		}
		t.kind, t.elem, t.delim = bt.kind, bt.elem, bt.delim
	case category == "A" && elem != 0:
		et, err := s.resolveType(ctx, q, elem, depth+1)
		if err != nil {
			return nil, err
		}
		t.kind, t.elem, t.delim = cdc.KindArray, et, et.delim
	}
	s.types[oid] = t
	return t, nil
}
