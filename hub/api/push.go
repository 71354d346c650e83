package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/klauspost/compress/gzip"

	"github.com/synchub/synchub/hub/edges"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/hub/syncproto"
)

// handlePush serves POST /v1/push: one batch of an edge's local changes (see
// syncproto.PushRequest). The body may be gzip-compressed (Content-Encoding: gzip);
// compressed or not, it may be at most Config.BodyLimit bytes. The answer is a
// syncproto.PushResponse with one result per change. Re-sending a batch id returns the
// stored answer. A batch naming the edge's previous, unanswered batch in "after" is
// written only after that batch's write (see push.Service.Push). 400: malformed body, or
// "after" naming another edge's batch; 409: the batch id belongs to another edge; 413:
// too many changes or too large a body; 503: pushes unavailable, the batch's outcome
// not known yet (retry later with the same batch id), or the batch it follows failed or
// has not arrived (code batch_pending: re-send that batch first, then this one
// unchanged). A re-sent batch whose answer was discarded after push.answer_retention
// is answered 200 with each change rejected, code answer_expired, and the row as the
// central database has it now.
func (s *Server) handlePush(c *fiber.Ctx) error {
	// Tells the edge that this hub orders batches sent with "after", so it may send a
	// batch before the previous one is answered.
	c.Set(syncproto.HeaderPushAfter, "1")
	if s.deps.Push == nil {
		return s.sendStatusError(c, fiber.StatusServiceUnavailable, "push_unavailable",
			"write-back not available for this source: the hub has no Applier for its central database, so edges cannot push", nil)
	}
	body, err := s.requestBody(c)
	if err != nil {
		return err
	}
	var req syncproto.PushRequest
	if err := decodePush(body, &req); err != nil {
		return badParameter("push body: %v; send a JSON object {\"edge\":…,\"batch_id\":…,\"sent_at\":…,\"changes\":[…]}", err)
	}
	if ok, err := s.checkPushEdge(c, &req); !ok {
		return err
	}
	s.seen(c, edges.Push, 0, req.Edge)
	resp, err := s.deps.Push.Push(s.pushContext(c), req)
	if err != nil {
		return s.pushError(c, err)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Locals(localChanges, len(resp.Results))
	return s.sendBody(c, b)
}

// requestBody returns the request body, gunzipped when it is sent with
// Content-Encoding: gzip, limited to Config.BodyLimit bytes either way. The result
// does not borrow from the fiber context.
func (s *Server) requestBody(c *fiber.Ctx) ([]byte, error) {
	// The raw bytes: fiber's c.Body() would decompress without a size limit.
	raw := c.Request().Body()
	enc := strings.ToLower(strings.TrimSpace(c.Get(fiber.HeaderContentEncoding)))
	switch enc {
	case "", "identity":
		return bytes.Clone(raw), nil
	case "gzip":
	default:
		return nil, &Error{Kind: KindBadParameter, Message: fmt.Sprintf("Content-Encoding %q is not supported; send the body plain or gzip-compressed", enc)}
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, badParameter("body is not valid gzip (%v); send it plain or compress it with gzip", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, int64(s.cfg.BodyLimit)+1))
	if err != nil {
		return nil, badParameter("body is not valid gzip (%v); send it plain or compress it with gzip", err)
	}
	if len(out) > s.cfg.BodyLimit {
		return nil, &Error{Kind: KindBodyTooLarge, Message: fmt.Sprintf("decompressed body is larger than the hub's limit of %d bytes; send smaller batches", s.cfg.BodyLimit)}
	}
	return out, nil
}

// decodePush decodes a push body. A body that encoding/json's scanner finds valid, and
// that is valid UTF-8, is decoded with goccy/go-json: for a 1,000-change batch the two
// together take about half the time of encoding/json's decoding. Any other body goes
// through decodeStrict, for its error message or its handling of invalid UTF-8 (which
// becomes U+FFFD rather than stored as it came).
func decodePush(body []byte, req *syncproto.PushRequest) error {
	if !utf8.Valid(body) || hasLongNumber(body) || !json.Valid(body) {
		return decodeStrict(body, req)
	}
	if err := gojson.Unmarshal(body, req); err != nil {
		return fmt.Errorf("not valid JSON for this request: %v", err)
	}
	return nil
}

// hasLongNumber reports whether body holds a number of 19 digits or more outside
// strings: goccy/go-json wraps such integers around int64 where encoding/json refuses
// them, so those bodies go through encoding/json.
func hasLongNumber(body []byte) bool {
	inString, escaped, digits := false, false, 0
	for _, c := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString, digits = true, 0
		case c >= '0' && c <= '9':
			if digits++; digits >= 19 {
				return true
			}
		default:
			digits = 0
		}
	}
	return false
}

// decodeStrict decodes one JSON value and refuses anything after it.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not valid JSON for this request: %v", err)
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// pushError answers an error of the push service with its HTTP status.
func (s *Server) pushError(c *fiber.Ctx, err error) error {
	var pe *push.Error
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Kind {
	case push.KindInvalid:
		return &Error{Kind: KindBadParameter, Message: pe.Message, Err: pe.Err}
	case push.KindNotFound:
		return &Error{Kind: KindNotFound, Message: pe.Message, Err: pe.Err}
	case push.KindTooLarge:
		return s.sendStatusError(c, fiber.StatusRequestEntityTooLarge, "batch_too_large", pe.Message, pe.Err)
	case push.KindState:
		return s.sendStatusError(c, fiber.StatusConflict, "conflict_state", pe.Message, pe.Err)
	case push.KindPending:
		c.Set(fiber.HeaderRetryAfter, "5")
		return s.sendStatusError(c, fiber.StatusServiceUnavailable, "batch_pending", pe.Message, pe.Err)
	case push.KindUnavailable:
		c.Set(fiber.HeaderRetryAfter, "5")
		return s.sendStatusError(c, fiber.StatusServiceUnavailable, "unavailable", pe.Message, pe.Err)
	}
	return err
}

// sendStatusError answers with a syncproto.Error body for statuses the error kinds
// table does not name, and logs it like a returned error.
func (s *Server) sendStatusError(c *fiber.Ctx, status int, code, message string, cause error) error {
	b, err := json.Marshal(syncproto.Error{Code: code, Message: message})
	if err != nil {
		return err
	}
	s.log.Warn("request failed", "method", c.Method(), "path", strings.Clone(c.Path()), "status", status,
		"error_code", code, "message", message, "err", cause)
	c.Response().Header.Del(fiber.HeaderContentEncoding)
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}
