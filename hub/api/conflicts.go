package api

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/push"
)

// The admin routes below (conflict queue, rejected changes, audit log) are not
// authenticated yet: serve the API on a trusted network only until API keys guard them.

// ConflictList is the body of GET /v1/conflicts.
type ConflictList struct {
	Conflicts []push.ConflictRecord `json:"conflicts"`
}

// RejectedList is the body of GET /v1/rejected.
type RejectedList struct {
	Rejected []push.RejectedRecord `json:"rejected"`
}

// AuditList is the body of GET /v1/audit.
type AuditList struct {
	Events []audit.Event `json:"events"`
}

// ResolveRequest is the body of POST /v1/conflicts/:id/resolve.
type ResolveRequest struct {
	Action string          `json:"action"` // keep_server, take_client or merged
	Row    json.RawMessage `json:"row,omitempty"`
	Actor  string          `json:"actor"`
}

// ActorRequest is the body of POST /v1/rejected/:id/retry and /discard.
type ActorRequest struct {
	Actor string `json:"actor"`
}

func (s *Server) pushService(c *fiber.Ctx) (*push.Service, error) {
	if s.deps.Push == nil {
		return nil, s.sendStatusError(c, fiber.StatusServiceUnavailable, "push_unavailable",
			"write-back not available for this source: there is no conflict queue or rejected list", nil)
	}
	return s.deps.Push, nil
}

// listFilter reads status, table, edge, after_id and limit.
func listFilter(c *fiber.Ctx) (push.ListFilter, error) {
	f := push.ListFilter{
		Status: strings.Clone(c.Query("status")),
		Table:  strings.Clone(c.Query("table")),
		Edge:   strings.Clone(c.Query("edge")),
	}
	var err error
	if f.AfterID, err = queryInt(c, "after_id"); err != nil {
		return f, err
	}
	limit, err := queryInt(c, "limit")
	f.Limit = int(limit)
	return f, err
}

func queryInt(c *fiber.Ctx, name string) (int64, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badParameter("%s: %q is not a non-negative integer", name, v)
	}
	return n, nil
}

func pathID(c *fiber.Ctx) (int64, error) {
	v := c.Params("id")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, badParameter("id: %q is not a positive integer", v)
	}
	return n, nil
}

func (s *Server) sendJSON(c *fiber.Ctx, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return s.sendBody(c, b)
}

// handleConflicts serves GET /v1/conflicts?status=open&table=&edge=&after_id=&limit=.
func (s *Server) handleConflicts(c *fiber.Ctx) error {
	svc, err := s.pushService(c)
	if svc == nil {
		return err
	}
	f, err := listFilter(c)
	if err != nil {
		return err
	}
	list, err := svc.Conflicts(c.UserContext(), f)
	if err != nil {
		return s.pushError(c, err)
	}
	return s.sendJSON(c, ConflictList{Conflicts: list})
}

// handleConflict serves GET /v1/conflicts/:id.
func (s *Server) handleConflict(c *fiber.Ctx) error {
	svc, err := s.pushService(c)
	if svc == nil {
		return err
	}
	id, err := pathID(c)
	if err != nil {
		return err
	}
	rec, err := svc.Conflict(c.UserContext(), id)
	if err != nil {
		return s.pushError(c, err)
	}
	return s.sendJSON(c, rec)
}

// handleResolve serves POST /v1/conflicts/:id/resolve with a ResolveRequest.
func (s *Server) handleResolve(c *fiber.Ctx) error {
	svc, err := s.pushService(c)
	if svc == nil {
		return err
	}
	id, err := pathID(c)
	if err != nil {
		return err
	}
	body, err := s.requestBody(c)
	if err != nil {
		return err
	}
	var req ResolveRequest
	if err := decodeStrict(body, &req); err != nil {
		return badParameter("resolve body: %v; send {\"action\":\"keep_server\"|\"take_client\"|\"merged\",\"row\":{…},\"actor\":\"name\"}", err)
	}
	rec, err := svc.Resolve(c.UserContext(), id, req.Action, req.Row, adminActor(c, req.Actor))
	if err != nil {
		return s.pushError(c, err)
	}
	return s.sendJSON(c, rec)
}

// handleRejected serves GET /v1/rejected?status=open&table=&edge=&after_id=&limit=.
func (s *Server) handleRejected(c *fiber.Ctx) error {
	svc, err := s.pushService(c)
	if svc == nil {
		return err
	}
	f, err := listFilter(c)
	if err != nil {
		return err
	}
	list, err := svc.RejectedChanges(c.UserContext(), f)
	if err != nil {
		return s.pushError(c, err)
	}
	return s.sendJSON(c, RejectedList{Rejected: list})
}

// handleRejectedAction serves POST /v1/rejected/:id/retry and /discard with an
// ActorRequest body (or ?actor=).
func (s *Server) handleRejectedAction(retry bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		svc, err := s.pushService(c)
		if svc == nil {
			return err
		}
		id, err := pathID(c)
		if err != nil {
			return err
		}
		req := ActorRequest{Actor: strings.Clone(c.Query("actor"))}
		if body, err := s.requestBody(c); err != nil {
			return err
		} else if len(strings.TrimSpace(string(body))) > 0 {
			if err := decodeStrict(body, &req); err != nil {
				return badParameter("body: %v; send {\"actor\":\"name\"}", err)
			}
		}
		var rec push.RejectedRecord
		if retry {
			rec, err = svc.Retry(c.UserContext(), id, adminActor(c, req.Actor))
		} else {
			rec, err = svc.Discard(c.UserContext(), id, adminActor(c, req.Actor))
		}
		if err != nil {
			return s.pushError(c, err)
		}
		return s.sendJSON(c, rec)
	}
}

// handleAudit serves GET /v1/audit with the filters of audit.Filter as query
// parameters: from, to (RFC 3339), actor, edge, table, key, action, after_id,
// before_id, limit.
func (s *Server) handleAudit(c *fiber.Ctx) error {
	if s.deps.Audit == nil {
		return s.sendStatusError(c, fiber.StatusServiceUnavailable, "audit_unavailable", "the hub has no audit log configured", nil)
	}
	f := audit.Filter{
		Actor:  strings.Clone(c.Query("actor")),
		Edge:   strings.Clone(c.Query("edge")),
		Table:  strings.Clone(c.Query("table")),
		Key:    strings.Clone(c.Query("key")),
		Action: strings.Clone(c.Query("action")),
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := c.Query(t.name); v != "" {
			tm, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return badParameter("%s: %q is not an RFC 3339 time such as 2026-01-31T12:00:00Z", t.name, v)
			}
			*t.dst = tm
		}
	}
	var err error
	if f.AfterID, err = queryInt(c, "after_id"); err != nil {
		return err
	}
	if f.BeforeID, err = queryInt(c, "before_id"); err != nil {
		return err
	}
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	f.Limit = int(limit)
	if err := f.Validate(); err != nil {
		return badParameter("%v", err)
	}
	events, err := s.deps.Audit.Query(c.UserContext(), f)
	if err != nil {
		return err
	}
	if events == nil {
		events = []audit.Event{}
	}
	return s.sendJSON(c, AuditList{Events: events})
}

// adminActor is the name an admin action is audited under: the authenticated admin's
// when the request carries an admin credential (a name in the body cannot override it),
// else the name the body gives (a hub without edge authentication, on loopback).
func adminActor(c *fiber.Ctx, claimed string) string {
	if id := auth.FromCtx(c); id != nil && id.Admin != "" && id.Method != auth.MethodNone {
		return id.Admin
	}
	return claimed
}
