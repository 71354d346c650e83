package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/synchub/synchub/cdc"
)

var _ cdc.Applier = (*Applier)(nil)

// ApplierConfig configures a PostgreSQL Applier.
type ApplierConfig struct {
	// DSN is a libpq connection string or URL for the database holding the tables. The
	// role needs SELECT, INSERT, UPDATE and DELETE on the tables.
	DSN string
	// Tables are the tables edges may write, schema-qualified as stored in the catalog,
	// e.g. "public.orders": the captured tables of the Source.
	Tables []string
	// MaxConns bounds the pool of connections; 0 means DefaultApplierMaxConns.
	MaxConns int
}

// DefaultApplierMaxConns is the pool size when ApplierConfig.MaxConns is 0.
const DefaultApplierMaxConns = 4

// Validate reports every configuration problem at once.
func (c ApplierConfig) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("postgres applier: DSN is empty: set it to a connection string like postgres://user@host:5432/db"))
	} else if _, err := pgconn.ParseConfig(c.DSN); err != nil {
		errs = append(errs, fmt.Errorf("postgres applier: DSN is not a valid connection string: %w", err))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("postgres applier: no tables configured: list them schema-qualified, e.g. public.orders"))
	}
	seen := make(map[string]bool, len(c.Tables))
	for _, t := range c.Tables {
		schema, name := cdc.SplitTableName(t)
		if schema == "" || name == "" {
			errs = append(errs, fmt.Errorf("postgres applier: table %q is not schema-qualified: write it as schema.table, e.g. public.%s", t, name))
			continue
		}
		if seen[t] {
			errs = append(errs, fmt.Errorf("postgres applier: table %q is listed twice", t))
		}
		seen[t] = true
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("postgres applier: MaxConns is %d: use a positive number, or 0 for %d", c.MaxConns, DefaultApplierMaxConns))
	}
	return errors.Join(errs...)
}

// Applier writes edge changes to PostgreSQL (see cdc.Applier). Every transaction it
// commits starts with the transactional logical message the Source reads as the
// transaction's origin and batch, so the stream attributes it to the edge.
//
// Table and column names are checked against the catalog (re-read once when a change
// names an unknown column, in case the table was altered) and quoted; values are sent
// as text-format parameters whose types PostgreSQL infers from the columns, so every
// type is parsed by the server's own input function and stored exactly. A batch is
// first sent as one pipeline in one transaction; only when a statement fails is the
// transaction rolled back and the batch redone with a savepoint around each change, so
// that the refused changes get their reasons and the others are still written.
//
// Apply and ReadRow are safe for concurrent use; each call uses one pooled connection.
type Applier struct {
	cfg  ApplierConfig
	log  *slog.Logger
	pool *pgxpool.Pool

	// loadMu serialises catalog reads; cat holds the type cache they share.
	loadMu sync.Mutex
	cat    *Source

	mu     sync.RWMutex
	tables map[string]*applyTable

	// prepMu guards prepared: the names of the statements prepared on each pooled
	// connection, bounded by maxPrepared.
	prepMu   sync.Mutex
	prepared map[*pgx.Conn]map[string]bool
}

// maxPrepared bounds the statements the applier keeps prepared on one connection;
// beyond it they are all deallocated and prepared again as needed.
const maxPrepared = 256

// applyTable is a table's definition with what building statements needs.
type applyTable struct {
	def    *tableDef
	quoted string         // quoted schema-qualified name
	cols   map[string]int // column name → index in def
	key    []int          // primary key columns
}

// NewApplier connects a pool to cfg.DSN and reads the tables' definitions. A table
// that does not exist or has no primary key is a configuration error with a fix.
func NewApplier(ctx context.Context, cfg ApplierConfig, log *slog.Logger) (*Applier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, configError("connect applier", err, "correct the DSN")
	}
	pc.MaxConns = int32(cfg.MaxConns)
	if pc.MaxConns == 0 {
		pc.MaxConns = DefaultApplierMaxConns
	}
	for k, v := range sessionParams {
		pc.ConnConfig.RuntimeParams[k] = v
	}
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "synchub-applier"
	}
	a := &Applier{
		cfg:      cfg,
		log:      log.With("applier", "postgres"),
		cat:      &Source{types: builtinTypes()},
		tables:   make(map[string]*applyTable, len(cfg.Tables)),
		prepared: map[*pgx.Conn]map[string]bool{},
	}
	pc.BeforeClose = func(c *pgx.Conn) {
		a.prepMu.Lock()
		delete(a.prepared, c)
		a.prepMu.Unlock()
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, classify("connect applier", err)
	}
	a.pool = pool
	for _, name := range cfg.Tables {
		t, err := a.loadTable(ctx, name)
		if err != nil {
			pool.Close()
			return nil, err
		}
		a.tables[name] = t
	}
	return a, nil
}

// Close closes the pool, waiting for connections in use to be released.
func (a *Applier) Close() {
	a.pool.Close()
}

func (a *Applier) loadTable(ctx context.Context, name string) (*applyTable, error) {
	a.loadMu.Lock()
	defer a.loadMu.Unlock()
	conn, err := a.pool.Acquire(ctx)
	if err != nil {
		return nil, classify("check tables", err)
	}
	defer conn.Release()
	def, err := a.cat.loadTable(ctx, conn, name)
	if err != nil {
		return nil, err
	}
	t := &applyTable{def: def, quoted: ident(name), cols: make(map[string]int, len(def.table.Columns))}
	for i, c := range def.table.Columns {
		t.cols[c.Name] = i
	}
	for _, k := range def.table.PrimaryKey {
		t.key = append(t.key, t.cols[k])
	}
	return t, nil
}

func (a *Applier) table(name string) (*applyTable, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	t, ok := a.tables[name]
	return t, ok
}

// reload re-reads a table's definition after a change named a column it lacks.
func (a *Applier) reload(ctx context.Context, name string) (*applyTable, error) {
	t, err := a.loadTable(ctx, name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.tables[name] = t
	a.mu.Unlock()
	a.log.Info("table definition reloaded", "table", name, "columns", len(t.def.table.Columns))
	return t, nil
}

// OriginMessage is the content of the logical message that tags a transaction with
// tag: the origin, then a space and the batch when there is one.
func OriginMessage(tag cdc.Tag) string {
	if tag.Batch == "" {
		return tag.Origin
	}
	return tag.Origin + " " + tag.Batch
}

// splitOriginMessage is the inverse of OriginMessage.
func splitOriginMessage(content string) (origin, batch string) {
	origin, batch, _ = strings.Cut(content, " ")
	return origin, batch
}

// stmt is one change turned into a statement.
type stmt struct {
	idx     int // index of the change in the batch
	op      cdc.Op
	table   string
	sql     string
	name    string // prepared statement name
	values  [][]byte
	formats []int16
	keyDesc string // the key, for "row not found"
}

const emitSQL = `SELECT pg_logical_emit_message(true, '` + OriginMessagePrefix + `', $1::text)`

// Apply writes changes in one transaction tagged with tag. See cdc.Applier.
func (a *Applier) Apply(ctx context.Context, tag cdc.Tag, changes []cdc.Change) ([]cdc.ApplyResult, error) {
	results := make([]cdc.ApplyResult, len(changes))
	stmts := a.plan(ctx, changes, results)
	if len(stmts) == 0 {
		return results, nil
	}
	conn, err := a.pool.Acquire(ctx)
	if err != nil {
		return nil, classify("apply", err)
	}
	defer conn.Release()
	stmts, err = a.prepare(ctx, conn.Conn(), stmts, results)
	if err != nil {
		return nil, err
	}
	if len(stmts) == 0 {
		return results, nil
	}
	pc := conn.Conn().PgConn()
	content := []byte(OriginMessage(tag))
	done, err := a.fast(ctx, pc, content, stmts, results)
	if err != nil {
		return nil, err
	}
	if done {
		return results, nil
	}
	if err := a.slow(ctx, pc, content, stmts, results); err != nil {
		rollback(pc)
		return nil, err
	}
	return results, nil
}

// plan validates each change and builds its statement; a change that cannot be
// written gets its error in results and no statement.
func (a *Applier) plan(ctx context.Context, changes []cdc.Change, results []cdc.ApplyResult) []stmt {
	stmts := make([]stmt, 0, len(changes))
	cdc.PlanChanges(ctx, changes, results, a.cfg.Tables, a.table, a.reload, build, func(i int, st stmt) {
		st.idx = i
		stmts = append(stmts, st)
	})
	return stmts
}

// build turns one change into its statement.
func build(t *applyTable, ch *cdc.Change) (stmt, error) {
	st := stmt{op: ch.Op, table: ch.Table}
	var sb strings.Builder
	switch ch.Op {
	case cdc.OpInsert:
		if len(ch.After) == 0 {
			return st, fmt.Errorf("insert into %s has no row (After is empty)", ch.Table)
		}
		sb.WriteString("INSERT INTO ")
		sb.WriteString(t.quoted)
		sb.WriteString(" (")
		n := 0
		for _, f := range ch.After {
			if f.Unchanged {
				continue
			}
			if err := st.add(t, f); err != nil {
				return st, err
			}
			if n > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(pgx.Identifier{f.Name}.Sanitize())
			n++
		}
		if n == 0 {
			return st, fmt.Errorf("insert into %s has no column values", ch.Table)
		}
		sb.WriteString(") VALUES (")
		for i := range n {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(i + 1))
		}
		sb.WriteByte(')')
	case cdc.OpUpdate:
		key, err := keyOf(t, ch)
		if err != nil {
			return st, err
		}
		sb.WriteString("UPDATE ")
		sb.WriteString(t.quoted)
		sb.WriteString(" SET ")
		n := 0
		for _, f := range ch.After {
			if f.Unchanged {
				continue
			}
			if err := st.add(t, f); err != nil {
				return st, err
			}
			if n > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(pgx.Identifier{f.Name}.Sanitize())
			sb.WriteString(" = $")
			sb.WriteString(strconv.Itoa(len(st.values)))
			n++
		}
		if n == 0 {
			return st, fmt.Errorf("update of %s has no column values (After is empty)", ch.Table)
		}
		if err := st.where(t, &sb, key); err != nil {
			return st, err
		}
	case cdc.OpDelete:
		key, err := keyOf(t, ch)
		if err != nil {
			return st, err
		}
		sb.WriteString("DELETE FROM ")
		sb.WriteString(t.quoted)
		if err := st.where(t, &sb, key); err != nil {
			return st, err
		}
	default:
		return st, fmt.Errorf("change to %s has operation %s, which edges cannot write: send inserts, updates and deletes", ch.Table, ch.Op)
	}
	st.sql = sb.String()
	sum := sha256.Sum256([]byte(st.sql))
	st.name = "synchub_apply_" + hex.EncodeToString(sum[:12])
	return st, nil
}

// keyOf returns the key identifying the row an update or delete applies to: the key
// columns of Before (the old key, which an update may change), else of After.
func keyOf(t *applyTable, ch *cdc.Change) (cdc.Row, error) {
	for _, img := range []cdc.Row{ch.Before, ch.After} {
		key := make(cdc.Row, 0, len(t.key))
		for _, ki := range t.key {
			name := t.def.table.Columns[ki].Name
			v, ok := img.Get(name)
			if !ok {
				break
			}
			key = append(key, cdc.Field{Name: name, Value: v})
		}
		if len(key) == len(t.key) {
			return key, nil
		}
	}
	return nil, fmt.Errorf("%s of %s does not carry its key (%s) in Before or After", ch.Op, ch.Table, strings.Join(t.def.table.PrimaryKey, ", "))
}

// where appends the key condition.
func (st *stmt) where(t *applyTable, sb *strings.Builder, key cdc.Row) error {
	sb.WriteString(" WHERE ")
	var desc strings.Builder
	for i, f := range key {
		if f.Value.IsNull() {
			return fmt.Errorf("key column %s of %s is NULL", f.Name, st.table)
		}
		if err := st.add(t, f); err != nil {
			return err
		}
		if i > 0 {
			sb.WriteString(" AND ")
			desc.WriteString(", ")
		}
		sb.WriteString(pgx.Identifier{f.Name}.Sanitize())
		sb.WriteString(" = $")
		sb.WriteString(strconv.Itoa(len(st.values)))
		desc.WriteString(f.Name + "=" + f.Value.String())
	}
	st.keyDesc = desc.String()
	return nil
}

// add appends f's value as the next parameter.
func (st *stmt) add(t *applyTable, f cdc.Field) error {
	ci, ok := t.cols[f.Name]
	if !ok {
		return &cdc.UnknownColumnError{Table: st.table, Column: f.Name}
	}
	v, format, err := encodeParam(t.def.cols[ci].typ, f.Value)
	if err != nil {
		return fmt.Errorf("%s of %s column %s (%s): %w", st.op, st.table, f.Name, t.def.table.Columns[ci].SourceType, err)
	}
	st.values = append(st.values, v)
	st.formats = append(st.formats, format)
	return nil
}

// prepare makes sure every statement is prepared on conn. A statement PostgreSQL
// cannot prepare (a column's type changed so that the statement no longer fits) is a
// refusal of the changes that use it.
func (a *Applier) prepare(ctx context.Context, conn *pgx.Conn, stmts []stmt, results []cdc.ApplyResult) ([]stmt, error) {
	a.prepMu.Lock()
	names := a.prepared[conn]
	if names == nil {
		names = map[string]bool{}
		a.prepared[conn] = names
	}
	a.prepMu.Unlock()
	// names belongs to conn, which this call holds: no lock is needed to use it.
	fresh := map[string]bool{}
	for i := range stmts {
		if !names[stmts[i].name] {
			fresh[stmts[i].name] = true
		}
	}
	if len(fresh) > 0 && len(names)+len(fresh) > maxPrepared {
		if err := conn.DeallocateAll(ctx); err != nil {
			return nil, classify("apply: deallocate statements", err)
		}
		clear(names)
	}
	failed := map[string]error{}
	for i := range stmts {
		st := &stmts[i]
		if _, bad := failed[st.name]; bad || names[st.name] {
			continue
		}
		if _, err := conn.Prepare(ctx, st.name, st.sql); err != nil {
			if !isRefusal(err) {
				return nil, classify("apply: prepare", err)
			}
			failed[st.name] = err
			continue
		}
		names[st.name] = true
	}
	if len(failed) == 0 {
		return stmts, nil
	}
	kept := stmts[:0]
	for _, st := range stmts {
		if err := failed[st.name]; err != nil {
			results[st.idx].Err = refusal(&st, err)
			continue
		}
		kept = append(kept, st)
	}
	return kept, nil
}

// fast sends the whole batch as one pipeline in one transaction. It reports false,
// with the transaction rolled back, when a change was refused.
func (a *Applier) fast(ctx context.Context, pc *pgconn.PgConn, content []byte, stmts []stmt, results []cdc.ApplyResult) (bool, error) {
	b := &pgconn.Batch{}
	b.ExecParams("BEGIN", nil, nil, nil, nil)
	b.ExecParams(emitSQL, [][]byte{content}, nil, nil, nil)
	for i := range stmts {
		b.ExecPrepared(stmts[i].name, stmts[i].values, stmts[i].formats, nil)
	}
	b.ExecParams("COMMIT", nil, nil, nil, nil)
	tags, err := runBatch(ctx, pc, b)
	if err != nil {
		// A refusal at COMMIT is a deferred constraint; the slow path checks those at
		// each change.
		failedAt := len(tags) - 2
		if failedAt >= 0 && failedAt <= len(stmts) && isRefusal(err) {
			if rerr := rollback(pc); rerr != nil {
				return false, classify("apply: roll back", rerr)
			}
			a.log.Debug("batch has a refused change, redoing it change by change", "err", err)
			return false, nil
		}
		rollback(pc)
		return false, classify("apply", outcomeUnknown(err))
	}
	for i := range stmts {
		noteNotFound(&stmts[i], tags[i+2], results)
	}
	return true, nil
}

// outcomeUnknown marks err with cdc.ErrOutcomeUnknown unless the server answered it:
// the pipeline carries COMMIT, so after a failed connection the transaction may have
// committed, while a server error means it was rolled back.
func outcomeUnknown(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%w: %w", cdc.ErrOutcomeUnknown, err)
}

// slow applies the batch with a savepoint around each change, still pipelined: when a
// change is refused the server skips the rest of the pipeline, so the refused change
// is rolled back to its savepoint and the pipeline resumes after it.
func (a *Applier) slow(ctx context.Context, pc *pgconn.PgConn, content []byte, stmts []stmt, results []cdc.ApplyResult) error {
	b := &pgconn.Batch{}
	b.ExecParams("BEGIN", nil, nil, nil, nil)
	// Deferred constraints are checked at each change, where a failure can be
	// attributed, instead of at COMMIT.
	b.ExecParams("SET CONSTRAINTS ALL IMMEDIATE", nil, nil, nil, nil)
	b.ExecParams(emitSQL, [][]byte{content}, nil, nil, nil)
	head := 3
	for next := 0; ; {
		for i := next; i < len(stmts); i++ {
			b.ExecParams("SAVEPOINT synchub_change", nil, nil, nil, nil)
			b.ExecPrepared(stmts[i].name, stmts[i].values, stmts[i].formats, nil)
			b.ExecParams("RELEASE SAVEPOINT synchub_change", nil, nil, nil, nil)
		}
		b.ExecParams("COMMIT", nil, nil, nil, nil)
		tags, err := runBatch(ctx, pc, b)
		done := (len(tags) - head) / 3 // changes whose three statements completed
		for i := range done {
			noteNotFound(&stmts[next+i], tags[head+3*i+1], results)
		}
		if err == nil {
			return nil
		}
		at := len(tags) - head
		if at < 0 || next+at/3 >= len(stmts) || at%3 != 1 || !isRefusal(err) {
			return classify("apply", outcomeUnknown(err))
		}
		st := &stmts[next+at/3]
		results[st.idx].Err = refusal(st, err)
		next += at/3 + 1
		b = &pgconn.Batch{}
		b.ExecParams("ROLLBACK TO SAVEPOINT synchub_change", nil, nil, nil, nil)
		b.ExecParams("RELEASE SAVEPOINT synchub_change", nil, nil, nil, nil)
		head = 2
	}
}

// runBatch sends b and returns the command tags of the statements that completed
// before the first error.
func runBatch(ctx context.Context, pc *pgconn.PgConn, b *pgconn.Batch) ([]pgconn.CommandTag, error) {
	mrr := pc.ExecBatch(ctx, b)
	var tags []pgconn.CommandTag
	for mrr.NextResult() {
		tag, err := mrr.ResultReader().Close()
		if err != nil {
			mrr.Close()
			return tags, err
		}
		tags = append(tags, tag)
	}
	return tags, mrr.Close()
}

// rollback ends a failed transaction on pc; the pool discards a connection still
// inside a transaction, so an error here loses nothing.
func rollback(pc *pgconn.PgConn) error {
	if pc.IsClosed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), applyCleanupTimeout)
	defer cancel()
	_, err := pc.Exec(ctx, "ROLLBACK").ReadAll()
	return err
}

// applyCleanupTimeout bounds the ROLLBACK after a failed batch.
const applyCleanupTimeout = 5 * time.Second

// noteNotFound records "row not found" for an update or delete that matched no row.
func noteNotFound(st *stmt, tag pgconn.CommandTag, results []cdc.ApplyResult) {
	if (st.op == cdc.OpUpdate || st.op == cdc.OpDelete) && tag.RowsAffected() == 0 {
		results[st.idx].Err = &RowNotFoundError{Table: st.table, Key: st.keyDesc, Op: st.op}
	}
}

// RowNotFoundError is the result of an update or delete whose key matched no row.
type RowNotFoundError struct {
	Op    cdc.Op
	Table string
	Key   string // "col=value, ..."
}

func (e *RowNotFoundError) Error() string {
	return fmt.Sprintf("row not found: %s of %s matched no row with %s", e.Op, e.Table, e.Key)
}

// isRefusal reports whether err is PostgreSQL refusing one statement for what it
// holds (a constraint, a value, a trigger) rather than the connection or the
// transaction failing as a whole.
func isRefusal(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code[:2] {
	case "08", "25", "40", "53", "55", "57", "58", "F0", "XX":
		// Connection, transaction state, serialization or deadlock, resources,
		// operator intervention, system errors: the batch as a whole failed.
		return false
	}
	return true
}

// ChangeError is PostgreSQL's refusal of one change.
type ChangeError struct {
	Op    cdc.Op
	Table string
	Err   *pgconn.PgError
}

func (e *ChangeError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s of %s refused: %s", e.Op, e.Table, e.Err.Message)
	if e.Err.Detail != "" {
		sb.WriteString(" (" + e.Err.Detail + ")")
	}
	if e.Err.ConstraintName != "" {
		sb.WriteString(" [constraint " + e.Err.ConstraintName + "]")
	}
	sb.WriteString(" [SQLSTATE " + e.Err.Code + "]")
	return sb.String()
}

func (e *ChangeError) Unwrap() error { return e.Err }

func refusal(st *stmt, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return &ChangeError{Op: st.op, Table: st.table, Err: pgErr}
	}
	return fmt.Errorf("%s of %s refused: %w", st.op, st.table, err)
}

// ReadRow reads the row of table whose primary key has the values in key, decoded as
// the Source decodes it. See cdc.Applier.
func (a *Applier) ReadRow(ctx context.Context, table string, key cdc.Row) (cdc.Row, bool, error) {
	t, ok := a.table(table)
	if !ok {
		return nil, false, fmt.Errorf("read row: table %q is not one of the applier's tables (%s)", table, strings.Join(a.cfg.Tables, ", "))
	}
	row, found, err := a.readRow(ctx, t, key)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42703" {
		// A column was dropped since the definition was read.
		if t, err = a.reload(ctx, table); err != nil {
			return nil, false, err
		}
		row, found, err = a.readRow(ctx, t, key)
	}
	return row, found, err
}

func (a *Applier) readRow(ctx context.Context, t *applyTable, key cdc.Row) (cdc.Row, bool, error) {
	table := t.def.table.Name
	var sb strings.Builder
	sb.WriteString("SELECT ")
	for i, c := range t.def.table.Columns {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(pgx.Identifier{c.Name}.Sanitize())
	}
	sb.WriteString(" FROM ")
	sb.WriteString(t.quoted)
	st := stmt{table: table}
	k := make(cdc.Row, 0, len(t.key))
	for _, ki := range t.key {
		name := t.def.table.Columns[ki].Name
		v, ok := key.Get(name)
		if !ok {
			return nil, false, fmt.Errorf("read row of %s: key column %s is missing", table, name)
		}
		k = append(k, cdc.Field{Name: name, Value: v})
	}
	if err := st.where(t, &sb, k); err != nil {
		return nil, false, fmt.Errorf("read row: %w", err)
	}
	conn, err := a.pool.Acquire(ctx)
	if err != nil {
		return nil, false, classify("read row", err)
	}
	defer conn.Release()
	rr := conn.Conn().PgConn().ExecParams(ctx, sb.String(), st.values, nil, st.formats, nil)
	var (
		row   cdc.Row
		found bool
		derr  error
		dec   rowDecoder
	)
	for rr.NextRow() {
		if found {
			continue
		}
		found = true
		row, derr = dec.values(t.def, rr.Values())
	}
	if _, err := rr.Close(); err != nil {
		return nil, false, classify("read row", fmt.Errorf("read row of %s: %w", table, err))
	}
	if derr != nil {
		return nil, false, &cdc.Error{Op: "read row", Err: derr}
	}
	return row, found, nil
}
