// Package bootstrap builds a relay process from its configuration: the store
// (memory or Redis), the hub, the presence tracker and the HTTP server, each
// given its collaborators when it is made. app's serve and the tests of
// transport and app build relay through it, so they run what production runs.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/transport"
)

// Config is what a process is built from.
type Config struct {
	// RedisURL selects the Redis store; "" keeps everything in memory.
	RedisURL    string
	RedisPrefix string // the Redis store's key prefix ("" : the store's default)
	// Retention bounds each channel's history; Notes each user's
	// notifications.
	Retention events.Retention
	Notes     events.NotificationRetention
	Presence  events.PresenceConfig
	// Queue bounds each stream's live events not yet sent (zero fields:
	// events' defaults).
	Queue     events.QueueLimits
	Transport transport.Config
	// Auth authenticates requests (required).
	Auth transport.Authenticator
	// Routes registers more routes on the server (the web client).
	Routes func(*echo.Echo)
	// WrapLog, when set, wraps the store's event log before the hub uses
	// it (tests: a log that is slow or fails).
	WrapLog func(events.Log) events.Log
	// Logger receives every part's logs; nil discards them.
	Logger *slog.Logger
}

// Process is a built relay: its parts, started, and ready to serve.
type Process struct {
	Log           events.Log // the store's log, unwrapped
	Notifications events.Notifications
	Presence      events.Presence
	Hub           *events.Hub
	Tracker       *events.Tracker
	Server        *transport.Server
	// Metrics are the process's series: the server serves them at /metrics
	// unless Transport.MetricsElsewhere (then serve Metrics.Handler).
	Metrics *transport.Metrics

	closers []func() error // in start-up order
}

// Build opens the store, starts the hub and the tracker and builds the
// server. On error, what was started is closed again.
func Build(ctx context.Context, cfg Config) (_ *Process, err error) {
	if cfg.Auth == nil {
		return nil, errors.New("bootstrap: Config.Auth is required")
	}
	p := &Process{Metrics: transport.NewMetrics()}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	if err := p.openStore(ctx, cfg); err != nil {
		return nil, err
	}
	log := observe(p.Log, p.Metrics)
	if cfg.WrapLog != nil {
		log = cfg.WrapLog(log)
	}
	p.Hub = events.NewHub(log, events.HubOptions{Notifications: p.Notifications, Logger: cfg.Logger,
		Observer: p.Metrics, Queue: cfg.Queue})
	if err := p.Hub.Start(ctx); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() error { p.Hub.Close(); return nil })
	p.Tracker = events.NewTracker(p.Hub, p.Presence, cfg.Presence, cfg.Logger)
	p.Tracker.Start()
	p.closers = append(p.closers, func() error { p.Tracker.Close(); return nil })

	deps := transport.Deps{Hub: p.Hub, Auth: cfg.Auth, Presence: p.Tracker, Notifications: p.Notifications,
		Routes: cfg.Routes, Metrics: p.Metrics, Shared: cfg.RedisURL != ""}
	if pg, ok := log.(events.Pinger); ok { // readiness pings the log the hub reads
		deps.Store = pg
	}
	if p.Server, err = transport.NewServer(deps, cfg.Transport, cfg.Logger); err != nil {
		return nil, err
	}
	return p, nil
}

// openStore opens the log, notifications and presence, all in memory or all
// in Redis.
func (p *Process) openStore(ctx context.Context, cfg Config) error {
	if cfg.RedisURL == "" {
		m := store.NewMemory(cfg.Retention)
		p.Log, p.Notifications, p.Presence = m, store.NewMemoryNotifications(cfg.Notes), store.NewMemoryPresence()
		p.closers = append(p.closers, m.Close)
		return nil
	}
	r, err := store.OpenRedis(ctx, cfg.RedisURL, store.RedisOptions{Prefix: cfg.RedisPrefix, Retention: cfg.Retention, Logger: cfg.Logger,
		OnReconnect: p.Metrics.PubSubReconnected, OnReceive: p.Metrics.StoreReceived})
	if err != nil {
		return err
	}
	p.Log, p.Notifications, p.Presence = r, r.Notifications(cfg.Notes), r.Presence()
	p.closers = append(p.closers, r.Close)
	return nil
}

// Close tears the process down in reverse order of start-up: the tracker
// (before the hub it publishes to), the hub, the store. Shut the server down
// first (Server.Shutdown, then the http.Server's), so no stream is left. It
// is idempotent.
func (p *Process) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	p.closers = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bootstrap: close: %w", err)
	}
	return nil
}
