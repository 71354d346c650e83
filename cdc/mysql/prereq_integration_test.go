package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/cdc/mysql/myserver"
	"github.com/synchub/synchub/cdc/mysql/mytest"
)

// startErr runs Start without a position and returns its error, which must be a
// configuration *cdc.Error whose message and fix mention the given words.
func startErr(t *testing.T, cfg Config, inMsg, inFix string) {
	t.Helper()
	src := newSource(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := src.Start(ctx, nil)
	var ce *cdc.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Start = %v; want a *cdc.Error", err)
	}
	if ce.Transient || cdc.IsRetryable(err) {
		t.Errorf("configuration error %v is marked retryable", err)
	}
	if !strings.Contains(err.Error(), inMsg) || !strings.Contains(ce.Fix, inFix) {
		t.Errorf("Start error = %q (fix %q); want %q in the message and %q in the fix", err, ce.Fix, inMsg, inFix)
	}
	if src.meta != nil || src.snap != nil {
		t.Errorf("a failed Start left connections open")
	}
}

func TestIntegration_PrerequisiteSettings(t *testing.T) {
	srv := sharedServer(t)
	e := newEnv(t, srv)
	e.exec("CREATE TABLE t (id INT PRIMARY KEY)")
	cfg := e.config("t")
	for _, c := range []struct{ variable, bad, good, fix string }{
		{"binlog_format", "STATEMENT", "ROW", "binlog_format = ROW"},
		{"binlog_row_image", "MINIMAL", "FULL", "binlog_row_image = FULL"},
		{"binlog_row_metadata", "MINIMAL", "FULL", "binlog_row_metadata = FULL"},
	} {
		t.Run(c.variable, func(t *testing.T) {
			e.exec(fmt.Sprintf("SET GLOBAL %s = '%s'", c.variable, c.bad))
			defer e.exec(fmt.Sprintf("SET GLOBAL %s = '%s'", c.variable, c.good))
			startErr(t, cfg, c.variable, c.fix)
		})
	}
}

func TestIntegration_PrerequisiteStatementFormatServer(t *testing.T) {
	srv := mytest.Start(t, myserver.Options{Settings: []string{"binlog_format=STATEMENT"}})
	e := newEnv(t, srv)
	e.exec("CREATE TABLE t (id INT PRIMARY KEY)")
	startErr(t, e.config("t"), "binlog_format is STATEMENT", "binlog_format = ROW")
}

func TestIntegration_PrerequisiteBinlogOff(t *testing.T) {
	srv := mytest.Start(t, myserver.Options{Settings: []string{"skip-log-bin"}})
	e := newEnv(t, srv)
	e.exec("CREATE TABLE t (id INT PRIMARY KEY)")
	startErr(t, e.config("t"), "binary log is off", "log_bin")
}

func TestIntegration_PrerequisiteTables(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE nokey (id INT, v INT)")
	e.exec("CREATE TABLE ok (id INT PRIMARY KEY)")
	startErr(t, e.config("nokey"), "no primary key", "ADD PRIMARY KEY")
	startErr(t, e.config("ok", "missing"), "does not exist", "create it")

	cfg := e.config("ok")
	cfg.Tables = append(cfg.Tables, "no_such_db.x")
	startErr(t, cfg, "does not exist", "create it")
}

func TestIntegration_PrerequisiteGrants(t *testing.T) {
	e := newEnv(t, sharedServer(t))
	e.exec("CREATE TABLE g (id INT PRIMARY KEY)")
	user := "lim_" + e.db
	e.exec("CREATE USER '" + user + "'@'127.0.0.1' IDENTIFIED BY 'secret pw'")
	t.Cleanup(func() { e.exec("DROP USER '" + user + "'@'127.0.0.1'") })
	e.exec("GRANT SELECT ON " + e.db + ".* TO '" + user + "'@'127.0.0.1'")
	cfg := e.config("g")
	cfg.DSN = fmt.Sprintf("mysql://%s:secret%%20pw@127.0.0.1:%d/%s", user, e.srv.Port, e.db)

	startErr(t, cfg, "lacks REPLICATION SLAVE", "GRANT REPLICATION SLAVE")

	e.exec("GRANT REPLICATION SLAVE ON *.* TO '" + user + "'@'127.0.0.1'")
	startErr(t, cfg, "may not list binary logs", "BINLOG MONITOR")

	e.exec("GRANT BINLOG MONITOR ON *.* TO '" + user + "'@'127.0.0.1'")
	src := newSource(t, cfg)
	snap, _, _ := snapshotAll(t, src)
	if len(snap) != 0 {
		t.Fatalf("snapshot of an empty table has %d rows", len(snap))
	}
	h := &collector{}
	startStream(t, src, h)
	e.exec("INSERT INTO g VALUES (1)")
	waitFor(t, "the insert through a user with exactly the documented grants", func() bool { return len(h.whole()) == 1 })

	bad := cfg
	bad.DSN = fmt.Sprintf("mysql://%s:wrong@127.0.0.1:%d/%s", user, e.srv.Port, e.db)
	startErr(t, bad, "Access denied", "password")
}
