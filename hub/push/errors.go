package push

import (
	"errors"
	"fmt"
)

// ErrorKind classifies the errors of this package so the API can map them to HTTP
// statuses.
type ErrorKind uint8

// The kinds of error.
const (
	// KindInvalid: the request is malformed (400).
	KindInvalid ErrorKind = iota + 1
	// KindTooLarge: a batch holds more changes than allowed (413).
	KindTooLarge
	// KindNotFound: no conflict or rejected change has the id (404).
	KindNotFound
	// KindState: the item is not in a state that allows the action, e.g. a conflict
	// resolved already, or a batch id re-used by another edge (409).
	KindState
	// KindPending: the outcome of a batch is not known yet; retry later (503).
	KindPending
	// KindUnavailable: the central database refused the whole transaction or cannot be
	// reached; nothing was written; retry later (503).
	KindUnavailable
)

// Error is an error of the push service with its kind and a message for the client.
type Error struct {
	Kind    ErrorKind
	Message string // what was wrong and how to fix it
	Err     error  // the cause, for logs
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of err, or 0 when it is not an *Error.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}
