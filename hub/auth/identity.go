// Package auth authenticates edges and admins on the hub's API: API keys, JWTs and
// optional request signing. The middleware stores the caller's Identity in the request
// context; handlers read it with FromCtx.
package auth

import "github.com/gofiber/fiber/v2"

// Identity is who made a request.
type Identity struct {
	// Edge is the edge id (for edges); empty for admins.
	Edge string
	// Admin is the admin's name (for admin credentials); empty for edges.
	Admin string
	// Role is the admin's role ("viewer" or "operator"); empty for edges.
	Role string
	// Claims are the credential's claims (API key claims or JWT claims), e.g.
	// {"store_id": "7", "regions": ["eu", "us"]}; sync rules bind to them.
	Claims map[string]any
	// Method says how the caller authenticated: "api_key", "jwt" or "none" (no edge
	// authentication configured; the hub then serves only on loopback and takes the
	// edge id the request names).
	Method string
}

// localIdentity is the fiber Locals key of the request's Identity.
const localIdentity = "synchub.identity"

// WithIdentity stores id in the request context.
func WithIdentity(c *fiber.Ctx, id *Identity) { c.Locals(localIdentity, id) }

// FromCtx returns the request's Identity, or nil when none was established.
func FromCtx(c *fiber.Ctx) *Identity {
	id, _ := c.Locals(localIdentity).(*Identity)
	return id
}

// EdgeHeader carries the edge id on requests to a hub without edge authentication.
const EdgeHeader = "X-Synchub-Edge"

// LegacyEdgeHeader is the edge-id header older edge agents send; a hub without edge
// authentication reads it when EdgeHeader is absent.
const LegacyEdgeHeader = "X-Synchub-Edge-Id"

// How a caller authenticated (Identity.Method).
const (
	MethodAPIKey = "api_key"
	MethodJWT    = "jwt"
	MethodNone   = "none"
)

// Admin roles (Identity.Role). A viewer may read the admin API; an operator may also
// act on it (resolve conflicts, retry or discard rejected changes).
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
)

// RoleAllows reports whether an admin with role have may do what needs role need.
func RoleAllows(have, need string) bool {
	switch need {
	case RoleViewer:
		return have == RoleViewer || have == RoleOperator
	case RoleOperator:
		return have == RoleOperator
	}
	return false
}
