package ui

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Roles an admin can have.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
)

// Page is what every dashboard page shows around its content: the signed-in admin,
// the CSRF token every form and htmx request carries, and a one-time notice.
type Page struct {
	Title  string
	Active string // the navigation entry to highlight: overview, edges, conflicts, rejected, audit, history
	Admin  string
	Role   string
	CSRF   string
	Flash  string
	// FlashError marks Flash as a failure.
	FlashError bool
	Now        time.Time
}

// CanOperate reports whether the admin may resolve, retry and discard.
func (p Page) CanOperate() bool { return p.Role == RoleOperator }

// LoginProps is the sign-in form.
type LoginProps struct {
	CSRF  string
	Name  string
	Error string
}

// OverviewProps is the overview page.
type OverviewProps struct {
	Page
	Source        string
	SourceState   string
	LagSeconds    float64
	LagBytes      int64
	Head          int64
	SchemaVersion int64
	LogEntries    int64
	LogBytes      int64
	// Rate is the ingest rate in versions per second over RateWindow; Samples are the
	// rates of the sampling intervals, oldest first.
	Rate        float64
	RateWindow  time.Duration
	Samples     []float64
	EdgesTotal  int
	EdgesOnline int
	EdgesStale  int
	// OpenConflicts and OpenRejected are -1 when the hub has no write-back.
	OpenConflicts int
	OpenRejected  int
	Tables        []TableProps
}

// TableProps describes one captured table.
type TableProps struct {
	Name    string
	Columns int
	Key     string
}

// EdgeRow is one edge in the registry.
type EdgeRow struct {
	ID            string
	Scope         string
	Watermark     int64 // -1: never pulled
	Behind        int64
	FirstSeen     time.Time
	LastSeen      time.Time
	LastPull      time.Time
	LastPush      time.Time
	Pulls, Pushes int64
	Online        bool
	OpenConflicts int
}

// EdgesProps is the edges page.
type EdgesProps struct {
	Page
	Edges []EdgeRow
	Head  int64
	// Sort is the column sorted by (id, watermark, behind, last_seen, last_push,
	// conflicts); Desc reverses it. Query filters ids and scopes; State is "",
	// "online" or "stale".
	Sort  string
	Desc  bool
	Query string
	State string
}

// EdgeProps is one edge's page.
type EdgeProps struct {
	Page
	Edge      EdgeRow
	Found     bool
	Head      int64
	Conflicts []ConflictRow
	Rejected  []RejectedRow
	Audit     []AuditRow
	// Keys are the edge's API keys; KeysAvailable is false without a key database.
	Keys          []KeyRow
	KeysAvailable bool
}

// ConflictRow is one queued conflict in a list.
type ConflictRow struct {
	ID          int64
	Edge        string
	Table       string
	Key         string
	Op          string
	Kind        string
	BaseVersion int64
	Created     time.Time
	Status      string
	Resolution  string
	ResolvedBy  string
}

// ConflictsProps is the conflict queue.
type ConflictsProps struct {
	Page
	Available bool
	Error     string
	Conflicts []ConflictRow
	// Filters: Status (open, resolved or "" for all), Table, Edge, Age (a minimum age
	// such as 10m or 2h).
	Status string
	Table  string
	Edge   string
	Age    string
	Tables []string
	Edges  []string
}

// FieldRow is one column of a conflict, side by side.
type FieldRow struct {
	Name   string
	Kind   string
	Key    bool
	Base   Cell
	Server Cell
	Client Cell
	// Merged is the merged form's initial value (the client's, else the server's).
	Merged Cell
}

// Cell is one displayed value.
type Cell struct {
	Text    string
	Null    bool
	Missing bool // the row image does not exist (insert base, delete client)
}

func (c Cell) same(o Cell) bool { return c == o }

// ServerChanged reports whether the server's value differs from the base.
func (f FieldRow) ServerChanged() bool {
	return !f.Base.Missing && !f.Server.Missing && !f.Base.same(f.Server)
}

// ClientChanged reports whether the edge's value differs from the base.
func (f FieldRow) ClientChanged() bool {
	return !f.Base.Missing && !f.Client.Missing && !f.Base.same(f.Client)
}

// Differs reports whether the server's and the edge's values differ.
func (f FieldRow) Differs() bool { return !f.Server.same(f.Client) }

// ConflictProps is one conflict's page.
type ConflictProps struct {
	Page
	Conflict ConflictRow
	Fields   []FieldRow
	Result   string // the row the resolution wrote, as JSON
	Error    string
}

// RejectedRow is one rejected change.
type RejectedRow struct {
	ID        int64
	Edge      string
	Table     string
	Key       string
	Op        string
	Change    string
	Reason    string
	Code      string
	Created   time.Time
	Status    string
	HandledBy string
}

// RejectedProps is the rejected-changes page.
type RejectedProps struct {
	Page
	Available bool
	Error     string
	Rows      []RejectedRow
	Status    string
	Table     string
	Edge      string
}

// AuditRow is one audit event.
type AuditRow struct {
	ID      int64
	Time    time.Time
	Actor   string
	Action  string
	Edge    string
	Table   string
	Key     string
	Outcome string
	Detail  string
	Before  string
	After   string
}

// AuditProps is the audit page.
type AuditProps struct {
	Page
	Available bool
	Error     string
	Rows      []AuditRow
	// Filters as typed (From and To as 2006-01-02T15:04 or RFC 3339).
	From, To, Actor, Edge, Table, Key, Action string
	// NextBefore is the before_id of the next (older) page; 0 when this is the last.
	NextBefore int64
	// First is true on the newest page.
	First bool
}

// HistoryProps is the row-history page.
type HistoryProps struct {
	Page
	Table    string
	Key      string
	Tables   []string
	Searched bool
	Error    string
	Rows     []HistoryRow
}

// HistoryRow is one version of a row.
type HistoryRow struct {
	Version    int64
	Op         string
	Origin     string
	CommitTime time.Time
	Row        string
}

// KeyRow is one API key, without its secret parts.
type KeyRow struct {
	ID      string
	Edge    string
	Admin   string
	Role    string
	Claims  string
	Signing bool
	Created time.Time
	Revoked time.Time // zero while valid
}

// KeysProps is the API keys page.
type KeysProps struct {
	Page
	Available bool
	Error     string
	Keys      []KeyRow
}

// ErrorProps is a page that only says what went wrong.
type ErrorProps struct {
	Page
	Status  int
	Message string
}

func csrfHeaders(token string) string {
	b, _ := json.Marshal(map[string]string{"X-Csrf-Token": token})
	return string(b)
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// ago says how long before now t was, in the largest sensible unit.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func lagText(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.1f s", s)
}

// bytesText prints a byte count with a binary unit.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

func stateClass(state string) string {
	if strings.HasPrefix(state, "streaming") {
		return "ok"
	}
	return "warn"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func countText(n int) string {
	if n < 0 {
		return "n/a"
	}
	return strconv.Itoa(n)
}

func watermarkText(w int64) string {
	if w < 0 {
		return "never pulled"
	}
	return strconv.FormatInt(w, 10)
}

func rateText(r float64) string {
	if r >= 100 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.1f", r)
}

// link builds a dashboard URL with query parameters, leaving out empty ones.
func link(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

func edgeLink(id string) string { return "/ui/edges/" + url.PathEscape(id) }

func conflictLink(id int64) string { return "/ui/conflicts/" + itoa(id) }

func historyLink(table, key string) string { return link("/ui/history", "table", table, "key", key) }

// sortLink is the edges page's link that sorts by col, reversing when it is the
// current sort.
func sortLink(p EdgesProps, col string) string {
	desc := ""
	if p.Sort == col && !p.Desc {
		desc = "1"
	}
	return link("/ui/edges", "sort", col, "desc", desc, "q", p.Query, "state", p.State)
}

func sortMark(p EdgesProps, col string) string {
	if p.Sort != col {
		return ""
	}
	if p.Desc {
		return " ▼"
	}
	return " ▲"
}

func opName(code string) string {
	switch code {
	case "i":
		return "insert"
	case "u":
		return "update"
	case "d":
		return "delete"
	case "t":
		return "truncate"
	}
	return code
}

func originText(o string) string {
	if o == "" {
		return "central database"
	}
	return o
}

func cellText(c Cell) string {
	switch {
	case c.Missing:
		return "—"
	case c.Null:
		return "NULL"
	}
	return c.Text
}

// chartWidth and chartHeight are the ingest chart's view box.
const (
	chartWidth  = 300
	chartHeight = 60
)

// chartPoints maps rates to an SVG polyline inside the chart's view box, the
// largest rate at the top.
func chartPoints(samples []float64) string {
	if len(samples) == 0 {
		return ""
	}
	peak := 0.0
	for _, s := range samples {
		peak = max(peak, s)
	}
	if peak == 0 {
		peak = 1
	}
	var b strings.Builder
	step := float64(chartWidth)
	if len(samples) > 1 {
		step = float64(chartWidth) / float64(len(samples)-1)
	}
	for i, s := range samples {
		if i > 0 {
			b.WriteByte(' ')
		}
		x := step * float64(i)
		if len(samples) == 1 {
			x = chartWidth
		}
		y := chartHeight - 2 - (chartHeight-4)*s/peak
		fmt.Fprintf(&b, "%.1f,%.1f", x, y)
	}
	return b.String()
}

func chartPeak(samples []float64) string {
	peak := 0.0
	for _, s := range samples {
		peak = max(peak, s)
	}
	return rateText(peak)
}
