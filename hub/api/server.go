package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"

	"github.com/synchub/synchub/hub/audit"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/changelog"
	"github.com/synchub/synchub/hub/edges"
	"github.com/synchub/synchub/hub/push"
	"github.com/synchub/synchub/hub/rules"
	"github.com/synchub/synchub/hub/syncproto"
)

// Deps is what the API serves from.
type Deps struct {
	Store changelog.Store
	// Status reports the hub's state for GET /v1/status; nil serves the change log's
	// head and schema version only.
	Status func() syncproto.Status
	// Ready reports why the hub cannot serve yet (nil: ready); nil means always ready.
	Ready func() error
	// Observe, when set, is called after every request with the matched route (a
	// bounded label: "unmatched" for unknown paths), the status code, the duration and,
	// for /v1/changes, the changes and bytes sent.
	Observe func(route string, code int, d time.Duration, changes int, bytes int)
	// Push handles POST /v1/push and the conflict and rejected-change routes; nil
	// answers them 503 (the source has no Applier).
	Push *push.Service
	// Audit serves GET /v1/audit; nil answers 503.
	Audit audit.Log
	// Rules are the sync rules: GET /v1/changes and GET /v1/schema serve each edge only
	// its scope. nil serves every edge everything.
	Rules *rules.Set
	// Seen, when set, is told which edge made each well-formed GET /v1/changes (kind
	// Pull, the request's since as watermark) and POST /v1/push (kind Push), with the
	// text of its credential's claims (empty without edge authentication). It is called
	// before the request is served, so a long-poll counts as contact when it starts.
	Seen func(edgeID string, kind edges.Kind, watermark int64, scope string)
	// Auth authenticates edges and admins (see auth.go); nil, or one without edge
	// methods, serves without edge authentication, on loopback only.
	Auth *auth.Authenticator
	// AuthObserver is told of refused and rate-limited requests; nil is allowed.
	AuthObserver AuthObserver
}

// Server is the sync API. Create it with New and run it with Serve.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	app  *fiber.App
	gz   gzipPool

	// done is closed when shutdown starts; long-polls select on it.
	done     chan struct{}
	doneOnce sync.Once

	tls          *tls.Config   // nil: plain HTTP
	rates        *limiters     // nil: no rate limit
	polls        *pollSlots    // nil: no long-poll limit
	auditLimit   *rate.Limiter // bounds audit writes of refused requests
	auditDropped atomic.Int64
}

// New builds the API. It starts nothing; call Serve.
func New(cfg Config, deps Deps, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, fmt.Errorf("api: Deps.Store is nil; pass the change log store")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, deps: deps, log: log, done: make(chan struct{}), auditLimit: rate.NewLimiter(20, 100)}
	s.gz.level = cfg.GzipLevel
	tlsCfg, err := cfg.TLS.Load()
	if err != nil {
		return nil, err
	}
	s.tls = tlsCfg
	if cfg.Limits.RatePerSecond > 0 {
		s.rates = newLimiters(cfg.Limits)
	}
	if cfg.Limits.MaxLongPolls > 0 {
		s.polls = &pollSlots{max: cfg.Limits.MaxLongPolls, open: map[string]int{}}
	}
	s.app = fiber.New(fiber.Config{
		AppName:               "synchub",
		DisableStartupMessage: true,
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		ErrorHandler:          s.errorHandler,
		JSONEncoder:           json.Marshal,
		JSONDecoder:           json.Unmarshal,
	})
	s.app.Use(s.logRequests, s.recoverPanics)
	short := s.withTimeout(cfg.RequestTimeout)
	s.app.Get("/healthz", short, s.handleHealthz)
	s.app.Get("/readyz", short, s.handleReadyz)
	edge, viewer, operator := s.requireEdge, s.requireAdmin(auth.RoleViewer), s.requireAdmin(auth.RoleOperator)
	s.app.Get("/v1/status", short, edge, s.rateLimit, s.handleStatus)
	s.app.Get("/v1/schema", short, edge, s.rateLimit, s.handleSchema)
	s.app.Get("/v1/changes", s.withTimeout(cfg.RequestTimeout+cfg.MaxWait), edge, s.rateLimit, s.limitLongPolls, s.handleChanges)
	pushTimeout := cfg.RequestTimeout
	if deps.Push != nil {
		pushTimeout += deps.Push.OrderWait() + deps.Push.WaitTimeout()
	}
	s.app.Post("/v1/push", s.withTimeout(pushTimeout), edge, s.rateLimit, s.handlePush)
	// Admin routes: role viewer reads, role operator acts.
	s.app.Get("/v1/conflicts", short, viewer, s.handleConflicts)
	s.app.Get("/v1/conflicts/:id", short, viewer, s.handleConflict)
	s.app.Post("/v1/conflicts/:id/resolve", short, operator, s.handleResolve)
	s.app.Get("/v1/rejected", short, viewer, s.handleRejected)
	s.app.Post("/v1/rejected/:id/retry", s.withTimeout(pushTimeout), operator, s.handleRejectedAction(true))
	s.app.Post("/v1/rejected/:id/discard", short, operator, s.handleRejectedAction(false))
	s.app.Get("/v1/audit", short, viewer, s.handleAudit)
	return s, nil
}

// App returns the fiber application, for tests (App().Test) and for mounting.
func (s *Server) App() *fiber.App { return s.app }

// Serve serves HTTP (HTTPS with Config.TLS) on ln until ctx is cancelled, then shuts
// down gracefully: long-polls are answered at once, in-flight requests get
// ShutdownTimeout to finish, and then their connections are closed. It returns nil
// after a shutdown caused by ctx. Without edge authentication it refuses a listener
// that is not on a loopback address (see CheckListen).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := CheckListen(ln.Addr().String(), s.edgeAuthConfigured()); err != nil {
		_ = ln.Close()
		return err
	}
	if !s.edgeAuthConfigured() {
		s.log.Warn("no edge authentication configured: serving on loopback only; edges are named by the X-Synchub-Edge header and admin routes are open", "addr", ln.Addr().String())
	} else {
		s.log.Info("edge authentication", "methods", strings.Join(s.deps.Auth.Methods(), ","))
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(ln) }()
	s.log.Info("sync API listening", "addr", ln.Addr().String(), "tls", s.tls != nil)
	select {
	case err := <-errc:
		s.beginShutdown()
		if err != nil {
			return fmt.Errorf("serve sync API: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	s.beginShutdown()
	start := time.Now()
	err := s.app.ShutdownWithTimeout(s.cfg.ShutdownTimeout)
	// The listener is closed here too in case shutdown ran before Serve registered it.
	_ = ln.Close()
	<-errc
	s.log.Info("sync API stopped", "duration_ms", time.Since(start).Milliseconds())
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down sync API: %w", err)
	}
	return nil
}

func (s *Server) beginShutdown() { s.doneOnce.Do(func() { close(s.done) }) }

func (s *Server) shuttingDown() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// withTimeout gives the request a context that ends after d. fiber does not cancel
// anything when the client goes away, so this bounds every request's work.
func (s *Server) withTimeout(d time.Duration) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		c.SetUserContext(ctx)
		return c.Next()
	}
}

// logRequests answers errors as JSON and logs every request: debug when it went well,
// warn when it returned an error.
func (s *Server) logRequests(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	route := c.Route().Path
	if err != nil {
		ae := classify(err)
		s.writeError(c, ae)
		if ae.Kind == KindNotFound || ae.Kind == KindMethodNotAllowed {
			route = "unmatched"
		}
		s.log.Warn("request failed", "method", c.Method(), "path", strings.Clone(c.Path()), "status", ae.Kind.Status(),
			"error_code", ae.Kind.Code(), "message", ae.Message, "err", ae.Err, "duration_ms", msSince(start))
	} else if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("request", "method", c.Method(), "path", strings.Clone(c.Path()), "status", c.Response().StatusCode(), "duration_ms", msSince(start))
	}
	if s.deps.Observe != nil {
		changes, _ := c.Locals(localChanges).(int)
		s.deps.Observe(route, c.Response().StatusCode(), time.Since(start), changes, len(c.Response().Body()))
	}
	return nil
}

// localChanges is the fiber Locals key under which handleChanges records how many
// changes it sent.
const localChanges = "synchub.changes"

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// recoverPanics turns a panic in a handler into a 500 so the process keeps serving.
func (s *Server) recoverPanics(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panicked", "method", c.Method(), "path", strings.Clone(c.Path()), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = &Error{Kind: KindInternal, Message: "internal error; see the hub's log", Err: fmt.Errorf("panic: %v", r)}
		}
	}()
	return c.Next()
}

// errorHandler is fiber's last resort for errors no middleware answered.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	s.writeError(c, classify(err))
	return nil
}

func (s *Server) writeError(c *fiber.Ctx, e *Error) {
	b, err := json.Marshal(e.body())
	if err != nil {
		b = []byte(`{"error":"internal","message":"encode error"}`)
	}
	c.Response().Header.Del(fiber.HeaderContentEncoding)
	c.Status(e.Kind.Status())
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	_ = c.Send(b)
}
