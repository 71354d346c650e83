package dashboard

import (
	"sync"
	"time"
)

// Sign-in throttling: after maxFailures failed sign-ins for one name, or from one
// address, within failureWindow, further attempts are refused until the oldest
// failure leaves the window. It slows password guessing without locking anyone out
// for long.
const (
	maxFailures   = 5
	failureWindow = 15 * time.Minute
	// maxTracked bounds the memory the throttle uses; past it, the oldest keys go.
	maxTracked = 10_000
)

// throttle remembers recent sign-in failures by key ("name:alice", "ip:10.0.0.1").
type throttle struct {
	mu   sync.Mutex
	seen map[string][]time.Time
}

func newThrottle() *throttle { return &throttle{seen: map[string][]time.Time{}} }

// wait reports how long the keys must wait before another attempt (0: now).
func (t *throttle) wait(now time.Time, keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var longest time.Duration
	for _, k := range keys {
		fs := t.recent(k, now)
		if len(fs) >= maxFailures {
			longest = max(longest, fs[len(fs)-maxFailures].Add(failureWindow).Sub(now))
		}
	}
	return longest
}

// fail records a failure for each key.
func (t *throttle) fail(now time.Time, keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.seen) >= maxTracked {
		t.prune(now)
	}
	for _, k := range keys {
		t.seen[k] = append(t.recent(k, now), now)
	}
}

// recent returns k's failures still inside the window, dropping older ones.
func (t *throttle) recent(k string, now time.Time) []time.Time {
	fs := t.seen[k]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= failureWindow {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(t.seen, k)
		return nil
	}
	t.seen[k] = fs
	return fs
}

// prune drops expired keys and, if that is not enough, every key.
func (t *throttle) prune(now time.Time) {
	for k := range t.seen {
		t.recent(k, now)
	}
	if len(t.seen) >= maxTracked {
		t.seen = map[string][]time.Time{}
	}
}
