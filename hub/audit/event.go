package audit

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Event is one audit record. ID is assigned by the log on Append (IDs only grow, in
// commit order, and are never reused, even after Prune); Time is when it happened and
// defaults to the time of Append.
type Event struct {
	ID      int64           `json:"id"`
	Time    time.Time       `json:"time"`
	Actor   string          `json:"actor"`  // "edge:<id>", "admin:<name>", "system"
	Action  string          `json:"action"` // one of the Action* constants
	Edge    string          `json:"edge,omitempty"`
	Table   string          `json:"table,omitempty"`
	Key     string          `json:"key,omitempty"`
	Outcome string          `json:"outcome,omitempty"`
	Detail  string          `json:"detail,omitempty"`
	Before  json.RawMessage `json:"before,omitempty"` // server row image
	After   json.RawMessage `json:"after,omitempty"`  // client / resulting row image
}

// Actions recorded by the hub.
const (
	// ActionPush is an edge change applied to the central database.
	ActionPush = "push"
	// ActionConflict is an edge change whose base version is older than the row's latest
	// version written by someone else; Before is the server row, After the client's.
	ActionConflict = "conflict"
	// ActionResolve is a conflict resolved by policy or by an admin; After is the result.
	ActionResolve = "resolve"
	// ActionReject is an edge change refused (out of scope, constraint, type error);
	// Detail holds the reason.
	ActionReject = "reject"
	// ActionAuthFailure is a request refused for missing, unknown or revoked credentials.
	ActionAuthFailure = "auth_failure"
	// ActionKeyCreate is an API key created.
	ActionKeyCreate = "key_create"
	// ActionKeyRevoke is an API key revoked.
	ActionKeyRevoke = "key_revoke"
	// ActionAdmin is any other admin action taken in the dashboard or API.
	ActionAdmin = "admin"
)

// Actors that are not an edge or an admin.
const (
	// ActorSystem is the hub itself (policies, retention, ingest).
	ActorSystem = "system"
)

// Actor prefixes, followed by the edge id or the admin's name.
const (
	EdgeActorPrefix  = "edge:"
	AdminActorPrefix = "admin:"
)

// EdgeActor returns the actor naming the edge with this id.
func EdgeActor(id string) string { return EdgeActorPrefix + id }

// AdminActor returns the actor naming the admin with this name.
func AdminActor(name string) string { return AdminActorPrefix + name }

// Limits on event fields, so that one event cannot grow the log without bound by accident.
const (
	maxNameLen   = 1024    // actor, action, edge, table, key, outcome
	maxDetailLen = 1 << 16 // detail
)

// validate reports what is wrong with e, which is the i-th event of an Append.
func (e *Event) validate() error {
	switch {
	case e.Actor == "":
		return fmt.Errorf("actor is empty: use ActorSystem, EdgeActor(id) or AdminActor(name)")
	case e.Actor != ActorSystem && !validPrefixed(e.Actor, EdgeActorPrefix) && !validPrefixed(e.Actor, AdminActorPrefix):
		return fmt.Errorf("actor %q: must be %q, %q<id> or %q<name>", e.Actor, ActorSystem, EdgeActorPrefix, AdminActorPrefix)
	case !validAction(e.Action):
		return fmt.Errorf("action %q: must be lowercase letters, digits and _, starting with a letter, such as %q", e.Action, ActionPush)
	case !e.Time.IsZero() && (e.Time.Year() < 1 || e.Time.Year() > 9999):
		return fmt.Errorf("time %v: must be between years 1 and 9999", e.Time)
	case len(e.Detail) > maxDetailLen:
		return fmt.Errorf("detail is %d bytes: at most %d allowed", len(e.Detail), maxDetailLen)
	}
	for _, f := range [...]struct{ name, v string }{{"actor", e.Actor}, {"action", e.Action},
		{"edge", e.Edge}, {"table", e.Table}, {"key", e.Key}, {"outcome", e.Outcome}} {
		if len(f.v) > maxNameLen {
			return fmt.Errorf("%s is %d bytes: at most %d allowed", f.name, len(f.v), maxNameLen)
		}
	}
	if len(e.Before) > 0 && !json.Valid(e.Before) {
		return fmt.Errorf("before row image is not valid JSON")
	}
	if len(e.After) > 0 && !json.Valid(e.After) {
		return fmt.Errorf("after row image is not valid JSON")
	}
	return nil
}

func validPrefixed(actor, prefix string) bool {
	return strings.HasPrefix(actor, prefix) && len(actor) > len(prefix)
}

func validAction(a string) bool {
	if a == "" || a[0] < 'a' || a[0] > 'z' {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
