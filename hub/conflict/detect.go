package conflict

import (
	"time"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/syncproto"
)

// Kind says what a conflicting change collided with: the edge's operation, then the
// state the row reached on the server.
type Kind string

// The kinds of conflict.
const (
	InsertVsInsert Kind = "insert_vs_insert" // the edge inserted a row someone else inserted
	UpdateVsUpdate Kind = "update_vs_update" // both sides changed the row
	UpdateVsDelete Kind = "update_vs_delete" // the edge changed a row someone else deleted
	DeleteVsUpdate Kind = "delete_vs_update" // the edge deleted a row someone else changed
)

// Latest is what the change log knows about a row's latest version.
type Latest struct {
	Exists     bool // the log has seen the row
	Version    int64
	Origin     string // "" for the central database, else the edge id that wrote it
	Deleted    bool
	CommitTime time.Time
}

// Detect reports whether a change of edge, based on baseVersion, conflicts with the
// row's latest version, and of which kind.
//
// There is no conflict when the log has never seen the row, when the latest version
// is not newer than the base, or when the pushing edge wrote it itself. Otherwise: an
// insert conflicts unless the row is deleted (re-creating a deleted row is not a
// conflict); an update conflicts with a newer update or delete; a delete conflicts
// with a newer update, while a delete of a row someone else deleted already is not a
// conflict, since both sides want the same end state.
func Detect(op cdc.Op, baseVersion int64, edge string, l Latest) (Kind, bool) {
	if !l.Exists || l.Version <= baseVersion || l.Origin == edge {
		return "", false
	}
	switch op {
	case cdc.OpInsert:
		if l.Deleted {
			return "", false
		}
		return InsertVsInsert, true
	case cdc.OpUpdate:
		if l.Deleted {
			return UpdateVsDelete, true
		}
		return UpdateVsUpdate, true
	case cdc.OpDelete:
		if l.Deleted {
			return "", false
		}
		return DeleteVsUpdate, true
	}
	return "", false
}

// ClientTime is an edge write's time on the hub's clock, for last-writer-wins: the
// HLC wall clock corrected by the edge's clock skew (skew = sentAt − received, sentAt
// being the edge's wall clock when it sent the batch, in Unix microseconds, 0 meaning
// unknown and no correction, and received the hub's clock when the batch arrived), and
// never later than now, the time of the decision. Measuring the skew at arrival keeps
// the time a batch waited on the hub (behind the batch it follows, or for the write
// lock) out of it. An edge whose clock runs ahead thus gains nothing over writes the
// hub has already seen.
func ClientTime(h syncproto.HLC, sentAt int64, received, now time.Time) time.Time {
	wall := h.Wall
	if sentAt > 0 {
		skew := sentAt - received.UnixMicro()
		wall -= skew
	}
	t := time.UnixMicro(wall)
	if t.After(now) {
		return now
	}
	return t
}
