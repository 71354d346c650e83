package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/hub/rules"
)

// edgeScope returns the caller's scope under the sync rules, or nil when no rules
// are configured (every table, column and row). Without an established identity the
// caller is an edge named by the X-Synchub-Edge header, with no claims.
func (s *Server) edgeScope(c *fiber.Ctx) *rules.Scope {
	if s.deps.Rules == nil {
		return nil
	}
	var (
		edge   string
		claims map[string]any
	)
	if id := auth.FromCtx(c); id != nil {
		edge, claims = id.Edge, id.Claims
		if edge == "" {
			edge = "admin:" + id.Admin
		}
	} else {
		edge = c.Get(auth.EdgeHeader)
	}
	return s.deps.Rules.EdgeScope(edge, claims, s.log)
}

// pushContext is the request's context carrying the caller's scope for the push
// service's write checks (see push.WithScope); without rules it is the request's.
func (s *Server) pushContext(c *fiber.Ctx) context.Context {
	ctx := c.UserContext()
	if sc := s.edgeScope(c); sc != nil {
		ctx = push.WithScope(ctx, sc)
	}
	return ctx
}
