package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/edges"
	"github.com/synchub/synchub/hub/syncproto"
)

// changesQuery is a validated GET /v1/changes request. It holds no memory borrowed
// from the fiber context.
type changesQuery struct {
	req  changelog.PageRequest
	wait time.Duration
}

func (s *Server) parseChangesQuery(c *fiber.Ctx) (changesQuery, error) {
	var q changesQuery
	since := c.Query("since")
	if since == "" {
		return q, badParameter("since: missing; pass 0 to start from the beginning, or the \"next\" of your last committed page")
	}
	n, err := strconv.ParseInt(since, 10, 64)
	if err != nil || n < 0 {
		return q, badParameter("since: %q is not a non-negative integer; pass the watermark from your last page", since)
	}
	q.req.Since = n

	if cur := c.Query("cursor"); cur != "" {
		cc, err := syncproto.ParseCursor(cur)
		if err != nil {
			return q, badParameter("cursor: %v; pass the cursor of the page you received, or none to start the transaction again", err)
		}
		q.req.Cursor = cc
	}

	q.req.Limit = s.cfg.MaxPageChanges
	if lim := c.Query("limit"); lim != "" {
		n, err := strconv.Atoi(lim)
		if err != nil || n < 1 {
			return q, badParameter("limit: %q is not a positive integer; ask for up to %d changes per page", lim, s.cfg.MaxPageChanges)
		}
		// A larger limit is served as the hub's maximum, so lowering
		// api.max_page_changes never locks out edges configured for more.
		q.req.Limit = min(n, s.cfg.MaxPageChanges)
	}

	if w := c.Query("wait"); w != "" {
		d, err := parseWait(w)
		if err != nil {
			return q, badParameter("wait: %q is not a duration; pass seconds (30) or a Go duration (30s, 1m)", w)
		}
		if d < 0 {
			return q, badParameter("wait: %q is negative; ask for a wait between 0 and %v", w, s.cfg.MaxWait)
		}
		// A longer wait is cut to api.max_wait, like a larger limit.
		q.wait = min(d, s.cfg.MaxWait)
	}
	return q, nil
}

// parseWait reads a wait as seconds ("30", "1.5") or a Go duration ("30s", "500ms").
func parseWait(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		switch {
		case math.IsNaN(f):
			return 0, fmt.Errorf("wait %q is not a number", s)
		case math.Abs(f) > 1e6:
			return time.Duration(math.Copysign(1e6, f)) * time.Second, nil
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

func (s *Server) handleChanges(c *fiber.Ctx) error {
	q, err := s.parseChangesQuery(c)
	if err != nil {
		return err
	}
	s.seen(c, edges.Pull, q.req.Since, "")
	if sc := s.edgeScope(c); sc != nil {
		// The edge's buckets: the page holds only its rows, with its columns.
		q.req.Scoped, q.req.Buckets = true, sc.Buckets()
		fp := scopeFingerprint(q.req.Buckets)
		c.Set(ScopeHeader, fp)
		if held := c.Get(ScopeHeader); held != "" && held != fp && q.req.Since > 0 {
			// The edge's claims changed: its rows were chosen by other buckets, so it
			// holds rows it may no longer see and misses rows it now may.
			return &Error{Kind: KindScopeChanged, Message: fmt.Sprintf(
				"this edge's scope changed since its data was pulled (its credential's claims now select other rows); delete local data and pull again from since=0 (re-bootstrap); since was %d", q.req.Since)}
		}
	}
	ctx := c.UserContext()
	var timer *time.Timer
	for {
		// Take the notification channel before reading, so a commit between the read
		// and the wait is not missed.
		changed := s.deps.Store.Changed()
		page, err := s.deps.Store.ReadPage(ctx, q.req)
		if err != nil {
			return s.pageError(ctx, q, err)
		}
		if page.Head < q.req.Since {
			return aheadError(q.req.Since, fmt.Errorf("page head %d: %w", page.Head, changelog.ErrAhead))
		}
		if page.Changes > 0 || !page.Commit || page.Next != q.req.Since || q.wait <= 0 {
			return s.sendPage(c, page)
		}
		if timer == nil {
			timer = time.NewTimer(q.wait)
			defer timer.Stop()
		}
		select {
		case <-changed:
			continue
		case <-timer.C:
		case <-s.done:
		case <-ctx.Done():
		}
		return s.sendPage(c, page)
	}
}

// ScopeHeader carries the fingerprint of an edge's buckets under the sync rules: the
// hub sends it with every page, the edge sends back the one its data was pulled with,
// and a difference makes the hub answer 410 scope_changed so the edge re-bootstraps.
const ScopeHeader = "X-Synchub-Scope"

// scopeFingerprint is a short stable digest of a bucket set.
func scopeFingerprint(buckets []string) string {
	sorted := slices.Clone(buckets)
	slices.Sort(sorted)
	h := sha256.New()
	for _, b := range sorted {
		h.Write([]byte(b))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func (s *Server) sendPage(c *fiber.Ctx, page *changelog.Page) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Locals(localChanges, page.Changes)
	return s.sendBody(c, page.Body)
}

func (s *Server) pageError(ctx context.Context, q changesQuery, err error) error {
	if errors.Is(err, changelog.ErrAhead) {
		return aheadError(q.req.Since, err)
	}
	if !errors.Is(err, changelog.ErrTooOld) {
		return err
	}
	var horizon int64
	if st, serr := s.deps.Store.State(ctx); serr == nil {
		horizon = st.TombstoneHorizon
	}
	return &Error{Kind: KindWatermarkTooOld, Horizon: horizon, Err: err, Message: fmt.Sprintf(
		"since %d is older than the change log's horizon %d: deletes you have not seen were compacted away; delete local data and pull again from since=0 (re-bootstrap)",
		q.req.Since, horizon)}
}

func aheadError(since int64, err error) *Error {
	return &Error{Kind: KindWatermarkAhead, Err: err, Message: fmt.Sprintf(
		"since %d is ahead of the hub's head: this hub's change log is not the one your data came from (was it replaced or restored?); delete local data and pull again from since=0 (re-bootstrap)",
		since)}
}
