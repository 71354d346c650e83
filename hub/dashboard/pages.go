package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/edges"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/ui"
)

// listLimit is how many conflicts or rejected changes a page reads.
const listLimit = 500

func isHX(c *fiber.Ctx) bool { return c.Get("HX-Request") != "" }

func query(c *fiber.Ctx, name string) string { return strings.TrimSpace(strings.Clone(c.Query(name))) }

func (d *Dashboard) overview(c *fiber.Ctx) error {
	ctx := c.UserContext()
	st := d.deps.Status()
	p := ui.OverviewProps{
		Page:          d.page(c, "Overview", "overview"),
		Source:        st.Source,
		SourceState:   st.SourceState,
		LagSeconds:    st.LagSeconds,
		LagBytes:      st.LagBytes,
		Head:          st.Head,
		SchemaVersion: st.SchemaVersion,
		OpenConflicts: -1,
		OpenRejected:  -1,
	}
	if ls, err := d.deps.Store.State(ctx); err == nil {
		p.LogEntries, p.LogBytes = ls.Entries, ls.Bytes
	}
	p.Samples, p.Rate, p.RateWindow = d.rates()
	for _, e := range d.edgeList() {
		p.EdgesTotal++
		if e.Online(p.Now, d.cfg.OnlineWindow) {
			p.EdgesOnline++
		} else {
			p.EdgesStale++
		}
	}
	if svc := d.deps.Push; svc != nil {
		var err error
		if p.OpenConflicts, p.OpenRejected, err = svc.OpenCounts(ctx); err != nil {
			return d.fail(c, fiber.StatusServiceUnavailable, fmt.Errorf("count open conflicts and rejected changes: %w", err))
		}
	}
	if isHX(c) {
		return d.render(c, fiber.StatusOK, ui.OverviewLive(p))
	}
	if sch, _, err := d.deps.Store.Schema(ctx); err == nil && sch != nil {
		for _, t := range sch.Tables {
			p.Tables = append(p.Tables, ui.TableProps{Name: t.Name, Columns: len(t.Columns), Key: strings.Join(t.PrimaryKey, ", ")})
		}
	}
	return d.render(c, fiber.StatusOK, ui.OverviewPage(p))
}

func (d *Dashboard) edgeList() []edges.Edge {
	if d.deps.Edges == nil {
		return nil
	}
	return d.deps.Edges.List()
}

// openConflictsByEdge counts open conflicts per edge (of the first listLimit).
func (d *Dashboard) openConflictsByEdge(c *fiber.Ctx) map[string]int {
	out := map[string]int{}
	if d.deps.Push == nil {
		return out
	}
	list, err := d.deps.Push.Conflicts(c.UserContext(), push.ListFilter{Status: push.StatusOpen, Limit: listLimit})
	if err != nil {
		d.log.Warn("dashboard: list open conflicts", "err", err)
		return out
	}
	for _, x := range list {
		out[x.Edge]++
	}
	return out
}

func edgeRow(e edges.Edge, head int64, now time.Time, window time.Duration, conflicts int) ui.EdgeRow {
	return ui.EdgeRow{
		ID: e.ID, Scope: e.Scope, Watermark: e.Watermark, Behind: e.Behind(head),
		FirstSeen: e.FirstSeen, LastSeen: e.LastSeen, LastPull: e.LastPull, LastPush: e.LastPush,
		Pulls: e.Pulls, Pushes: e.Pushes, Online: e.Online(now, window), OpenConflicts: conflicts,
	}
}

func (d *Dashboard) edgesPage(c *fiber.Ctx) error {
	p := ui.EdgesProps{
		Page:  d.page(c, "Edges", "edges"),
		Head:  d.deps.Status().Head,
		Sort:  query(c, "sort"),
		Desc:  query(c, "desc") != "",
		Query: query(c, "q"),
		State: query(c, "state"),
	}
	if p.Sort == "" {
		p.Sort = "id"
	}
	counts := d.openConflictsByEdge(c)
	for _, e := range d.edgeList() {
		r := edgeRow(e, p.Head, p.Now, d.cfg.OnlineWindow, counts[e.ID])
		if p.Query != "" && !strings.Contains(strings.ToLower(r.ID+" "+r.Scope), strings.ToLower(p.Query)) {
			continue
		}
		if (p.State == "online" && !r.Online) || (p.State == "stale" && r.Online) {
			continue
		}
		p.Edges = append(p.Edges, r)
	}
	sortEdges(p.Edges, p.Sort, p.Desc)
	if isHX(c) {
		return d.render(c, fiber.StatusOK, ui.EdgesTable(p))
	}
	return d.render(c, fiber.StatusOK, ui.EdgesPage(p))
}

func sortEdges(rows []ui.EdgeRow, by string, desc bool) {
	less := func(a, b ui.EdgeRow) bool { return a.ID < b.ID }
	switch by {
	case "watermark":
		less = func(a, b ui.EdgeRow) bool { return a.Watermark < b.Watermark }
	case "behind":
		less = func(a, b ui.EdgeRow) bool { return a.Behind < b.Behind }
	case "last_seen":
		less = func(a, b ui.EdgeRow) bool { return a.LastSeen.Before(b.LastSeen) }
	case "last_push":
		less = func(a, b ui.EdgeRow) bool { return a.LastPush.Before(b.LastPush) }
	case "conflicts":
		less = func(a, b ui.EdgeRow) bool { return a.OpenConflicts < b.OpenConflicts }
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if desc {
			return less(rows[j], rows[i])
		}
		return less(rows[i], rows[j])
	})
}

func (d *Dashboard) edgePage(c *fiber.Ctx) error {
	id, err := url.PathUnescape(c.Params("id"))
	if err != nil {
		id = c.Params("id")
	}
	id = strings.Clone(id)
	p := ui.EdgeProps{Page: d.page(c, "Edge "+id, "edges"), Head: d.deps.Status().Head}
	p.Edge.ID = id
	var e edges.Edge
	if d.deps.Edges != nil {
		e, p.Found = d.deps.Edges.Get(id)
	}
	ctx := c.UserContext()
	if svc := d.deps.Push; svc != nil {
		list, err := svc.Conflicts(ctx, push.ListFilter{Status: push.StatusOpen, Edge: id, Limit: listLimit})
		if err != nil {
			return d.fail(c, fiber.StatusServiceUnavailable, err)
		}
		p.Conflicts = conflictRows(list)
		rej, err := svc.RejectedChanges(ctx, push.ListFilter{Status: push.StatusOpen, Edge: id, Limit: listLimit})
		if err != nil {
			return d.fail(c, fiber.StatusServiceUnavailable, err)
		}
		p.Rejected = rejectedRows(rej)
	}
	if p.Found {
		p.Edge = edgeRow(e, p.Head, p.Now, d.cfg.OnlineWindow, len(p.Conflicts))
	}
	if d.deps.Keys != nil {
		p.KeysAvailable = true
		list, err := d.deps.Keys.List(ctx)
		if err != nil {
			return d.fail(c, fiber.StatusServiceUnavailable, err)
		}
		p.Keys = keyRows(list, id)
	}
	if d.deps.Audit != nil {
		ev, err := d.deps.Audit.Query(ctx, audit.Filter{Edge: id, Limit: 20})
		if err != nil {
			return d.fail(c, fiber.StatusServiceUnavailable, err)
		}
		p.Audit = auditRows(ev)
	}
	return d.render(c, fiber.StatusOK, ui.EdgePage(p))
}

func conflictRows(list []push.ConflictRecord) []ui.ConflictRow {
	out := make([]ui.ConflictRow, 0, len(list))
	for _, x := range list {
		out = append(out, conflictRow(x))
	}
	return out
}

func conflictRow(x push.ConflictRecord) ui.ConflictRow {
	return ui.ConflictRow{ID: x.ID, Edge: x.Edge, Table: x.Table, Key: x.Key, Op: x.Op, Kind: x.Kind,
		BaseVersion: x.BaseVersion, Created: x.Created, Status: x.Status, Resolution: x.Resolution, ResolvedBy: x.ResolvedBy}
}

func rejectedRows(list []push.RejectedRecord) []ui.RejectedRow {
	out := make([]ui.RejectedRow, 0, len(list))
	for _, x := range list {
		out = append(out, ui.RejectedRow{ID: x.ID, Edge: x.Edge, Table: x.Table, Key: x.Key, Op: x.Op,
			Change: string(x.Change), Reason: x.Reason, Code: x.Code, Created: x.Created, Status: x.Status, HandledBy: x.HandledBy})
	}
	return out
}

func auditRows(list []audit.Event) []ui.AuditRow {
	out := make([]ui.AuditRow, 0, len(list))
	for _, e := range list {
		out = append(out, ui.AuditRow{ID: e.ID, Time: e.Time, Actor: e.Actor, Action: e.Action, Edge: e.Edge, Table: e.Table,
			Key: e.Key, Outcome: e.Outcome, Detail: e.Detail, Before: string(e.Before), After: string(e.After)})
	}
	return out
}

// conflictFilter reads the conflict queue's filters. status "all" lists every status.
type conflictFilter struct {
	status, table, edge, age string
	minAge                   time.Duration
}

func readConflictFilter(c *fiber.Ctx, form bool) (conflictFilter, error) {
	get := func(k string) string { return query(c, k) }
	if form {
		get = func(k string) string { return strings.TrimSpace(strings.Clone(c.FormValue(k))) }
	}
	f := conflictFilter{status: get("status"), table: get("table"), edge: get("edge"), age: get("age")}
	if f.status == "" {
		f.status = push.StatusOpen
	}
	if f.age != "" {
		a, err := time.ParseDuration(f.age)
		if err != nil || a < 0 {
			return f, fmt.Errorf("older than %q: give a duration such as 10m, 2h or 72h", f.age)
		}
		f.minAge = a
	}
	return f, nil
}

// list returns the conflicts the filter selects.
func (d *Dashboard) listConflicts(c *fiber.Ctx, f conflictFilter) ([]push.ConflictRecord, error) {
	status := f.status
	if status == "all" {
		status = ""
	}
	list, err := d.deps.Push.Conflicts(c.UserContext(), push.ListFilter{Status: status, Table: f.table, Edge: f.edge, Limit: listLimit})
	if err != nil {
		return nil, err
	}
	if f.minAge > 0 {
		cut := d.now().Add(-f.minAge)
		kept := list[:0]
		for _, x := range list {
			if !x.Created.After(cut) {
				kept = append(kept, x)
			}
		}
		list = kept
	}
	return list, nil
}

func (d *Dashboard) conflictsPage(c *fiber.Ctx) error {
	p := ui.ConflictsProps{Page: d.page(c, "Conflicts", "conflicts"), Available: d.deps.Push != nil}
	f, err := readConflictFilter(c, false)
	p.Status, p.Table, p.Edge, p.Age = f.status, f.table, f.edge, f.age
	if err != nil {
		p.Error = err.Error()
	} else if p.Available {
		list, err := d.listConflicts(c, f)
		if err != nil {
			p.Error = pushMessage(err)
		}
		p.Conflicts = conflictRows(list)
	}
	if isHX(c) {
		return d.render(c, fiber.StatusOK, ui.ConflictTableLive(p))
	}
	if sch, _, err := d.deps.Store.Schema(c.UserContext()); err == nil && sch != nil {
		for _, t := range sch.Tables {
			p.Tables = append(p.Tables, t.Name)
		}
	}
	for _, e := range d.edgeList() {
		p.Edges = append(p.Edges, e.ID)
	}
	return d.render(c, fiber.StatusOK, ui.ConflictsPage(p))
}

func pathEscape(s string) string { return url.PathEscape(s) }

func pathID(c *fiber.Ctx) (int64, bool) {
	n, err := strconv.ParseInt(c.Params("id"), 10, 64)
	return n, err == nil && n > 0
}

func (d *Dashboard) notFound(c *fiber.Ctx, what string) error {
	return d.render(c, fiber.StatusNotFound, ui.ErrorPage(ui.ErrorProps{Page: d.page(c, "Not found", ""), Status: fiber.StatusNotFound, Message: what}))
}

func (d *Dashboard) conflictPage(c *fiber.Ctx) error {
	if d.deps.Push == nil {
		return d.notFound(c, "This hub has no write-back, so it has no conflicts.")
	}
	id, ok := pathID(c)
	if !ok {
		return d.notFound(c, "No such conflict.")
	}
	rec, err := d.deps.Push.Conflict(c.UserContext(), id)
	if err != nil {
		var pe *push.Error
		if errors.As(err, &pe) && pe.Kind == push.KindNotFound {
			return d.notFound(c, fmt.Sprintf("There is no conflict %d.", id))
		}
		return d.fail(c, fiber.StatusServiceUnavailable, err)
	}
	p := ui.ConflictProps{Page: d.page(c, fmt.Sprintf("Conflict %d", id), "conflicts"), Conflict: conflictRow(rec), Result: string(rec.Result)}
	sch, _, err := d.deps.Store.Schema(c.UserContext())
	var tbl *cdc.Table
	if err == nil && sch != nil {
		tbl, _ = sch.Table(rec.Table)
	}
	p.Fields, err = fieldRows(tbl, rec)
	if err != nil {
		p.Error = err.Error()
	}
	return d.render(c, fiber.StatusOK, ui.ConflictPage(p))
}

// fieldRows lays the conflict's base, server and client rows out column by column,
// in the table's column order (or the rows' own order when the table is gone).
func fieldRows(tbl *cdc.Table, rec push.ConflictRecord) ([]ui.FieldRow, error) {
	base, err1 := rowCells(rec.Base)
	server, err2 := rowCells(rec.Server)
	client, err3 := rowCells(rec.Client)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("a row of conflict %d is not a JSON object: %v", rec.ID, err)
	}
	var names []string
	kinds := map[string]string{}
	keys := map[string]bool{}
	if tbl != nil {
		for _, col := range tbl.Columns {
			names = append(names, col.Name)
			kinds[col.Name] = col.Kind.String()
		}
		for _, k := range tbl.PrimaryKey {
			keys[k] = true
		}
	} else {
		seen := map[string]bool{}
		for _, m := range []map[string]ui.Cell{server, client, base} {
			for n := range m {
				if !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
		sort.Strings(names)
	}
	cell := func(m map[string]ui.Cell, name string) ui.Cell {
		if m == nil {
			return ui.Cell{Missing: true}
		}
		v, ok := m[name]
		if !ok {
			return ui.Cell{Missing: true}
		}
		return v
	}
	out := make([]ui.FieldRow, 0, len(names))
	for _, n := range names {
		f := ui.FieldRow{Name: n, Kind: kinds[n], Key: keys[n], Base: cell(base, n), Server: cell(server, n), Client: cell(client, n)}
		f.Merged = f.Client
		if f.Merged.Missing {
			f.Merged = f.Server
		}
		if f.Merged.Missing {
			f.Merged = ui.Cell{Null: true}
		}
		out = append(out, f)
	}
	return out, nil
}

// rowCells reads a wire row object into display cells; nil for an absent row.
func rowCells(raw json.RawMessage) (map[string]ui.Cell, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	out := make(map[string]ui.Cell, len(m))
	for k, v := range m {
		out[k] = cellOf(v)
	}
	return out, nil
}

func cellOf(v json.RawMessage) ui.Cell {
	v = bytes.TrimSpace(v)
	switch {
	case string(v) == "null":
		return ui.Cell{Null: true}
	case len(v) > 0 && v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			return ui.Cell{Text: s}
		}
	}
	return ui.Cell{Text: string(v)}
}

func pushMessage(err error) string {
	var pe *push.Error
	if errors.As(err, &pe) {
		return pe.Message
	}
	return err.Error()
}

func (d *Dashboard) adminName(c *fiber.Ctx) string {
	a, _ := c.Locals(localAdmin).(admin)
	return a.name
}

func (d *Dashboard) resolve(c *fiber.Ctx) error {
	if d.deps.Push == nil {
		return d.notFound(c, "This hub has no write-back, so it has no conflicts.")
	}
	id, ok := pathID(c)
	if !ok {
		return d.notFound(c, "No such conflict.")
	}
	back := fmt.Sprintf("/ui/conflicts/%d", id)
	action := strings.Clone(c.FormValue("action"))
	var row json.RawMessage
	if action == push.ActionMerged {
		rec, err := d.deps.Push.Conflict(c.UserContext(), id)
		if err != nil {
			return d.flash(c, back, false, pushMessage(err))
		}
		sch, _, err := d.deps.Store.Schema(c.UserContext())
		if err != nil || sch == nil {
			return d.flash(c, back, false, "The hub has no schema yet; try again shortly.")
		}
		tbl, ok := sch.Table(rec.Table)
		if !ok {
			return d.flash(c, back, false, "Table "+rec.Table+" is no longer captured; keep the server's row.")
		}
		if row, err = mergedRow(tbl, c.FormValue); err != nil {
			return d.flash(c, back, false, err.Error())
		}
	}
	rec, err := d.deps.Push.Resolve(c.UserContext(), id, action, row, d.adminName(c))
	if err != nil {
		return d.flash(c, back, false, "Not resolved: "+pushMessage(err))
	}
	return d.flash(c, back, true, fmt.Sprintf("Conflict %d resolved: %s.", rec.ID, strings.ReplaceAll(rec.Resolution, "_", " ")))
}

// mergedRow builds the merged row from the form: field col:<name> holds the value as
// text and null:<name> marks NULL. Booleans and numbers are taken as JSON literals,
// everything else as text.
func mergedRow(tbl *cdc.Table, form func(string, ...string) string) (json.RawMessage, error) {
	b := []byte{'{'}
	for i, col := range tbl.Columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = cdc.AppendJSONString(b, col.Name)
		b = append(b, ':')
		text := form("col:" + col.Name)
		if form("null:"+col.Name) != "" {
			b = append(b, "null"...)
			continue
		}
		switch col.Kind {
		case cdc.KindBool, cdc.KindInt, cdc.KindFloat:
			t := strings.TrimSpace(text)
			if _, err := cdc.ParseJSONValue(col.Kind, []byte(t)); err != nil || t == "" {
				return nil, fmt.Errorf("column %s: %q is not a %s value", col.Name, text, col.Kind)
			}
			b = append(b, t...)
		default:
			b = cdc.AppendJSONString(b, text)
		}
	}
	return append(b, '}'), nil
}

func (d *Dashboard) bulkResolve(c *fiber.Ctx) error {
	if d.deps.Push == nil {
		return d.notFound(c, "This hub has no write-back, so it has no conflicts.")
	}
	f, err := readConflictFilter(c, true)
	back := "/ui/conflicts?" + url.Values{"table": {f.table}, "edge": {f.edge}, "age": {f.age}}.Encode()
	if err != nil {
		return d.flash(c, back, false, err.Error())
	}
	f.status = push.StatusOpen
	action := strings.Clone(c.FormValue("action"))
	if action != push.ActionKeepServer && action != push.ActionTakeClient {
		return d.flash(c, back, false, "Bulk resolution keeps server rows or takes client rows; edit merged rows one by one.")
	}
	list, err := d.listConflicts(c, f)
	if err != nil {
		return d.flash(c, back, false, pushMessage(err))
	}
	var done, failed int
	var firstErr string
	for _, x := range list {
		if _, err := d.deps.Push.Resolve(c.UserContext(), x.ID, action, nil, d.adminName(c)); err != nil {
			failed++
			if firstErr == "" {
				firstErr = fmt.Sprintf(" (conflict %d: %s)", x.ID, pushMessage(err))
			}
			continue
		}
		done++
	}
	msg := fmt.Sprintf("Resolved %d conflicts (%s).", done, strings.ReplaceAll(action, "_", " "))
	if failed > 0 {
		msg += fmt.Sprintf(" %d could not be resolved%s.", failed, firstErr)
	}
	return d.flash(c, back, failed == 0, msg)
}

func (d *Dashboard) rejectedPage(c *fiber.Ctx) error {
	p := ui.RejectedProps{Page: d.page(c, "Rejected changes", "rejected"), Available: d.deps.Push != nil,
		Status: query(c, "status"), Table: query(c, "table"), Edge: query(c, "edge")}
	if p.Status == "" {
		p.Status = push.StatusOpen
	}
	if p.Available {
		status := p.Status
		if status == "all" {
			status = ""
		}
		list, err := d.deps.Push.RejectedChanges(c.UserContext(), push.ListFilter{Status: status, Table: p.Table, Edge: p.Edge, Limit: listLimit})
		if err != nil {
			p.Error = pushMessage(err)
		}
		p.Rows = rejectedRows(list)
	}
	if isHX(c) {
		return d.render(c, fiber.StatusOK, ui.RejectedLive(p))
	}
	return d.render(c, fiber.StatusOK, ui.RejectedPage(p))
}

func (d *Dashboard) rejectedAction(c *fiber.Ctx) error {
	if d.deps.Push == nil {
		return d.notFound(c, "This hub has no write-back, so no change is rejected here.")
	}
	id, ok := pathID(c)
	action := c.Params("action")
	if !ok || (action != "retry" && action != "discard") {
		return d.notFound(c, "No such action.")
	}
	var (
		rec push.RejectedRecord
		err error
	)
	if action == "retry" {
		rec, err = d.deps.Push.Retry(c.UserContext(), id, d.adminName(c))
	} else {
		rec, err = d.deps.Push.Discard(c.UserContext(), id, d.adminName(c))
	}
	if err != nil {
		return d.flash(c, "/ui/rejected", false, fmt.Sprintf("Change %d: %s", id, pushMessage(err)))
	}
	return d.flash(c, "/ui/rejected", true, fmt.Sprintf("Change %d: %s.", rec.ID, rec.Status))
}

// auditFilter reads the audit page's filters; times accept RFC 3339 or the
// browser's datetime form (2006-01-02T15:04, UTC).
func auditFilter(c *fiber.Ctx, p *ui.AuditProps) (audit.Filter, error) {
	p.From, p.To, p.Actor, p.Edge = query(c, "from"), query(c, "to"), query(c, "actor"), query(c, "edge")
	p.Table, p.Key, p.Action = query(c, "table"), query(c, "key"), query(c, "action")
	f := audit.Filter{Actor: p.Actor, Edge: p.Edge, Table: p.Table, Key: p.Key, Action: p.Action}
	var err error
	if f.From, err = parseTime("from", p.From); err != nil {
		return f, err
	}
	if f.To, err = parseTime("to", p.To); err != nil {
		return f, err
	}
	if v := query(c, "before_id"); v != "" {
		if f.BeforeID, err = strconv.ParseInt(v, 10, 64); err != nil || f.BeforeID < 0 {
			return f, fmt.Errorf("before_id %q is not a positive number", v)
		}
	}
	return f, f.Validate()
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s %q: give a time such as 2026-01-31T12:00 (UTC) or 2026-01-31T12:00:00Z", name, v)
}

// csvMaxEvents bounds one CSV export; narrow the filter (time range) for more.
const csvMaxEvents = 50_000

// auditPageSize is how many events one audit page shows.
const auditPageSize = 50

func (d *Dashboard) auditPage(c *fiber.Ctx) error {
	p := ui.AuditProps{Page: d.page(c, "Audit log", "audit"), Available: d.deps.Audit != nil}
	f, err := auditFilter(c, &p)
	p.First = f.BeforeID == 0
	if err != nil {
		p.Error = err.Error()
	} else if p.Available {
		f.Limit = auditPageSize
		ev, err := d.deps.Audit.Query(c.UserContext(), f)
		if err != nil {
			p.Error = err.Error()
		}
		p.Rows = auditRows(ev)
		if len(ev) == auditPageSize {
			p.NextBefore = ev[len(ev)-1].ID
		}
	}
	return d.render(c, fiber.StatusOK, ui.AuditPage(p))
}

func (d *Dashboard) auditCSV(c *fiber.Ctx) error {
	if d.deps.Audit == nil {
		return d.notFound(c, "This hub keeps no audit log.")
	}
	var p ui.AuditProps
	f, err := auditFilter(c, &p)
	if err != nil {
		c.Status(fiber.StatusBadRequest)
		return c.SendString(err.Error())
	}
	// The newest csvMaxEvents events of the filter, page by page.
	f.Limit = audit.MaxLimit
	var ev []audit.Event
	for len(ev) < csvMaxEvents {
		page, err := d.deps.Audit.Query(c.UserContext(), f)
		if err != nil {
			return d.fail(c, fiber.StatusServiceUnavailable, err)
		}
		ev = append(ev, page...)
		if len(page) < f.Limit {
			break
		}
		f.BeforeID = page[len(page)-1].ID
	}
	if len(ev) >= csvMaxEvents {
		ev = ev[:csvMaxEvents]
		c.Set("X-Synchub-Truncated", "true")
	}
	var buf bytes.Buffer
	if err := audit.WriteCSV(&buf, ev); err != nil {
		return d.fail(c, fiber.StatusInternalServerError, err)
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="synchub-audit-`+d.now().UTC().Format("20060102-150405")+`.csv"`)
	return c.Send(buf.Bytes())
}

// historyLimit is how many versions the row-history page shows.
const historyLimit = 200

func (d *Dashboard) historyPage(c *fiber.Ctx) error {
	p := ui.HistoryProps{Page: d.page(c, "Row history", "history"), Table: query(c, "table"), Key: query(c, "key")}
	ctx := c.UserContext()
	if sch, _, err := d.deps.Store.Schema(ctx); err == nil && sch != nil {
		for _, t := range sch.Tables {
			p.Tables = append(p.Tables, t.Name)
		}
	}
	if p.Table != "" && p.Key != "" {
		p.Searched = true
		list, err := changelog.RowHistory(ctx, d.deps.Store, p.Table, p.Key, historyLimit)
		if err != nil {
			p.Error = err.Error()
		}
		for _, v := range list {
			row := string(v.Row)
			if row == "" && len(v.Key) > 0 {
				row = "key " + string(v.Key)
			}
			p.Rows = append(p.Rows, ui.HistoryRow{Version: v.Version, Op: v.Op.String(), Origin: v.Origin, CommitTime: v.CommitTime, Row: row})
		}
	}
	return d.render(c, fiber.StatusOK, ui.HistoryPage(p))
}
