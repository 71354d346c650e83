package api

import (
	"encoding/json"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/edges"
)

// seen tells Deps.Seen that an edge pulled or pushed. The edge is the authenticated
// identity's; without one, the edge id headers, then fallback (the push body's edge).
func (s *Server) seen(c *fiber.Ctx, kind edges.Kind, watermark int64, fallback string) {
	if s.deps.Seen == nil {
		return
	}
	var id, scope string
	if ident := auth.FromCtx(c); ident != nil && ident.Edge != "" {
		id = ident.Edge
		if len(ident.Claims) > 0 {
			if b, err := json.Marshal(ident.Claims); err == nil {
				scope = string(b)
			}
		}
	}
	if id == "" {
		id = c.Get(auth.EdgeHeader)
	}
	if id == "" {
		id = c.Get(auth.LegacyEdgeHeader)
	}
	if id == "" {
		id = fallback
	}
	if id == "" {
		return
	}
	s.deps.Seen(strings.Clone(id), kind, watermark, scope)
}
