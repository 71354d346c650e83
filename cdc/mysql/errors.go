package mysql

import (
	"context"
	"errors"
	"fmt"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/synchub/synchub/cdc"
)

// Server error codes the source branches on.
const (
	errDBAccessDenied       = 1044 // ER_DBACCESS_DENIED_ERROR
	errAccessDenied         = 1045 // ER_ACCESS_DENIED_ERROR
	errBadDB                = 1049 // ER_BAD_DB_ERROR
	errTableAccessDenied    = 1142 // ER_TABLEACCESS_DENIED_ERROR
	errNoSuchTable          = 1146 // ER_NO_SUCH_TABLE
	errSpecificAccessDenied = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR
	errMasterFatalReading   = 1236 // ER_MASTER_FATAL_ERROR_READING_BINLOG
	errServerShutdown       = 1053 // ER_SERVER_SHUTDOWN
	errLockWaitTimeout      = 1205
	errDeadlock             = 1213
	errQueryInterrupted     = 1317
	errConnKilled           = 1927 // ER_CONNECTION_KILLED (MariaDB)
)

const grantFix = "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the source's user (MariaDB 10.5+: REPLICATION SLAVE, BINLOG MONITOR), and SELECT on the captured tables"

// configError is a misconfiguration the operator must fix; retrying does not help.
func configError(op string, err error, fix string) error {
	return &cdc.Error{Op: op, Err: err, Fix: fix}
}

// transientError is worth retrying with backoff.
func transientError(op string, err error) error {
	return &cdc.Error{Op: op, Err: err, Transient: true}
}

// positionLost wraps err as cdc.ErrPositionLost.
func positionLost(op string, err error) error {
	return &cdc.Error{Op: op, Err: fmt.Errorf("%w: %v", cdc.ErrPositionLost, err),
		Fix: "the hub takes a new snapshot and edges re-bootstrap; keep binlogs longer (binlog_expire_logs_seconds / expire_logs_days) so the hub can catch up after an outage"}
}

// serverError finds the server's error in err's chain.
func serverError(err error) *gomysql.MyError {
	var me *gomysql.MyError
	if errors.As(err, &me) {
		return me
	}
	return nil
}

// classify wraps an error from the server or the network into a *cdc.Error that says
// whether retrying can help and, for configuration problems, how to fix them. Context
// errors pass through unchanged.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ce *cdc.Error
	if errors.As(err, &ce) {
		return err
	}
	me := serverError(err)
	if me == nil {
		return transientError(op, err)
	}
	switch me.Code {
	case errAccessDenied:
		return configError(op, me, "check the user and password in the DSN and that the user may connect from this host")
	case errDBAccessDenied, errBadDB:
		return configError(op, me, "create the database or correct its name in the DSN, and grant the user access to it")
	case errTableAccessDenied:
		return configError(op, me, "GRANT SELECT ON each captured table (or its database) TO the source's user")
	case errNoSuchTable:
		return configError(op, me, "create the table or correct its name in the configured tables")
	case errSpecificAccessDenied:
		return configError(op, me, grantFix)
	case errMasterFatalReading:
		return positionLost(op, me)
	case errServerShutdown, errLockWaitTimeout, errDeadlock, errQueryInterrupted, errConnKilled:
		return transientError(op, me)
	}
	if me.Code >= 2000 && me.Code < 3000 { // client-side connection errors
		return transientError(op, me)
	}
	return &cdc.Error{Op: op, Err: me}
}
