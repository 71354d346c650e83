package edge

import (
	"log/slog"
	"math/rand/v2"
	"time"
)

// backoff is capped exponential backoff with jitter: each delay is drawn from the upper
// half of a window that doubles from min to max.
type backoff struct {
	min, max time.Duration
	window   time.Duration
}

func (b *backoff) next() time.Duration {
	if b.window < b.min {
		b.window = b.min
	}
	d := b.window/2 + rand.N(b.window/2+1)
	b.window = min(b.window*2, b.max)
	return d
}

func (b *backoff) reset() { b.window = 0 }

// errorLog logs repeated failures at most once per interval, counting the rest, and
// logs the recovery.
type errorLog struct {
	what       string // "pull from hub" when empty
	log        *slog.Logger
	interval   time.Duration
	last       time.Time
	suppressed int
	failures   int
	firstAt    time.Time
}

func (e *errorLog) failed(err error, retryIn time.Duration) {
	now := time.Now()
	if e.failures == 0 {
		e.firstAt = now
	}
	e.failures++
	if e.failures > 1 && now.Sub(e.last) < e.interval {
		e.suppressed++
		return
	}
	e.log.Warn(e.name()+" failed; retrying", "err", err, "retry_in", retryIn.Round(time.Millisecond),
		"failures", e.failures, "suppressed", e.suppressed)
	e.last, e.suppressed = now, 0
}

func (e *errorLog) succeeded() {
	if e.failures == 0 {
		return
	}
	e.log.Info(e.name()+" recovered", "failures", e.failures, "down_for", time.Since(e.firstAt).Round(time.Millisecond))
	e.failures, e.suppressed, e.last = 0, 0, time.Time{}
}

func (e *errorLog) name() string {
	if e.what == "" {
		return "pull from hub"
	}
	return e.what
}
