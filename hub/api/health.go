package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/hub/syncproto"
)

func (s *Server) handleHealthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Server) handleReadyz(c *fiber.Ctx) error {
	if s.shuttingDown() {
		return &Error{Kind: KindShuttingDown, Message: "the hub is shutting down; use another replica or retry later"}
	}
	if s.deps.Ready != nil {
		if err := s.deps.Ready(); err != nil {
			return &Error{Kind: KindNotReady, Message: "not ready: " + err.Error()}
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

func (s *Server) handleStatus(c *fiber.Ctx) error {
	if s.deps.Status != nil {
		return c.JSON(s.deps.Status())
	}
	st, err := s.deps.Store.State(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(syncproto.Status{Head: st.Head, SchemaVersion: st.SchemaVersion, Source: st.SourceKind})
}
