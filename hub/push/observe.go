package push

import (
	"context"
	"fmt"

	"github.com/synchub/synchub/hub/syncproto"
)

// Observer is told the outcome of every pushed change once its batch's answer is stored:
// once per change, never again for a re-sent batch's stored answer. Labels it receives
// are bounded: table is a captured table's name, policy a configured policy, outcome
// and code fixed lists. Its methods must be fast and safe for concurrent use; the
// hub's metrics (metrics.Hub) implement it.
type Observer interface {
	// PushResult counts one change by status: applied, conflict or rejected.
	PushResult(status string)
	// Conflict counts one conflict on table under policy with outcome (server_won,
	// client_won, merged, manual, or error when a custom resolver failed).
	Conflict(table, policy, outcome string)
	// Rejected counts one refused change by code (CodeBadChange, CodeConstraint,
	// CodeResolver).
	Rejected(code string)
}

// observe reports a stored batch's outcomes to the Observer.
func (s *Service) observe(req syncproto.PushRequest, p *plan) {
	if s.observer == nil {
		return
	}
	for i, r := range p.Results {
		s.observer.PushResult(r.Status)
		switch r.Status {
		case syncproto.PushConflict:
			// A conflict is only found on a change that decoded, so its table is a
			// captured table's exact name.
			s.observer.Conflict(req.Changes[i].Table, r.Policy, r.Outcome)
		case syncproto.PushRejected:
			if r.Code == CodeResolver {
				// A custom resolver failed on a conflict: the result reports the
				// rejection, the conflict is counted with outcome "error".
				table := req.Changes[i].Table
				s.observer.Conflict(table, string(s.rules.For(table).Policy), "error")
			}
			s.observer.Rejected(r.Code)
		}
	}
}

// OpenCounts returns how many conflicts wait for an admin and how many rejected changes
// were neither retried nor discarded.
func (s *Service) OpenCounts(ctx context.Context) (conflicts, rejected int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM conflicts WHERE status = 'open'),
		(SELECT COUNT(*) FROM rejected WHERE status = 'open')`).Scan(&conflicts, &rejected)
	if err != nil {
		return 0, 0, fmt.Errorf("count open conflicts and rejected changes: %w", err)
	}
	return conflicts, rejected, nil
}
