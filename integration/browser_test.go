package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/synchub/synchub/edge"
	"github.com/synchub/synchub/hub"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/dashboard"
)

// dashSchema has a table under the manual conflict policy, so a conflict waits in the
// dashboard's queue for an admin, and one with a CHECK constraint the edges do not
// know, so PostgreSQL rejects some of their writes.
const dashSchema = `
CREATE TABLE public.tickets (id int PRIMARY KEY, title text, body text, n int NOT NULL DEFAULT 0);
INSERT INTO public.tickets SELECT g, 'title ' || g, 'body ' || g, 0 FROM generate_series(1, 3) g;
CREATE TABLE public.stock (id int PRIMARY KEY, qty int NOT NULL CONSTRAINT qty_not_negative CHECK (qty >= 0));
INSERT INTO public.stock VALUES (1, 5), (2, 5);
`

const dashPassword = "a long enough password"

// chromiumPath finds Debian's chromium (or $SYNCHUB_CHROMIUM). Without one the test
// skips locally and fails under CI=true, where .ci/run installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SYNCHUB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH: install Debian's chromium (apt-get install -y chromium) or set SYNCHUB_CHROMIUM to run the dashboard's browser test"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// artifactsDir is where the browser test saves screenshots: $SYNCHUB_ARTIFACTS, else
// integration/artifacts (ignored by git).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SYNCHUB_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create artifacts folder: %v", err)
	}
	return dir
}

// dashStack is a PostgreSQL stack with write-back, the manual policy on tickets, an
// operator (alice) and a viewer (victor), and two edges capturing local writes. Edge
// A's write lands first; edge B's write of the same row then waits as a conflict.
func dashStack(t *testing.T) (*stack, *edge.Agent, *edge.Agent) {
	t.Helper()
	h, err := dashboard.HashPassword(dashPassword)
	if err != nil {
		t.Fatal(err)
	}
	s := newStackWith(t, dashSchema, []string{"public.tickets", "public.stock"}, func(c *hub.Config) {
		c.Push.Policies = map[string]conflict.TablePolicy{"public.tickets": {Policy: conflict.Manual}}
		c.Dashboard.Users = []dashboard.User{
			{Name: "alice", PasswordHash: h, Role: "operator"},
			{Name: "victor", PasswordHash: h, Role: "viewer"},
		}
		c.Dashboard.SampleInterval = 500 * time.Millisecond
	})
	a, b := s.newEdge("edge-a"), s.newEdge("edge-b")
	s.waitStreaming()
	ctx := context.Background()
	for _, e := range []*edge.Agent{a, b} {
		s.syncEdge(e)
		if err := e.InitSyncAll(ctx); err != nil {
			t.Fatalf("init sync: %v", err)
		}
	}
	dashExec(t, a, `UPDATE tickets SET body = 'from A' WHERE id = 1`)
	if rep := dashPush(t, a); rep.Applied != 1 {
		t.Fatalf("edge A's push: %+v, want 1 applied", rep)
	}
	dashExec(t, b, `UPDATE tickets SET body = 'from B', title = 'B title' WHERE id = 1`)
	if rep := dashPush(t, b); rep.Conflicts != 1 {
		t.Fatalf("edge B's push: %+v, want 1 conflict", rep)
	}
	s.waitHubCaughtUp()
	if got := s.exec(`SELECT body FROM tickets WHERE id = 1`); got != "from A" {
		t.Fatalf("PostgreSQL has %q while the conflict is open, want edge A's 'from A'", got)
	}
	return s, a, b
}

func dashExec(t *testing.T, a *edge.Agent, query string) {
	t.Helper()
	if _, err := a.DB().Exec(query); err != nil {
		t.Fatalf("edge %s: %s: %v", a.Status().EdgeID, query, err)
	}
}

func dashPush(t *testing.T, a *edge.Agent) edge.PushReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := a.PushNow(ctx)
	if err != nil {
		t.Fatalf("push from %s: %v", a.Status().EdgeID, err)
	}
	return rep
}

func dashEdgeValue(t *testing.T, a *edge.Agent, query string) string {
	t.Helper()
	var v any
	if err := a.DB().QueryRow(query).Scan(&v); err != nil {
		return "<" + err.Error() + ">"
	}
	return fmt.Sprint(normalise(v))
}

// TestBrowser_ResolveConflictTakeClient signs in through the form in headless
// Chromium, opens the queued conflict, clicks "Take client", and checks that
// PostgreSQL and both edges end with the client's row and that the audit page names
// the admin who resolved it.
func TestBrowser_ResolveConflictTakeClient(t *testing.T) {
	chrome := chromiumPath(t)
	s, a, b := dashStack(t)
	artifacts := artifactsDir(t)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
			chromedp.Headless, chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium %s: %v", chrome, err)
	}
	ctx, cancel := context.WithTimeout(browser, 2*time.Minute)
	defer cancel()
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(artifacts, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	step("open /ui and sign in",
		chromedp.Navigate(s.url+"/ui"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="name"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), dashPassword),
		chromedp.Click(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`#live`)),
	)
	if got := text("#open-conflicts"); got != "1" {
		t.Fatalf("overview shows %q open conflicts, want 1", got)
	}
	shot("dashboard-overview.png")

	step("open the conflict from the queue",
		chromedp.Navigate(s.url+"/ui/conflicts"),
		chromedp.Click(chromedp.CSS(`a.conflict-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#take-client`)),
	)
	changed, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelectorAll("table.diff td.changed").length`))
	if err != nil {
		t.Fatal(err)
	}
	// Body changed on both sides, title on the client's only.
	if changed != 3 {
		t.Errorf("the conflict page highlights %v changed cells, want 3 (server body, client body, client title)", changed)
	}
	shot("dashboard-conflict.png")
	// The same page at a tablet's width, portrait.
	step("tablet viewport", chromedp.EmulateViewport(768, 1024))
	shot("dashboard-conflict-tablet.png")
	step("laptop viewport", chromedp.EmulateReset())

	step("take the client's row",
		chromedp.Click(chromedp.CSS(`#take-client`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	)
	if got := text("#conflict-status"); !strings.Contains(got, "take_client by alice") {
		t.Fatalf("conflict status after the click: %q, want resolved take_client by alice", got)
	}

	s.waitHubCaughtUp()
	if got := s.exec(`SELECT body || '|' || title FROM tickets WHERE id = 1`); got != "from B|B title" {
		t.Fatalf("PostgreSQL has %q, want edge B's row 'from B|B title'", got)
	}
	for _, e := range []*edge.Agent{a, b} {
		s.syncEdge(e)
		if got := dashEdgeValue(t, e, `SELECT body || '|' || title FROM tickets WHERE id = 1`); got != "from B|B title" {
			t.Fatalf("edge %s has %q after a sync, want 'from B|B title'", e.Status().EdgeID, got)
		}
	}

	step("open the audit log",
		chromedp.Navigate(s.url+"/ui/audit?action=resolve"),
		chromedp.WaitVisible(chromedp.CSS(`#audit`)),
	)
	if got := text("#audit tbody"); !strings.Contains(got, "admin:alice") || !strings.Contains(got, "take_client") {
		t.Fatalf("audit page for resolve events:\n%s\nwant a take_client by admin:alice", got)
	}
	shot("dashboard-audit.png")
	ev, err := s.audit.Query(context.Background(), audit.Filter{Action: audit.ActionResolve, Actor: "admin:alice"})
	if err != nil || len(ev) != 1 || ev[0].Outcome != "take_client" || ev[0].Table != "public.tickets" {
		t.Fatalf("audit resolve events by admin:alice: %+v %v", ev, err)
	}

	// The overview refreshes itself: a new conflict appears without a reload.
	step("open the overview", chromedp.Navigate(s.url+"/ui"), chromedp.WaitVisible(chromedp.CSS(`#live`)))
	if got := text("#open-conflicts"); got != "0" {
		t.Fatalf("overview after the resolution shows %q open conflicts, want 0", got)
	}
	dashExec(t, a, `UPDATE tickets SET body = 'A again' WHERE id = 2`)
	dashPush(t, a)
	dashExec(t, b, `UPDATE tickets SET body = 'B again' WHERE id = 2`)
	if rep := dashPush(t, b); rep.Conflicts != 1 {
		t.Fatalf("edge B's second push: %+v, want 1 conflict", rep)
	}
	live := false
	for i := 0; i < 50 && !live; i++ {
		live = text("#open-conflicts") == "1"
		if !live {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !live {
		t.Fatal("the overview did not show the new conflict within 10 s without a reload (htmx polling)")
	}

	step("open the edges page",
		chromedp.Navigate(s.url+"/ui/edges"),
		chromedp.WaitVisible(chromedp.CSS(`#edges`)),
	)
	if got := text("#edges"); !strings.Contains(got, "edge-a") || !strings.Contains(got, "edge-b") {
		t.Fatalf("edges page:\n%s\nwant edge-a and edge-b", got)
	}
	shot("dashboard-edges.png")
	step("open the row history",
		chromedp.Navigate(s.url+"/ui/history?table=public.tickets&key=[1]"),
		chromedp.WaitVisible(chromedp.CSS(`main table`)),
	)
	if got := text("main table"); !strings.Contains(got, "edge-a") || !strings.Contains(got, "from B") {
		t.Fatalf("row history of ticket 1:\n%s\nwant edge A's version and the resolution's 'from B'", got)
	}
	shot("dashboard-history.png")
}

// dashClient signs in over plain HTTP, keeping cookies and the page's CSRF token.
type dashClient struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

var dashCSRF = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func newDashClient(t *testing.T, base string) *dashClient {
	jar, _ := cookiejar.New(nil)
	return &dashClient{t: t, base: base, http: &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *dashClient) do(method, path string, form url.Values) (int, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := dashCSRF.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return resp.StatusCode, string(b)
}

func (c *dashClient) login(name, password string) int {
	c.t.Helper()
	c.do("GET", "/ui/login", nil)
	code, _ := c.do("POST", "/ui/login", url.Values{"name": {name}, "password": {password}, "_csrf": {c.csrf}})
	return code
}

// TestBrowser_DashboardRefusals: on a real queued conflict, a POST without the CSRF
// token, a viewer's resolve and a request without a session are refused and leave
// the conflict open; a wrong password is refused and audited.
func TestBrowser_DashboardRefusals(t *testing.T) {
	s, _, _ := dashStack(t)
	alice := newDashClient(t, s.url)
	if code := alice.login("alice", dashPassword); code != http.StatusSeeOther {
		t.Fatalf("alice's sign-in: %d, want 303", code)
	}
	_, page := alice.do("GET", "/ui/conflicts", nil)
	m := regexp.MustCompile(`/ui/conflicts/(\d+)`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the conflict queue links no conflict:\n%s", page)
	}
	resolve := "/ui/conflicts/" + m[1] + "/resolve"
	stillOpen := func(after string) {
		t.Helper()
		_, body := alice.do("GET", "/ui/conflicts/"+m[1], nil)
		if !strings.Contains(body, `id="take-client"`) {
			t.Fatalf("after %s the conflict is no longer open", after)
		}
		if got := s.exec(`SELECT body FROM tickets WHERE id = 1`); got != "from A" {
			t.Fatalf("after %s PostgreSQL has %q, want 'from A'", after, got)
		}
	}

	if code, _ := alice.do("POST", resolve, url.Values{"action": {"take_client"}}); code != http.StatusForbidden {
		t.Fatalf("operator POST without CSRF token: %d, want 403", code)
	}
	stillOpen("a POST without CSRF token")

	victor := newDashClient(t, s.url)
	if code := victor.login("victor", dashPassword); code != http.StatusSeeOther {
		t.Fatalf("victor's sign-in: %d, want 303", code)
	}
	victor.do("GET", "/ui/conflicts/"+m[1], nil)
	if code, _ := victor.do("POST", resolve, url.Values{"action": {"take_client"}, "_csrf": {victor.csrf}}); code != http.StatusForbidden {
		t.Fatalf("viewer's resolve: %d, want 403", code)
	}
	stillOpen("a viewer's resolve")

	anon := newDashClient(t, s.url)
	anon.do("GET", "/ui/login", nil)
	if code, _ := anon.do("POST", resolve, url.Values{"action": {"take_client"}, "_csrf": {anon.csrf}}); code != http.StatusUnauthorized {
		t.Fatalf("resolve without a session: %d, want 401", code)
	}
	if code, _ := anon.do("GET", "/ui/conflicts", nil); code != http.StatusSeeOther {
		t.Fatalf("conflict queue without a session: %d, want 303 to the sign-in form", code)
	}
	stillOpen("a request without a session")

	if code := anon.login("alice", "not the password"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", code)
	}
	ev, err := s.audit.Query(context.Background(), audit.Filter{Action: audit.ActionAuthFailure, Actor: "admin:alice"})
	if err != nil || len(ev) != 1 {
		t.Fatalf("audit auth failures of admin:alice: %+v %v, want 1", ev, err)
	}

	// The operator with the token writes a merged row from the form.
	alice.do("GET", "/ui/conflicts/"+m[1], nil)
	merged := url.Values{"action": {"merged"}, "_csrf": {alice.csrf}, "col:id": {"1"}, "col:title": {"merged title"},
		"col:body": {"merged body"}, "col:n": {"7"}}
	if code, _ := alice.do("POST", resolve, merged); code != http.StatusSeeOther {
		t.Fatalf("operator's merged resolve: %d, want 303", code)
	}
	if _, body := alice.do("GET", "/ui/conflicts/"+m[1], nil); !strings.Contains(body, "merged by alice") {
		t.Fatalf("the conflict page does not show the merged resolution by alice:\n%s", body)
	}
	s.waitHubCaughtUp()
	if got := s.exec(`SELECT title || '|' || body || '|' || n FROM tickets WHERE id = 1`); got != "merged title|merged body|7" {
		t.Fatalf("PostgreSQL has %q after the merged resolution", got)
	}
}

// TestBrowser_DashboardBulkResolve: two more conflicts on the same table are resolved
// at once for the table's filter, and only they.
func TestBrowser_DashboardBulkResolve(t *testing.T) {
	s, a, b := dashStack(t)
	dashExec(t, a, `UPDATE tickets SET body = 'A' WHERE id IN (2, 3)`)
	if rep := dashPush(t, a); rep.Applied != 2 {
		t.Fatalf("edge A's push: %+v, want 2 applied", rep)
	}
	dashExec(t, b, `UPDATE tickets SET body = 'B' WHERE id IN (2, 3)`)
	if rep := dashPush(t, b); rep.Conflicts != 2 {
		t.Fatalf("edge B's push: %+v, want 2 conflicts", rep)
	}
	s.waitHubCaughtUp()
	alice := newDashClient(t, s.url)
	if code := alice.login("alice", dashPassword); code != http.StatusSeeOther {
		t.Fatalf("alice's sign-in: %d, want 303", code)
	}
	if _, page := alice.do("GET", "/ui/conflicts?table=public.tickets", nil); strings.Count(page, `class="conflict-link"`) != 3 {
		t.Fatalf("the queue filtered by table lists %d conflicts, want 3", strings.Count(page, `class="conflict-link"`))
	}
	// Conflicts younger than an hour are left alone by an age filter of 1h.
	code, _ := alice.do("POST", "/ui/conflicts/bulk", url.Values{"action": {"take_client"}, "table": {"public.tickets"}, "age": {"1h"}, "_csrf": {alice.csrf}})
	if code != http.StatusSeeOther {
		t.Fatalf("bulk resolve with age 1h: %d, want 303", code)
	}
	_, page := alice.do("GET", "/ui/conflicts", nil)
	if n := strings.Count(page, `class="conflict-link"`); n != 3 {
		t.Fatalf("after a bulk resolve of conflicts older than 1h, %d open, want 3", n)
	}
	code, _ = alice.do("POST", "/ui/conflicts/bulk", url.Values{"action": {"keep_server"}, "table": {"public.tickets"}, "_csrf": {alice.csrf}})
	if code != http.StatusSeeOther {
		t.Fatalf("bulk resolve: %d, want 303", code)
	}
	_, page = alice.do("GET", "/ui/conflicts", nil)
	if !strings.Contains(page, "Resolved 3 conflicts (keep server).") || strings.Contains(page, `class="conflict-link"`) {
		t.Fatalf("after the bulk resolve the queue is not empty or the notice is missing:\n%s", page)
	}
	s.waitHubCaughtUp()
	if got := s.exec(`SELECT string_agg(body, ',' ORDER BY id) FROM tickets`); got != "from A,A,A" {
		t.Fatalf("PostgreSQL bodies %q, want the server's 'from A,A,A'", got)
	}
	ev, err := s.audit.Query(context.Background(), audit.Filter{Action: audit.ActionResolve, Actor: "admin:alice"})
	if err != nil || len(ev) != 3 {
		t.Fatalf("audit resolve events by admin:alice: %d %v, want 3", len(ev), err)
	}
}

// TestBrowser_DashboardRejectedChanges: writes PostgreSQL refuses are listed with
// their reason; an operator discards one and, after the constraint is dropped,
// retries the other, which then reaches PostgreSQL.
func TestBrowser_DashboardRejectedChanges(t *testing.T) {
	s, a, _ := dashStack(t)
	dashExec(t, a, `UPDATE stock SET qty = -1 WHERE id = 1`)
	dashExec(t, a, `UPDATE stock SET qty = -2 WHERE id = 2`)
	if rep := dashPush(t, a); rep.Rejected != 2 {
		t.Fatalf("edge A's push: %+v, want 2 rejected", rep)
	}
	alice := newDashClient(t, s.url)
	if code := alice.login("alice", dashPassword); code != http.StatusSeeOther {
		t.Fatalf("alice's sign-in: %d, want 303", code)
	}
	_, page := alice.do("GET", "/ui/rejected", nil)
	ids := regexp.MustCompile(`/ui/rejected/(\d+)/retry`).FindAllStringSubmatch(page, -1)
	if len(ids) != 2 || !strings.Contains(page, "qty_not_negative") {
		t.Fatalf("rejected page lists %d retry actions (want 2) or lacks the constraint's name:\n%s", len(ids), page)
	}
	if code, _ := alice.do("POST", "/ui/rejected/"+ids[0][1]+"/discard", url.Values{"_csrf": {alice.csrf}}); code != http.StatusSeeOther {
		t.Fatalf("discard: %d, want 303", code)
	}
	s.exec(`ALTER TABLE stock DROP CONSTRAINT qty_not_negative`)
	alice.do("GET", "/ui/rejected", nil)
	if code, _ := alice.do("POST", "/ui/rejected/"+ids[1][1]+"/retry", url.Values{"_csrf": {alice.csrf}}); code != http.StatusSeeOther {
		t.Fatalf("retry: %d, want 303", code)
	}
	_, page = alice.do("GET", "/ui/rejected?status=all", nil)
	if !strings.Contains(page, "discarded") || !strings.Contains(page, "retried") || strings.Count(page, "by alice") != 2 {
		t.Fatalf("rejected page after discard and retry:\n%s", page)
	}
	s.waitHubCaughtUp()
	if got := s.exec(`SELECT string_agg(qty::text, ',' ORDER BY id) FROM stock`); got != "5,-2" {
		t.Fatalf("PostgreSQL stock %q, want 5 (discarded) and -2 (retried)", got)
	}
	ev, err := s.audit.Query(context.Background(), audit.Filter{Actor: "admin:alice", Table: "public.stock"})
	if err != nil || len(ev) < 2 {
		t.Fatalf("audit events of admin:alice on public.stock: %+v %v, want the discard and the retry", ev, err)
	}
}
