package mysql

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/synchub/synchub/cdc"
)

// prepareSnapshot opens a consistent-snapshot transaction on a connection of its own
// and reads the binlog position it corresponds to, then reloads the table definitions
// so they describe the rows the snapshot will read.
//
// MariaDB reports the binlog position of a consistent snapshot itself
// (binlog_snapshot_file/position), so no lock is taken. MySQL does not: a short
// FLUSH TABLES WITH READ LOCK holds commits while the snapshot starts and the position
// is read (the user needs RELOAD).
func (s *Source) prepareSnapshot(ctx context.Context) error {
	const op = "prepare snapshot"
	snap, err := s.connect(ctx)
	if err != nil {
		return err
	}
	s.snap = snap
	if _, err := snap.Execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return classify(op, err)
	}
	var pos Position
	if s.flavour == FlavourMariaDB {
		pos, err = mariaDBSnapshot(snap)
	} else {
		pos, err = mysqlSnapshot(snap)
	}
	if err != nil {
		return err
	}
	for _, name := range s.order {
		def, err := loadTable(snap, name, s.flavour == FlavourMariaDB)
		if err != nil {
			return err
		}
		s.tables[name] = def
	}
	s.startPos = pos
	s.log.Info("consistent snapshot prepared", "position", pos.String())
	return nil
}

func mariaDBSnapshot(conn *client.Conn) (Position, error) {
	const op = "prepare snapshot"
	if _, err := conn.Execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return Position{}, classify(op, err)
	}
	r, err := conn.Execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return Position{}, classify(op, err)
	}
	pos := Position{Flavour: FlavourMariaDB}
	for i := range r.RowNumber() {
		k, _ := r.GetString(i, 0)
		v, _ := r.GetString(i, 1)
		switch strings.ToLower(k) {
		case "binlog_snapshot_file":
			pos.File = v
		case "binlog_snapshot_position":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return Position{}, &cdc.Error{Op: op, Err: fmt.Errorf("binlog_snapshot_position %q is not a number", v)}
			}
			pos.Offset = uint32(n)
		}
	}
	if pos.File == "" {
		return Position{}, configError(op, errors.New("the server reports no binlog_snapshot_file"), "enable the binary log (log_bin) and restart the server")
	}
	g, err := conn.Execute("SELECT COALESCE(BINLOG_GTID_POS(?, ?), '')", pos.File, pos.Offset)
	if err != nil {
		return Position{}, classify(op, err)
	}
	text, _ := g.GetString(0, 0)
	if text != "" {
		set, err := parseGTIDSet(FlavourMariaDB, text)
		if err != nil {
			return Position{}, &cdc.Error{Op: op, Err: err}
		}
		pos.GTID = set.String()
	}
	return pos, nil
}

func mysqlSnapshot(conn *client.Conn) (pos Position, err error) {
	const op = "prepare snapshot"
	if _, err := conn.Execute("FLUSH TABLES WITH READ LOCK"); err != nil {
		if me := serverError(err); me != nil && me.Code == errSpecificAccessDenied {
			return Position{}, configError(op, err, "GRANT RELOAD ON *.* TO the source's user (the snapshot holds a global read lock for a moment)")
		}
		return Position{}, classify(op, err)
	}
	defer func() {
		if _, uerr := conn.Execute("UNLOCK TABLES"); uerr != nil && err == nil {
			err = classify(op, uerr)
		}
	}()
	if _, err := conn.Execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return Position{}, classify(op, err)
	}
	r, err := conn.Execute("SHOW MASTER STATUS")
	if err != nil {
		// MySQL 8.4 renamed the statement.
		if r, err = conn.Execute("SHOW BINARY LOG STATUS"); err != nil {
			return Position{}, classify(op, err)
		}
	}
	if r.RowNumber() == 0 {
		return Position{}, configError(op, errors.New("SHOW MASTER STATUS returned nothing: the binary log is off"), "enable the binary log (log_bin) and restart the server")
	}
	pos = Position{Flavour: FlavourMySQL}
	pos.File, _ = r.GetString(0, 0)
	off, _ := r.GetUint(0, 1)
	pos.Offset = uint32(off)
	if r.ColumnNumber() >= 5 {
		text, _ := r.GetString(0, 4)
		text = strings.ReplaceAll(strings.ReplaceAll(text, "\n", ""), " ", "")
		if text != "" {
			set, err := parseMySQLGTIDSet(text)
			if err != nil {
				return Position{}, &cdc.Error{Op: op, Err: err}
			}
			pos.GTID = set.String()
		}
	}
	return pos, nil
}

// Snapshot reads every captured table inside the consistent snapshot, in pages of
// SnapshotPageRows ordered by primary key, and emits the rows as inserts. It returns
// the binlog position the stream continues from. See cdc.Source.
func (s *Source) Snapshot(ctx context.Context, emit func(ctx context.Context, changes []cdc.Change) error) (cdc.Position, error) {
	if !s.needSnap || s.snap == nil {
		return nil, errors.New("mysql: Snapshot called without a prepared snapshot (Start did not ask for one, or it was already read)")
	}
	defer s.releaseSnapshot()
	started := time.Now()
	var total int64
	for _, name := range s.order {
		n, err := s.snapshotTable(ctx, s.tables[name], emit)
		total += n
		if err != nil {
			return nil, err
		}
	}
	s.needSnap = false
	s.log.Info("snapshot done", "tables", len(s.order), "rows", total, "seconds", time.Since(started).Seconds(), "position", s.startPos.String())
	return s.startPos, nil
}

func (s *Source) releaseSnapshot() {
	if s.snap == nil {
		return
	}
	if _, err := s.snap.Execute("ROLLBACK"); err != nil {
		s.log.Debug("end snapshot transaction", "err", err)
	}
	s.snap.Close()
	s.snap = nil
}

// keysetQueries builds the first-page and next-page queries of a table. The next page
// continues after the last key read: a > ? OR (a = ? AND b > ?) OR …, which the
// optimizer turns into a range scan of the primary key.
func keysetQueries(def *tableDef, pageRows int) (first, next string, pkIdx []int) {
	cols := make([]string, len(def.table.Columns))
	for i, c := range def.table.Columns {
		cols[i] = quoteIdent(c.Name)
	}
	order := make([]string, len(def.table.PrimaryKey))
	for i, k := range def.table.PrimaryKey {
		order[i] = quoteIdent(k)
		pkIdx = append(pkIdx, columnIndex(&def.table, k))
	}
	base := "SELECT " + strings.Join(cols, ", ") + " FROM " + def.qualified()
	tail := " ORDER BY " + strings.Join(order, ", ") + " LIMIT " + strconv.Itoa(pageRows)
	var ors []string
	for i := range order {
		var ands []string
		for j := 0; j < i; j++ {
			ands = append(ands, order[j]+" = ?")
		}
		ands = append(ands, order[i]+" > ?")
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return base + tail, base + " WHERE " + strings.Join(ors, " OR ") + tail, pkIdx
}

// keysetArgs are the next-page query's arguments for the last key read.
func keysetArgs(last []any) []any {
	var args []any
	for i := range last {
		args = append(args, last[:i+1]...)
	}
	return args
}

// snapshotTable reads one table page by page.
func (s *Source) snapshotTable(ctx context.Context, def *tableDef, emit func(context.Context, []cdc.Change) error) (int64, error) {
	name := def.table.Name
	first, next, pkIdx := keysetQueries(def, s.cfg.SnapshotPageRows)
	op := "snapshot " + name
	stFirst, err := s.snap.Prepare(first)
	if err != nil {
		return 0, classify(op, err)
	}
	defer stFirst.Close()
	stNext, err := s.snap.Prepare(next)
	if err != nil {
		return 0, classify(op, err)
	}
	defer stNext.Close()

	started := time.Now()
	lastLog := started
	var rows int64
	var last []any
	for {
		if err := ctx.Err(); err != nil {
			return rows, err
		}
		var r *gomysql.Result
		if last == nil {
			r, err = stFirst.Execute()
		} else {
			r, err = stNext.Execute(keysetArgs(last)...)
		}
		if err != nil {
			return rows, classify(op, err)
		}
		n := r.RowNumber()
		if n == 0 {
			r.Close()
			break
		}
		page := make([]cdc.Change, 0, n)
		for i := range n {
			vals := r.Values[i]
			row := make(cdc.Row, len(def.table.Columns))
			for c := range def.table.Columns {
				v, err := snapshotValue(&def.table.Columns[c], &def.cols[c], &vals[c])
				if err != nil {
					r.Close()
					return rows, &cdc.Error{Op: op, Err: err}
				}
				row[c] = cdc.Field{Name: def.table.Columns[c].Name, Value: v}
			}
			page = append(page, cdc.Change{Table: name, Op: cdc.OpInsert, After: row})
		}
		lastRow := r.Values[n-1]
		last = make([]any, len(pkIdx))
		for i, c := range pkIdx {
			last[i] = keyArg(&lastRow[c])
		}
		r.Close()
		if err := emit(ctx, page); err != nil {
			return rows, err
		}
		rows += int64(n)
		if now := time.Now(); now.Sub(lastLog) >= 5*time.Second {
			lastLog = now
			s.log.Info("snapshot progress", "table", name, "rows", rows, "rows_per_second", int64(float64(rows)/now.Sub(started).Seconds()))
		}
		if n < s.cfg.SnapshotPageRows {
			break
		}
	}
	elapsed := time.Since(started)
	s.log.Info("snapshot of table done", "table", name, "rows", rows, "rows_per_second", int64(float64(rows)/max(elapsed.Seconds(), 1e-9)))
	return rows, nil
}

// keyArg is a key value read by the snapshot as a statement argument.
func keyArg(fv *gomysql.FieldValue) any {
	switch fv.Type {
	case gomysql.FieldValueTypeSigned:
		return fv.AsInt64()
	case gomysql.FieldValueTypeUnsigned:
		return fv.AsUint64()
	case gomysql.FieldValueTypeFloat:
		return fv.AsFloat64()
	case gomysql.FieldValueTypeString:
		return append([]byte{}, fv.AsString()...)
	}
	return nil
}
