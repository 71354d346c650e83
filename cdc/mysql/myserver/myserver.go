// Package myserver runs a throwaway MariaDB (or MySQL) server from the binaries installed
// on the machine, for tests and for `synchub demo --source mysql`. The server lives in a
// temporary folder, listens on a free loopback port with the settings binlog CDC needs
// (log_bin, binlog_format=ROW, binlog_row_image=FULL, binlog_row_metadata=FULL, a
// server_id), and is removed by
// Stop. It never touches the machine's own database service.
//
// When the process is root the server runs with --user=root; root connects over TCP
// without a password, as a throwaway server allows.
package myserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-mysql-org/go-mysql/driver" // database/sql driver "mysql"
)

// ErrNoBinaries means no MariaDB/MySQL server binaries were found.
var ErrNoBinaries = errors.New("MariaDB server binaries (mariadbd, mariadb-install-db) not found: install them with `apt-get install mariadb-server` (Debian/Ubuntu) or set SYNCHUB_MARIADB_BIN to their folder")

// Options tunes a throwaway server.
type Options struct {
	// Settings are extra server options without the leading "--", e.g.
	// "binlog_format=STATEMENT" (a later setting overrides an earlier one).
	Settings []string
	// ServerID is the server_id (default 1).
	ServerID int
}

// Server is a running throwaway MariaDB.
type Server struct {
	Dir  string // base folder: data/, the socket, the error log
	Port int

	daemon   string
	args     []string
	logFile  string
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
}

// FindBinaries returns the server daemon and the install-db tool: from
// $SYNCHUB_MARIADB_BIN, else from PATH and /usr/sbin, /usr/bin.
func FindBinaries() (daemon, installDB string, err error) {
	dirs := []string{"/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"}
	if d := os.Getenv("SYNCHUB_MARIADB_BIN"); d != "" {
		dirs = []string{d}
	}
	find := func(names ...string) string {
		for _, n := range names {
			if os.Getenv("SYNCHUB_MARIADB_BIN") == "" {
				if p, err := exec.LookPath(n); err == nil {
					return p
				}
			}
			for _, d := range dirs {
				p := filepath.Join(d, n)
				if st, err := os.Stat(p); err == nil && !st.IsDir() {
					return p
				}
			}
		}
		return ""
	}
	daemon = find("mariadbd", "mysqld")
	installDB = find("mariadb-install-db", "mysql_install_db")
	if daemon == "" || installDB == "" {
		return "", "", ErrNoBinaries
	}
	return daemon, installDB, nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start creates and starts a server in a new temporary folder.
func Start(ctx context.Context, opts Options) (*Server, error) {
	daemon, installDB, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	base, err := os.MkdirTemp("", "synchub-mariadb-")
	if err != nil {
		return nil, fmt.Errorf("create temp folder: %w", err)
	}
	s := &Server{Dir: base, daemon: daemon, logFile: filepath.Join(base, "error.log")}
	data := filepath.Join(base, "data")
	install := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if os.Geteuid() == 0 {
		install = append(install, "--user=root")
	}
	// mariadb-install-db fails now and then when several run at once (its bootstrap
	// server competes for resources); a second try on a clean folder succeeds.
	var out []byte
	for attempt := 1; ; attempt++ {
		out, err = exec.CommandContext(ctx, installDB, install...).CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 3 || ctx.Err() != nil {
			os.RemoveAll(base)
			return nil, fmt.Errorf("%s: %v: %s", filepath.Base(installDB), err, head(string(out), 40))
		}
		os.RemoveAll(data)
	}
	id := opts.ServerID
	if id == 0 {
		id = 1
	}
	s.args = []string{
		"--no-defaults",
		"--datadir=" + data,
		"--socket=" + filepath.Join(base, "mysqld.sock"),
		"--pid-file=" + filepath.Join(base, "mysqld.pid"),
		"--log-error=" + s.logFile,
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--log-bin=" + filepath.Join(data, "binlog"),
		"--binlog-format=ROW",
		"--binlog-row-image=FULL",
		"--binlog-row-metadata=FULL",
		"--server-id=" + strconv.Itoa(id),
		"--innodb-buffer-pool-size=128M",
		"--innodb-log-file-size=256M",
		"--innodb-flush-log-at-trx-commit=2",
		"--sync-binlog=0",
		"--max-connections=200",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_unicode_ci",
		"--max-allowed-packet=256M",
	}
	if os.Geteuid() == 0 {
		s.args = append(s.args, "--user=root")
	}
	for _, o := range opts.Settings {
		s.args = append(s.args, "--"+strings.TrimPrefix(o, "--"))
	}
	if err := s.startOnFreePort(ctx); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	return s, nil
}

func (s *Server) startOnFreePort(ctx context.Context) error {
	var err error
	for range 3 {
		if s.Port, err = FreePort(); err != nil {
			return err
		}
		if err = s.start(ctx); err == nil {
			return nil
		}
	}
	return err
}

// start launches the daemon on s.Port and waits until it accepts connections.
func (s *Server) start(ctx context.Context) error {
	args := append(append([]string(nil), s.args...), "--port="+strconv.Itoa(s.Port))
	cmd := exec.Command(s.daemon, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.daemon, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		db, err := sql.Open("mysql", s.dsnFor(""))
		if err == nil {
			err = db.PingContext(ctx)
			db.Close()
		}
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("MariaDB exited during start-up on port %d; log tail:\n%s", s.Port, s.LogTail())
		case <-ctx.Done():
			s.kill()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("MariaDB did not accept connections on port %d within 60s; log tail:\n%s", s.Port, s.LogTail())
		}
	}
}

func (s *Server) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// StopServer stops the daemon and waits for it to exit; the data stays. kill9 stops
// it with SIGKILL (a crash) instead of SIGTERM (a clean shutdown).
func (s *Server) StopServer(kill9 bool) error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	sig := syscall.SIGTERM
	if kill9 {
		sig = syscall.SIGKILL
	}
	select {
	case <-exited:
		return nil
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal MariaDB: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("MariaDB did not stop within 60s of %v; killed", sig)
	}
}

// Restart stops the server cleanly and starts it again on the same port.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.StopServer(false); err != nil {
		return err
	}
	return s.StartAgain(ctx)
}

// StartAgain starts a stopped server again on the same port.
func (s *Server) StartAgain(ctx context.Context) error {
	return s.start(ctx)
}

// Stop stops the server and removes its folder. It is safe to call more than once.
func (s *Server) Stop() error {
	var err error
	s.stopOnce.Do(func() {
		err = s.StopServer(false)
		if rmErr := os.RemoveAll(s.Dir); err == nil {
			err = rmErr
		}
	})
	return err
}

// DSN returns a go-mysql driver DSN for root on database db ("" for none):
// "root@127.0.0.1:PORT/db".
func (s *Server) DSN(db string) string { return s.dsnFor(db) }

// URL returns a mysql:// URL for the source configuration.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("mysql://root@127.0.0.1:%d/%s", s.Port, db)
}

func (s *Server) dsnFor(db string) string {
	return fmt.Sprintf("root@127.0.0.1:%d/%s", s.Port, db)
}

// Exec runs SQL statements separated by semicolons (see SplitStatements) on database db,
// one after the other on one connection, so BEGIN … COMMIT spans them.
func (s *Server) Exec(ctx context.Context, db, query string) error {
	pool, err := sql.Open("mysql", s.dsnFor(db))
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := pool.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, stmt := range SplitStatements(query) {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	return nil
}

// SplitStatements splits SQL text on semicolons that end a line or the text, outside
// quotes. It is meant for test and demo scripts, not arbitrary SQL.
func SplitStatements(q string) []string {
	var out []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			cur.WriteByte(c)
			if c == '\\' && i+1 < len(q) {
				i++
				cur.WriteByte(q[i])
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
			cur.WriteByte(c)
		case c == ';':
			if st := strings.TrimSpace(cur.String()); st != "" {
				out = append(out, st)
			}
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if st := strings.TrimSpace(cur.String()); st != "" {
		out = append(out, st)
	}
	return out
}

// LogTail returns the last lines of the server's error log.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.logFile)
	return tail(string(b), 30)
}

func head(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}
