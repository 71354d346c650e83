package edge

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	window := b.min
	for i := range 20 {
		d := b.next()
		if d < window/2 || d > window {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", i, d, window/2, window)
		}
		window = min(window*2, b.max)
	}
	b.reset()
	if d := b.next(); d > b.min {
		t.Fatalf("after reset the delay is %v, want at most %v", d, b.min)
	}
}

func TestErrorLog_RateLimited(t *testing.T) {
	var buf bytes.Buffer
	el := errorLog{log: slog.New(slog.NewTextHandler(&buf, nil)), interval: time.Hour}
	for range 50 {
		el.failed(errors.New("connection refused"), time.Second)
	}
	if n := strings.Count(buf.String(), "pull from hub failed"); n != 1 {
		t.Fatalf("50 failures within the interval logged %d times, want once:\n%s", n, buf.String())
	}
	el.succeeded()
	if !strings.Contains(buf.String(), "recovered") || !strings.Contains(buf.String(), "failures=50") {
		t.Fatalf("recovery not logged with the failure count:\n%s", buf.String())
	}
	buf.Reset()
	el.interval = 0
	el.failed(errors.New("a"), time.Second)
	el.failed(errors.New("b"), time.Second)
	if n := strings.Count(buf.String(), "pull from hub failed"); n != 2 {
		t.Fatalf("with no interval every failure is logged; got %d of 2", n)
	}
}
