package dashboard

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/synchub/synchub/cdc"
	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/edges"
	"github.com/synchub/synchub/hub/syncproto"
)

type testPos int64

func (p testPos) String() string { return "pos/" + string(rune('0'+p)) }
func (p testPos) IsZero() bool   { return p == 0 }

var notesTable = cdc.Table{
	Name: "public.notes",
	Columns: []cdc.Column{
		{Name: "id", SourceType: "integer", Kind: cdc.KindInt, SQLiteType: "INTEGER"},
		{Name: "body", SourceType: "text", Kind: cdc.KindText, SQLiteType: "TEXT", Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

// env is a dashboard served on loopback with a change log, an audit log and an edge
// registry, and an operator (alice) and a viewer (victor).
type env struct {
	t     *testing.T
	url   string
	d     *Dashboard
	audit *audit.SQLite
	edges *edges.Registry
	keys  *auth.Keys
}

const testPassword = "correct horse battery"

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	scfg := changelog.DefaultSQLiteConfig()
	scfg.Path = filepath.Join(dir, "changelog.db")
	store, err := changelog.OpenSQLite(ctx, scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b, err := store.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetTables([]cdc.Table{notesTable}); err != nil {
		t.Fatal(err)
	}
	row := func(id int64, body string) cdc.Row {
		return cdc.Row{{Name: "id", Value: cdc.Int(id)}, {Name: "body", Value: cdc.Text(cdc.KindText, body)}}
	}
	for i, c := range []cdc.Change{
		{Table: notesTable.Name, Op: cdc.OpInsert, After: row(1, "first")},
		{Table: notesTable.Name, Op: cdc.OpUpdate, After: row(1, "second <b>")},
	} {
		if err := b.AppendTx(ctx, &cdc.Tx{Pos: testPos(i + 1), CommitTime: time.Now(), Origin: []string{"", "till-1"}[i], Changes: []cdc.Change{c}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	al, err := audit.OpenSQLite(ctx, filepath.Join(dir, "audit.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	reg, err := edges.Open(ctx, edges.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	reg.Seen("till-1", edges.Pull, 1, `{"store":"7"}`)
	reg.Seen("tablet-2", edges.Push, 0, "")
	keys, err := auth.OpenKeys(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	for _, spec := range []auth.KeySpec{{Edge: "till-1", Claims: map[string]any{"store": "7"}}, {Edge: "till-1"}, {Admin: "ana", Role: "viewer"}} {
		if _, err := keys.Create(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}

	cfg := DefaultConfig()
	cfg.Users = []User{
		{Name: "alice", PasswordHash: hash(t, testPassword), Role: "operator"},
		{Name: "victor", PasswordHash: hash(t, testPassword), Role: "viewer"},
	}
	d, err := New(cfg, Deps{Store: store, Audit: al, Edges: reg, Keys: keys,
		Status: func() syncproto.Status {
			return syncproto.Status{Head: 2, Source: "postgres", SourceState: "streaming", LagBytes: 4096}
		}})
	if err != nil {
		t.Fatal(err)
	}
	d.takeSample()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	if err := d.Mount(app); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	t.Cleanup(func() { app.Shutdown() })
	return &env{t: t, url: "http://" + ln.Addr().String(), d: d, audit: al, edges: reg, keys: keys}
}

// client is a browser stand-in: it keeps cookies and does not follow redirects.
type client struct {
	e    *env
	http *http.Client
	csrf string
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, http: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func (c *client) do(method, path string, form url.Values, header ...string) (int, http.Header, string) {
	c.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.e.url+path, body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return resp.StatusCode, resp.Header, string(b)
}

func (c *client) login(name, password string) int {
	c.e.t.Helper()
	c.do("GET", "/ui/login", nil)
	if c.csrf == "" {
		c.e.t.Fatal("the sign-in form carries no CSRF token")
	}
	code, _, _ := c.do("POST", "/ui/login", url.Values{"name": {name}, "password": {password}, "_csrf": {c.csrf}})
	return code
}

func (c *client) mustLogin(name string) {
	c.e.t.Helper()
	if code := c.login(name, testPassword); code != http.StatusSeeOther {
		c.e.t.Fatalf("sign-in as %s: status %d, want 303", name, code)
	}
}

func TestDashboard_NoSessionIsRefused(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	code, h, _ := c.do("GET", "/ui", nil)
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/login" {
		t.Fatalf("GET /ui without a session: %d to %q, want 303 to /ui/login", code, h.Get("Location"))
	}
	code, h, _ = c.do("GET", "/ui/conflicts", nil, "HX-Request", "true")
	if code != http.StatusUnauthorized || h.Get("HX-Redirect") != "/ui/login" {
		t.Fatalf("htmx GET without a session: %d, HX-Redirect %q; want 401 to /ui/login", code, h.Get("HX-Redirect"))
	}
	c.do("GET", "/ui/login", nil) // a CSRF token, but no session
	for _, path := range []string{"/ui/conflicts/1/resolve", "/ui/rejected/1/retry", "/ui/conflicts/bulk"} {
		code, _, body := c.do("POST", path, url.Values{"action": {"take_client"}, "_csrf": {c.csrf}})
		if code != http.StatusUnauthorized || !strings.Contains(body, "Sign in again") {
			t.Fatalf("POST %s without a session: %d, want 401 with the sign-in form", path, code)
		}
	}
	for _, path := range []string{"/ui/audit.csv", "/ui/edges/till-1", "/ui/history?table=public.notes&key=[1]"} {
		if code, _, _ := c.do("GET", path, nil); code != http.StatusSeeOther {
			t.Fatalf("GET %s without a session: %d, want 303", path, code)
		}
	}
}

func TestDashboard_WrongPasswordIsRefusedAndAudited(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	if code := c.login("alice", "not her password"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d, want 401", code)
	}
	if code := c.login("mallory", testPassword); code != http.StatusUnauthorized {
		t.Fatalf("unknown admin: status %d, want 401", code)
	}
	if code, _, _ := c.do("GET", "/ui", nil); code != http.StatusSeeOther {
		t.Fatalf("after refused sign-ins /ui answers %d, want 303 to the sign-in form", code)
	}
	ev, err := e.audit.Query(context.Background(), audit.Filter{Action: audit.ActionAuthFailure})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 2 || ev[1].Actor != "admin:alice" || ev[0].Actor != "admin:mallory" ||
		!strings.Contains(ev[1].Detail, "wrong password") || !strings.Contains(ev[0].Detail, "unknown admin") {
		t.Fatalf("audit auth failures = %+v, want admin:alice (wrong password) and admin:mallory (unknown)", ev)
	}
	c.mustLogin("alice")
	if code, _, body := c.do("GET", "/ui", nil); code != http.StatusOK || !strings.Contains(body, "alice") {
		t.Fatalf("after sign-in /ui answers %d", code)
	}
}

func TestDashboard_CSRFTokenRequired(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.do("GET", "/ui/login", nil)
	if code, _, _ := c.do("POST", "/ui/login", url.Values{"name": {"alice"}, "password": {testPassword}}); code != http.StatusForbidden {
		t.Fatalf("sign-in without CSRF token: %d, want 403", code)
	}
	c.mustLogin("alice")
	for _, tc := range []struct {
		name  string
		form  url.Values
		hdr   []string
		token string
	}{
		{"no token", url.Values{"action": {"take_client"}}, nil, ""},
		{"wrong form token", url.Values{"action": {"take_client"}, "_csrf": {"forged"}}, nil, ""},
		{"wrong header token", url.Values{"action": {"take_client"}}, []string{"X-Csrf-Token", "forged"}, ""},
	} {
		code, _, body := c.do("POST", "/ui/conflicts/1/resolve", tc.form, tc.hdr...)
		if code != http.StatusForbidden || !strings.Contains(body, "security token") {
			t.Fatalf("%s: %d, want 403", tc.name, code)
		}
	}
	// The token in the header, as htmx sends it, passes (and reaches the handler,
	// which finds no write-back here).
	code, _, _ := c.do("POST", "/ui/conflicts/1/resolve", url.Values{"action": {"take_client"}}, "X-Csrf-Token", c.csrf)
	if code != http.StatusNotFound {
		t.Fatalf("with the header token: %d, want the handler's 404", code)
	}
	// A token from another browser's cookie does not pass either.
	other := e.client()
	other.do("GET", "/ui/login", nil)
	if code, _, _ := c.do("POST", "/ui/conflicts/1/resolve", url.Values{"_csrf": {other.csrf}}); code != http.StatusForbidden {
		t.Fatalf("another browser's token: %d, want 403", code)
	}
}

func TestDashboard_ViewerCannotAct(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.mustLogin("victor")
	for _, path := range []string{"/ui/conflicts/1/resolve", "/ui/conflicts/bulk", "/ui/rejected/1/retry", "/ui/rejected/1/discard", "/ui/keys/x/revoke", "/ui/keys/revoke-edge"} {
		code, _, body := c.do("POST", path, url.Values{"action": {"take_client"}, "_csrf": {c.csrf}})
		if code != http.StatusForbidden || !strings.Contains(body, "viewer") {
			t.Fatalf("viewer POST %s: %d, want 403", path, code)
		}
	}
	if code, _, _ := c.do("GET", "/ui/conflicts", nil); code != http.StatusOK {
		t.Fatalf("viewer GET /ui/conflicts: %d, want 200", code)
	}
}

func TestDashboard_Pages(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.mustLogin("alice")
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/ui", []string{"v2", "public.notes", "streaming", "4.0 KiB", `hx-trigger="every 2s"`, `hx-headers="{&#34;X-Csrf-Token&#34;:`, "/ui/static/htmx.min.js"}},
		{"/ui/edges", []string{"till-1", "tablet-2", `{&#34;store&#34;:&#34;7&#34;}`}},
		{"/ui/edges?q=store", []string{"till-1"}},
		{"/ui/edges/till-1", []string{"Watermark", "1 (head v2, 1 behind)"}},
		{"/ui/conflicts", []string{"no write-back"}},
		{"/ui/rejected", []string{"no write-back"}},
		{"/ui/audit?actor=admin:alice", []string{"sign_in", "admin:alice"}},
		{"/ui/history?table=public.notes&key=[1]", []string{"till-1", "second &lt;b&gt;", "central database", "insert", "update"}},
		{"/ui/history?table=public.nope&key=[1]", []string{"not captured"}},
		{"/ui/audit?from=yesterday", []string{"give a time such as"}},
	} {
		code, _, body := c.do("GET", tc.path, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", tc.path, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %q", tc.path, w)
			}
		}
	}
	if _, _, body := c.do("GET", "/ui/edges?q=store", nil); strings.Contains(body, "tablet-2") {
		t.Error("edge filter kept tablet-2")
	}
	_, _, body := c.do("GET", "/ui/edges?sort=id&desc=1", nil)
	if strings.Index(body, "till-1") > strings.Index(body, "tablet-2") {
		t.Error("edges sorted by id descending list tablet-2 before till-1")
	}
	// htmx polls get the fragment only.
	code, _, body := c.do("GET", "/ui", nil, "HX-Request", "true")
	if code != http.StatusOK || strings.Contains(body, "<html") || !strings.Contains(body, `id="live"`) {
		t.Fatalf("htmx GET /ui: %d, want the live fragment only:\n%s", code, body)
	}
	code, h, csv := c.do("GET", "/ui/audit.csv?actor=admin:alice", nil)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(csv, "id,time,actor,action") || !strings.Contains(csv, "admin:alice,admin") {
		t.Fatalf("audit CSV: %d %s\n%s", code, h.Get("Content-Type"), csv)
	}
	if code, _, _ := c.do("GET", "/ui/static/htmx.min.js", nil); code != http.StatusOK {
		t.Fatalf("htmx not served: %d", code)
	}
	// Sign out ends the session.
	c.do("POST", "/ui/logout", url.Values{"_csrf": {c.csrf}})
	if code, _, _ := c.do("GET", "/ui", nil); code != http.StatusSeeOther {
		t.Fatalf("after sign-out /ui answers %d, want 303", code)
	}
}

func TestDashboard_SessionExpires(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.mustLogin("alice")
	e.d.now = func() time.Time { return time.Now().Add(e.d.cfg.SessionTTL + time.Minute) }
	if code, _, _ := c.do("GET", "/ui", nil); code != http.StatusSeeOther {
		t.Fatalf("after the session TTL /ui answers %d, want 303 to the sign-in form", code)
	}
}

func TestConfig_Validate(t *testing.T) {
	good := hash(t, testPassword)
	for _, tc := range []struct {
		users []User
		want  string
	}{
		{[]User{{Name: "a", PasswordHash: good, Role: "admin"}}, "role"},
		{[]User{{Name: "a", PasswordHash: "plain", Role: "viewer"}}, "hash-password"},
		{[]User{{Name: "", PasswordHash: good, Role: "viewer"}}, "name is empty"},
		{[]User{{Name: "a", PasswordHash: good, Role: "viewer"}, {Name: "a", PasswordHash: good, Role: "viewer"}}, "twice"},
	} {
		cfg := DefaultConfig()
		cfg.Users = tc.users
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("users %+v: %v, want an error about %q", tc.users, err, tc.want)
		}
	}
	cfg := DefaultConfig()
	cfg.SessionTTL = time.Second
	if cfg.Validate() == nil {
		t.Error("a one-second session validated")
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte(testPassword)) != nil {
		t.Fatal("hash does not match its password")
	}
	if _, err := HashPassword("short"); err == nil {
		t.Fatal("a 5-character password was hashed")
	}
}

func TestMergedRow(t *testing.T) {
	tbl := &cdc.Table{Name: "t", Columns: []cdc.Column{
		{Name: "id", Kind: cdc.KindInt}, {Name: "ok", Kind: cdc.KindBool}, {Name: "note", Kind: cdc.KindText}, {Name: "gone", Kind: cdc.KindText},
	}, PrimaryKey: []string{"id"}}
	form := map[string]string{"col:id": "7", "col:ok": "true", "col:note": `say "hi"`, "col:gone": "x", "null:gone": "on"}
	get := func(k string, _ ...string) string { return form[k] }
	got, err := mergedRow(tbl, get)
	if err != nil || string(got) != `{"id":7,"ok":true,"note":"say \"hi\"","gone":null}` {
		t.Fatalf("mergedRow = %s, %v", got, err)
	}
	form["col:id"] = "seven"
	if _, err := mergedRow(tbl, get); err == nil || !strings.Contains(err.Error(), "column id") {
		t.Fatalf("non-numeric id: %v", err)
	}
}

func TestDashboard_RevokeKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	list, err := e.keys.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("keys: %+v %v", list, err)
	}
	viewer := e.client()
	viewer.mustLogin("victor")
	if _, _, body := viewer.do("GET", "/ui/keys", nil); !strings.Contains(body, list[0].ID) || strings.Contains(body, "/revoke") {
		t.Fatal("a viewer's keys page lacks the keys or offers to revoke them")
	}
	c := e.client()
	c.mustLogin("alice")
	_, _, body := c.do("GET", "/ui/keys", nil)
	if strings.Count(body, "/revoke\"") != 3 {
		t.Fatalf("keys page offers %d revoke buttons, want 3", strings.Count(body, "/revoke\""))
	}
	var admin auth.KeyInfo
	for _, k := range list {
		if k.Admin == "ana" {
			admin = k
		}
	}
	if code, _, _ := c.do("POST", "/ui/keys/"+admin.ID+"/revoke", url.Values{"_csrf": {c.csrf}}); code != http.StatusSeeOther {
		t.Fatalf("revoke: %d, want 303", code)
	}
	if code, _, _ := c.do("POST", "/ui/keys/revoke-edge", url.Values{"edge": {"till-1"}, "_csrf": {c.csrf}}); code != http.StatusSeeOther {
		t.Fatalf("revoke the edge's keys: %d, want 303", code)
	}
	if _, _, body := c.do("GET", "/ui/edges/till-1", nil); !strings.Contains(body, "Revoked 2 keys of edge till-1.") || strings.Contains(body, "revoke-edge-keys") {
		t.Fatalf("edge page after revoking its keys:\n%s", body)
	}
	list, _ = e.keys.List(ctx)
	for _, k := range list {
		if k.Revoked.IsZero() {
			t.Fatalf("key %s (%s%s) is still valid", k.ID, k.Edge, k.Admin)
		}
	}
	ev, err := e.audit.Query(ctx, audit.Filter{Action: audit.ActionKeyRevoke, Actor: "admin:alice"})
	if err != nil || len(ev) != 3 {
		t.Fatalf("audit key_revoke events by admin:alice: %+v %v, want 3", ev, err)
	}
	if code, _, body := c.do("POST", "/ui/keys/nope/revoke", url.Values{"_csrf": {c.csrf}}); code != http.StatusSeeOther {
		t.Fatalf("revoke of an unknown key: %d %s", code, body)
	}
	if _, _, body := c.do("GET", "/ui/keys", nil); !strings.Contains(body, "There is no key nope.") {
		t.Fatal("no notice about the unknown key")
	}
}

func TestDashboard_SignInThrottled(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	for i := 0; i < maxFailures; i++ {
		if code := c.login("alice", "guess"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, code)
		}
	}
	if code := c.login("alice", testPassword); code != http.StatusTooManyRequests {
		t.Fatalf("sign-in after %d failures: %d, want 429 even with the right password", maxFailures, code)
	}
	// The same address is throttled for other names too.
	if code := c.login("victor", testPassword); code != http.StatusTooManyRequests {
		t.Fatalf("another name from the same address: %d, want 429", code)
	}
	ev, err := e.audit.Query(context.Background(), audit.Filter{Action: audit.ActionAuthFailure, Actor: "admin:alice"})
	if err != nil || len(ev) != maxFailures+1 || ev[0].Outcome != "throttled" {
		t.Fatalf("audit: %d events (newest %+v), %v; want %d failures and a throttled attempt", len(ev), ev[0], err, maxFailures)
	}
	// After the window the right password works again.
	e.d.now = func() time.Time { return time.Now().Add(failureWindow) }
	if code := c.login("alice", testPassword); code != http.StatusSeeOther {
		t.Fatalf("sign-in after the window: %d, want 303", code)
	}
}

func TestThrottle(t *testing.T) {
	th := newThrottle()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < maxFailures; i++ {
		if w := th.wait(now, "a"); w != 0 {
			t.Fatalf("wait after %d failures: %v", i, w)
		}
		th.fail(now.Add(time.Duration(i)*time.Minute), "a")
	}
	if w := th.wait(now.Add(5*time.Minute), "a", "b"); w != 10*time.Minute {
		t.Fatalf("wait = %v, want 10m (the first failure leaves the window at 15m)", w)
	}
	if w := th.wait(now.Add(15*time.Minute), "a"); w != 0 {
		t.Fatalf("wait after the first failure left the window: %v", w)
	}
	for i := 0; i < maxTracked+5; i++ {
		th.fail(now, fmt.Sprint("k", i))
	}
	if len(th.seen) > maxTracked {
		t.Fatalf("throttle tracks %d keys, more than %d", len(th.seen), maxTracked)
	}
}

func TestDashboard_AuditCSVPages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	batch := make([]audit.Event, 0, 2500)
	for i := 0; i < 2500; i++ {
		batch = append(batch, audit.Event{Actor: "edge:till-1", Action: audit.ActionPush, Edge: "till-1", Table: "public.notes", Key: fmt.Sprintf("[%d]", i)})
	}
	if err := e.audit.Append(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.mustLogin("alice")
	code, h, csv := c.do("GET", "/ui/audit.csv?edge=till-1&action=push", nil)
	if code != http.StatusOK || h.Get("X-Synchub-Truncated") != "" {
		t.Fatalf("CSV: %d, truncated %q", code, h.Get("X-Synchub-Truncated"))
	}
	lines := strings.Split(strings.TrimRight(csv, "\r\n"), "\r\n")
	if len(lines) != 2501 || !strings.Contains(lines[1], "[2499]") || !strings.Contains(lines[2500], ",[0],") {
		t.Fatalf("CSV has %d lines (want a header and 2500 events, newest first); first %q last %q", len(lines), lines[1], lines[len(lines)-1])
	}
	// Pages of the HTML view: 50 newest, then older.
	_, _, page := c.do("GET", "/ui/audit?edge=till-1", nil)
	m := regexp.MustCompile(`before_id=(\d+)`).FindStringSubmatch(page)
	if m == nil || strings.Count(page, "<td>push</td>") != 50 {
		t.Fatalf("first audit page: %d rows, next link %v", strings.Count(page, "<td>push</td>"), m)
	}
	_, _, older := c.do("GET", "/ui/audit?edge=till-1&before_id="+m[1], nil)
	if strings.Count(older, "<td>push</td>") != 50 || !strings.Contains(older, ">Newest<") || strings.Contains(older, "[2499]") {
		t.Fatal("the older audit page does not continue the first")
	}
}
