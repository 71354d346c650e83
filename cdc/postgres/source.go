package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/synchub/synchub/cdc"
)

var (
	_ cdc.Source = (*Source)(nil)
	_ cdc.Lagger = (*Source)(nil)
)

// minServerVersion is the oldest PostgreSQL whose pgoutput supports logical messages.
const minServerVersion = 140000

// Source captures committed transactions from PostgreSQL through a logical replication
// slot with the pgoutput plugin. It follows the cdc.Source contract: Start, then
// Snapshot when Start asks for one, then Stream, with Ack from any goroutine, and Close.
// LagBytes may be called from any goroutine.
type Source struct {
	cfg Config
	log *slog.Logger

	// metaMu guards meta, which serves catalog queries and LagBytes.
	metaMu sync.Mutex
	meta   *pgx.Conn

	repl *pgconn.PgConn // the replication connection
	snap *pgx.Conn      // holds the exported snapshot's transaction until Snapshot ends

	types    map[uint32]*pgType
	tables   map[string]*tableDef
	order    []string // configured table order
	startLSN LSN
	needSnap bool
	streamed bool
	version  string

	acked atomic.Uint64
	// lastDelivered and idleEnd are written by Stream and read by Close.
	lastDelivered LSN // position of the last whole transaction delivered
	idleEnd       LSN // server WAL end reported by a keepalive between transactions
}

// New returns a Source for cfg; it does not connect until Start.
func New(cfg Config, log *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, log: log.With("source", "postgres", "slot", cfg.Slot)}, nil
}

// sessionParams make PostgreSQL print values in the forms the decoder expects, on the
// snapshot connection and on the replication connection alike.
var sessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, YMD",
	"IntervalStyle":      "iso_8601",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
}

func (s *Source) connect(ctx context.Context) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(s.cfg.DSN)
	if err != nil {
		return nil, configError("connect", err, "correct the DSN")
	}
	cc.ConnectTimeout = s.cfg.ConnectTimeout
	for k, v := range sessionParams {
		cc.RuntimeParams[k] = v
	}
	cc.BuildFrontend = bufferedFrontend
	cc.RuntimeParams["statement_timeout"] = "0"
	cc.RuntimeParams["idle_in_transaction_session_timeout"] = "0"
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = "synchub"
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, classify("connect", err)
	}
	return conn, nil
}

func (s *Source) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cc, err := pgconn.ParseConfig(s.cfg.DSN)
	if err != nil {
		return nil, configError("connect for replication", err, "correct the DSN")
	}
	cc.ConnectTimeout = s.cfg.ConnectTimeout
	for k, v := range sessionParams {
		cc.RuntimeParams[k] = v
	}
	cc.RuntimeParams["replication"] = "database"
	cc.BuildFrontend = bufferedFrontend
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = "synchub"
	}
	conn, err := pgconn.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, classify("connect for replication", err)
	}
	return conn, nil
}

// readBuffer is the read buffer of the snapshot and replication connections: streams
// of many small messages then cost one read system call per 256 KiB instead of one
// per 8 KiB.
const readBuffer = 256 << 10

func bufferedFrontend(r io.Reader, w io.Writer) *pgproto3.Frontend {
	return pgproto3.NewFrontend(bufio.NewReaderSize(r, readBuffer), w)
}

// ParsePosition parses an LSN's text form; the empty string is the zero position.
func (s *Source) ParsePosition(text string) (cdc.Position, error) {
	if text == "" {
		return LSN(0), nil
	}
	l, err := ParseLSN(text)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func positionLSN(p cdc.Position) (LSN, error) {
	switch v := p.(type) {
	case nil:
		return 0, nil
	case LSN:
		return v, nil
	case *LSN:
		if v == nil {
			return 0, nil
		}
		return *v, nil
	}
	if p.IsZero() {
		return 0, nil
	}
	return ParseLSN(p.String())
}

// Start connects, checks the prerequisites, makes the publication match the
// configured tables and either resumes the slot at from or recreates it with an
// exported snapshot (NeedSnapshot). See cdc.Source.
func (s *Source) Start(ctx context.Context, from cdc.Position) (info *cdc.StartInfo, err error) {
	if s.meta != nil || s.repl != nil {
		return nil, errors.New("postgres: Start called again without Close")
	}
	fromLSN, err := positionLSN(from)
	if err != nil {
		return nil, &cdc.Error{Op: "start", Err: fmt.Errorf("position %q is not an LSN: %w", from.String(), err)}
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.types = builtinTypes()
	s.tables = make(map[string]*tableDef, len(s.cfg.Tables))
	s.order = s.cfg.Tables
	s.needSnap, s.streamed, s.startLSN = false, false, 0

	meta, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	// Start runs its catalog queries on meta while holding metaMu, so a LagBytes from
	// another goroutine waits instead of using the connection at the same time. This
	// unlock runs before the deferred Close above, which takes metaMu too.
	s.metaMu.Lock()
	s.meta = meta
	defer s.metaMu.Unlock()

	version, err := s.checkServer(ctx, meta)
	if err != nil {
		return nil, err
	}
	s.version = version
	for _, name := range s.cfg.Tables {
		def, err := s.loadTable(ctx, meta, name)
		if err != nil {
			return nil, err
		}
		s.tables[name] = def
	}
	added, err := s.ensurePublication(ctx, meta, fromLSN == 0)
	if err != nil {
		return nil, err
	}
	slot, err := s.slotState(ctx, meta)
	if err != nil {
		return nil, err
	}

	info = &cdc.StartInfo{}
	resume := false
	if fromLSN != 0 {
		var lost string
		switch {
		case !slot.exists:
			lost = "replication slot " + s.cfg.Slot + " does not exist"
		case fromLSN > slot.walEnd:
			lost = fmt.Sprintf("the position is ahead of the server's WAL (%s): the change log belongs to another server or the server was restored from a backup", slot.walEnd)
		case slot.walStatus == "lost":
			lost = "the WAL the slot needs was removed (max_slot_wal_keep_size)"
		case len(added) > 0:
			lost = "tables were added to the publication and need a snapshot: " + strings.Join(added, ", ")
		default:
			resume = true
		}
		if !resume {
			// Nothing is created here: the consumer first makes the loss durable
			// (forgets the position), then starts again without one. A new slot made
			// now would be resumed from if the consumer died before that.
			s.log.Warn("cannot resume from the last position; the change log must be reset and a new snapshot taken", "position", fromLSN.String(), "reason", lost)
			info.PositionLost = true
			for _, name := range s.order {
				info.Tables = append(info.Tables, s.tables[name].table)
			}
			info.Describe = fmt.Sprintf("PostgreSQL %s, slot %s, publication %s", s.version, s.cfg.Slot, s.cfg.Publication)
			return info, nil
		}
	}
	if slot.exists && slot.active {
		if err := s.waitSlotReleased(ctx, meta); err != nil {
			return nil, err
		}
	}
	repl, err := s.connectReplication(ctx)
	if err != nil {
		return nil, err
	}
	s.repl = repl

	if resume {
		s.startLSN = fromLSN
		s.acked.Store(uint64(fromLSN))
		s.lastDelivered, s.idleEnd = fromLSN, 0
		s.log.Info("resuming replication", "position", fromLSN.String(), "slot_confirmed", slot.confirmed.String())
	} else {
		if slot.exists {
			if err := s.dropSlot(ctx, meta); err != nil {
				return nil, err
			}
		}
		if err := s.createSlotAndSnapshot(ctx); err != nil {
			return nil, err
		}
		s.acked.Store(0)
		s.lastDelivered, s.idleEnd = 0, 0
		s.needSnap = true
	}
	info.NeedSnapshot = s.needSnap
	for _, name := range s.order {
		info.Tables = append(info.Tables, s.tables[name].table)
	}
	info.Describe = fmt.Sprintf("PostgreSQL %s, slot %s, publication %s", s.version, s.cfg.Slot, s.cfg.Publication)
	return info, nil
}

// checkServer verifies the version, wal_level and the role's REPLICATION attribute.
func (s *Source) checkServer(ctx context.Context, conn *pgx.Conn) (string, error) {
	var (
		versionNum, version, walLevel, user string
		canReplicate                        bool
	)
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num'), current_setting('server_version'),
			current_setting('wal_level'), current_user::text,
			coalesce((SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), false)`).
		Scan(&versionNum, &version, &walLevel, &user, &canReplicate)
	if err != nil {
		return "", classify("check server", err)
	}
	if f := strings.Fields(version); len(f) > 0 {
		version = f[0]
	}
	if n, _ := strconv.Atoi(versionNum); n < minServerVersion {
		return "", configError("check server", fmt.Errorf("PostgreSQL %s is too old: logical replication with pgoutput messages needs 14 or newer", version),
			"upgrade PostgreSQL to version 14 or newer")
	}
	if walLevel != "logical" {
		return "", configError("check server", fmt.Errorf("wal_level is %q, but logical replication needs wal_level = logical", walLevel),
			"run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")
	}
	if !canReplicate {
		return "", configError("check server", fmt.Errorf("role %q lacks the REPLICATION attribute needed to stream changes", user),
			fmt.Sprintf("ALTER ROLE %s REPLICATION", pgx.Identifier{user}.Sanitize()))
	}
	return version, nil
}

// Ack records pos as durably committed by the consumer; the next status update tells
// PostgreSQL it may release WAL up to it. It never blocks and ignores positions that
// are not LSNs or not after the last acknowledged one.
func (s *Source) Ack(pos cdc.Position) {
	l, err := positionLSN(pos)
	if err != nil {
		s.log.Warn("ignoring acknowledgement of a position that is not an LSN", "position", fmt.Sprint(pos))
		return
	}
	for {
		cur := s.acked.Load()
		if uint64(l) <= cur || s.acked.CompareAndSwap(cur, uint64(l)) {
			return
		}
	}
}

// LagBytes is how many bytes of WAL the server has written beyond the slot's
// confirmed position (pg_current_wal_lsn() - confirmed_flush_lsn).
func (s *Source) LagBytes(ctx context.Context) (int64, error) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if s.meta == nil {
		return 0, errors.New("postgres: LagBytes called while the source is not started")
	}
	var lag *int64
	err := s.meta.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&lag)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, &cdc.Error{Op: "measure lag", Err: fmt.Errorf("replication slot %s does not exist", s.cfg.Slot), Transient: true}
	}
	if err != nil {
		return 0, classify("measure lag", err)
	}
	if lag == nil {
		return 0, nil
	}
	return *lag, nil
}

// Close sends a last status update with the acknowledged position and closes both
// connections. It is idempotent and safe after errors.
func (s *Source) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if s.snap != nil {
		if err := s.snap.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close snapshot connection: %w", err))
		}
		s.snap = nil
	}
	if s.repl != nil {
		if s.streamed && !s.repl.IsClosed() {
			if a := s.confirmedPosition(); a != 0 {
				if err := s.sendStatus(ctx, a); err != nil {
					s.log.Debug("last status update failed", "err", err)
				}
			}
		}
		if err := s.repl.Close(ctx); err != nil && !s.repl.IsClosed() {
			errs = append(errs, fmt.Errorf("close replication connection: %w", err))
		}
		s.repl = nil
	}
	s.metaMu.Lock()
	if s.meta != nil {
		if err := s.meta.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close connection: %w", err))
		}
		s.meta = nil
	}
	s.metaMu.Unlock()
	return errors.Join(errs...)
}

// confirmedPosition is the position reported to PostgreSQL as flushed: the last
// acknowledged one, or, when every delivered transaction has been acknowledged, the
// WAL end of the last keepalive received between transactions. Everything before that
// keepalive was sent ahead of it, so nothing the consumer has not committed is
// confirmed; without it an idle slot would pin WAL written by other databases, and a
// fast shutdown of PostgreSQL would wait for wal_sender_timeout.
func (s *Source) confirmedPosition() LSN {
	a := LSN(s.acked.Load())
	if s.lastDelivered <= a && s.idleEnd > a {
		return s.idleEnd
	}
	return a
}

func (s *Source) sendStatus(ctx context.Context, a LSN) error {
	return pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(a),
		WALFlushPosition: pglogrepl.LSN(a),
		WALApplyPosition: pglogrepl.LSN(a),
	})
}
