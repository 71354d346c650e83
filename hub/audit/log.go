package audit

import "context"

// Log is the audit log. Implementations are safe for concurrent use by many goroutines.
//
// Append records events atomically: either all of them are stored, in order, or none
// (an invalid event fails the whole call before anything is written). An event's zero
// Time becomes the time of the call; its ID is ignored and assigned by the log. Once
// Append returns nil the events are durable against a crash of the hub process.
//
// Query returns the events matching a Filter (see Filter for order and paging). An
// invalid Filter is an error naming the field; no match is an empty slice and no error.
//
// Cancelling ctx stops the call; an Append stopped this way stores nothing.
type Log interface {
	Append(ctx context.Context, events ...Event) error
	Query(ctx context.Context, f Filter) ([]Event, error)
}
