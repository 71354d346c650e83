package api

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"

	"github.com/synchub/synchub/hub/auth"
)

// Limits bound what one edge may ask of the hub. The body size limit is
// Config.BodyLimit and the changes per push batch are push.Config.MaxBatchChanges;
// both answer 413.
type Limits struct {
	// RatePerSecond and Burst are each edge's token bucket over the edge routes:
	// RatePerSecond requests per second on average, Burst at once. 0 disables.
	RatePerSecond float64
	Burst         int
	// MaxLongPolls is how many long-polls (GET /v1/changes with wait>0) one edge may
	// hold open at once. 0 disables the limit.
	MaxLongPolls int
	// LongPollRetryAfter is the Retry-After sent when MaxLongPolls is reached.
	LongPollRetryAfter time.Duration
}

// DefaultLimits returns 200 requests/s with bursts of 1000 per edge (an edge catching up
// pulls pages back to back) and 2 concurrent long-polls per edge.
func DefaultLimits() Limits {
	return Limits{RatePerSecond: 200, Burst: 1000, MaxLongPolls: 2, LongPollRetryAfter: 5 * time.Second}
}

// Validate says what is wrong with the limits.
func (l Limits) Validate() error {
	switch {
	case l.RatePerSecond < 0 || math.IsNaN(l.RatePerSecond) || math.IsInf(l.RatePerSecond, 0):
		return fmt.Errorf("limits.rate_per_second: %v; use 0 (no limit) or a positive number", l.RatePerSecond)
	case l.RatePerSecond > 0 && l.Burst < 1:
		return fmt.Errorf("limits.burst: %d; with a rate limit, allow a burst of at least 1", l.Burst)
	case l.MaxLongPolls < 0:
		return fmt.Errorf("limits.max_long_polls: %d; use 0 (no limit) or more", l.MaxLongPolls)
	case l.MaxLongPolls > 0 && l.LongPollRetryAfter < time.Second:
		return fmt.Errorf("limits.long_poll_retry_after: %v; use at least 1s", l.LongPollRetryAfter)
	}
	return nil
}

// limiters holds one token bucket per caller; buckets idle for longer than idleAfter
// are dropped.
type limiters struct {
	mu        sync.Mutex
	limit     rate.Limit
	burst     int
	buckets   map[string]*bucket
	lastPrune time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

const idleAfter = 10 * time.Minute

func newLimiters(l Limits) *limiters {
	return &limiters{limit: rate.Limit(l.RatePerSecond), burst: l.Burst, buckets: map[string]*bucket{}}
}

// take takes a token for key at now; when none is left it returns how long until one
// is.
func (ls *limiters) take(key string, now time.Time) (wait time.Duration, ok bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if now.Sub(ls.lastPrune) > time.Minute {
		for k, b := range ls.buckets {
			if now.Sub(b.last) > idleAfter {
				delete(ls.buckets, k)
			}
		}
		ls.lastPrune = now
	}
	b := ls.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(ls.limit, ls.burst)}
		ls.buckets[key] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// pollSlots counts each caller's open long-polls.
type pollSlots struct {
	mu   sync.Mutex
	max  int
	open map[string]int
}

func (p *pollSlots) acquire(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[key] >= p.max {
		return false
	}
	p.open[key]++
	return true
}

func (p *pollSlots) release(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[key]--; p.open[key] <= 0 {
		delete(p.open, key)
	}
}

// callerKey names the caller for limits: the edge, or the remote address when the
// request names no edge.
func callerKey(c *fiber.Ctx) string {
	if id := auth.FromCtx(c); id != nil && id.Edge != "" {
		return "edge:" + id.Edge
	}
	return "ip:" + c.IP()
}

// rateLimit refuses a request over its edge's rate with 429 and Retry-After. It runs
// after requireEdge.
func (s *Server) rateLimit(c *fiber.Ctx) error {
	if s.rates == nil {
		return c.Next()
	}
	wait, ok := s.rates.take(callerKey(c), time.Now())
	if ok {
		return c.Next()
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return s.tooMany(c, "rate_limited", secs, fmt.Sprintf(
		"too many requests from this edge: the hub allows %g requests/s with bursts of %d; retry after %d s", s.cfg.Limits.RatePerSecond, s.cfg.Limits.Burst, secs))
}

// limitLongPolls refuses a long-poll beyond the edge's MaxLongPolls with 429. It runs
// after requireEdge, on GET /v1/changes.
func (s *Server) limitLongPolls(c *fiber.Ctx) error {
	if s.polls == nil {
		return c.Next()
	}
	w := c.Query("wait")
	if w == "" {
		return c.Next()
	}
	if d, err := parseWait(w); err != nil || d <= 0 || s.cfg.MaxWait <= 0 {
		return c.Next() // not a long-poll; the handler reports a bad wait
	}
	key := callerKey(c)
	if !s.polls.acquire(key) {
		secs := max(1, int(math.Ceil(s.cfg.Limits.LongPollRetryAfter.Seconds())))
		return s.tooMany(c, "too_many_long_polls", secs, fmt.Sprintf(
			"this edge already holds %d long-polls open, the hub's limit; wait for one to return before polling again (retry after %d s)", s.cfg.Limits.MaxLongPolls, secs))
	}
	defer s.polls.release(key)
	return c.Next()
}

func (s *Server) tooMany(c *fiber.Ctx, code string, retryAfter int, message string) error {
	route := c.Route().Path
	s.log.Warn("request refused", "method", c.Method(), "path", strings.Clone(c.Path()), "status", fiber.StatusTooManyRequests,
		"error_code", code, "edge_id", edgeOf(c), "retry_after_s", retryAfter)
	if s.deps.AuthObserver != nil {
		s.deps.AuthObserver.RateLimited(route)
	}
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retryAfter))
	return writeJSONError(c, fiber.StatusTooManyRequests, code, message)
}

func edgeOf(c *fiber.Ctx) string {
	if id := auth.FromCtx(c); id != nil {
		return id.Edge
	}
	return ""
}
