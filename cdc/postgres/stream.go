package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/synchub/synchub/cdc"
)

// OriginMessagePrefix is the prefix of the transactional logical message that tags a
// transaction with the edge that wrote it and the push batch it was written for:
// SELECT pg_logical_emit_message(true, 'synchub.origin', '<edge id> <batch id>').
const OriginMessagePrefix = "synchub.origin"

// originNamePrefix marks replication origins (pg_replication_origin_create) whose
// name, after the prefix, is an edge id.
const originNamePrefix = "synchub."

// relation is what a pgoutput Relation message told about a table; def is nil for a
// table that is not captured, whose changes are skipped.
type relation struct {
	def    *tableDef
	keyIdx []int // columns of the replica identity, sent in 'K' tuples
}

// streamer is the state of one Stream call.
type streamer struct {
	s    *Source
	h    cdc.Handler
	rels map[uint32]*relation
	seen map[string]*relation // last relation per table name
	dec  rowDecoder

	inTx          bool
	lastDelivered LSN // position of the last whole transaction delivered
	part          *cdc.Tx
	partBytes     int
	partsSent     int
	origin        string
	batch         string
	pendingTables []cdc.Table

	idlePending bool
	lastRecv    time.Time
	nextStatus  time.Time

	dlMu      sync.Mutex
	cancelled bool
	deadline  time.Time
}

// Stream starts replication at the snapshot's consistent point (or the resumed
// position) and delivers committed transactions to h until ctx is cancelled or the
// connection fails. See cdc.Source.
func (s *Source) Stream(ctx context.Context, h cdc.Handler) error {
	if s.repl == nil {
		return errors.New("postgres: Stream called before Start")
	}
	if s.streamed {
		return errors.New("postgres: Stream called twice; Close and Start again")
	}
	s.streamed = true
	if s.snap != nil {
		s.log.Warn("streaming without reading the prepared snapshot")
		s.releaseSnapshot()
		s.needSnap = false
	}
	err := pglogrepl.StartReplication(ctx, s.repl, s.cfg.Slot, pglogrepl.LSN(s.startLSN), pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			"publication_names '" + s.cfg.Publication + "'",
			"messages 'true'",
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return classify("start replication", err)
	}
	s.log.Info("streaming", "position", s.startLSN.String())
	st := &streamer{
		s:          s,
		h:          h,
		rels:       make(map[uint32]*relation),
		seen:       make(map[string]*relation),
		part:       &cdc.Tx{},
		nextStatus: time.Now(),
	}
	return st.run(ctx)
}

// setDeadline moves the replication connection's read deadline. While the current
// deadline is still ahead, moving it later by less than a millisecond is skipped, so a
// fast stream does not pay for a deadline change on every message.
func (st *streamer) setDeadline(d, now time.Time) {
	st.dlMu.Lock()
	defer st.dlMu.Unlock()
	if st.cancelled {
		return
	}
	if d.Before(st.deadline) || d.Sub(st.deadline) > time.Millisecond || !st.deadline.After(now) {
		st.deadline = d
		_ = st.s.repl.Conn().SetReadDeadline(d)
	}
}

func (st *streamer) run(ctx context.Context) error {
	conn := st.s.repl.Conn()
	stop := context.AfterFunc(ctx, func() {
		st.dlMu.Lock()
		st.cancelled = true
		_ = conn.SetReadDeadline(time.Unix(1, 0))
		st.dlMu.Unlock()
	})
	defer func() {
		stop()
		st.dlMu.Lock()
		st.cancelled = true
		_ = conn.SetReadDeadline(time.Time{})
		st.dlMu.Unlock()
	}()
	idleWait := st.s.cfg.IdleWait
	for {
		now := time.Now()
		if !now.Before(st.nextStatus) {
			if err := st.status(ctx); err != nil {
				return err
			}
		}
		deadline := st.nextStatus
		if st.idlePending && !st.inTx {
			if d := st.lastRecv.Add(idleWait); d.Before(deadline) {
				deadline = d
			}
		}
		st.setDeadline(deadline, now)
		msg, err := st.s.repl.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				if st.idlePending && !st.inTx && time.Since(st.lastRecv) >= idleWait {
					st.idlePending = false
					if err := st.h.Idle(ctx); err != nil {
						return err
					}
				}
				continue
			}
			return transientError("receive replication message", err)
		}
		st.lastRecv = time.Now()
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return &cdc.Error{Op: "stream", Err: fmt.Errorf("parse keepalive: %w", err)}
				}
				if !st.inTx && LSN(pkm.ServerWALEnd) > st.s.idleEnd {
					st.s.idleEnd = LSN(pkm.ServerWALEnd)
				}
				// A keepalive between transactions means the server has sent everything
				// it had: a moment to commit. Doing it before the reply lets the reply
				// confirm what was just committed — a server shutting down pings in a
				// tight loop until it is, so waiting for a quiet gap would never end.
				if st.idlePending && !st.inTx {
					st.idlePending = false
					if err := st.h.Idle(ctx); err != nil {
						return err
					}
				}
				if pkm.ReplyRequested {
					if err := st.status(ctx); err != nil {
						return err
					}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return &cdc.Error{Op: "stream", Err: fmt.Errorf("parse XLogData: %w", err)}
				}
				if len(xld.WALData) == 0 {
					continue
				}
				if err := st.handle(ctx, xld.WALData); err != nil {
					return err
				}
			}
		case *pgproto3.ErrorResponse:
			return classify("stream", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return transientError("stream", errors.New("the server ended the replication stream"))
		}
	}
}

// status reports the confirmed position (see Source.confirmedPosition) as written,
// flushed and applied.
func (st *streamer) status(ctx context.Context) error {
	st.nextStatus = time.Now().Add(st.s.cfg.StatusInterval)
	if err := st.s.sendStatus(ctx, st.s.confirmedPosition()); err != nil {
		return transientError("send standby status", err)
	}
	return nil
}

// handle processes one pgoutput message.
func (st *streamer) handle(ctx context.Context, data []byte) error {
	switch data[0] {
	case 'I', 'U', 'D':
		return st.row(ctx, data)
	case 'B':
		if st.inTx {
			return &cdc.Error{Op: "stream", Err: errors.New("pgoutput sent Begin inside a transaction")}
		}
		st.inTx = true
		st.origin = ""
		st.batch = ""
		st.partsSent = 0
		return nil
	case 'C':
		msg, err := pglogrepl.Parse(data)
		if err != nil {
			return &cdc.Error{Op: "stream", Err: fmt.Errorf("parse commit: %w", err)}
		}
		c := msg.(*pglogrepl.CommitMessage)
		if !st.inTx {
			return &cdc.Error{Op: "stream", Err: errors.New("pgoutput sent Commit outside a transaction")}
		}
		st.inTx = false
		if len(st.part.Changes) == 0 && len(st.pendingTables) == 0 && st.partsSent == 0 {
			return nil
		}
		return st.deliver(ctx, true, LSN(c.TransactionEndLSN), c.CommitTime.UTC())
	case 'R':
		msg, err := pglogrepl.Parse(data)
		if err != nil {
			return &cdc.Error{Op: "stream", Err: fmt.Errorf("parse relation: %w", err)}
		}
		return st.relation(ctx, msg.(*pglogrepl.RelationMessage))
	case 'T':
		msg, err := pglogrepl.Parse(data)
		if err != nil {
			return &cdc.Error{Op: "stream", Err: fmt.Errorf("parse truncate: %w", err)}
		}
		for _, id := range msg.(*pglogrepl.TruncateMessage).RelationIDs {
			rel, ok := st.rels[id]
			if !ok {
				return &cdc.Error{Op: "stream", Err: fmt.Errorf("truncate of relation %d that was never described", id)}
			}
			if rel.def == nil {
				continue
			}
			if err := st.add(ctx, cdc.Change{Table: rel.def.table.Name, Op: cdc.OpTruncate}, 0); err != nil {
				return err
			}
		}
		return nil
	case 'M':
		msg, err := pglogrepl.Parse(data)
		if err != nil {
			return &cdc.Error{Op: "stream", Err: fmt.Errorf("parse logical message: %w", err)}
		}
		m := msg.(*pglogrepl.LogicalDecodingMessage)
		if m.Transactional && st.inTx && m.Prefix == OriginMessagePrefix {
			st.origin, st.batch = splitOriginMessage(string(m.Content))
		}
		return nil
	case 'O':
		msg, err := pglogrepl.Parse(data)
		if err != nil {
			return &cdc.Error{Op: "stream", Err: fmt.Errorf("parse origin: %w", err)}
		}
		if name, ok := strings.CutPrefix(msg.(*pglogrepl.OriginMessage).Name, originNamePrefix); ok && st.origin == "" {
			st.origin = name
		}
		return nil
	case 'Y':
		return nil
	}
	return &cdc.Error{Op: "stream", Err: fmt.Errorf("unexpected pgoutput message %q", data[0])}
}

func (st *streamer) row(ctx context.Context, data []byte) error {
	m, err := parseRowMessage(data)
	if err != nil {
		return &cdc.Error{Op: "stream", Err: err}
	}
	rel, ok := st.rels[m.relID]
	if !ok {
		return &cdc.Error{Op: "stream", Err: fmt.Errorf("row of relation %d that was never described", m.relID)}
	}
	if rel.def == nil {
		return nil
	}
	ch := cdc.Change{Table: rel.def.table.Name, Op: m.op}
	if m.newTuple != nil {
		if ch.After, err = st.dec.tuple(rel.def, m.newTuple); err != nil {
			return &cdc.Error{Op: "stream", Err: err}
		}
	}
	if m.oldTuple != nil {
		old, err := st.dec.tuple(rel.def, m.oldTuple)
		if err != nil {
			return &cdc.Error{Op: "stream", Err: err}
		}
		if m.oldKind == 'K' {
			key := make(cdc.Row, len(rel.keyIdx))
			for i, c := range rel.keyIdx {
				key[i] = old[c]
			}
			old = key
		}
		ch.Before = old
	}
	return st.add(ctx, ch, len(data))
}

// add appends a change to the current part, first delivering the part when it is
// full; the final part is delivered at commit, so it is never empty.
func (st *streamer) add(ctx context.Context, ch cdc.Change, size int) error {
	if !st.inTx {
		return &cdc.Error{Op: "stream", Err: errors.New("pgoutput sent a change outside a transaction")}
	}
	if n := len(st.part.Changes); n > 0 && (n >= st.s.cfg.MaxTxChanges || st.partBytes+size > st.s.cfg.MaxTxBytes) {
		if err := st.deliver(ctx, false, 0, time.Time{}); err != nil {
			return err
		}
	}
	st.part.Changes = append(st.part.Changes, ch)
	st.partBytes += size
	return nil
}

func (st *streamer) deliver(ctx context.Context, final bool, pos LSN, commitTime time.Time) error {
	tx := st.part
	tx.Origin = st.origin
	tx.Batch = st.batch
	tx.Tables = st.pendingTables
	tx.More = !final
	if final {
		tx.Pos = pos
		tx.CommitTime = commitTime
		st.idlePending = true
		st.s.lastDelivered = pos
	}
	st.pendingTables = nil
	st.part = &cdc.Tx{Changes: make([]cdc.Change, 0, min(len(tx.Changes), st.s.cfg.MaxTxChanges))}
	st.partBytes = 0
	st.partsSent++
	return st.h.Tx(ctx, tx)
}

// relation records a Relation message. When it describes a captured table differently
// from the definition known so far (a column added, dropped or retyped, or another
// key), the table's definition is read again and announced in the next delivered part.
func (st *streamer) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	name := m.Namespace + "." + m.RelationName
	known, ok := st.s.tables[name]
	if !ok {
		for _, def := range st.s.tables {
			if def.oid == m.RelationID {
				return configError("stream", fmt.Errorf("captured table %s was renamed to %s", def.table.Name, name),
					"rename it back, or configure the new name and let the hub take a new snapshot")
			}
		}
		// A table removed from the configuration still streams until the position
		// where the publication dropped it.
		st.rels[m.RelationID] = &relation{}
		st.s.log.Debug("ignoring changes of a table that is not configured", "table", name)
		return nil
	}
	var keyIdx []int
	for i, c := range m.Columns {
		if c.Flags&1 != 0 {
			keyIdx = append(keyIdx, i)
		}
	}
	prev := st.seen[name]
	keyChanged := prev != nil && !slices.Equal(prev.keyIdx, keyIdx)
	def := known
	if keyChanged || !sameRelation(known, m) {
		nd, err := st.s.tableFromRelation(ctx, m, known, keyChanged)
		if err != nil {
			return err
		}
		if !cdc.SameColumns(&known.table, &nd.table) || !sameNullability(&known.table, &nd.table) {
			st.pendingTables = append(st.pendingTables, nd.table)
			st.s.log.Info("table definition changed", "table", name, "columns", len(nd.table.Columns))
		}
		st.s.tables[name] = nd
		def = nd
	}
	rel := &relation{def: def, keyIdx: keyIdx}
	if len(keyIdx) == 0 {
		for _, k := range def.table.PrimaryKey {
			for i, c := range def.table.Columns {
				if c.Name == k {
					rel.keyIdx = append(rel.keyIdx, i)
				}
			}
		}
	}
	st.rels[m.RelationID] = rel
	st.seen[name] = rel
	return nil
}

func sameRelation(def *tableDef, m *pglogrepl.RelationMessage) bool {
	if len(def.cols) != len(m.Columns) {
		return false
	}
	for i, c := range m.Columns {
		if c.Name != def.table.Columns[i].Name || c.DataType != def.cols[i].typOID || c.TypeModifier != def.cols[i].typMod {
			return false
		}
	}
	return true
}

func sameNullability(a, b *cdc.Table) bool {
	for i := range a.Columns {
		if a.Columns[i].Nullable != b.Columns[i].Nullable {
			return false
		}
	}
	return true
}

// tableFromRelation builds a table definition from a Relation message: its columns
// and types as the stream sends them, source type names and nullability from the
// catalog, and the primary key kept from the known definition unless the key changed.
func (s *Source) tableFromRelation(ctx context.Context, m *pglogrepl.RelationMessage, known *tableDef, keyChanged bool) (*tableDef, error) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if s.meta == nil {
		return nil, errors.New("postgres: source closed")
	}
	def := &tableDef{oid: m.RelationID, table: cdc.Table{Name: known.table.Name}}
	oids := make([]int64, len(m.Columns))
	mods := make([]int32, len(m.Columns))
	names := make([]string, len(m.Columns))
	for i, c := range m.Columns {
		oids[i], mods[i], names[i] = int64(c.DataType), c.TypeModifier, c.Name
		def.cols = append(def.cols, colDef{typOID: c.DataType, typMod: c.TypeModifier})
		def.table.Columns = append(def.table.Columns, cdc.Column{Name: c.Name})
	}
	rows, err := s.meta.Query(ctx, `SELECT format_type(t.typ::oid, t.mod), NOT coalesce(a.attnotnull, false),
			CASE WHEN a.atthasmissing AND a.attndims = 0
				THEN (SELECT x FROM unnest(a.attmissingval::text::text[]) x LIMIT 1) END
		FROM unnest($2::int8[], $3::int4[], $4::text[]) WITH ORDINALITY AS t(typ, mod, name, ord)
		LEFT JOIN pg_attribute a ON a.attrelid = $1 AND a.attname = t.name AND NOT a.attisdropped
		ORDER BY t.ord`, m.RelationID, oids, mods, names)
	if err != nil {
		return nil, classify("read changed table", err)
	}
	i := 0
	for rows.Next() {
		if i >= len(def.table.Columns) {
			break
		}
		if err := rows.Scan(&def.table.Columns[i].SourceType, &def.table.Columns[i].Nullable, &def.cols[i].missing); err != nil {
			rows.Close()
			return nil, classify("read changed table", err)
		}
		if old, ok := known.table.Column(def.table.Columns[i].Name); ok {
			// Only a column added now gets its existing rows' value from the catalog;
			// a known column keeps what was announced when it was added.
			def.cols[i].missing = nil
			def.table.Columns[i].Default = old.Default
		}
		i++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify("read changed table", err)
	}
	if err := s.resolveColumns(ctx, s.meta, def); err != nil {
		return nil, err
	}
	pk := known.table.PrimaryKey
	if keyChanged || !hasColumns(def, pk) {
		if pk, err = primaryKey(ctx, s.meta, m.RelationID); err != nil {
			return nil, classify("read changed table", err)
		}
		if !hasColumns(def, pk) {
			pk = nil
			for _, c := range m.Columns {
				if c.Flags&1 != 0 {
					pk = append(pk, c.Name)
				}
			}
		}
	}
	def.table.PrimaryKey = slices.Clone(pk)
	if err := def.table.Validate(); err != nil {
		return nil, configError("read changed table", err, fmt.Sprintf("give %s a primary key again", ident(def.table.Name)))
	}
	return def, nil
}

func hasColumns(def *tableDef, names []string) bool {
	if len(names) == 0 {
		return false
	}
	for _, n := range names {
		if _, ok := def.table.Column(n); !ok {
			return false
		}
	}
	return true
}
