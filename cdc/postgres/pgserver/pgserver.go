// Package pgserver runs a throwaway PostgreSQL server from the binaries installed on the
// machine, for tests and for `synchub demo`. The server lives in a temporary folder,
// listens on a free loopback port with the settings logical replication needs
// (wal_level=logical), and is removed by Stop. It never touches the machine's own
// PostgreSQL service.
//
// PostgreSQL refuses to run as root; when the process is root, every server command runs
// as the "postgres" user through runuser, on a folder that user owns.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrNoBinaries means no PostgreSQL server binaries were found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install them with `apt-get install postgresql` (Debian/Ubuntu) or set SYNCHUB_PG_BIN to their folder")

// Options tunes a throwaway server.
type Options struct {
	// Settings are extra postgresql.conf lines, e.g. "max_wal_size=1GB".
	Settings []string
	// Durable keeps fsync on (tests that crash PostgreSQL itself need it).
	Durable bool
}

// Server is a running throwaway PostgreSQL.
type Server struct {
	Dir     string // data folder
	Port    int
	BinDir  string
	runAs   string // "" or the user to run server commands as
	logFile string
}

// FindBinDir returns the folder holding initdb and pg_ctl: $SYNCHUB_PG_BIN, else the
// newest /usr/lib/postgresql/*/bin, else the folder of initdb on PATH.
func FindBinDir() (string, error) {
	if d := os.Getenv("SYNCHUB_PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("SYNCHUB_PG_BIN=%s has no initdb: %w", d, err)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
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
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{BinDir: bin}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root and there is no \"postgres\" user to run PostgreSQL as: create one (useradd -r postgres) or run as a normal user")
		}
		s.runAs = "postgres"
	}
	base, err := os.MkdirTemp("", "synchub-pg-")
	if err != nil {
		return nil, fmt.Errorf("create temp folder: %w", err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return nil, err
	}
	s.Dir = filepath.Join(base, "data")
	s.logFile = filepath.Join(base, "postgres.log")
	if s.runAs != "" {
		if out, err := exec.CommandContext(ctx, "chown", "-R", s.runAs, base).CombinedOutput(); err != nil {
			os.RemoveAll(base)
			return nil, fmt.Errorf("chown %s: %v: %s", base, err, out)
		}
	}
	if out, err := s.run(ctx, "initdb", "-D", s.Dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(base)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	conf := []string{
		"wal_level = logical",
		"max_replication_slots = 20",
		"max_wal_senders = 20",
		"max_connections = 100",
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + base + "'",
		"shared_buffers = 128MB",
		"max_wal_size = 2GB",
		"log_min_messages = warning",
		"timezone = 'UTC'",
	}
	if !opts.Durable {
		// fsync off makes commits cheap; synchronous_commit stays on, since the WAL
		// sender only sends WAL that was flushed, and with it off a commit would wait
		// for the WAL writer (up to wal_writer_delay, 200 ms) before CDC sees it.
		conf = append(conf, "fsync = off", "full_page_writes = off")
	}
	conf = append(conf, opts.Settings...)
	f, err := os.OpenFile(filepath.Join(s.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	_, err = f.WriteString("\n" + strings.Join(conf, "\n") + "\n")
	f.Close()
	if err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	hba := "local all all trust\nhost all all 127.0.0.1/32 trust\nlocal replication all trust\nhost replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(s.Dir, "pg_hba.conf"), []byte(hba), 0o644); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	if err := s.startOnFreePort(ctx); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	return s, nil
}

func (s *Server) startOnFreePort(ctx context.Context) error {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := FreePort()
		if err != nil {
			return err
		}
		s.Port = port
		if last = s.Restart(ctx); last == nil {
			return nil
		}
	}
	return last
}

// Restart starts the server (again) on its port; it is a no-op start if it is running.
func (s *Server) Restart(ctx context.Context) error {
	out, err := s.run(ctx, "pg_ctl", "-D", s.Dir, "-l", s.logFile, "-w", "-t", "60",
		"-o", "-p "+strconv.Itoa(s.Port), "start")
	if err != nil {
		logText, _ := os.ReadFile(s.logFile)
		return fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, tail(string(logText), 2000))
	}
	return nil
}

// StopServer stops the server but keeps its data, so Restart can bring it back.
// mode is "fast" or "immediate" (a crash).
func (s *Server) StopServer(ctx context.Context, mode string) error {
	out, err := s.run(ctx, "pg_ctl", "-D", s.Dir, "-m", mode, "-w", "-t", "60", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return nil
}

// Stop stops the server and removes its folder.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := s.StopServer(ctx, "immediate")
	if rerr := os.RemoveAll(filepath.Dir(s.Dir)); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// DSN is a connection string for database db as the superuser "postgres".
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// Exec runs SQL through psql against database db and returns its output.
func (s *Server) Exec(ctx context.Context, db, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.BinDir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", db, "-At", "-c", sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("psql: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// LogTail returns the end of the server log, for test failure messages.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.logFile)
	return tail(string(b), 4000)
}

func (s *Server) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path := filepath.Join(s.BinDir, tool)
	var cmd *exec.Cmd
	if s.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = os.TempDir()
	return cmd.CombinedOutput()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
