package push

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/rules"
	"github.com/synchub/synchub/hub/syncproto"
)

// CodeForbidden is the rejection code of a change outside the pushing edge's sync
// rules: a table or column it may not write, or a row outside its scope before or
// after the change. Nothing of such a change is written.
const CodeForbidden = "forbidden"

type scopeKey struct{}

// WithScope returns ctx carrying the pushing edge's sync-rule scope. Push checks every
// change of a batch against it; a context without a scope is not checked (rules off,
// or an operator's retry of a rejected change).
func WithScope(ctx context.Context, sc *rules.Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, sc)
}

func scopeFrom(ctx context.Context) *rules.Scope {
	sc, _ := ctx.Value(scopeKey{}).(*rules.Scope)
	return sc
}

// checkScope returns why a decoded change is outside sc ("" when it is inside). The
// row as the central database holds it now must be inside the scope (so an edge can
// neither change nor overwrite another tenant's row), and so must the new image (so
// it can neither create a row elsewhere nor move one out).
func (s *Service) checkScope(ctx context.Context, sc *rules.Scope, c *change) (string, error) {
	ts, ok := sc.Table(c.tbl.Name)
	if !ok {
		return fmt.Sprintf("table %s is not in the edge's sync rules", c.tbl.Name), nil
	}
	if col, ok := ts.CheckColumns(c.row); !ok {
		return fmt.Sprintf("column %s of %s is not in the edge's column allow-list", col, c.tbl.Name), nil
	}
	server, found, err := s.applier.ReadRow(ctx, c.tbl.Name, c.key)
	if err != nil {
		return "", &Error{Kind: KindUnavailable, Message: fmt.Sprintf("read the current row of %s %s from the central database to check the edge's scope; retry later", c.tbl.Name, c.keyText), Err: err}
	}
	var old cdc.Row
	switch {
	case found:
		old = server
	case len(c.base) > 0:
		old = c.base
	}
	if old != nil && !ts.Contains(old) {
		return fmt.Sprintf("row %s %s is outside the edge's scope", c.tbl.Name, c.keyText), nil
	}
	if c.op == cdc.OpDelete {
		return "", nil
	}
	img := c.row
	if col := ts.Rule.Filter.Column; col != "" && old != nil {
		if _, sent := img.Get(col); !sent {
			// The change leaves the filter column as it is.
			if v, ok := old.Get(col); ok {
				img = append(append(cdc.Row(nil), img...), cdc.Field{Name: col, Value: v})
			}
		}
	}
	if !ts.Contains(img) {
		return fmt.Sprintf("the new image of %s %s is outside the edge's scope", c.tbl.Name, c.keyText), nil
	}
	return "", nil
}

// limitResultRows keeps, in the rows an answer carries back (the server's row of a
// conflict, a merged row), only the columns the edge's rules let it see.
func limitResultRows(sc *rules.Scope, req syncproto.PushRequest, p *plan) {
	for i := range p.Results {
		res := &p.Results[i]
		if len(res.Row) == 0 {
			continue
		}
		ts, ok := sc.Table(req.Changes[i].Table)
		if !ok {
			res.Row = nil
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(res.Row, &m); err != nil {
			res.Row = nil
			continue
		}
		for col := range m {
			if !ts.Rule.AllowsColumn(col) {
				delete(m, col)
			}
		}
		if b, err := json.Marshal(m); err == nil {
			res.Row = b
		} else {
			res.Row = nil
		}
	}
}
