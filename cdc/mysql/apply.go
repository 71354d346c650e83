package mysql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/synchub/synchub/cdc"
)

var _ cdc.Applier = (*Applier)(nil)

// ApplierConfig configures a MySQL/MariaDB Applier.
type ApplierConfig struct {
	// DSN says where the server is and who connects, in either form of Config.DSN. The
	// user needs SELECT, INSERT, UPDATE and DELETE on the tables, and CREATE, INSERT
	// and DELETE on the origin table's database.
	DSN string
	// Tables are the tables edges may write, as "database.table": the captured tables
	// of the Source.
	Tables []string
	// OriginDatabase holds the origin table (see OriginTable); empty means the database
	// of the first table. It must be the Source's Config.OriginDatabase.
	OriginDatabase string
	// MaxConns bounds the open connections; 0 means DefaultApplierMaxConns.
	MaxConns int
	// ConnectTimeout bounds each connection attempt; 0 means 10 seconds.
	ConnectTimeout time.Duration
}

// DefaultApplierMaxConns is the number of connections when ApplierConfig.MaxConns is 0.
const DefaultApplierMaxConns = 4

// Validate reports every configuration problem at once.
func (c ApplierConfig) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("mysql applier: DSN is empty: set it like mysql://user:password@host:3306/db"))
	} else if _, err := parseDSN(c.DSN); err != nil {
		errs = append(errs, fmt.Errorf("mysql applier: DSN is invalid: %v (write it like mysql://user:password@host:3306/db)", err))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("mysql applier: no tables configured: list them as database.table, e.g. shop.orders"))
	}
	seen := make(map[string]bool, len(c.Tables))
	for _, t := range c.Tables {
		db, name := cdc.SplitTableName(t)
		if db == "" || name == "" {
			errs = append(errs, fmt.Errorf("mysql applier: table %q is not database-qualified: write it as database.table, e.g. shop.%s", t, name))
			continue
		}
		if seen[t] {
			errs = append(errs, fmt.Errorf("mysql applier: table %q is listed twice", t))
		}
		seen[t] = true
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("mysql applier: MaxConns is %d: use a positive number, or 0 for %d", c.MaxConns, DefaultApplierMaxConns))
	}
	if c.ConnectTimeout < 0 {
		errs = append(errs, errors.New("mysql applier: ConnectTimeout is negative"))
	}
	return errors.Join(errs...)
}

func (c ApplierConfig) originDatabase() string {
	if c.OriginDatabase != "" {
		return c.OriginDatabase
	}
	db, _ := cdc.SplitTableName(c.Tables[0])
	return db
}

// Applier writes edge changes to MySQL or MariaDB (see cdc.Applier). Every transaction
// it commits starts by writing the connection's row of the origin table, so the Source
// attributes the transaction to the tag's origin and batch.
//
// Table and column names are checked against information_schema (re-read once when a
// change names an unknown column) and quoted; values are bound as parameters of
// prepared statements. A change the server refuses (duplicate key, foreign key, check
// constraint, a value out of range in strict mode, an error raised by a trigger) gets
// the server's message in its result and the others are still written: InnoDB undoes a
// failed statement and nothing else, which is exactly what a savepoint around each
// change would do, without its two extra round trips per change. Errors that end the
// whole transaction (deadlock, lock wait timeout, lost connection) fail Apply.
//
// Connections run in UTC with utf8mb4, strict SQL mode, and CLIENT_FOUND_ROWS so an
// update that matches a row counts it even when no value changed. Apply and ReadRow are
// safe for concurrent use; each call uses one connection.
type Applier struct {
	cfg      ApplierConfig
	conn     connParams
	log      *slog.Logger
	mariaDB  bool
	originSQ string // the REPLACE into the origin table

	slots chan struct{}
	idle  chan *applyConn

	closeMu sync.Mutex
	closed  bool

	loadMu sync.Mutex // serialises catalog reads
	mu     sync.RWMutex
	tables map[string]*applyTable
}

// applyTable is a table's definition with what building statements needs.
type applyTable struct {
	def  *tableDef
	cols map[string]int
	key  []int
}

// applyConn is a connection with its prepared statements.
type applyConn struct {
	*client.Conn
	stmts map[string]*client.Stmt
}

// maxCachedStmts bounds the prepared statements kept per connection.
const maxCachedStmts = 256

// NewApplier connects, creates the origin table if it does not exist, and reads the
// tables' definitions. A missing table or one without a primary key is a
// configuration error with a fix.
func NewApplier(ctx context.Context, cfg ApplierConfig, log *slog.Logger) (*Applier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, _ := parseDSN(cfg.DSN)
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultApplierMaxConns
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	origin := quoteIdent(cfg.originDatabase()) + "." + quoteIdent(OriginTable)
	a := &Applier{
		cfg:      cfg,
		conn:     p,
		log:      log.With("applier", "mysql", "addr", p.Addr),
		originSQ: "REPLACE INTO " + origin + " (conn_id, origin, batch) VALUES (CONNECTION_ID(), ?, ?)",
		slots:    make(chan struct{}, cfg.MaxConns),
		idle:     make(chan *applyConn, cfg.MaxConns),
		tables:   make(map[string]*applyTable, len(cfg.Tables)),
	}
	c, err := a.acquire(ctx)
	if err != nil {
		return nil, err
	}
	err = a.setup(c)
	a.release(c, err == nil)
	if err != nil {
		a.Close()
		return nil, err
	}
	for _, name := range cfg.Tables {
		t, err := a.loadTable(ctx, name)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.tables[name] = t
	}
	return a, nil
}

// setup learns the flavour and creates the origin table.
func (a *Applier) setup(c *applyConn) error {
	r, err := c.Execute("SELECT VERSION()")
	if err != nil {
		return classify("connect applier", err)
	}
	v, _ := r.GetString(0, 0)
	a.mariaDB = strings.Contains(strings.ToLower(v), "mariadb")
	db := a.cfg.originDatabase()
	if _, err := c.Execute("USE " + quoteIdent(db)); err != nil {
		return configError("create origin table", err, fmt.Sprintf("create database %s, or set OriginDatabase to an existing database the user may create a table in", quoteIdent(db)))
	}
	if _, err := c.Execute(originTableDDL); err != nil {
		return configError("create origin table", err, fmt.Sprintf("GRANT CREATE, INSERT, DELETE ON %s.* TO the applier's user, or create the table yourself: %s", quoteIdent(db), originTableDDL))
	}
	return nil
}

// Close closes the idle connections; connections still in use close when their call
// returns. Calls after Close fail.
func (a *Applier) Close() {
	a.closeMu.Lock()
	a.closed = true
	a.closeMu.Unlock()
	for {
		select {
		case c := <-a.idle:
			_ = c.Quit()
		default:
			return
		}
	}
}

func (a *Applier) isClosed() bool {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	return a.closed
}

// acquire takes an idle connection or opens one, waiting while MaxConns are in use.
func (a *Applier) acquire(ctx context.Context) (*applyConn, error) {
	if a.isClosed() {
		return nil, errors.New("mysql applier: used after Close")
	}
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case c := <-a.idle:
		return c, nil
	default:
	}
	c, err := a.dial(ctx)
	if err != nil {
		<-a.slots
		return nil, err
	}
	return c, nil
}

// release returns a healthy connection to the idle set, or closes it.
func (a *Applier) release(c *applyConn, healthy bool) {
	defer func() { <-a.slots }()
	if !healthy {
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	a.closeMu.Lock()
	kept := false
	if !a.closed {
		select {
		case a.idle <- c:
			kept = true
		default:
		}
	}
	a.closeMu.Unlock()
	if !kept {
		_ = c.Quit()
	}
}

func (a *Applier) dial(ctx context.Context) (*applyConn, error) {
	conn, err := client.ConnectWithContext(ctx, a.conn.Addr, a.conn.User, a.conn.Password, "", a.cfg.ConnectTimeout,
		func(c *client.Conn) error {
			if err := c.SetCapability(gomysql.CLIENT_FOUND_ROWS); err != nil {
				return err
			}
			return c.SetCharset("utf8mb4")
		})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, classify("connect applier", err)
	}
	for _, q := range []string{
		"SET SESSION time_zone = '+00:00'",
		"SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')",
	} {
		if _, err := conn.Execute(q); err != nil {
			conn.Close()
			return nil, classify("connect applier", err)
		}
	}
	return &applyConn{Conn: conn, stmts: map[string]*client.Stmt{}}, nil
}

// watch makes I/O on c fail once ctx is done; the returned stop undoes it and reports
// whether it had fired.
func watch(ctx context.Context, c *applyConn) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	after := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	return func() bool { return !after() }
}

// exec runs a prepared statement, preparing and caching it on first use.
func (c *applyConn) exec(query string, args ...any) (*gomysql.Result, error) {
	st, ok := c.stmts[query]
	if !ok {
		if len(c.stmts) >= maxCachedStmts {
			for q, s := range c.stmts {
				_ = s.Close()
				delete(c.stmts, q)
			}
		}
		var err error
		if st, err = c.Prepare(query); err != nil {
			return nil, err
		}
		c.stmts[query] = st
	}
	return st.Execute(args...)
}

func (a *Applier) loadTable(ctx context.Context, name string) (*applyTable, error) {
	a.loadMu.Lock()
	defer a.loadMu.Unlock()
	c, err := a.acquire(ctx)
	if err != nil {
		return nil, err
	}
	stop := watch(ctx, c)
	def, err := loadTable(c.Conn, name, a.mariaDB)
	fired := stop()
	var cfgErr *cdc.Error
	a.release(c, !fired && (err == nil || (errors.As(err, &cfgErr) && !cfgErr.Transient)))
	if fired {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	t := &applyTable{def: def, cols: make(map[string]int, len(def.table.Columns))}
	for i, col := range def.table.Columns {
		t.cols[col.Name] = i
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

// applyStmt is one change turned into a statement.
type applyStmt struct {
	idx     int
	op      cdc.Op
	table   string
	sql     string
	args    []any
	keyDesc string
}

// Apply writes changes in one transaction tagged with tag. See cdc.Applier.
func (a *Applier) Apply(ctx context.Context, tag cdc.Tag, changes []cdc.Change) ([]cdc.ApplyResult, error) {
	results := make([]cdc.ApplyResult, len(changes))
	stmts := a.plan(ctx, changes, results)
	if len(stmts) == 0 {
		return results, nil
	}
	c, err := a.acquire(ctx)
	if err != nil {
		return nil, err
	}
	stop := watch(ctx, c)
	err = a.write(c, tag, stmts, results)
	if fired := stop(); fired {
		err = ctx.Err()
	}
	if err != nil {
		// A connection left inside a transaction is closed, which rolls it back.
		a.release(c, false)
		return nil, err
	}
	a.release(c, true)
	return results, nil
}

// write runs the transaction on c.
func (a *Applier) write(c *applyConn, tag cdc.Tag, stmts []applyStmt, results []cdc.ApplyResult) error {
	if _, err := c.Execute("BEGIN"); err != nil {
		return classify("apply: begin", err)
	}
	if _, err := c.exec(a.originSQ, tag.Origin, tag.Batch); err != nil {
		return classify("apply: write origin", err)
	}
	for i := range stmts {
		st := &stmts[i]
		r, err := c.exec(st.sql, st.args...)
		if err != nil {
			if !isRefusal(err) {
				return classify("apply", err)
			}
			results[st.idx].Err = &ChangeError{Op: st.op, Table: st.table, Err: serverError(err)}
			continue
		}
		if (st.op == cdc.OpUpdate || st.op == cdc.OpDelete) && r.AffectedRows == 0 {
			results[st.idx].Err = &RowNotFoundError{Op: st.op, Table: st.table, Key: st.keyDesc}
		}
		r.Close()
	}
	if _, err := c.Execute("COMMIT"); err != nil {
		if serverError(err) == nil {
			// No answer from the server: the commit may have happened.
			err = fmt.Errorf("%w: %w", cdc.ErrOutcomeUnknown, err)
		}
		return classify("apply: commit", err)
	}
	return nil
}

// Server errors that end the transaction or the connection rather than refuse one
// statement.
var wholeTxErrors = map[uint16]bool{
	errServerShutdown: true, errLockWaitTimeout: true, errDeadlock: true,
	errQueryInterrupted: true, errConnKilled: true,
	1290: true, // ER_OPTION_PREVENTS_STATEMENT (read-only server)
	1792: true, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	1180: true, // ER_ERROR_DURING_COMMIT
	1181: true, // ER_ERROR_DURING_ROLLBACK
}

// isRefusal reports whether err is the server refusing one statement for what it
// holds, after which the transaction goes on.
func isRefusal(err error) bool {
	me := serverError(err)
	if me == nil || wholeTxErrors[me.Code] || (me.Code >= 2000 && me.Code < 3000) {
		return false
	}
	return true
}

// ChangeError is the server's refusal of one change.
type ChangeError struct {
	Op    cdc.Op
	Table string
	Err   *gomysql.MyError
}

func (e *ChangeError) Error() string {
	return fmt.Sprintf("%s of %s refused: %s [error %d, SQLSTATE %s]", e.Op, e.Table, e.Err.Message, e.Err.Code, e.Err.State)
}

func (e *ChangeError) Unwrap() error { return e.Err }

// RowNotFoundError is the result of an update or delete whose key matched no row.
type RowNotFoundError struct {
	Op    cdc.Op
	Table string
	Key   string // "col=value, ..."
}

func (e *RowNotFoundError) Error() string {
	return fmt.Sprintf("row not found: %s of %s matched no row with %s", e.Op, e.Table, e.Key)
}

// plan validates each change and builds its statement; a change that cannot be
// written gets its error in results and no statement.
func (a *Applier) plan(ctx context.Context, changes []cdc.Change, results []cdc.ApplyResult) []applyStmt {
	stmts := make([]applyStmt, 0, len(changes))
	cdc.PlanChanges(ctx, changes, results, a.cfg.Tables, a.table, a.reload, buildStmt, func(i int, st applyStmt) {
		st.idx = i
		stmts = append(stmts, st)
	})
	return stmts
}

// buildStmt turns one change into its statement.
func buildStmt(t *applyTable, ch *cdc.Change) (applyStmt, error) {
	st := applyStmt{op: ch.Op, table: ch.Table}
	var sb strings.Builder
	switch ch.Op {
	case cdc.OpInsert:
		sb.WriteString("INSERT INTO ")
		sb.WriteString(t.def.qualified())
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
			sb.WriteString(quoteIdent(f.Name))
			n++
		}
		if n == 0 {
			return st, fmt.Errorf("insert into %s has no column values (After is empty)", ch.Table)
		}
		sb.WriteString(") VALUES (")
		sb.WriteString(strings.TrimSuffix(strings.Repeat("?, ", n), ", "))
		sb.WriteByte(')')
	case cdc.OpUpdate:
		key, err := changeKey(t, ch)
		if err != nil {
			return st, err
		}
		sb.WriteString("UPDATE ")
		sb.WriteString(t.def.qualified())
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
			sb.WriteString(quoteIdent(f.Name))
			sb.WriteString(" = ?")
			n++
		}
		if n == 0 {
			return st, fmt.Errorf("update of %s has no column values (After is empty)", ch.Table)
		}
		if err := st.where(t, &sb, key); err != nil {
			return st, err
		}
	case cdc.OpDelete:
		key, err := changeKey(t, ch)
		if err != nil {
			return st, err
		}
		sb.WriteString("DELETE FROM ")
		sb.WriteString(t.def.qualified())
		if err := st.where(t, &sb, key); err != nil {
			return st, err
		}
	default:
		return st, fmt.Errorf("change to %s has operation %s, which edges cannot write: send inserts, updates and deletes", ch.Table, ch.Op)
	}
	st.sql = sb.String()
	return st, nil
}

// changeKey returns the key of the row an update or delete applies to: the key
// columns of Before (the old key, which an update may change), else of After.
func changeKey(t *applyTable, ch *cdc.Change) (cdc.Row, error) {
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
func (st *applyStmt) where(t *applyTable, sb *strings.Builder, key cdc.Row) error {
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
		sb.WriteString(quoteIdent(f.Name))
		sb.WriteString(" = ?")
		desc.WriteString(f.Name + "=" + f.Value.String())
	}
	st.keyDesc = desc.String()
	return nil
}

// add appends f's value as the next argument.
func (st *applyStmt) add(t *applyTable, f cdc.Field) error {
	ci, ok := t.cols[f.Name]
	if !ok {
		return &cdc.UnknownColumnError{Table: st.table, Column: f.Name}
	}
	col := &t.def.table.Columns[ci]
	v, err := argFor(col, &t.def.cols[ci], f.Value)
	if err != nil {
		return fmt.Errorf("%s of %s column %s (%s): %w", st.op, st.table, f.Name, col.SourceType, err)
	}
	st.args = append(st.args, v)
	return nil
}

// argFor converts a Value into an argument MySQL stores exactly in the column:
// integers as integers (BIT columns as uint64), decimals and unsigned
// BIGINTs as exact text or uint64, bytes as bytes, date-times in the server's text
// form (the session is in UTC), everything else as its canonical text.
func argFor(col *cdc.Column, info *colInfo, v cdc.Value) (any, error) {
	switch v.Kind() {
	case cdc.KindNull:
		return nil, nil
	case cdc.KindBool:
		if v.AsBool() {
			return int64(1), nil
		}
		return int64(0), nil
	case cdc.KindInt:
		if info.dataType == "bit" {
			// BIT(64) values above 2^63 travel as negative int64s.
			return uint64(v.AsInt()), nil
		}
		return v.AsInt(), nil
	case cdc.KindFloat:
		f := v.AsFloat()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%s cannot be stored: MySQL has no NaN or infinity", v)
		}
		return f, nil
	case cdc.KindBytes:
		b := v.AsBytes()
		if b == nil {
			b = []byte{}
		}
		return b, nil
	case cdc.KindDecimal:
		if info.unsigned && info.dataType == "bigint" {
			if u, err := strconv.ParseUint(v.AsString(), 10, 64); err == nil {
				return u, nil
			}
		}
		return v.AsString(), nil
	case cdc.KindTimestamp, cdc.KindTimestampTZ:
		s := v.AsString()
		if col.Kind == cdc.KindTimestampTZ || v.Kind() == cdc.KindTimestampTZ {
			s = strings.TrimSuffix(s, "Z")
		}
		return strings.Replace(s, "T", " ", 1), nil
	}
	return v.AsString(), nil
}

// ReadRow reads the row of table whose primary key has the values in key, decoded as
// the Source's snapshot decodes it. See cdc.Applier.
func (a *Applier) ReadRow(ctx context.Context, table string, key cdc.Row) (cdc.Row, bool, error) {
	t, ok := a.table(table)
	if !ok {
		return nil, false, fmt.Errorf("read row: table %q is not one of the applier's tables (%s)", table, strings.Join(a.cfg.Tables, ", "))
	}
	row, found, err := a.readRow(ctx, t, key)
	if me := serverError(err); me != nil && me.Code == errBadField {
		// A column was dropped since the definition was read.
		if t, err = a.reload(ctx, table); err != nil {
			return nil, false, err
		}
		row, found, err = a.readRow(ctx, t, key)
	}
	return row, found, err
}

// errBadField is ER_BAD_FIELD_ERROR, an unknown column.
const errBadField = 1054

func (a *Applier) readRow(ctx context.Context, t *applyTable, key cdc.Row) (cdc.Row, bool, error) {
	table := t.def.table.Name
	var sb strings.Builder
	sb.WriteString("SELECT ")
	for i, c := range t.def.table.Columns {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(quoteIdent(c.Name))
	}
	sb.WriteString(" FROM ")
	sb.WriteString(t.def.qualified())
	st := applyStmt{table: table}
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
	c, err := a.acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	stop := watch(ctx, c)
	r, err := c.exec(sb.String(), st.args...)
	if fired := stop(); fired {
		a.release(c, false)
		return nil, false, ctx.Err()
	}
	if err != nil {
		a.release(c, isRefusal(err))
		return nil, false, classify("read row of "+table, err)
	}
	defer a.release(c, true)
	defer r.Close()
	if r.RowNumber() == 0 {
		return nil, false, nil
	}
	vals := r.Values[0]
	row := make(cdc.Row, len(t.def.table.Columns))
	for i := range t.def.table.Columns {
		v, err := snapshotValue(&t.def.table.Columns[i], &t.def.cols[i], &vals[i])
		if err != nil {
			return nil, false, &cdc.Error{Op: "read row of " + table, Err: err}
		}
		row[i] = cdc.Field{Name: t.def.table.Columns[i].Name, Value: v}
	}
	return row, true, nil
}
