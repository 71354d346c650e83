package mysql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/synchub/synchub/cdc"
)

var (
	_ cdc.Source = (*Source)(nil)
	_ cdc.Lagger = (*Source)(nil)
)

// Source captures committed transactions from MySQL 8 or MariaDB 10.5+ through the
// row-based binary log. It follows the cdc.Source contract: Start, then Snapshot when
// Start asks for one, then Stream, with Ack from any goroutine, and Close. LagBytes may
// be called from any goroutine.
type Source struct {
	cfg  Config
	conn connParams
	log  *slog.Logger

	// metaMu guards meta, which serves catalog queries and LagBytes.
	metaMu sync.Mutex
	meta   *client.Conn

	snap   *client.Conn // holds the consistent snapshot's transaction until Snapshot ends
	syncer *replication.BinlogSyncer

	flavour  Flavour
	version  string
	serverID uint32
	tables   map[string]*tableDef
	order    []string
	startPos Position
	needSnap bool
	streamed bool

	acked atomic.Pointer[Position]
	// lastDelivered is the position of the last whole transaction delivered and
	// lastSeen that of the last transaction read, delivered or not (it touched no
	// captured table). Both are written by Stream and read by LagBytes.
	lastDelivered atomic.Pointer[Position]
	lastSeen      atomic.Pointer[Position]
	// binlogConn is the binlog connection's socket, for the stream's watchdog.
	binlogConn atomic.Pointer[net.Conn]
}

// New returns a Source for cfg; it does not connect until Start.
func New(cfg Config, log *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, _ := parseDSN(cfg.DSN)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, conn: p, log: log.With("source", "mysql", "addr", p.Addr)}, nil
}

// connect opens a client connection in UTC with utf8mb4.
func (s *Source) connect(ctx context.Context) (*client.Conn, error) {
	conn, err := client.ConnectWithContext(ctx, s.conn.Addr, s.conn.User, s.conn.Password, "", s.cfg.ConnectTimeout,
		func(c *client.Conn) error { return c.SetCharset("utf8mb4") })
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, classify("connect", err)
	}
	if _, err := conn.Execute("SET SESSION time_zone = '+00:00'"); err != nil {
		conn.Close()
		return nil, classify("connect", err)
	}
	return conn, nil
}

// ParsePosition parses Position's text form; "" is the zero position.
func (s *Source) ParsePosition(text string) (cdc.Position, error) {
	p, err := ParsePosition(text)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func toPosition(p cdc.Position) (Position, error) {
	switch v := p.(type) {
	case nil:
		return Position{}, nil
	case Position:
		return v, nil
	case *Position:
		if v == nil {
			return Position{}, nil
		}
		return *v, nil
	}
	if p.IsZero() {
		return Position{}, nil
	}
	return ParsePosition(p.String())
}

// Start connects, checks the prerequisites, reads the captured tables' definitions and
// either checks that from can still be streamed from or prepares a consistent snapshot
// (NeedSnapshot). See cdc.Source.
func (s *Source) Start(ctx context.Context, from cdc.Position) (info *cdc.StartInfo, err error) {
	if s.meta != nil || s.snap != nil || s.syncer != nil {
		return nil, errors.New("mysql: Start called again without Close")
	}
	fromPos, err := toPosition(from)
	if err != nil {
		return nil, &cdc.Error{Op: "start", Err: fmt.Errorf("position %q is not a MySQL binlog position: %w", from.String(), err)}
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.needSnap, s.streamed, s.startPos = false, false, Position{}
	s.lastDelivered.Store(nil)
	s.lastSeen.Store(nil)
	s.tables = make(map[string]*tableDef, len(s.cfg.Tables))
	s.order = s.cfg.Tables

	meta, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	s.metaMu.Lock()
	s.meta = meta
	defer s.metaMu.Unlock()

	if err := s.checkServer(meta); err != nil {
		return nil, err
	}
	for _, name := range s.cfg.Tables {
		def, err := loadTable(meta, name, s.flavour == FlavourMariaDB)
		if err != nil {
			return nil, err
		}
		s.tables[name] = def
	}
	info = &cdc.StartInfo{Describe: s.describe()}
	if !fromPos.IsZero() {
		lost, err := s.checkResume(meta, fromPos)
		if err != nil {
			return nil, err
		}
		if lost != "" {
			s.log.Warn("cannot resume from the last position: the change log will be reset, a new snapshot taken and edges re-bootstrap",
				"position", fromPos.String(), "reason", lost)
			info.PositionLost = true
			info.Tables = s.tableList()
			return info, nil
		}
		s.startPos = fromPos
		s.acked.Store(&fromPos)
		s.log.Info("resuming from binlog position", "position", fromPos.String())
	} else {
		if err := s.prepareSnapshot(ctx); err != nil {
			return nil, err
		}
		s.acked.Store(nil)
		s.needSnap = true
	}
	info.NeedSnapshot = s.needSnap
	info.Tables = s.tableList()
	return info, nil
}

func (s *Source) tableList() []cdc.Table {
	out := make([]cdc.Table, 0, len(s.order))
	for _, name := range s.order {
		out = append(out, s.tables[name].table)
	}
	return out
}

func (s *Source) describe() string {
	name := "MySQL"
	if s.flavour == FlavourMariaDB {
		name = "MariaDB"
	}
	v, _, _ := strings.Cut(s.version, "-")
	return fmt.Sprintf("%s %s binlog, %d tables, replica server id %d", name, v, len(s.cfg.Tables), s.serverID)
}

// variables reads global variables by name; missing ones are absent from the map.
func variables(conn *client.Conn, names ...string) (map[string]string, error) {
	quoted := make([]string, len(names))
	args := make([]any, len(names))
	for i, n := range names {
		quoted[i] = "?"
		args[i] = n
	}
	r, err := conn.Execute("SELECT LOWER(VARIABLE_NAME), VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE LOWER(VARIABLE_NAME) IN ("+strings.Join(quoted, ",")+")", args...)
	if err != nil {
		// MySQL 8 keeps global variables in performance_schema.
		r, err = conn.Execute("SELECT LOWER(VARIABLE_NAME), VARIABLE_VALUE FROM performance_schema.global_variables WHERE LOWER(VARIABLE_NAME) IN ("+strings.Join(quoted, ",")+")", args...)
		if err != nil {
			return nil, classify("read server variables", err)
		}
	}
	out := make(map[string]string, len(names))
	for i := range r.RowNumber() {
		k, _ := r.GetString(i, 0)
		v, _ := r.GetString(i, 1)
		out[k] = v
	}
	return out, nil
}

// checkServer reads the version and flavour and checks the binlog settings and the
// user's grants.
func (s *Source) checkServer(conn *client.Conn) error {
	const op = "check server"
	r, err := conn.Execute("SELECT VERSION()")
	if err != nil {
		return classify(op, err)
	}
	s.version, _ = r.GetString(0, 0)
	s.flavour = FlavourMySQL
	if strings.Contains(strings.ToLower(s.version), "mariadb") {
		s.flavour = FlavourMariaDB
	}
	vars, err := variables(conn, "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata", "server_id")
	if err != nil {
		return err
	}
	restart := "in the server's configuration file, then restart the server"
	if v := strings.ToUpper(vars["log_bin"]); v != "ON" && v != "1" {
		return configError(op, errors.New("the binary log is off (log_bin = OFF), so there is nothing to stream"),
			"set log_bin (e.g. log_bin = binlog) and a server_id "+restart)
	}
	if v := strings.ToUpper(vars["binlog_format"]); v != "ROW" {
		return configError(op, fmt.Errorf("binlog_format is %s, but change capture needs row events (ROW)", v),
			"SET GLOBAL binlog_format = ROW; and set binlog_format = ROW "+restart+" (sessions opened before keep the old format)")
	}
	if v := strings.ToUpper(vars["binlog_row_image"]); v != "FULL" {
		return configError(op, fmt.Errorf("binlog_row_image is %s, but updates need the full row before and after (FULL)", v),
			"SET GLOBAL binlog_row_image = FULL; and set binlog_row_image = FULL "+restart)
	}
	v, ok := vars["binlog_row_metadata"]
	if !ok {
		return configError(op, fmt.Errorf("%s has no binlog_row_metadata, which the source needs to read column names from the binlog", s.version),
			"upgrade to MariaDB 10.5+ or MySQL 8.0.1+")
	}
	if strings.ToUpper(v) != "FULL" {
		return configError(op, fmt.Errorf("binlog_row_metadata is %s, but the source reads column names, keys and ENUM/SET labels from the binlog (FULL)", v),
			"SET GLOBAL binlog_row_metadata = FULL; and set binlog_row_metadata = FULL "+restart)
	}
	serverID, _ := strconv.ParseUint(vars["server_id"], 10, 32)
	s.serverID = s.cfg.serverID()
	if uint64(s.serverID) == serverID {
		s.serverID ^= 1
	}
	if err := s.checkGrants(conn); err != nil {
		return err
	}
	if _, err := conn.Execute("SHOW BINARY LOGS"); err != nil {
		if me := serverError(err); me != nil && (me.Code == errSpecificAccessDenied || me.Code == errDBAccessDenied) {
			return configError(op, fmt.Errorf("the user may not list binary logs: %v", me), grantFix)
		}
		return classify(op, err)
	}
	return nil
}

// checkGrants looks for REPLICATION SLAVE among the user's global grants. Grants that
// reach the user through roles are not expanded; when the user has roles and no direct
// grant, the check is left to the server (the binlog dump fails with a clear error).
func (s *Source) checkGrants(conn *client.Conn) error {
	r, err := conn.Execute("SHOW GRANTS")
	if err != nil {
		return classify("check grants", err)
	}
	var global []string
	roles := false
	for i := range r.RowNumber() {
		g, _ := r.GetString(i, 0)
		up := strings.ToUpper(g)
		if strings.Contains(up, " ON *.* ") {
			global = append(global, up)
		} else if !strings.Contains(up, " ON ") {
			roles = true
		}
	}
	for _, g := range global {
		if strings.Contains(g, "ALL PRIVILEGES") || strings.Contains(g, "REPLICATION SLAVE") || strings.Contains(g, "REPLICATION REPLICA") {
			return nil
		}
	}
	if roles {
		s.log.Warn("REPLICATION SLAVE not found among the user's direct grants; relying on roles", "user", s.conn.User)
		return nil
	}
	return configError("check grants", fmt.Errorf("user %s lacks REPLICATION SLAVE, which reading the binlog needs", s.conn.User), grantFix)
}

// binaryLog is one row of SHOW BINARY LOGS.
type binaryLog struct {
	name string
	size int64
}

func binaryLogs(conn *client.Conn) ([]binaryLog, error) {
	r, err := conn.Execute("SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	logs := make([]binaryLog, 0, r.RowNumber())
	for i := range r.RowNumber() {
		name, _ := r.GetString(i, 0)
		size, _ := r.GetInt(i, 1)
		logs = append(logs, binaryLog{name: name, size: size})
	}
	return logs, nil
}

// checkResume returns why streaming from p is impossible, or "".
func (s *Source) checkResume(conn *client.Conn, p Position) (string, error) {
	if p.Flavour != s.flavour {
		return fmt.Sprintf("the position was taken on %s but the server is %s", p.Flavour, s.flavour), nil
	}
	logs, err := binaryLogs(conn)
	if err != nil {
		return "", classify("list binary logs", err)
	}
	found := -1
	for i, l := range logs {
		if l.name == p.File {
			found = i
		}
	}
	if found < 0 && p.GTID == "" {
		return fmt.Sprintf("binlog file %s has been purged (the oldest is %s)", p.File, firstLogName(logs)), nil
	}
	if found >= 0 && found == len(logs)-1 && int64(p.Offset) > logs[found].size {
		return fmt.Sprintf("the position is beyond the end of %s (%d bytes): the change log belongs to another server or the server was restored from a backup", p.File, logs[found].size), nil
	}
	if p.GTID != "" {
		switch s.flavour {
		case FlavourMySQL:
			vars, err := variables(conn, "gtid_purged", "gtid_mode")
			if err != nil {
				return "", err
			}
			if strings.ToUpper(vars["gtid_mode"]) != "ON" {
				if found < 0 {
					return fmt.Sprintf("binlog file %s has been purged and GTIDs are off", p.File), nil
				}
				return "", nil
			}
			purged, err := parseMySQLGTIDSet(strings.ReplaceAll(strings.ReplaceAll(vars["gtid_purged"], "\n", ""), " ", ""))
			if err != nil && vars["gtid_purged"] != "" {
				return "", &cdc.Error{Op: "check position", Err: fmt.Errorf("read gtid_purged: %w", err)}
			}
			have, _ := parseMySQLGTIDSet(p.GTID)
			if purged != nil && have != nil && !have.Contain(purged) {
				return fmt.Sprintf("transactions after GTID set %s have been purged (gtid_purged %s)", p.GTID, purged.String()), nil
			}
		case FlavourMariaDB:
			if found < 0 {
				return fmt.Sprintf("binlog file %s, which holds the transactions after GTID %s, has been purged (the oldest is %s)", p.File, p.GTID, firstLogName(logs)), nil
			}
		}
	}
	return "", nil
}

func firstLogName(logs []binaryLog) string {
	if len(logs) == 0 {
		return "none"
	}
	return logs[0].name
}

// Ack records pos as durably committed by the consumer. MySQL does not keep binlogs for
// its replicas, so nothing is released; the position serves LagBytes. It never blocks.
func (s *Source) Ack(pos cdc.Position) {
	p, err := toPosition(pos)
	if err != nil || p.IsZero() {
		s.log.Warn("ignoring acknowledgement of a position that is not a MySQL binlog position", "position", fmt.Sprint(pos))
		return
	}
	for {
		cur := s.acked.Load()
		if cur != nil && cur.Flavour == p.Flavour && p.Compare(*cur) <= 0 {
			return
		}
		if s.acked.CompareAndSwap(cur, &p) {
			return
		}
	}
}

// LagBytes is how many binlog bytes the server has written after the acknowledged
// position: the rest of its file plus every later file (SHOW BINARY LOGS).
func (s *Source) LagBytes(ctx context.Context) (int64, error) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if s.meta == nil {
		return 0, errors.New("mysql: LagBytes called while the source is not started")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var logs []binaryLog
	err := s.withMeta(ctx, func(c *client.Conn) (err error) {
		logs, err = binaryLogs(c)
		return err
	})
	if err != nil {
		return 0, classify("measure lag", err)
	}
	return lagBytes(logs, s.lagFrom()), nil
}

// lagFrom is the position lag is measured from: the acknowledged one or, when every
// delivered transaction has been acknowledged, the end of the last transaction read
// (transactions on other tables are not delivered, so they never need an ack).
func (s *Source) lagFrom() Position {
	a := s.acked.Load()
	if a == nil {
		a = &s.startPos
	}
	d, seen := s.lastDelivered.Load(), s.lastSeen.Load()
	if seen != nil && seen.Flavour == a.Flavour && (d == nil || d.Compare(*a) <= 0) && seen.Compare(*a) > 0 {
		return *seen
	}
	return *a
}

// lagBytes sums the binlog bytes after p.
func lagBytes(logs []binaryLog, p Position) int64 {
	var lag int64
	for _, l := range logs {
		switch c := compareBinlogNames(l.name, p.File); {
		case c > 0:
			lag += l.size
		case c == 0 && l.size > int64(p.Offset):
			lag += l.size - int64(p.Offset)
		}
	}
	return lag
}

// Close stops the stream and closes every connection. It is idempotent and safe after
// errors.
func (s *Source) Close() error {
	if s.syncer != nil {
		s.syncer.Close()
		s.syncer = nil
	}
	if s.snap != nil {
		s.snap.Close()
		s.snap = nil
	}
	s.metaMu.Lock()
	if s.meta != nil {
		if err := s.meta.Close(); err != nil && !errors.Is(err, gomysql.ErrBadConn) {
			s.log.Debug("close connection", "err", err)
		}
		s.meta = nil
	}
	s.metaMu.Unlock()
	return nil
}

// reloadTable reads a table's definition again after DDL.
func (s *Source) reloadTable(name string) (*tableDef, error) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if s.meta == nil {
		return nil, errors.New("mysql: source closed")
	}
	var def *tableDef
	err := s.withMeta(context.Background(), func(c *client.Conn) (err error) {
		def, err = loadTable(c, name, s.flavour == FlavourMariaDB)
		return err
	})
	return def, err
}

// withMeta runs f on the catalog connection, reconnecting once when the connection
// itself failed (the server closes connections idle past wait_timeout). The caller
// holds metaMu.
func (s *Source) withMeta(ctx context.Context, f func(*client.Conn) error) error {
	err := f(s.meta)
	if err == nil || serverError(err) != nil || ctx.Err() != nil {
		return err
	}
	conn, cerr := s.connect(ctx)
	if cerr != nil {
		return err
	}
	s.meta.Close()
	s.meta = conn
	return f(conn)
}

// quietHandler passes go-mysql's warnings and errors on at debug level: the source
// reports failures itself.
type quietHandler struct{ h slog.Handler }

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return q.h.Enabled(ctx, slog.LevelDebug)
}

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return q.h.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(a []slog.Attr) slog.Handler { return quietHandler{q.h.WithAttrs(a)} }
func (q quietHandler) WithGroup(n string) slog.Handler      { return quietHandler{q.h.WithGroup(n)} }

// newSyncer builds the binlog client.
func (s *Source) newSyncer() (*replication.BinlogSyncer, error) {
	host, portText, _ := strings.Cut(s.conn.Addr, ":")
	if i := strings.LastIndexByte(s.conn.Addr, ':'); i >= 0 {
		host, portText = strings.Trim(s.conn.Addr[:i], "[]"), s.conn.Addr[i+1:]
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, configError("stream", fmt.Errorf("port %q is not a number", portText), "correct the DSN")
	}
	flavor := gomysql.MySQLFlavor
	if s.flavour == FlavourMariaDB {
		flavor = gomysql.MariaDBFlavor
	}
	connectTimeout := s.cfg.ConnectTimeout
	dialer := &net.Dialer{Timeout: connectTimeout}
	// Every connection go-mysql opens starts with a deadline, so the handshake and the
	// KILL connection of Close cannot hang on a server that accepts but never answers.
	// The binlog connection keeps it through registration; Stream clears it once the
	// dump has started, after which the watchdog stands guard.
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(connectTimeout))
		return c, nil
	}
	s.binlogConn.Store(nil)
	option := func(c *client.Conn) error {
		nc := c.Conn.Conn
		s.binlogConn.Store(&nc)
		return nil
	}
	return replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID:                s.serverID,
		Flavor:                  flavor,
		Host:                    host,
		Port:                    uint16(port),
		User:                    s.conn.User,
		Password:                s.conn.Password,
		Charset:                 "utf8mb4",
		TimestampStringLocation: time.UTC,
		HeartbeatPeriod:         s.cfg.HeartbeatPeriod,
		// ReadTimeout is enforced by the stream's watchdog, which counts only the time
		// spent waiting for events: a read deadline on the connection would also expire
		// while the consumer is busy and go-mysql's event buffer is full.
		DisableRetrySync: true,
		EventCacheCount:  4096,
		Logger:           slog.New(quietHandler{s.log.Handler()}).With("component", "binlog"),
		Dialer:           dial,
		Option:           option,
	}), nil
}
