// Package transport speaks HTTP for relay: Server-Sent Events and WebSocket
// streams of events, the publish API, health checks and the error mapping.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
)

// Authenticator verifies the credentials of requests; *auth.Verifier is the
// one relay uses.
type Authenticator interface {
	// Verify authenticates a token on every path but publishing. It never
	// accepts a publish key.
	Verify(token string) (*auth.Identity, error)
	// VerifyPublisher authenticates a publish request's token or publish key.
	VerifyPublisher(token string) (*auth.Identity, error)
}

// Config tunes the transports; zero fields take the defaults below.
type Config struct {
	// Heartbeat is the interval of SSE comment heartbeats and WebSocket pings
	// (default 15 s): proxies keep a stream open while bytes flow.
	Heartbeat time.Duration
	// Retry is the reconnect delay hinted to EventSource (default 2 s).
	Retry time.Duration
	// WriteTimeout bounds each write to a client (default 10 s); a client
	// that cannot take a write for that long is disconnected.
	WriteTimeout time.Duration
	// MaxPayload is the largest event accepted, in bytes (default 64 KiB).
	MaxPayload int
	// StoreTimeout bounds each store call a request waits for: a publish's
	// append, and the subscribe and presence calls before a stream answers
	// (default 3 s). A store that does not answer within it is reported as
	// 503 store_unavailable (close 1013), never waited for without end.
	StoreTimeout time.Duration
	// AllowedOrigins lists the browser origins (scheme://host[:port]) of
	// other sites allowed to connect; empty means same origin only. "*"
	// allows every origin, but with tokens sent as ?token= or a header
	// only: cookies are honoured from the same origin and origins listed by
	// name alone.
	AllowedOrigins []string
	// Limits bound what one client may take.
	Limits Limits
	// ShutdownSpread is the window over which Shutdown ends the streams:
	// each ends at a random moment within it (SSE with the Retry hint,
	// WebSocket with close 1001), so the machines its clients reconnect to
	// see a steady rate rather than every client at once. Zero (the
	// default here; relay serve's is RELAY_SHUTDOWN_SPREAD) ends every
	// stream at once. Keep it under the shutdown's own deadline.
	ShutdownSpread time.Duration
	// Version is the build's version, reported by /healthz ("" reports
	// "dev").
	Version string
	// MetricsElsewhere keeps /metrics off the server's routes: the process
	// serves Metrics.Handler on an address of its own (RELAY_METRICS_ADDR).
	MetricsElsewhere bool
	// Authorize is the backend authorization hook (off when its URL is "").
	Authorize Authorize
	// KeepPastExpiry keeps a stream open past its token's exp
	// (RELAY_TOKEN_EXPIRY=keep): the token is checked at connect only, as
	// Django Channels did. Off by default: an expired or revoked credential
	// then keeps reading until the stream ends (end it with POST
	// /api/disconnect).
	KeepPastExpiry bool
	// Webhook posts client actions (mark_read) to the app (off when its
	// URL is "").
	Webhook Webhook
}

// Defaults for Config.
const (
	DefaultHeartbeat    = 15 * time.Second
	DefaultRetry        = 2 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultStoreTimeout = 3 * time.Second
)

func (c Config) withDefaults() Config {
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Retry <= 0 {
		c.Retry = DefaultRetry
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = events.DefaultMaxPayload
	}
	c.Limits = c.Limits.withDefaults()
	return c
}

// Deps are the collaborators a Server is built with.
type Deps struct {
	Hub  *events.Hub   // required
	Auth Authenticator // required
	// Presence, when set, makes connections to a project's presence channel
	// take their user online there; nil: presence is off.
	Presence Presence
	// Notifications serves GET /api/notifications; nil: not kept (404).
	// It is the store the hub records notifications in.
	Notifications events.Notifications
	// Store, when set, is pinged by /readyz to report the store's state.
	Store events.Pinger
	// Shared says the store is shared by several relay processes (Redis):
	// the server then listens on ControlChannel for the disconnects other
	// processes broadcast. In memory there is one process, and nothing to
	// listen for.
	Shared bool
	// Routes, when set, registers more routes (the web client, the demo)
	// on the server's Echo, after relay's own.
	Routes func(*echo.Echo)
	// Metrics receives the streams' series; nil: the server makes its own.
	// When Presence has an Online() int method (events.Tracker), the
	// server adds the presence gauge to it.
	Metrics *Metrics
}

// Server is relay's HTTP surface. Shutdown ends every stream.
type Server struct {
	hub    *events.Hub
	auth   Authenticator
	cfg    Config
	logger *slog.Logger
	echo   *echo.Echo

	presence Presence             // nil: presence is off
	notes    events.Notifications // nil: notifications are not kept
	store    events.Pinger        // nil: /readyz does not report the store
	limits   *limiter
	metrics  *Metrics
	authz    *authorizer // nil: no backend authorization hook
	registry *registry   // every open stream, by user
	webhook  *webhook    // nil: no webhooks

	controlDone chan struct{} // closed when listenControl has returned

	streamPaths map[string]bool // the stream routes: no body deadline

	shutdown     chan struct{} // closed by Shutdown: every stream selects on it
	shutdownOnce sync.Once
	beats        *beater        // every stream's heartbeats
	watcher      *sockWatcher   // idle streams' sockets: SSE clients going away, WebSocket clients' next frames
	streams      sync.WaitGroup // WebSocket streams, which http.Server.Shutdown does not track

	mu       sync.Mutex // orders streams.Add before Shutdown's Wait
	draining bool       // set by Shutdown: no stream is counted after it
}

// NewServer returns a server relaying d.Hub's events to clients
// authenticated by d.Auth. It fails when a required dependency is missing.
func NewServer(d Deps, cfg Config, logger *slog.Logger) (*Server, error) {
	if d.Hub == nil || d.Auth == nil {
		return nil, errors.New("transport: NewServer needs a Hub and an Authenticator")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{hub: d.Hub, auth: d.Auth, presence: d.Presence, notes: d.Notifications, store: d.Store,
		cfg: cfg.withDefaults(), logger: logger, shutdown: make(chan struct{}), streamPaths: map[string]bool{}}
	s.beats, s.watcher = newBeater(s.cfg.Heartbeat), newSockWatcher()
	s.limits = newLimiter(s.cfg.Limits)
	if s.metrics = d.Metrics; s.metrics == nil {
		s.metrics = NewMetrics()
	}
	if p, ok := d.Presence.(interface{ Online() int }); ok {
		if err := s.metrics.presenceOnline(p.Online); err != nil {
			return nil, err
		}
	}
	s.authz, s.registry = newAuthorizer(s.cfg.Authorize, logger), newRegistry()
	s.controlDone = make(chan struct{})
	if d.Shared {
		go s.listenControl(s.subscribeControl())
	} else {
		close(s.controlDone)
	}
	s.webhook = newWebhook(s.cfg.Webhook, s.shutdown, logger)
	s.echo = s.routes()
	if d.Routes != nil {
		d.Routes(s.echo)
	}
	return s, nil
}

// ServeHTTP serves relay's routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Shutdown tells every stream to end (SSE: the stream ends with a retry hint;
// WebSocket: close 1001) and waits for the streams that left net/http
// (WebSocket, and SSE on a taken-over HTTP/1.1 connection), or for ctx. Call
// it before http.Server.Shutdown, which waits for the other SSE handlers to
// return. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.mu.Lock()
		s.draining = true
		s.mu.Unlock()
		close(s.shutdown)
	})
	ended := make(chan struct{})
	go func() { s.streams.Wait(); <-s.controlDone; close(ended) }()
	select {
	case <-ended:
		s.webhook.close(ctx) // what streams queued, until ctx ends
		return nil
	case <-ctx.Done():
		s.webhook.close(ctx) // ctx is over: gives up the queue
		return fmt.Errorf("transport shutdown: WebSocket streams still open: %w", ctx.Err())
	}
}

// track counts a WebSocket stream for Shutdown to wait for; it reports false
// once Shutdown has begun. A WaitGroup's Add from zero must not race its
// Wait: unguarded, an upgrade during Shutdown is a data race and may panic.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.streams.Add(1)
	return true
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// Only middleware that neither buffers nor times out responses: streams
	// pass through all of it (see PITFALLS: no Timeout, Gzip or BodyDump).
	e.Use(middleware.Recover(), s.accessLog, s.checkOrigin, s.bodyDeadline)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if !s.cfg.MetricsElsewhere {
		e.GET("/metrics", echo.WrapHandler(s.metrics.Handler()))
	}

	// One URL per channel group, SSE or WebSocket by request.
	stream := func(path string, channels channelsFunc) {
		s.streamPaths[path] = true
		e.GET(path, s.stream(channels))
	}
	stream("/events", s.queryChannels)
	stream("/events/notifications", s.notificationsChannel)
	stream("/events/projects/:id/tickets", s.projectChannel(events.TicketsChannel))
	stream("/events/projects/:id/presence", s.projectChannel(events.PresenceChannel))
	// The Django Channels paths, unchanged for existing WebSocket clients.
	for _, suffix := range []string{"/", ""} {
		stream("/ws/notifications"+suffix, s.notificationsChannel)
		stream("/ws/projects/:id/tickets"+suffix, s.projectChannel(events.TicketsChannel))
		stream("/ws/projects/:id/presence"+suffix, s.projectChannel(events.PresenceChannel))
	}

	e.POST("/api/publish", s.publish)
	e.GET("/api/notifications", s.getNotifications)
	e.POST("/api/notifications/read", s.postNotificationsRead)
	e.GET("/api/projects/:id/presence", s.getPresence)
	s.backendRoutes(e)
	e.POST("/api/projects/:id/presence", s.postPresence)
	return e
}

// healthz answers while the process serves, with the build's version.
func (s *Server) healthz(c echo.Context) error {
	v := s.cfg.Version
	if v == "" {
		v = "dev"
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "version": v})
}

// readyz answers whether this process should get new clients: 503 only
// while it drains (shutting down). The store's state is reported in the body
// ("store": "ok" or "unavailable") but does not make the process unready:
// every relay shares one Redis, so a Redis blip would take every machine out
// of rotation at once and turn a blip into a full outage. While the store is
// down, streams that are open stay open, new ones are refused with 503
// store_unavailable (SSE clients retry by themselves) and publishes answer 503
// with Retry-After, all within StoreTimeout.
func (s *Server) readyz(c echo.Context) error {
	select {
	case <-s.shutdown:
		return events.ErrClosed
	default:
	}
	body := map[string]string{"status": "ready", "store": "ok"}
	if s.store != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), min(s.cfg.StoreTimeout, 2*time.Second))
		defer cancel()
		if err := s.store.Ping(ctx); err != nil {
			s.logger.Warn("store does not answer; staying in rotation (see /readyz in README)", "err", err)
			body["store"] = "unavailable"
			body["message"] = "the event store does not answer: publishes and new streams get 503 store_unavailable until it does; check REDIS_URL and that Redis is running"
		}
	}
	return c.JSON(http.StatusOK, body)
}

// accessLog logs each request's method, path (never the query: it may hold a
// token), status and duration.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		status := c.Response().Status
		if err != nil {
			status = classify(err).status
		}
		s.logger.Debug("request", "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", status, "duration", time.Since(start))
		return err
	}
}

// identify authenticates the request's token.
func (s *Server) identify(r *http.Request) (*auth.Identity, error) {
	tok := auth.TokenFromRequest(r)
	if origin, dropped := r.Context().Value(cookieDroppedKey{}).(string); tok == "" && dropped {
		return nil, fmt.Errorf("the relay_token cookie is not accepted from %s, which RELAY_ALLOWED_ORIGINS allows only through \"*\": send the token as ?token= or an Authorization: Bearer header, or list the origin by name: %w", origin, auth.ErrUnauthenticated)
	}
	if tok == "" {
		return nil, fmt.Errorf("no token: send one as ?token=, an Authorization: Bearer header or a relay_token cookie: %w", auth.ErrUnauthenticated)
	}
	return s.auth.Verify(tok)
}

// identifyPublisher authenticates a publish request: a token, or a publish
// key (which identify refuses, so that a key may only publish).
func (s *Server) identifyPublisher(r *http.Request) (*auth.Identity, error) {
	tok := auth.TokenFromRequest(r)
	if tok == "" {
		return nil, fmt.Errorf("no token: send a publish key or a token as an Authorization: Bearer header: %w", auth.ErrUnauthenticated)
	}
	return s.auth.VerifyPublisher(tok)
}

// sameOrigin reports whether origin names the host the request was sent to.
func sameOrigin(origin string, r *http.Request) bool {
	_, host, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(host, r.Host)
}
