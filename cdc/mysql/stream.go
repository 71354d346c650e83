package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/synchub/synchub/cdc"
)

// mapping is how the stream treats the rows of one table map.
type mapping struct {
	tm     *replication.TableMapEvent
	def    *tableDef // nil for a table that is not captured
	origin bool      // the origin table: rows tag the transaction
	// originIdx and batchIdx locate the origin table's columns.
	originIdx, batchIdx int
}

// preparedXA is a prepared XA transaction waiting for its XA COMMIT.
type preparedXA struct {
	changes       []cdc.Change
	tables        []cdc.Table
	origin, batch string
}

// mariaDBPreparedXA is the MariaDB GTID flag of an XA transaction's prepared part.
const mariaDBPreparedXA = 0x40

// streamer is the state of one Stream call.
type streamer struct {
	s *Source
	h cdc.Handler
	// commitUS is the transaction's commit time in microseconds when its GTID event
	// carries one (MySQL 8's original_commit_timestamp); 0 otherwise, and the event
	// header's seconds are used.
	commitUS uint64
	gtid     *gtidTracker
	file     string
	maps     map[uint64]*mapping
	originDB string

	inTx          bool
	part          *cdc.Tx
	partsSent     int
	origin, batch string
	pendingTables []cdc.Table
	idlePending   bool
	lastDelivery  time.Time // when the last whole transaction was delivered
	// payloadEnd, when set, is the end position of the compressed transaction payload
	// whose inner events are being handled (their own positions are relative).
	payloadEnd uint32
	// xa is set inside an XA transaction: its changes are held whole until XA PREPARE,
	// then kept in prepared (by XID text) until XA COMMIT or XA ROLLBACK.
	xa       bool
	xaID     string
	prepared map[string]*preparedXA
	// fields is a slab the row images are cut from, so a row event's rows cost one
	// allocation rather than one each.
	fields []cdc.Field
	// waitingSince is when the stream started waiting for the next event (Unix
	// nanoseconds), 0 while it handles one; the watchdog reads it.
	waitingSince atomic.Int64
}

// Stream reads the binlog from the snapshot's position (or the resumed one) and
// delivers committed transactions to h until ctx is cancelled or the connection fails.
// See cdc.Source.
func (s *Source) Stream(ctx context.Context, h cdc.Handler) error {
	if s.meta == nil {
		return errors.New("mysql: Stream called before Start")
	}
	if s.streamed {
		return errors.New("mysql: Stream called twice; Close and Start again")
	}
	s.streamed = true
	if s.snap != nil {
		s.log.Warn("streaming without reading the prepared snapshot")
		s.releaseSnapshot()
		s.needSnap = false
	}
	if s.startPos.IsZero() {
		return errors.New("mysql: Stream has no position to start from")
	}
	tracker, err := newGTIDTracker(s.flavour, s.startPos.GTID)
	if err != nil {
		return &cdc.Error{Op: "start binlog stream", Err: err}
	}
	syncer, err := s.newSyncer()
	if err != nil {
		return err
	}
	s.syncer = syncer
	bs, err := s.startSync(syncer, s.startPos)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	s.log.Info("streaming", "position", s.startPos.String(), "server_id", s.serverID)
	st := &streamer{
		s:        s,
		h:        h,
		gtid:     tracker,
		file:     s.startPos.File,
		maps:     make(map[uint64]*mapping),
		originDB: s.cfg.originDatabase(),
		part:     &cdc.Tx{},
	}
	stop := st.watch()
	err = st.run(ctx, bs)
	if stop() && ctx.Err() == nil {
		return transientError("stream", fmt.Errorf("no binlog event or heartbeat for %v: the connection is taken for dead", s.cfg.ReadTimeout))
	}
	return err
}

// watch closes the binlog connection when the stream has waited ReadTimeout for an
// event (heartbeats included), so a silent network failure ends Stream. stop ends the
// watchdog and reports whether it fired.
func (st *streamer) watch() (stop func() bool) {
	timeout := st.s.cfg.ReadTimeout
	done := make(chan struct{})
	finished := make(chan struct{})
	var fired atomic.Bool
	go func() {
		defer close(finished)
		tick := time.NewTicker(max(timeout/8, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				since := st.waitingSince.Load()
				if since != 0 && now.Sub(time.Unix(0, since)) > timeout {
					fired.Store(true)
					if c := st.s.binlogConn.Load(); c != nil {
						(*c).Close()
					}
					return
				}
			}
		}
	}()
	return func() bool {
		close(done)
		<-finished
		return fired.Load()
	}
}

// startSync starts the binlog dump at p and lifts the connection's handshake deadline.
func (s *Source) startSync(syncer *replication.BinlogSyncer, p Position) (*replication.BinlogStreamer, error) {
	set, filePos, err := syncRequest(p)
	if err != nil {
		return nil, &cdc.Error{Op: "start binlog stream", Err: err}
	}
	var bs *replication.BinlogStreamer
	if set != nil {
		bs, err = syncer.StartSyncGTID(set)
	} else {
		bs, err = syncer.StartSync(filePos)
	}
	if err != nil {
		return nil, classifyStream("start binlog stream", err)
	}
	if c := s.binlogConn.Load(); c != nil {
		_ = (*c).SetDeadline(time.Time{})
	}
	return bs, nil
}

// syncRequest says where the binlog dump starts: after the GTID set when the position
// has one (set is non-nil), else at the file and offset.
func syncRequest(p Position) (set gomysql.GTIDSet, filePos gomysql.Position, err error) {
	if p.GTID != "" {
		set, err = parseGTIDSet(p.Flavour, p.GTID)
		return set, filePos, err
	}
	if p.File == "" {
		return nil, filePos, errors.New("position has neither a GTID set nor a binlog file")
	}
	return nil, gomysql.Position{Name: p.File, Pos: p.Offset}, nil
}

// classifyStream classifies an error of the binlog connection: a purged position is
// lost, a missing grant is a configuration error, anything else is retryable.
func classifyStream(op string, err error) error {
	if me := serverError(err); me != nil {
		switch me.Code {
		case errMasterFatalReading:
			return positionLost(op, me)
		case errSpecificAccessDenied, errAccessDenied:
			return configError(op, me, grantFix)
		}
	}
	if errors.Is(err, replication.ErrNeedSyncAgain) || errors.Is(err, replication.ErrSyncClosed) {
		return transientError(op, errors.New("the binlog connection was closed"))
	}
	return transientError(op, fmt.Errorf("binlog connection failed: %w", err))
}

func (st *streamer) run(ctx context.Context, bs *replication.BinlogStreamer) error {
	idleWait := st.s.cfg.IdleWait
	for {
		var ev *replication.BinlogEvent
		var err error
		st.waitingSince.Store(time.Now().UnixNano())
		if st.idlePending && !st.inTx {
			wctx, cancel := context.WithTimeout(ctx, idleWait)
			ev, err = bs.GetEvent(wctx)
			cancel()
			if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				st.waitingSince.Store(0)
				st.idlePending = false
				if err := st.h.Idle(ctx); err != nil {
					return err
				}
				continue
			}
		} else {
			ev, err = bs.GetEvent(ctx)
		}
		st.waitingSince.Store(0)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return classifyStream("stream", err)
		}
		if err := st.handle(ctx, ev); err != nil {
			return err
		}
	}
}

// handle processes one binlog event.
func (st *streamer) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		st.file = string(e.NextLogName)
	case *replication.MariadbGTIDEvent:
		st.begin()
		st.gtid.beginMariaDB(e.GTID)
		// A MariaDB GTID event opens the transaction; a standalone one (DDL) is
		// followed by the single statement that is the whole transaction.
		st.inTx = !e.IsStandalone()
		st.xa = e.Flags&mariaDBPreparedXA != 0
	case *replication.GTIDEvent:
		st.begin()
		if err := st.gtid.beginMySQL(e.SID, e.Tag, e.GNO); err != nil {
			return &cdc.Error{Op: "stream", Err: err}
		}
		st.commitUS = e.OriginalCommitTimestamp
	case *replication.GtidTaggedLogEvent:
		st.begin()
		if err := st.gtid.beginMySQL(e.SID, e.Tag, e.GNO); err != nil {
			return &cdc.Error{Op: "stream", Err: err}
		}
	case *replication.QueryEvent:
		return st.query(ctx, ev.Header, e)
	case *replication.XIDEvent:
		return st.commit(ctx, ev.Header)
	case *replication.RowsEvent:
		return st.rows(ctx, ev.Header, e)
	case *replication.TransactionPayloadEvent:
		st.payloadEnd = ev.Header.LogPos
		defer func() { st.payloadEnd = 0 }()
		for _, inner := range e.Events {
			if err := st.handle(ctx, inner); err != nil {
				return err
			}
		}
	case *replication.GenericEvent:
		if ev.Header.EventType == replication.XA_PREPARE_LOG_EVENT {
			return st.xaPrepare()
		}
	case *replication.HeartbeatEvent:
		if st.idlePending && !st.inTx {
			st.idlePending = false
			return st.h.Idle(ctx)
		}
	}
	return nil
}

// begin starts a transaction's bookkeeping.
func (st *streamer) begin() {
	if len(st.part.Changes) > 0 || st.partsSent > 0 {
		// A group that never reached its commit event (a server crash mid-write leaves
		// one at the end of a binlog); the server rolled it back.
		st.s.log.Warn("discarding the changes of a binlog event group without a commit", "changes", len(st.part.Changes))
		st.part = &cdc.Tx{}
	}
	st.origin, st.batch = "", ""
	st.partsSent = 0
	st.inTx = false
	st.xa, st.xaID = false, ""
	st.commitUS = 0
}

func (st *streamer) query(ctx context.Context, hdr *replication.EventHeader, e *replication.QueryEvent) error {
	q := strings.TrimSpace(string(e.Query))
	switch strings.ToUpper(q) {
	case "BEGIN":
		if !st.inTx && st.partsSent == 0 && len(st.part.Changes) == 0 {
			st.origin, st.batch = "", ""
		}
		st.inTx = true
		return nil
	case "COMMIT", "ROLLBACK":
		// ROLLBACK ends a transaction whose non-transactional changes stay.
		return st.commit(ctx, hdr)
	}
	upper := strings.ToUpper(q)
	switch {
	case strings.HasPrefix(upper, "XA START"):
		st.xa, st.inTx = true, true
		return nil
	case strings.HasPrefix(upper, "XA END"):
		st.xaID = strings.TrimSpace(q[len("XA END"):])
		return nil
	case strings.HasPrefix(upper, "XA COMMIT") && !st.inTx:
		return st.xaEnd(ctx, hdr, strings.TrimSpace(q[len("XA COMMIT"):]), true)
	case strings.HasPrefix(upper, "XA ROLLBACK") && !st.inTx:
		return st.xaEnd(ctx, hdr, strings.TrimSpace(q[len("XA ROLLBACK"):]), false)
	}
	if st.inTx {
		return nil
	}
	// A statement outside BEGIN … COMMIT is a transaction of its own (DDL).
	st.inTx = true
	if err := st.ddl(ctx, q, string(e.Schema)); err != nil {
		return err
	}
	return st.commit(ctx, hdr)
}

// ddl reacts to table DDL on captured tables: their definitions are read again and
// announced in Tx.Tables; TRUNCATE and DROP become truncate changes.
func (st *streamer) ddl(ctx context.Context, q, schema string) error {
	stmt := parseDDL(q, schema)
	if stmt.kind == ddlNone {
		return nil
	}
	for _, name := range stmt.tables {
		known, ok := st.s.tables[name]
		if !ok {
			continue
		}
		switch stmt.kind {
		case ddlTruncate:
			if err := st.add(ctx, cdc.Change{Table: name, Op: cdc.OpTruncate}); err != nil {
				return err
			}
			continue
		case ddlDrop:
			st.s.log.Warn("a captured table was dropped; its rows are removed on edges", "table", name)
			if err := st.add(ctx, cdc.Change{Table: name, Op: cdc.OpTruncate}); err != nil {
				return err
			}
			continue
		}
		def, err := st.s.reloadTable(name)
		if err != nil {
			var ce *cdc.Error
			if errors.As(err, &ce) && !ce.Transient {
				// Renamed away or gone: its later rows will not appear. Keep the known
				// definition; a table map for it reconciles it when it comes back.
				st.s.log.Warn("a captured table changed and cannot be read now", "table", name, "err", err)
				continue
			}
			return err
		}
		for i := range def.table.Columns {
			if old, had := known.table.Column(def.table.Columns[i].Name); had {
				def.table.Columns[i].Default = old.Default
			}
		}
		if len(def.table.Columns) > len(known.table.Columns) || !cdc.SameColumns(&known.table, &def.table) {
			st.s.fillDefaults(def, known)
		}
		if !cdc.SameColumns(&known.table, &def.table) || !sameNullability(&known.table, &def.table) {
			st.pendingTables = append(st.pendingTables, def.table)
			st.s.log.Info("table definition changed", "table", name, "columns", len(def.table.Columns))
		}
		st.s.tables[name] = def
		// Decode the next rows with the new definition.
		for id, m := range st.maps {
			if m.def == known {
				delete(st.maps, id)
			}
		}
	}
	return nil
}

func sameNullability(a, b *cdc.Table) bool {
	if len(a.Columns) != len(b.Columns) {
		return false
	}
	for i := range a.Columns {
		if a.Columns[i].Nullable != b.Columns[i].Nullable {
			return false
		}
	}
	return true
}

// xaPrepare ends the prepared part of an XA transaction: its changes wait for XA
// COMMIT, which comes later as a transaction of its own.
func (st *streamer) xaPrepare() error {
	if err := st.gtid.commit(); err != nil {
		return &cdc.Error{Op: "stream", Err: err}
	}
	if st.prepared == nil {
		st.prepared = map[string]*preparedXA{}
	}
	st.prepared[st.xaID] = &preparedXA{changes: st.part.Changes, tables: st.pendingTables, origin: st.origin, batch: st.batch}
	st.part, st.pendingTables = &cdc.Tx{}, nil
	st.origin, st.batch = "", ""
	st.inTx, st.xa, st.xaID = false, false, ""
	return nil
}

// xaEnd is XA COMMIT (commit true) or XA ROLLBACK of a prepared XA transaction.
func (st *streamer) xaEnd(ctx context.Context, hdr *replication.EventHeader, xid string, commit bool) error {
	p, ok := st.prepared[xid]
	delete(st.prepared, xid)
	if ok && commit {
		st.part.Changes = append(st.part.Changes, p.changes...)
		st.pendingTables = append(st.pendingTables, p.tables...)
		st.origin, st.batch = p.origin, p.batch
	} else if !ok && commit {
		st.s.log.Warn("XA COMMIT of a transaction prepared before the stream's start position; its changes were not captured", "xid", xid)
	}
	st.inTx = true
	return st.commit(ctx, hdr)
}

// commit ends the current transaction at the event with header hdr.
func (st *streamer) commit(ctx context.Context, hdr *replication.EventHeader) error {
	if err := st.gtid.commit(); err != nil {
		return &cdc.Error{Op: "stream", Err: err}
	}
	end := hdr.LogPos
	if st.payloadEnd != 0 {
		end = st.payloadEnd
	}
	pos := Position{Flavour: st.s.flavour, File: st.file, Offset: end, GTID: st.gtid.String()}
	st.inTx = false
	st.s.lastSeen.Store(&pos)
	// A transaction with nothing captured is skipped, unless it is a write-back (it
	// carried an origin row with a batch): one whose row writes all changed nothing
	// (MySQL logs no row event for an UPDATE that leaves the row as it was) is still
	// delivered, empty, so that the push waiting for it learns that it committed.
	if len(st.part.Changes) == 0 && len(st.pendingTables) == 0 && st.partsSent == 0 && st.batch == "" {
		st.origin = ""
		// Transactions on other tables can keep the stream from ever waiting; the
		// consumer still gets its moment to commit once IdleWait has passed since the
		// last delivery.
		if st.idlePending && time.Since(st.lastDelivery) >= st.s.cfg.IdleWait {
			st.idlePending = false
			return st.h.Idle(ctx)
		}
		return nil
	}
	commitTime := time.Unix(int64(hdr.Timestamp), 0).UTC()
	if st.commitUS > 0 {
		// Microseconds, so last-writer-wins compares edge writes with the real moment.
		commitTime = time.UnixMicro(int64(st.commitUS)).UTC()
	}
	err := st.deliver(ctx, true, pos, commitTime)
	st.origin, st.batch = "", ""
	st.partsSent = 0
	return err
}

// add appends a change to the current part, first delivering the part when it is
// full; the final part is delivered at commit, so it is never empty.
func (st *streamer) add(ctx context.Context, ch cdc.Change) error {
	if n := len(st.part.Changes); n > 0 && n >= st.s.cfg.MaxTxChanges && !st.xa {
		if err := st.deliver(ctx, false, Position{}, time.Time{}); err != nil {
			return err
		}
	}
	st.part.Changes = append(st.part.Changes, ch)
	return nil
}

func (st *streamer) deliver(ctx context.Context, final bool, pos Position, commitTime time.Time) error {
	tx := st.part
	tx.Origin = st.origin
	tx.Batch = st.batch
	tx.Tables = st.pendingTables
	tx.More = !final
	if final {
		tx.Pos = pos
		tx.CommitTime = commitTime
		st.idlePending = true
		st.lastDelivery = time.Now()
		st.s.lastDelivered.Store(&pos)
	}
	st.pendingTables = nil
	st.part = &cdc.Tx{Changes: make([]cdc.Change, 0, min(len(tx.Changes), st.s.cfg.MaxTxChanges))}
	st.partsSent++
	return st.h.Tx(ctx, tx)
}

// mappingFor returns how to treat rows of the table map tm, reconciling captured
// tables' definitions with it.
func (st *streamer) mappingFor(id uint64, tm *replication.TableMapEvent) (*mapping, error) {
	if m, ok := st.maps[id]; ok && m.tm == tm {
		return m, nil
	}
	db, name := string(tm.Schema), string(tm.Table)
	m := &mapping{tm: tm}
	if db == st.originDB && name == OriginTable {
		m.origin, m.originIdx, m.batchIdx = true, -1, -1
		for i, n := range tm.ColumnNameString() {
			switch n {
			case "origin":
				m.originIdx = i
			case "batch":
				m.batchIdx = i
			}
		}
		st.maps[id] = m
		return m, nil
	}
	full := db + "." + name
	known, ok := st.s.tables[full]
	if !ok {
		st.maps[id] = m
		return m, nil
	}
	def, changed, err := defFromMap(known, tm)
	if err != nil {
		return nil, err
	}
	if changed {
		st.pendingTables = append(st.pendingTables, def.table)
		st.s.log.Info("table definition changed", "table", full, "columns", len(def.table.Columns))
	}
	st.s.tables[full] = def
	m.def = def
	st.maps[id] = m
	return m, nil
}

func (st *streamer) rows(ctx context.Context, hdr *replication.EventHeader, e *replication.RowsEvent) error {
	if e.Table == nil {
		return &cdc.Error{Op: "stream", Err: fmt.Errorf("row event for table id %d without a table map", e.TableID)}
	}
	m, err := st.mappingFor(e.TableID, e.Table)
	if err != nil {
		return err
	}
	if !st.inTx {
		st.inTx = true
	}
	kind := e.Type()
	if kind == replication.EnumRowsEventTypeUnknown && hdr.EventType == replication.PARTIAL_UPDATE_ROWS_EVENT {
		kind = replication.EnumRowsEventTypeUpdate
	}
	if m.origin {
		st.originRows(kind, m, e.Rows)
		return nil
	}
	if m.def == nil {
		return nil
	}
	def := m.def
	switch kind {
	case replication.EnumRowsEventTypeInsert:
		for _, r := range e.Rows {
			row, err := st.decodeRow(def, r)
			if err != nil {
				return err
			}
			if err := st.add(ctx, cdc.Change{Table: def.table.Name, Op: cdc.OpInsert, After: row}); err != nil {
				return err
			}
		}
	case replication.EnumRowsEventTypeDelete:
		for _, r := range e.Rows {
			row, err := st.decodeRow(def, r)
			if err != nil {
				return err
			}
			if err := st.add(ctx, cdc.Change{Table: def.table.Name, Op: cdc.OpDelete, Before: row}); err != nil {
				return err
			}
		}
	case replication.EnumRowsEventTypeUpdate:
		if len(e.Rows)%2 != 0 {
			return &cdc.Error{Op: "stream", Err: fmt.Errorf("update event on %s has an odd number of row images", def.table.Name)}
		}
		for i := 0; i < len(e.Rows); i += 2 {
			before, err := st.decodeRow(def, e.Rows[i])
			if err != nil {
				return err
			}
			after, err := st.decodeRow(def, e.Rows[i+1])
			if err != nil {
				return err
			}
			if err := st.add(ctx, cdc.Change{Table: def.table.Name, Op: cdc.OpUpdate, Before: before, After: after}); err != nil {
				return err
			}
		}
	default:
		return &cdc.Error{Op: "stream", Err: fmt.Errorf("unknown row event type %v on %s", hdr.EventType, def.table.Name)}
	}
	return nil
}

// originRows reads the edge id and batch from the origin table's new row image.
func (st *streamer) originRows(kind replication.EnumRowsEventType, m *mapping, rows [][]any) {
	var img []any
	switch kind {
	case replication.EnumRowsEventTypeInsert:
		if len(rows) > 0 {
			img = rows[len(rows)-1]
		}
	case replication.EnumRowsEventTypeUpdate:
		if len(rows) >= 2 {
			img = rows[len(rows)-1]
		}
	}
	if img == nil {
		return
	}
	text := func(i int) string {
		if i < 0 || i >= len(img) {
			return ""
		}
		switch v := img[i].(type) {
		case string:
			return v
		case []byte:
			return string(v)
		}
		return ""
	}
	st.origin, st.batch = text(m.originIdx), text(m.batchIdx)
}

// fieldSlab is how many fields the row images of the stream are cut from at a time.
const fieldSlab = 4096

// decodeRow converts one row image.
func (st *streamer) decodeRow(def *tableDef, r []any) (cdc.Row, error) {
	if len(r) != len(def.table.Columns) {
		return nil, &cdc.Error{Op: "stream", Err: fmt.Errorf("row of %s has %d columns, the table has %d", def.table.Name, len(r), len(def.table.Columns)),
			Fix: "SET GLOBAL binlog_row_image = FULL"}
	}
	if len(st.fields) < len(r) {
		st.fields = make([]cdc.Field, max(fieldSlab, len(r)))
	}
	row := cdc.Row(st.fields[:len(r):len(r)])
	st.fields = st.fields[len(r):]
	for i, v := range r {
		val, err := binlogValue(&def.table.Columns[i], &def.cols[i], v)
		if err != nil {
			return nil, &cdc.Error{Op: "stream", Err: fmt.Errorf("table %s: %w", def.table.Name, err)}
		}
		row[i] = cdc.Field{Name: def.table.Columns[i].Name, Value: val}
	}
	return row, nil
}
