package mysql

import (
	"fmt"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/google/uuid"
	"github.com/synchub/synchub/cdc"
)

// Flavour is the kind of server a position belongs to. MySQL and MariaDB write
// different GTIDs, so a position of one cannot be resumed on the other.
type Flavour string

// The flavours the source understands.
const (
	FlavourMariaDB Flavour = "mariadb"
	FlavourMySQL   Flavour = "mysql"
)

// Position is a point in the binary log: the file and the byte offset just after a
// transaction's last event, plus, when the server writes GTIDs, the GTID set of every
// transaction up to and including it.
//
// Its text form is
//
//	FLAVOUR:FILE:OFFSET[@GTIDSET]
//
// for example "mariadb:binlog.000003:1234@0-1-42,1-2-7" (MariaDB: one
// domain-server-sequence per replication domain) or
// "mysql:binlog.000012:157@3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5" (MySQL: uuid
// with intervals). The GTID set is written in the server's canonical form (domains or
// uuids sorted). A stream resumes by GTID when the position has one, else by file
// and offset.
type Position struct {
	Flavour Flavour
	File    string
	Offset  uint32
	// GTID is the canonical text of the GTID set; empty when the server writes none.
	GTID string
}

var _ cdc.Position = Position{}

// String returns the canonical text form; the zero Position is "".
func (p Position) String() string {
	if p.IsZero() {
		return ""
	}
	s := string(p.Flavour) + ":" + p.File + ":" + strconv.FormatUint(uint64(p.Offset), 10)
	if p.GTID != "" {
		s += "@" + p.GTID
	}
	return s
}

// IsZero reports whether p is the "no position yet" value.
func (p Position) IsZero() bool { return p.File == "" && p.GTID == "" }

// ParsePosition parses Position's text form; "" is the zero Position. It never panics.
func ParsePosition(s string) (Position, error) {
	if s == "" {
		return Position{}, nil
	}
	head, gtid, hasGTID := strings.Cut(s, "@")
	parts := strings.SplitN(head, ":", 3)
	if len(parts) != 3 {
		return Position{}, fmt.Errorf("mysql position %q: want FLAVOUR:FILE:OFFSET[@GTIDSET], e.g. mariadb:binlog.000001:4", truncateText(s))
	}
	p := Position{Flavour: Flavour(parts[0]), File: parts[1]}
	if p.Flavour != FlavourMariaDB && p.Flavour != FlavourMySQL {
		return Position{}, fmt.Errorf("mysql position %q: flavour %q is neither mariadb nor mysql", truncateText(s), truncateText(parts[0]))
	}
	if p.File == "" || strings.ContainsAny(p.File, "/\\ \t\n") {
		return Position{}, fmt.Errorf("mysql position %q: binlog file name %q is empty or not a plain file name", truncateText(s), truncateText(p.File))
	}
	off, err := strconv.ParseUint(parts[2], 10, 32)
	if err != nil {
		return Position{}, fmt.Errorf("mysql position %q: offset %q is not a 32-bit unsigned number", truncateText(s), truncateText(parts[2]))
	}
	p.Offset = uint32(off)
	if hasGTID {
		if gtid == "" {
			return Position{}, fmt.Errorf("mysql position %q: empty GTID set after @", truncateText(s))
		}
		set, err := parseGTIDSet(p.Flavour, gtid)
		if err != nil {
			return Position{}, fmt.Errorf("mysql position %q: %w", truncateText(s), err)
		}
		p.GTID = set.String()
		if p.GTID != gtid {
			return Position{}, fmt.Errorf("mysql position %q: GTID set is not in canonical form (want %q)", truncateText(s), truncateText(p.GTID))
		}
	}
	return p, nil
}

// Compare orders two positions of one server by file and offset: -1, 0 or +1.
func (p Position) Compare(o Position) int {
	if c := compareBinlogNames(p.File, o.File); c != 0 {
		return c
	}
	switch {
	case p.Offset < o.Offset:
		return -1
	case p.Offset > o.Offset:
		return 1
	}
	return 0
}

// compareBinlogNames orders binlog files by their numeric suffix, then by name.
func compareBinlogNames(a, b string) int {
	if a == b {
		return 0
	}
	ab, an, aok := splitBinlogName(a)
	bb, bn, bok := splitBinlogName(b)
	if aok && bok && ab == bb {
		switch {
		case an < bn:
			return -1
		case an > bn:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}

func splitBinlogName(name string) (base string, n uint64, ok bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return name, 0, false
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil {
		return name, 0, false
	}
	return name[:i], n, true
}

// parseGTIDSet parses a GTID set of the flavour.
func parseGTIDSet(f Flavour, s string) (gomysql.GTIDSet, error) {
	switch f {
	case FlavourMariaDB:
		if err := checkMariaDBGTIDText(s); err != nil {
			return nil, err
		}
		set, err := gomysql.ParseMariadbGTIDSet(s)
		if err != nil {
			return nil, fmt.Errorf("invalid MariaDB GTID set %q: %v", truncateText(s), err)
		}
		return set, nil
	case FlavourMySQL:
		set, err := parseMySQLGTIDSet(s)
		if err != nil {
			return nil, err
		}
		return set, nil
	}
	return nil, fmt.Errorf("unknown flavour %q", f)
}

// checkMariaDBGTIDText checks "domain-server-seq[,…]" strictly: go-mysql's parser
// accepts some malformed text.
func checkMariaDBGTIDText(s string) error {
	if s == "" {
		return nil
	}
	seen := map[string]bool{}
	for _, g := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(g), "-")
		if len(f) != 3 {
			return fmt.Errorf("invalid MariaDB GTID %q: want domain-server-sequence", truncateText(g))
		}
		for i, bits := range []int{32, 32, 64} {
			if _, err := strconv.ParseUint(f[i], 10, bits); err != nil {
				return fmt.Errorf("invalid MariaDB GTID %q: %q is not a number", truncateText(g), truncateText(f[i]))
			}
		}
		if seen[f[0]] {
			return fmt.Errorf("invalid MariaDB GTID set %q: domain %s appears twice", truncateText(s), f[0])
		}
		seen[f[0]] = true
	}
	return nil
}

// parseMySQLGTIDSet parses "uuid:1-5:7,uuid2:1-3" and rejects what go-mysql's parser
// would panic on or silently misread.
func parseMySQLGTIDSet(s string) (*gomysql.MysqlGTIDSet, error) {
	for _, part := range strings.Split(s, ",") {
		fields := strings.Split(strings.TrimSpace(part), ":")
		if len(fields) < 2 || len(fields[0]) != 36 {
			return nil, fmt.Errorf("invalid MySQL GTID set %q: want uuid:interval[:interval…]", truncateText(s))
		}
		for _, iv := range fields[1:] {
			if iv == "" {
				return nil, fmt.Errorf("invalid MySQL GTID set %q: empty interval", truncateText(s))
			}
			if iv[0] < '0' || iv[0] > '9' {
				// A tag (MySQL 8.4): letters, digits and _; at most 32 characters.
				if len(iv) > 32 || strings.Trim(iv, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
					return nil, fmt.Errorf("invalid MySQL GTID set %q: %q is neither an interval nor a tag", truncateText(s), truncateText(iv))
				}
				continue
			}
			lo, hi, isRange := strings.Cut(iv, "-")
			a, err1 := strconv.ParseInt(lo, 10, 64)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.ParseInt(hi, 10, 64)
			}
			if err1 != nil || err2 != nil || a < 1 || b < a || b == 1<<63-1 {
				return nil, fmt.Errorf("invalid MySQL GTID set %q: bad interval %q", truncateText(s), truncateText(iv))
			}
		}
	}
	set, err := gomysql.ParseMysqlGTIDSet(s)
	if err != nil {
		return nil, fmt.Errorf("invalid MySQL GTID set %q: %v", truncateText(s), err)
	}
	return set.(*gomysql.MysqlGTIDSet), nil
}

func truncateText(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// gtidTracker follows the GTID set along the stream: a transaction's GTID event sets
// the pending GTID, its commit adds it to the set.
type gtidTracker struct {
	flavour Flavour
	maria   *gomysql.MariadbGTIDSet
	mysql   *gomysql.MysqlGTIDSet
	pending func() error
}

func newGTIDTracker(f Flavour, start string) (*gtidTracker, error) {
	t := &gtidTracker{flavour: f}
	switch f {
	case FlavourMariaDB:
		set, err := parseGTIDSet(f, start)
		if err != nil {
			return nil, err
		}
		t.maria = set.(*gomysql.MariadbGTIDSet)
	case FlavourMySQL:
		if start == "" {
			set := gomysql.NewMysqlGTIDSet()
			t.mysql = &set
			return t, nil
		}
		set, err := parseMySQLGTIDSet(start)
		if err != nil {
			return nil, err
		}
		t.mysql = set
	default:
		return nil, fmt.Errorf("unknown flavour %q", f)
	}
	return t, nil
}

// beginMariaDB records the GTID of the transaction that starts.
func (t *gtidTracker) beginMariaDB(g gomysql.MariadbGTID) {
	t.pending = func() error {
		if t.maria == nil {
			return nil
		}
		return t.maria.AddSet(&g)
	}
}

// beginMySQL records the GTID (server uuid, optional tag and number) of the
// transaction that starts; an anonymous transaction (GNO 0) has none.
func (t *gtidTracker) beginMySQL(sid []byte, tag gomysql.Tag, gno int64) error {
	if gno <= 0 {
		t.pending = nil
		return nil
	}
	if len(sid) != 16 {
		return fmt.Errorf("GTID event has a %d-byte server uuid, want 16", len(sid))
	}
	u, err := uuid.FromBytes(sid)
	if err != nil {
		return fmt.Errorf("GTID event server uuid: %w", err)
	}
	t.pending = func() error {
		if t.mysql == nil {
			return nil
		}
		t.mysql.AddGTIDWithTag(u, tag, gno)
		return nil
	}
	return nil
}

// commit adds the pending GTID to the set.
func (t *gtidTracker) commit() error {
	p := t.pending
	t.pending = nil
	if p == nil {
		return nil
	}
	return p()
}

// String is the set's canonical text.
func (t *gtidTracker) String() string {
	switch {
	case t.maria != nil:
		return t.maria.String()
	case t.mysql != nil:
		return t.mysql.String()
	}
	return ""
}
