package audit

import (
	"fmt"
	"time"
)

// Query limits.
const (
	// DefaultLimit is the page size used when Filter.Limit is 0.
	DefaultLimit = 100
	// MaxLimit is the largest Filter.Limit accepted.
	MaxLimit = 1000
)

// Filter selects events for Query. Empty fields match everything; set fields must all
// match (AND). String fields match exactly.
//
// Paging: without AfterID, Query returns the newest events first (ID descending); to
// get the next (older) page, set BeforeID to the ID of the last event of the previous
// page. With AfterID, Query returns events with a larger ID oldest first (ID
// ascending); to continue, set AfterID to the last event's ID. Both may be set to read
// the IDs strictly between them, oldest first. A page shorter than Limit is the last.
type Filter struct {
	// From and To bound the event time: From <= Time < To. Zero means unbounded.
	From, To time.Time
	Actor    string
	Edge     string
	Table    string
	Key      string
	Action   string
	// AfterID selects events with ID > AfterID, returned oldest first. 0: unset.
	AfterID int64
	// BeforeID selects events with ID < BeforeID. 0: unset.
	BeforeID int64
	// Limit is the most events returned: 0 means DefaultLimit, at most MaxLimit.
	Limit int
}

// Validate reports the first invalid field and how to fix it.
func (f Filter) Validate() error {
	switch {
	case f.Limit < 0 || f.Limit > MaxLimit:
		return fmt.Errorf("audit filter limit %d: must be between 1 and %d (0 means %d)", f.Limit, MaxLimit, DefaultLimit)
	case f.AfterID < 0:
		return fmt.Errorf("audit filter after_id %d: must not be negative", f.AfterID)
	case f.BeforeID < 0:
		return fmt.Errorf("audit filter before_id %d: must not be negative", f.BeforeID)
	case f.AfterID > 0 && f.BeforeID > 0 && f.BeforeID <= f.AfterID:
		return fmt.Errorf("audit filter before_id %d: must be greater than after_id %d", f.BeforeID, f.AfterID)
	case !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To):
		return fmt.Errorf("audit filter time range %s to %s: from must be before to",
			f.From.Format(time.RFC3339Nano), f.To.Format(time.RFC3339Nano))
	case !f.From.IsZero() && (f.From.Year() < 1 || f.From.Year() > 9999):
		return fmt.Errorf("audit filter from %v: must be between years 1 and 9999", f.From)
	case !f.To.IsZero() && (f.To.Year() < 1 || f.To.Year() > 9999):
		return fmt.Errorf("audit filter to %v: must be between years 1 and 9999", f.To)
	}
	return nil
}

// limit is the effective page size of a valid filter.
func (f Filter) limit() int {
	if f.Limit == 0 {
		return DefaultLimit
	}
	return f.Limit
}

// ascending reports whether a valid filter returns events oldest first.
func (f Filter) ascending() bool { return f.AfterID > 0 }
