package edge

import "time"

// State is what the agent is doing.
type State string

// The states an agent reports.
const (
	StateIdle          State = "idle"          // opened, not pulling
	StatePulling       State = "pulling"       // fetching or applying pages
	StateWaiting       State = "waiting"       // caught up, long-polling the hub
	StateBootstrapping State = "bootstrapping" // refilling from version 0
	StateBackoff       State = "backoff"       // the last pull failed; waiting to retry
	StateClosed        State = "closed"
)

// Status is a snapshot of the agent's progress.
type Status struct {
	EdgeID        string    `json:"edge_id"`
	HubURL        string    `json:"hub_url"`
	DBPath        string    `json:"db_path"`
	State         State     `json:"state"`
	Watermark     int64     `json:"watermark"`      // last version applied and committed locally
	HeadSeen      int64     `json:"head_seen"`      // the hub's head in the last page received
	SchemaVersion int64     `json:"schema_version"` // schema version of the local tables
	LastPull      time.Time `json:"last_pull"`      // when the last page arrived
	LastCommit    time.Time `json:"last_commit"`    // when changes were last committed locally
	Applied       int64     `json:"applied"`        // pulled changes written locally since Open (not echoes or rebased ones)
	// AppliedForeign counts pulled changes written to the local tables since Open: all
	// but the edge's own echoes, changes to rows with pending local writes and changes
	// older than a push answer. An echo is written too when a foreign change reached the
	// row after the push answer, as the row must return to the hub's state.
	AppliedForeign int64 `json:"applied_foreign"`
	// EchoesSkipped counts pulled changes that were this edge's own pushed writes: only
	// the row version was recorded.
	EchoesSkipped int64 `json:"echoes_skipped"`
	// Rebased counts pulled changes to rows with pending local writes, which stayed as
	// the edge wrote them until the push settles them.
	Rebased int64 `json:"rebased"`
	// Stale counts pulled changes skipped because a push answer had already given the
	// row a newer state.
	Stale             int64     `json:"stale"`
	Pending           int64     `json:"pending"`        // outbox entries not yet answered, as of the last push or check
	RejectedTotal     int64     `json:"rejected_total"` // rows in _synchub_rejected
	Pushed            int64     `json:"pushed"`         // changes the hub answered since Open
	Conflicts         int64     `json:"conflicts"`      // conflicts the hub reported since Open
	LastPush          time.Time `json:"last_push"`      // when the hub last answered a push
	LastPushError     string    `json:"last_push_error,omitempty"`
	LastPushErrorTime time.Time `json:"last_push_error_time"`
	Rebootstraps      int       `json:"rebootstraps"` // re-bootstraps since Open
	LastError         string    `json:"last_error,omitempty"`
	LastErrorTime     time.Time `json:"last_error_time"`
}

func (a *Agent) setState(s State) {
	a.mu.Lock()
	a.status.State = s
	a.mu.Unlock()
}

func (a *Agent) updateStatus(f func(*Status)) {
	a.mu.Lock()
	f(&a.status)
	a.mu.Unlock()
}

// Status returns a snapshot of the agent's progress. It is safe to call at any time,
// from any goroutine.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}
