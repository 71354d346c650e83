package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/syncproto"
)

// Kind classifies an API error; kinds maps each to its HTTP status and JSON code.
type Kind uint8

// The kinds of error the API returns.
const (
	KindInternal Kind = iota
	KindBadParameter
	KindBadCursor
	KindWatermarkTooOld
	KindWatermarkAhead
	KindNotFound
	KindMethodNotAllowed
	KindBodyTooLarge
	KindNotReady
	KindShuttingDown
	KindTimeout
	KindScopeChanged
)

// kinds is the one table from error kind to HTTP status and stable error code.
var kinds = [...]struct {
	status int
	code   string
}{
	KindInternal:         {http.StatusInternalServerError, "internal"},
	KindBadParameter:     {http.StatusBadRequest, "bad_parameter"},
	KindBadCursor:        {http.StatusBadRequest, "bad_cursor"},
	KindWatermarkTooOld:  {http.StatusGone, "watermark_too_old"},
	KindWatermarkAhead:   {http.StatusConflict, "watermark_ahead"},
	KindNotFound:         {http.StatusNotFound, "not_found"},
	KindMethodNotAllowed: {http.StatusMethodNotAllowed, "method_not_allowed"},
	KindBodyTooLarge:     {http.StatusRequestEntityTooLarge, "body_too_large"},
	KindNotReady:         {http.StatusServiceUnavailable, "not_ready"},
	KindShuttingDown:     {http.StatusServiceUnavailable, "shutting_down"},
	KindTimeout:          {http.StatusServiceUnavailable, "timeout"},
	KindScopeChanged:     {http.StatusGone, "scope_changed"},
}

// Status returns the HTTP status of the kind.
func (k Kind) Status() int { return kinds[k].status }

// Code returns the stable JSON error code of the kind.
func (k Kind) Code() string { return kinds[k].code }

// Error is an error with its API classification and a message for the client.
type Error struct {
	Kind    Kind
	Message string // what was wrong and how to fix it
	Horizon int64  // for KindWatermarkTooOld
	Err     error  // the cause, logged but not sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Kind.Code() + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Kind.Code() + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func badParameter(format string, args ...any) *Error {
	return &Error{Kind: KindBadParameter, Message: fmt.Sprintf(format, args...)}
}

// classify turns any error a handler returned into the API error sent to the client.
// Errors that are not classified are internal; their text is logged, not sent.
func classify(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fiber.StatusNotFound:
			return &Error{Kind: KindNotFound, Message: fe.Message + "; the sync API serves GET /v1/changes, /v1/schema, /v1/status, /healthz and /readyz"}
		case fiber.StatusMethodNotAllowed:
			return &Error{Kind: KindMethodNotAllowed, Message: fe.Message + "; the sync API's endpoints answer GET"}
		case fiber.StatusRequestEntityTooLarge:
			return &Error{Kind: KindBodyTooLarge, Message: "request body is larger than the hub's body limit; send a smaller body"}
		}
		if fe.Code >= 400 && fe.Code < 500 {
			return &Error{Kind: KindBadParameter, Message: fe.Message}
		}
		return &Error{Kind: KindInternal, Message: "internal error; see the hub's log", Err: err}
	}
	switch {
	case errors.Is(err, changelog.ErrBadCursor):
		return &Error{Kind: KindBadCursor, Message: "cursor does not continue the watermark; pass the since and cursor of the page you received, or drop the cursor to restart the transaction", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: KindTimeout, Message: "the hub did not answer within its request timeout; retry later", Err: err}
	}
	return &Error{Kind: KindInternal, Message: "internal error; see the hub's log", Err: err}
}

// body returns the JSON body sent for e.
func (e *Error) body() syncproto.Error {
	return syncproto.Error{Code: e.Kind.Code(), Message: e.Message, Horizon: e.Horizon}
}
