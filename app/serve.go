package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/app/bootstrap"
	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/transport"
)

// serve builds the process (bootstrap: store, hub, tracker, server) with its
// verifier, listens, and serves until ctx ends; then it drains streams and
// tears down in reverse order.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	dev, err := cfg.resolveDev()
	if err != nil {
		return err
	}
	devSecret := dev && cfg.JWTSecret == ""
	if devSecret {
		cfg.JWTSecret = randomSecret()
	}
	verifier, err := newVerifier(&cfg, logger)
	if err != nil {
		return err
	}

	limits := cfg.Limits
	limits.TypingRepeat = cfg.TypingTimeout / 3 // an unchanged typing state still refreshes in time
	proc, err := bootstrap.Build(ctx, bootstrap.Config{
		RedisURL:    cfg.RedisURL,
		RedisPrefix: cfg.RedisPrefix,
		Retention:   events.Retention{MaxEvents: cfg.HistoryEvents, MaxAge: cfg.HistoryAge},
		Notes:       events.NotificationRetention{MaxItems: cfg.NotesMax, MaxAge: cfg.NotesAge},
		Presence:    events.PresenceConfig{Grace: cfg.PresenceGrace, TypingTimeout: cfg.TypingTimeout, HoldTTL: cfg.PresenceTTL},
		Queue:       events.QueueLimits{Bytes: cfg.QueueBytes, Age: cfg.QueueAge},
		Transport: transport.Config{
			Heartbeat:      cfg.Heartbeat,
			MaxPayload:     cfg.MaxPayload,
			AllowedOrigins: cfg.AllowedOrigins,
			StoreTimeout:   cfg.StoreTimeout,
			ShutdownSpread: cfg.ShutdownSpread,
			Limits:         limits,
			Version:        relayVersion(),
			// RELAY_METRICS_ADDR: /metrics on its own listener only.
			MetricsElsewhere: cfg.MetricsAddr != "",
			Authorize:        transport.Authorize{URL: cfg.AuthorizeURL, Timeout: cfg.AuthorizeTimeout},
			KeepPastExpiry:   cfg.TokenExpiry == "keep",
			Webhook:          transport.Webhook{URL: cfg.WebhookURL, Secret: cfg.WebhookSecret},
		},
		Auth:   verifier,
		Routes: func(e *echo.Echo) { registerWeb(e, dev, cfg.DevRemote, []byte(cfg.JWTSecret), logger) },
		Logger: logger,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := proc.Close(); err != nil {
			logger.Warn("relay.store_close_error", "err", err)
		}
	}()
	srv := proc.Server

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set RELAY_ADDR or PORT to a free address)", cfg.Addr, err)
	}
	httpSrv := &http.Server{
		Handler: srv,
		// Streams live for hours: no ReadTimeout or WriteTimeout (see
		// PITFALLS); the transports set per-write deadlines instead.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	metricsURL, stopMetrics, err := serveMetrics(cfg.MetricsAddr, proc.Metrics.Handler(), logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMetrics()
	if metricsURL != "" {
		fmt.Fprintf(stdout, "relay metrics on %s\n", metricsURL)
	}
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()

	url := "http://" + displayAddr(ln.Addr())
	if devSecret {
		printDevHint(stdout, url, []byte(cfg.JWTSecret))
	}
	startupLog(logger, cfg, startInfo{URL: url, Dev: dev, DevSecret: devSecret})
	fmt.Fprintf(stdout, "relay listening on %s (store: %s)\n", url, storeName(cfg))

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("relay.shutdown", "timeout_ms", cfg.ShutdownTimeout.Milliseconds())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	errs := []error{srv.Shutdown(sctx)} // the streams have ended, or the deadline passed
	// What is left are plain requests, and connections that never sent one:
	// http.Server.Shutdown waits for a connection that sent nothing (a
	// browser preconnect) until it is 5 s old, which would hold the exit for
	// the whole timeout. Requests in flight get requestGrace, then whatever
	// is left is closed.
	gctx, gcancel := context.WithTimeout(sctx, requestGrace)
	defer gcancel()
	if err := httpSrv.Shutdown(gctx); err != nil {
		logger.Info("relay.shutdown_close", "grace_ms", requestGrace.Milliseconds())
		if err := httpSrv.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// serveMetrics serves h at /metrics on addr, alone, until stop; with no addr
// it does nothing (the main listener serves /metrics). It listens before it
// returns, so a bad address is an error at start, and returns the URL it
// serves. stop closes the listener and waits for its goroutine: a scrape cut
// off is retried by Prometheus.
func serveMetrics(addr string, h http.Handler, logger *slog.Logger) (url string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen on RELAY_METRICS_ADDR %s: %w (set it to a free address, or unset it to serve /metrics on the main listener)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	url = "http://" + displayAddr(ln.Addr()) + "/metrics"
	logger.Info("relay.metrics", "url", url)
	return url, func() { _ = srv.Close(); <-done }, nil
}

// newVerifier builds the verifier from every configured key and logs what
// it accepts: algorithms and publish key names, never a secret.
func newVerifier(cfg *config, logger *slog.Logger) (*auth.Verifier, error) {
	keys, err := cfg.verifierKeys(os.ReadFile)
	if err != nil {
		return nil, err
	}
	v, err := auth.NewVerifierWith(keys)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(keys.Publish))
	for i, k := range keys.Publish {
		names[i] = k.Name
	}
	logger.Info("relay.auth", "algorithms", v.Algorithms(), "hs256_secrets", len(keys.Secrets),
		"public_keys", len(keys.Public), "publish_keys", names)
	return v, nil
}

// requestGrace is how long a shutdown lets plain requests in flight finish
// once the streams have ended; then their connections are closed. It is
// short: readiness has said 503 since the drain began, and a publish cut off
// is retried safely with its idempotency key.
const requestGrace = time.Second

func storeName(cfg config) string {
	if cfg.RedisURL == "" {
		return "memory"
	}
	return "redis"
}

func newLogger(cfg config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("RELAY_LOG_LEVEL=%q: use debug, info, warn or error", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(cfg.LogFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("RELAY_LOG_FORMAT=%q: use text or json", cfg.LogFormat)
}

func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// displayAddr turns a wildcard listen address into one a browser can open.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// printDevHint prints a dev token and how to use it; never the secret.
func printDevHint(w io.Writer, url string, secret []byte) {
	tok, err := auth.Mint(secret, auth.Identity{UserID: "1", Name: "alice", Projects: []string{"1", "2"}, Publish: []string{"*"}}, 8*time.Hour)
	if err != nil {
		return
	}
	fmt.Fprintf(w, `dev mode: RELAY_JWT_SECRET is not set, so this run verifies tokens with a random secret.
A dev token for user 1 (alice, projects 1 and 2, may publish anywhere), valid 8h:
  %s
Try:
  curl -N -H 'Accept: text/event-stream' '%s/events/notifications?token=%s'
  curl -H 'Authorization: Bearer %s' -d '{"channel":"user_1_notifications","type":"notification","data":{"title":"hi"}}' %s/api/publish
The demo page is %s/ ; more tokens: curl -d '{"user":"bob"}' %s/api/dev/token
`, tok, url, tok, tok, url, url, url)
}
