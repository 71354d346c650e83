package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/syncproto"
)

// AuthObserver is told about refused requests, for metrics. Implementations must be
// safe for concurrent use and return quickly. A nil AuthObserver in Deps is allowed.
type AuthObserver interface {
	// AuthFailed is called once per request refused by authentication or
	// authorisation, with the auth.Reason that failed (a bounded set).
	AuthFailed(reason string)
	// RateLimited is called once per request refused with 429, with its route.
	RateLimited(route string)
}

// The routes' access rules: the edge routes (/v1/schema, /v1/changes, /v1/push,
// /v1/status) need an edge identity; the admin routes (/v1/conflicts…, /v1/rejected…,
// /v1/audit) an admin identity, role viewer to read and operator to act; /healthz,
// /readyz and /metrics are open.
//
// Without edge authentication (Deps.Auth nil or without methods) the API refuses to
// serve on anything but a loopback address (see CheckListen); an edge is then named by
// the X-Synchub-Edge header (Identity.Method "none"), and admin routes are open unless
// the request presents an admin key, which is then checked.

// CheckListen returns an error when the API would serve on a non-loopback address
// without edge authentication. addr is a host:port listen address.
func CheckListen(addr string, edgeAuth bool) error {
	if edgeAuth || isLoopbackAddr(addr) {
		return nil
	}
	return fmt.Errorf("listen %s: no edge authentication is configured, so the sync API serves only on a loopback address (127.0.0.1, [::1], localhost); "+
		"configure edge authentication (auth.methods: [api_key] and `synchub keys create --edge NAME`, or jwt; see \"Edge authentication\" in README.md) or listen on 127.0.0.1", addr)
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (s *Server) edgeAuthConfigured() bool { return s.deps.Auth.EdgeAuthConfigured() }

// authRequest is the part of c the authenticator reads; valid during the handler only.
func authRequest(c *fiber.Ctx) auth.Request {
	return auth.Request{
		Method: c.Method(),
		Target: c.OriginalURL(),
		Header: func(name string) string { return c.Get(name) },
		// The raw body as sent: fiber's c.Body() would decompress it.
		Body: c.Request().Body(),
	}
}

// requireEdge establishes the edge's Identity or refuses the request.
func (s *Server) requireEdge(c *fiber.Ctx) error {
	if !s.edgeAuthConfigured() {
		if auth.FromCtx(c) != nil {
			return c.Next() // established by middleware the API is mounted behind
		}
		edge := c.Get(auth.EdgeHeader)
		if edge == "" {
			edge = c.Get(auth.LegacyEdgeHeader)
		}
		auth.WithIdentity(c, &auth.Identity{Edge: strings.Clone(edge), Method: auth.MethodNone})
		return c.Next()
	}
	id, err := s.deps.Auth.Edge(c.UserContext(), authRequest(c))
	if err != nil {
		return s.refuse(c, err)
	}
	auth.WithIdentity(c, id)
	return c.Next()
}

// requireAdmin establishes an admin Identity with at least role, or refuses.
func (s *Server) requireAdmin(role string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !s.edgeAuthConfigured() && (s.deps.Auth == nil || c.Get(fiber.HeaderAuthorization) == "") {
			auth.WithIdentity(c, &auth.Identity{Admin: "local", Role: auth.RoleOperator, Method: auth.MethodNone})
			return c.Next()
		}
		id, err := s.deps.Auth.Admin(c.UserContext(), authRequest(c), role)
		if err != nil {
			return s.refuse(c, err)
		}
		auth.WithIdentity(c, id)
		return c.Next()
	}
}

// checkPushEdge binds a push to the caller: a batch naming another edge is refused
// (403), and one naming none is filled in from the identity. ok is false when the
// request was answered.
func (s *Server) checkPushEdge(c *fiber.Ctx, req *syncproto.PushRequest) (ok bool, err error) {
	id := auth.FromCtx(c)
	if id == nil || id.Edge == "" {
		return true, nil
	}
	switch req.Edge {
	case "":
		req.Edge = id.Edge
	case id.Edge:
	default:
		return false, s.refuse(c, &auth.Failure{Status: fiber.StatusForbidden, Reason: auth.ReasonWrongEdge, Edge: id.Edge,
			Message: fmt.Sprintf("the batch names edge %q but the request is authenticated as edge %q; push only your own changes (or leave \"edge\" empty)", req.Edge, id.Edge)})
	}
	return true, nil
}

// refuse answers an authentication failure (401, 403 or 503) with a syncproto.Error,
// logs it, tells the observer and writes it to the audit log. Errors that are not an
// *auth.Failure go to the usual error path.
func (s *Server) refuse(c *fiber.Ctx, err error) error {
	f, ok := auth.AsFailure(err)
	if !ok {
		return err
	}
	path := strings.Clone(c.Path())
	ip := c.IP()
	s.log.Warn("request refused", "method", c.Method(), "path", path, "status", f.Status, "reason", string(f.Reason),
		"edge_id", f.Edge, "admin", f.Admin, "remote", ip, "message", f.Message, "err", f.Err)
	if s.deps.AuthObserver != nil {
		s.deps.AuthObserver.AuthFailed(string(f.Reason))
	}
	s.auditRefusal(c.UserContext(), f, c.Method(), path, ip)
	if f.Status == fiber.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="synchub"`)
	}
	return writeJSONError(c, f.Status, f.Code(), f.Message)
}

// auditRefusal records a refused request. Writes are rate-limited so a flood of bad
// requests cannot turn into a flood of audit-log writes; the dropped ones are counted
// in the hub's log.
func (s *Server) auditRefusal(ctx context.Context, f *auth.Failure, method, path, ip string) {
	if s.deps.Audit == nil {
		return
	}
	if !s.auditLimit.Allow() {
		if n := s.auditDropped.Add(1); n == 1 || n%1000 == 0 {
			s.log.Warn("auth failures arrive faster than they are audited; some are only logged", "dropped", n)
		}
		return
	}
	actor := audit.ActorSystem
	switch {
	case f.Edge != "":
		actor = audit.EdgeActor(f.Edge)
	case f.Admin != "":
		actor = audit.AdminActor(f.Admin)
	}
	who := "unauthenticated caller"
	if actor != audit.ActorSystem {
		who = actor
	}
	ev := audit.Event{
		Actor:   actor,
		Action:  audit.ActionAuthFailure,
		Edge:    f.Edge,
		Outcome: strconv.Itoa(f.Status),
		Detail:  fmt.Sprintf("%s: %s %s from %s (%s): %s", f.Reason, method, path, ip, who, f.Message),
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.deps.Audit.Append(actx, ev); err != nil {
		s.log.Warn("audit auth failure", "err", err)
	}
}

// writeJSONError answers status with a syncproto.Error body.
func writeJSONError(c *fiber.Ctx, status int, code, message string) error {
	b, err := json.Marshal(syncproto.Error{Code: code, Message: message})
	if err != nil {
		return err
	}
	c.Response().Header.Del(fiber.HeaderContentEncoding)
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}
