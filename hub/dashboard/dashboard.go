package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/csrf"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/session"
	"golang.org/x/crypto/bcrypt"

	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/edges"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/hub/syncproto"
	"github.com/synchub/synchub/ui"
)

// Deps are the parts of the hub the dashboard shows and acts on.
type Deps struct {
	Store changelog.Store
	// Status reports the source's state and lag.
	Status func() syncproto.Status
	// Push is the conflict queue and rejected list; nil when the hub has no write-back.
	Push *push.Service
	// Audit is read by the audit page and receives sign-in failures; nil: no audit log.
	Audit audit.Log
	// Edges is the edge registry; nil shows no edges.
	Edges *edges.Registry
	// Keys is the API key database; nil when the hub has none (no key auth).
	Keys *auth.Keys
	Log  *slog.Logger
}

// Dashboard serves /ui. Create it with New, add its routes with Mount, and run Run
// for the overview's ingest chart.
type Dashboard struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	users    map[string]User
	sessions *session.Store
	csrf     fiber.Handler
	now      func() time.Time
	throttle *throttle

	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at   time.Time
	head int64
}

// Session keys.
const (
	keyAdmin   = "admin"
	keyLogin   = "login" // Unix seconds of the sign-in
	keyFlash   = "flash"
	keyFlashOK = "flash_ok"
)

// Locals keys.
const (
	localCSRF    = "synchub.ui.csrf"
	localAdmin   = "synchub.ui.admin"
	localSession = "synchub.ui.session"
)

// CSRFField is the form field that carries the CSRF token; htmx sends it in the
// X-Csrf-Token header instead.
const CSRFField = "_csrf"

// dummyHash is compared against when the name is unknown, so a sign-in takes as long
// for an unknown name as for a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("synchub-no-such-admin"), bcrypt.DefaultCost)

// New builds the dashboard.
func New(cfg Config, deps Deps) (*Dashboard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Status == nil {
		return nil, errors.New("dashboard: Deps.Store and Deps.Status are required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{cfg: cfg, deps: deps, log: deps.Log, users: map[string]User{}, now: time.Now, throttle: newThrottle()}
	for _, u := range cfg.Users {
		d.users[u.Name] = u
	}
	if len(d.users) == 0 {
		d.log.Warn("the dashboard has no admin users, so nobody can sign in: add dashboard.users to hub.yaml (hash passwords with `synchub admin hash-password`)")
	}
	d.sessions = session.New(session.Config{
		Expiration:     cfg.SessionTTL,
		KeyLookup:      "cookie:synchub_session",
		CookiePath:     "/ui",
		CookieSecure:   cfg.CookieSecure,
		CookieHTTPOnly: true,
		CookieSameSite: "Strict",
	})
	d.csrf = csrf.New(csrf.Config{
		CookieName:     "synchub_csrf",
		CookiePath:     "/ui",
		CookieSecure:   cfg.CookieSecure,
		CookieHTTPOnly: true,
		CookieSameSite: "Strict",
		// Each use extends a token (the 2 s polling keeps an open page's alive), so an
		// hour bounds only how long tokens of abandoned pages are kept in memory.
		Expiration:   min(cfg.SessionTTL, time.Hour),
		ContextKey:   localCSRF,
		Extractor:    csrfToken,
		ErrorHandler: d.csrfRefused,
	})
	return d, nil
}

// csrfToken reads the token from the X-Csrf-Token header (htmx) or the form field.
func csrfToken(c *fiber.Ctx) (string, error) {
	if t := c.Get("X-Csrf-Token"); t != "" {
		return t, nil
	}
	if t := c.FormValue(CSRFField); t != "" {
		return t, nil
	}
	return "", csrf.ErrTokenNotFound
}

func (d *Dashboard) csrfRefused(c *fiber.Ctx, err error) error {
	d.log.Warn("dashboard request refused: CSRF token", "path", strings.Clone(c.Path()), "err", err)
	return d.render(c, fiber.StatusForbidden, ui.ErrorPage(ui.ErrorProps{
		Page:    ui.Page{Title: "Refused", Now: d.now()},
		Status:  fiber.StatusForbidden,
		Message: "The form's security token is missing or expired. Reload the page and try again.",
	}))
}

// Mount adds the dashboard's routes under /ui to app, and a redirect from /.
func (d *Dashboard) Mount(app *fiber.App) error {
	static, err := fs.Sub(ui.Static, "static")
	if err != nil {
		return err
	}
	app.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/ui", fiber.StatusFound) })
	app.Use("/ui/static", filesystem.New(filesystem.Config{Root: http.FS(static), MaxAge: 3600}))
	g := app.Group("/ui", d.withTimeout, d.securityHeaders, d.csrf)
	g.Get("/login", d.loginForm)
	g.Post("/login", d.login)
	signedIn := d.requireSession
	op := d.requireOperator
	g.Post("/logout", signedIn, d.logout)
	g.Get("/", signedIn, d.overview)
	g.Get("/edges", signedIn, d.edgesPage)
	g.Get("/edges/:id", signedIn, d.edgePage)
	g.Get("/conflicts", signedIn, d.conflictsPage)
	g.Post("/conflicts/bulk", signedIn, op, d.bulkResolve)
	g.Get("/conflicts/:id", signedIn, d.conflictPage)
	g.Post("/conflicts/:id/resolve", signedIn, op, d.resolve)
	g.Get("/rejected", signedIn, d.rejectedPage)
	g.Post("/rejected/:id/:action", signedIn, op, d.rejectedAction)
	g.Get("/audit", signedIn, d.auditPage)
	g.Get("/audit.csv", signedIn, d.auditCSV)
	g.Get("/history", signedIn, d.historyPage)
	g.Get("/keys", signedIn, d.keysPage)
	g.Post("/keys/revoke-edge", signedIn, op, d.revokeEdgeKeys)
	g.Post("/keys/:id/revoke", signedIn, op, d.revokeKey)
	return nil
}

// Run samples the change log's head for the overview's ingest chart until ctx ends.
func (d *Dashboard) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.SampleInterval)
	defer t.Stop()
	for {
		d.takeSample()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (d *Dashboard) takeSample() {
	st := d.deps.Status()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.samples = append(d.samples, sample{at: d.now(), head: st.Head})
	if len(d.samples) > d.cfg.Samples {
		d.samples = d.samples[len(d.samples)-d.cfg.Samples:]
	}
}

// rates returns the ingest rate per sampling interval, the rate over all samples and
// the time they span.
func (d *Dashboard) rates() (per []float64, overall float64, window time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := 1; i < len(d.samples); i++ {
		per = append(per, rate(d.samples[i-1], d.samples[i]))
	}
	if n := len(d.samples); n > 1 {
		overall = rate(d.samples[0], d.samples[n-1])
		window = d.samples[n-1].at.Sub(d.samples[0].at).Round(time.Second)
	}
	return per, overall, window
}

func rate(a, b sample) float64 {
	dt := b.at.Sub(a.at).Seconds()
	if dt <= 0 || b.head < a.head {
		return 0
	}
	return float64(b.head-a.head) / dt
}

func (d *Dashboard) withTimeout(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)
	return c.Next()
}

func (d *Dashboard) securityHeaders(c *fiber.Ctx) error {
	c.Set("X-Frame-Options", "DENY")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "same-origin")
	// Everything comes from the hub itself; htmx adds one inline style element for its
	// request indicators, hence 'unsafe-inline' for styles only.
	c.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "+
		"script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}

// admin is the signed-in admin of a request.
type admin struct {
	name, role string
}

// requireSession lets a request through only with a live session of a configured
// admin. Pages redirect to the sign-in form; htmx requests are told to go there;
// other methods are answered 401.
func (d *Dashboard) requireSession(c *fiber.Ctx) error {
	sess, err := d.sessions.Get(c)
	if err != nil {
		return d.fail(c, fiber.StatusInternalServerError, fmt.Errorf("read session: %w", err))
	}
	name, _ := sess.Get(keyAdmin).(string)
	login, _ := sess.Get(keyLogin).(int64)
	u, ok := d.users[name]
	if !ok || name == "" || d.now().Sub(time.Unix(login, 0)) > d.cfg.SessionTTL {
		switch {
		case c.Get("HX-Request") != "":
			c.Set("HX-Redirect", "/ui/login")
			return c.SendStatus(fiber.StatusUnauthorized)
		case c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead:
			return c.Redirect("/ui/login", fiber.StatusSeeOther)
		}
		return d.render(c, fiber.StatusUnauthorized, ui.LoginPage(ui.LoginProps{
			CSRF: d.csrfOf(c), Error: "Your session has ended. Sign in again.",
		}))
	}
	c.Locals(localAdmin, admin{name: u.Name, role: u.Role})
	c.Locals(localSession, sess)
	return c.Next()
}

// requireOperator refuses viewers.
func (d *Dashboard) requireOperator(c *fiber.Ctx) error {
	a, _ := c.Locals(localAdmin).(admin)
	if a.role != ui.RoleOperator {
		d.log.Warn("dashboard action refused: viewer", "admin", a.name, "path", strings.Clone(c.Path()))
		return d.render(c, fiber.StatusForbidden, ui.ErrorPage(ui.ErrorProps{
			Page:    d.page(c, "Refused", ""),
			Status:  fiber.StatusForbidden,
			Message: "Your role (" + a.role + ") may look but not act; ask an operator.",
		}))
	}
	return c.Next()
}

func (d *Dashboard) loginForm(c *fiber.Ctx) error {
	return d.render(c, fiber.StatusOK, ui.LoginPage(ui.LoginProps{CSRF: d.csrfOf(c)}))
}

func (d *Dashboard) login(c *fiber.Ctx) error {
	name := strings.TrimSpace(c.FormValue("name"))
	password := c.FormValue("password")
	keys := []string{"name:" + clip(name, 64), "ip:" + c.IP()}
	if wait := d.throttle.wait(d.now(), keys...); wait > 0 {
		d.audit(c, audit.Event{Actor: actorOf(name), Action: audit.ActionAuthFailure, Outcome: "throttled",
			Detail: "dashboard sign-in: too many failed attempts from " + c.IP()})
		c.Set(fiber.HeaderRetryAfter, fmt.Sprint(int(wait.Seconds())+1))
		return d.render(c, fiber.StatusTooManyRequests, ui.LoginPage(ui.LoginProps{
			CSRF: d.csrfOf(c), Name: name,
			Error: fmt.Sprintf("Too many failed sign-ins; try again in %d minutes.", int(wait.Minutes())+1),
		}))
	}
	u, known := d.users[name]
	hash := dummyHash
	if known {
		hash = []byte(u.PasswordHash)
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil || !known {
		reason := "wrong password"
		if !known {
			reason = "unknown admin"
		}
		d.audit(c, audit.Event{Actor: actorOf(name), Action: audit.ActionAuthFailure, Outcome: "refused",
			Detail: "dashboard sign-in: " + reason + " from " + c.IP()})
		d.throttle.fail(d.now(), keys...)
		d.log.Warn("dashboard sign-in refused", "admin", clip(name, 64), "reason", reason, "ip", c.IP())
		return d.render(c, fiber.StatusUnauthorized, ui.LoginPage(ui.LoginProps{
			CSRF: d.csrfOf(c), Name: name, Error: "Wrong name or password.",
		}))
	}
	sess, err := d.sessions.Get(c)
	if err != nil {
		return d.fail(c, fiber.StatusInternalServerError, fmt.Errorf("read session: %w", err))
	}
	// A new session id at sign-in, so an id planted before it is worthless.
	if err := sess.Regenerate(); err != nil {
		return d.fail(c, fiber.StatusInternalServerError, fmt.Errorf("new session: %w", err))
	}
	sess.Set(keyAdmin, u.Name)
	sess.Set(keyLogin, d.now().Unix())
	if err := sess.Save(); err != nil {
		return d.fail(c, fiber.StatusInternalServerError, fmt.Errorf("save session: %w", err))
	}
	d.audit(c, audit.Event{Actor: audit.AdminActor(u.Name), Action: audit.ActionAdmin, Outcome: "sign_in",
		Detail: "dashboard sign-in as " + u.Role + " from " + c.IP()})
	return c.Redirect("/ui", fiber.StatusSeeOther)
}

func (d *Dashboard) logout(c *fiber.Ctx) error {
	if sess, ok := c.Locals(localSession).(*session.Session); ok {
		if err := sess.Destroy(); err != nil {
			d.log.Warn("end dashboard session", "err", err)
		}
	}
	return c.Redirect("/ui/login", fiber.StatusSeeOther)
}

// actorOf names whoever tried to sign in, for the audit log.
func actorOf(name string) string {
	if name == "" {
		return audit.AdminActor("(empty)")
	}
	return audit.AdminActor(clip(name, 64))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (d *Dashboard) audit(c *fiber.Ctx, e audit.Event) {
	if d.deps.Audit == nil {
		return
	}
	if err := d.deps.Audit.Append(context.WithoutCancel(c.UserContext()), e); err != nil {
		d.log.Error("write dashboard event to the audit log", "action", e.Action, "actor", e.Actor, "err", err)
	}
}

func (d *Dashboard) csrfOf(c *fiber.Ctx) string {
	t, _ := c.Locals(localCSRF).(string)
	return t
}

// page builds the frame of a signed-in page and takes the session's one-time notice.
func (d *Dashboard) page(c *fiber.Ctx, title, active string) ui.Page {
	a, _ := c.Locals(localAdmin).(admin)
	p := ui.Page{Title: title, Active: active, Admin: a.name, Role: a.role, CSRF: d.csrfOf(c), Now: d.now()}
	if sess, ok := c.Locals(localSession).(*session.Session); ok && c.Get("HX-Request") == "" {
		if msg, _ := sess.Get(keyFlash).(string); msg != "" {
			ok, _ := sess.Get(keyFlashOK).(bool)
			p.Flash, p.FlashError = msg, !ok
			sess.Delete(keyFlash)
			sess.Delete(keyFlashOK)
			if err := sess.Save(); err != nil {
				d.log.Warn("save dashboard session", "err", err)
			}
			c.Locals(localSession, nil)
		}
	}
	return p
}

// flash keeps a notice for the next page and redirects there.
func (d *Dashboard) flash(c *fiber.Ctx, to string, ok bool, msg string) error {
	if sess, has := c.Locals(localSession).(*session.Session); has {
		sess.Set(keyFlash, msg)
		sess.Set(keyFlashOK, ok)
		if err := sess.Save(); err != nil {
			d.log.Warn("save dashboard session", "err", err)
		}
		c.Locals(localSession, nil)
	}
	return c.Redirect(to, fiber.StatusSeeOther)
}

func (d *Dashboard) render(c *fiber.Ctx, status int, comp templ.Component) error {
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return comp.Render(c.UserContext(), c.Response().BodyWriter())
}

// fail answers an unexpected error with an error page and logs it.
func (d *Dashboard) fail(c *fiber.Ctx, status int, err error) error {
	d.log.Error("dashboard request failed", "path", strings.Clone(c.Path()), "err", err)
	return d.render(c, status, ui.ErrorPage(ui.ErrorProps{Page: d.page(c, "Error", ""), Status: status, Message: err.Error()}))
}
