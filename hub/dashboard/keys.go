package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/ui"
)

func keyRows(list []auth.KeyInfo, edge string) []ui.KeyRow {
	out := []ui.KeyRow{}
	for _, k := range list {
		if edge != "" && k.Edge != edge {
			continue
		}
		r := ui.KeyRow{ID: k.ID, Edge: k.Edge, Admin: k.Admin, Role: k.Role, Signing: k.Signing, Created: k.Created, Revoked: k.Revoked}
		if len(k.Claims) > 0 {
			if b, err := json.Marshal(k.Claims); err == nil {
				r.Claims = string(b)
			}
		}
		out = append(out, r)
	}
	return out
}

func (d *Dashboard) keysPage(c *fiber.Ctx) error {
	p := ui.KeysProps{Page: d.page(c, "API keys", "keys"), Available: d.deps.Keys != nil}
	if p.Available {
		list, err := d.deps.Keys.List(c.UserContext())
		if err != nil {
			p.Error = err.Error()
		}
		p.Keys = keyRows(list, "")
	}
	return d.render(c, fiber.StatusOK, ui.KeysPage(p))
}

func (d *Dashboard) revokeKey(c *fiber.Ctx) error {
	if d.deps.Keys == nil {
		return d.notFound(c, "This hub has no API key database.")
	}
	id := strings.Clone(c.Params("id"))
	ki, err := d.deps.Keys.Revoke(c.UserContext(), id)
	if err != nil {
		if errors.Is(err, auth.ErrKeyNotFound) {
			return d.flash(c, "/ui/keys", false, fmt.Sprintf("There is no key %s.", id))
		}
		return d.flash(c, "/ui/keys", false, "Not revoked: "+err.Error())
	}
	d.auditRevoke(c, ki)
	return d.flash(c, "/ui/keys", true, fmt.Sprintf("Key %s revoked.", ki.ID))
}

func (d *Dashboard) revokeEdgeKeys(c *fiber.Ctx) error {
	if d.deps.Keys == nil {
		return d.notFound(c, "This hub has no API key database.")
	}
	edge := strings.TrimSpace(strings.Clone(c.FormValue("edge")))
	back := "/ui/edges/" + pathEscape(edge)
	if edge == "" {
		return d.flash(c, "/ui/keys", false, "Name the edge whose keys to revoke.")
	}
	list, err := d.deps.Keys.RevokeEdge(c.UserContext(), edge)
	if err != nil {
		return d.flash(c, back, false, "Not revoked: "+err.Error())
	}
	for _, ki := range list {
		d.auditRevoke(c, ki)
	}
	return d.flash(c, back, true, fmt.Sprintf("Revoked %d keys of edge %s.", len(list), edge))
}

func (d *Dashboard) auditRevoke(c *fiber.Ctx, ki auth.KeyInfo) {
	owner := "edge " + ki.Edge
	if ki.Edge == "" {
		owner = "admin " + ki.Admin
	}
	d.audit(c, audit.Event{Actor: audit.AdminActor(d.adminName(c)), Action: audit.ActionKeyRevoke, Edge: ki.Edge,
		Outcome: "revoked", Detail: fmt.Sprintf("key %s of %s, from the dashboard", ki.ID, owner)})
}
