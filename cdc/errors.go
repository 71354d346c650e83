package cdc

import "errors"

// ErrPositionLost means the source can no longer stream from the requested position
// (PostgreSQL slot dropped, binlog purged). The caller takes a fresh snapshot and the
// change log tells edges to re-bootstrap.
var ErrPositionLost = errors.New("source position lost")

// ErrOutcomeUnknown marks an Applier error after which the transaction may or may not
// have committed: the connection failed while COMMIT was on its way or its answer was.
// The caller must not assume nothing was written; it learns the outcome from the
// source's stream (the transaction's Tag arrives there if it committed).
var ErrOutcomeUnknown = errors.New("the write's outcome is unknown: the connection failed around COMMIT")

// Error is an adapter error with a classification the hub branches on.
type Error struct {
	Op  string // what was being done, e.g. "start replication"
	Err error
	// Fix tells the operator how to resolve a configuration problem; empty when the
	// error is transient.
	Fix string
	// Transient marks errors worth retrying with backoff (connection lost, server
	// restarting); configuration errors are not.
	Transient bool
}

func (e *Error) Error() string {
	msg := e.Op + ": " + e.Err.Error()
	if e.Fix != "" {
		msg += " (fix: " + e.Fix + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether retrying the operation later may succeed.
func (e *Error) Retryable() bool { return e.Transient }

// IsRetryable reports whether err (or an error it wraps) says it is retryable.
// Errors that do not classify themselves are treated as retryable: a dropped
// connection usually surfaces as a plain I/O error.
func IsRetryable(err error) bool {
	if errors.Is(err, ErrPositionLost) {
		return false
	}
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	return true
}
