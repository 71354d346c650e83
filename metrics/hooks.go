package metrics

import (
	"strconv"
	"sync"
	"time"
)

// Sync API routes whose requests feed the pull and push size histograms.
const (
	RouteChanges = "/v1/changes"
	RoutePush    = "/v1/push"
)

// ObserveRequest records one sync API request: its matched route (a bounded label;
// "unmatched" for unknown paths), status code, duration, and for pulls and pushes the
// changes it carried and its response size. It has the shape of the API's Observe hook.
func (m *Hub) ObserveRequest(route string, code int, d time.Duration, changes, bytes int) {
	status := strconv.Itoa(code)
	m.HTTPRequestSeconds.WithLabelValues(route, status).Observe(d.Seconds())
	m.ResponseBytes.WithLabelValues(route).Observe(float64(bytes))
	switch route {
	case RouteChanges:
		switch code {
		case 200:
			m.PullChanges.Add(float64(changes))
			m.PullBytes.Add(float64(bytes))
			m.PullPageChanges.Observe(float64(changes))
		case 410:
			m.PullGone.Inc()
		}
	case RoutePush:
		if code == 200 {
			m.PushBatchChanges.Observe(float64(changes))
		}
	}
}

// PushResult counts one pushed change by its result status (applied, conflict,
// rejected). The push service calls it once per change of a batch whose answer it
// stored.
func (m *Hub) PushResult(status string) { m.PushChanges.WithLabelValues(status).Inc() }

// Conflict counts one conflict on table (a captured table) resolved under policy with
// outcome (server_won, client_won, merged, manual, or error when a resolver failed).
func (m *Hub) Conflict(table, policy, outcome string) {
	m.PushConflicts.WithLabelValues(table, policy, outcome).Inc()
}

// Rejected counts one refused pushed change by its rejection code.
func (m *Hub) Rejected(code string) { m.PushRejected.WithLabelValues(code).Inc() }

// AuthFailed counts a request refused for its credentials. reason should come from a
// fixed list (missing_token, bad_token, expired, ...); past 32 distinct reasons,
// further ones are counted as "other" so a bug cannot explode the series count.
func (m *Hub) AuthFailed(reason string) {
	m.AuthFailures.WithLabelValues(m.reasons.bound(reason)).Inc()
}

// RateLimited counts a request refused by a rate limit on route (the matched route
// pattern, never the raw path); past 32 distinct routes, further ones count as "other".
func (m *Hub) RateLimited(route string) {
	m.RateLimitedRequests.WithLabelValues(m.routes.bound(route)).Inc()
}

// maxLabelValues bounds labels whose values come from callers outside this package.
const maxLabelValues = 32

// labelSet admits up to max distinct label values and maps the rest to "other".
type labelSet struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
}

func newLabelSet(max int) *labelSet {
	return &labelSet{max: max, seen: make(map[string]struct{})}
}

func (s *labelSet) bound(v string) string {
	if v == "" {
		return "unknown"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[v]; ok {
		return v
	}
	if len(s.seen) >= s.max {
		return "other"
	}
	s.seen[v] = struct{}{}
	return v
}
