package mysql

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/synchub/synchub/cdc"
)

// Config configures a MySQL/MariaDB Source.
type Config struct {
	// DSN says where the server is and who connects, in either form:
	//
	//	mysql://user:password@host:port/database   (URL; user and password URL-escaped)
	//	user:password@host:port/database           (go-mysql driver form)
	//
	// The port defaults to 3306; the database is optional (tables are qualified). The
	// user needs REPLICATION SLAVE and REPLICATION CLIENT (MariaDB: BINLOG MONITOR)
	// on *.*, and SELECT on the captured tables.
	DSN string
	// Tables are the captured tables as "database.table". Every table needs a primary
	// key.
	Tables []string
	// ServerID is the replication client's server id; it must differ from the
	// server's and from every other replica's. 0 derives a stable one from DSN and
	// Tables in the range 0x5e000000–0x5effffff.
	ServerID uint32
	// SnapshotPageRows is how many rows each snapshot query reads (keyset pages by
	// primary key) and each emit call carries.
	SnapshotPageRows int
	// MaxTxChanges bounds the changes in one delivered Tx; a larger transaction arrives
	// in parts (Tx.More).
	MaxTxChanges int
	// OriginDatabase holds the origin table (see OriginTable) the Applier writes;
	// empty means the database of the first captured table.
	OriginDatabase string
	// HeartbeatPeriod is how often the server sends a heartbeat on an idle stream.
	HeartbeatPeriod time.Duration
	// ReadTimeout is how long the stream waits for any event, heartbeats included,
	// before it treats the connection as dead; it must exceed HeartbeatPeriod.
	ReadTimeout time.Duration
	// IdleWait is how long the stream waits for more events after a delivery before it
	// calls Handler.Idle.
	IdleWait time.Duration
	// ConnectTimeout bounds each connection attempt.
	ConnectTimeout time.Duration
}

// DefaultConfig returns a Config with every tunable set; DSN and Tables remain empty.
func DefaultConfig() Config {
	return Config{
		SnapshotPageRows: 10000,
		MaxTxChanges:     5000,
		HeartbeatPeriod:  2 * time.Second,
		ReadTimeout:      10 * time.Second,
		IdleWait:         3 * time.Millisecond,
		ConnectTimeout:   10 * time.Second,
	}
}

// connParams is a parsed DSN.
type connParams struct {
	User, Password string
	Addr           string // host:port
	Database       string
}

// parseDSN reads either DSN form (see Config.DSN).
func parseDSN(dsn string) (connParams, error) {
	var p connParams
	if strings.HasPrefix(dsn, "mysql://") || strings.HasPrefix(dsn, "mariadb://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return p, fmt.Errorf("not a valid URL: %v", err)
		}
		if u.User != nil {
			p.User = u.User.Username()
			p.Password, _ = u.User.Password()
		}
		p.Addr = u.Host
		p.Database = strings.TrimPrefix(u.Path, "/")
		if len(u.Query()) > 0 {
			return p, fmt.Errorf("URL parameters are not supported (%s): remove them", u.RawQuery)
		}
	} else {
		at := strings.LastIndexByte(dsn, '@')
		if at < 0 {
			return p, errors.New("want user[:password]@host[:port][/database] or mysql://user:password@host:port/database")
		}
		p.User, p.Password, _ = strings.Cut(dsn[:at], ":")
		rest := dsn[at+1:]
		rest = strings.TrimSuffix(strings.TrimPrefix(rest, "tcp("), ")")
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			p.Addr, p.Database = rest[:i], rest[i+1:]
		} else {
			p.Addr = rest
		}
		p.Addr = strings.TrimSuffix(strings.TrimPrefix(p.Addr, "tcp("), ")")
		if i := strings.IndexByte(p.Database, '?'); i >= 0 {
			return p, fmt.Errorf("DSN parameters are not supported (%s): remove them", p.Database[i+1:])
		}
	}
	if p.User == "" {
		return p, errors.New("no user: write user@host")
	}
	if p.Addr == "" {
		return p, errors.New("no host")
	}
	if _, _, err := net.SplitHostPort(p.Addr); err != nil {
		p.Addr = net.JoinHostPort(strings.Trim(p.Addr, "[]"), "3306")
	}
	return p, nil
}

// Validate reports every configuration problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("mysql: DSN is empty: set it like mysql://user:password@host:3306/db"))
	} else if _, err := parseDSN(c.DSN); err != nil {
		errs = append(errs, fmt.Errorf("mysql: DSN is invalid: %v (write it like mysql://user:password@host:3306/db)", err))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("mysql: no tables configured: list them as database.table, e.g. shop.orders"))
	}
	seen := make(map[string]bool, len(c.Tables))
	for _, t := range c.Tables {
		db, name := cdc.SplitTableName(t)
		if db == "" || name == "" || strings.ContainsAny(name, ".`") || strings.Contains(db, "`") {
			errs = append(errs, fmt.Errorf("mysql: table %q is not database-qualified: write it as database.table, e.g. shop.%s", t, name))
			continue
		}
		if seen[t] {
			errs = append(errs, fmt.Errorf("mysql: table %q is listed twice", t))
		}
		seen[t] = true
	}
	if strings.Contains(c.OriginDatabase, "`") {
		errs = append(errs, fmt.Errorf("mysql: OriginDatabase %q contains a backquote", c.OriginDatabase))
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"SnapshotPageRows", int64(c.SnapshotPageRows)},
		{"MaxTxChanges", int64(c.MaxTxChanges)},
		{"HeartbeatPeriod", int64(c.HeartbeatPeriod)},
		{"ReadTimeout", int64(c.ReadTimeout)},
		{"IdleWait", int64(c.IdleWait)},
		{"ConnectTimeout", int64(c.ConnectTimeout)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			errs = append(errs, fmt.Errorf("mysql: %s must be positive (start from DefaultConfig())", p.name))
		}
	}
	if c.HeartbeatPeriod > 0 && c.ReadTimeout > 0 && c.ReadTimeout <= c.HeartbeatPeriod {
		errs = append(errs, fmt.Errorf("mysql: ReadTimeout (%v) must exceed HeartbeatPeriod (%v), or an idle stream is taken for a dead one", c.ReadTimeout, c.HeartbeatPeriod))
	}
	return errors.Join(errs...)
}

// originDatabase is the database of the origin table.
func (c Config) originDatabase() string {
	if c.OriginDatabase != "" {
		return c.OriginDatabase
	}
	if len(c.Tables) > 0 {
		db, _ := cdc.SplitTableName(c.Tables[0])
		return db
	}
	return ""
}

// serverID is the configured replication client id, or one derived from the DSN's
// address and the tables, stable across restarts.
func (c Config) serverID() uint32 {
	if c.ServerID != 0 {
		return c.ServerID
	}
	h := fnv.New32a()
	p, _ := parseDSN(c.DSN)
	h.Write([]byte(p.Addr + "/" + p.User))
	for _, t := range c.Tables {
		h.Write([]byte{0})
		h.Write([]byte(t))
	}
	return 0x5e000000 | (h.Sum32() & 0x00ffffff)
}
