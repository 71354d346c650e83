package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/hub/syncproto"
)

func (s *Server) handleSchema(c *fiber.Ctx) error {
	schema, body, err := s.deps.Store.Schema(c.UserContext())
	if err != nil {
		return err
	}
	if schema == nil || len(body) == 0 {
		return &Error{Kind: KindNotReady, Message: "the hub has no schema yet: it has not captured any table; check the hub's source configuration and retry"}
	}
	etag := `"` + strconv.FormatInt(schema.Version, 10) + `"`
	if sc := s.edgeScope(c); sc != nil {
		// The group's tables and allowed columns only; the ETag names the group, as
		// the body depends on it.
		if body, err = json.Marshal(syncproto.SchemaResponse{Version: schema.Version, Tables: sc.Tables(schema.Tables)}); err != nil {
			return fmt.Errorf("encode scoped schema: %w", err)
		}
		etag = `"` + strconv.FormatInt(schema.Version, 10) + "-" + sc.Group + `"`
	}
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return s.sendBody(c, body)
}

// etagMatches reports whether an If-None-Match header value names etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatches(header, etag string) bool {
	for header != "" {
		var tag string
		tag, header, _ = strings.Cut(header, ",")
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
