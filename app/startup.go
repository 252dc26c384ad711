package main

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
)

// What app logs follows one schema, in text and JSON alike: the message is a
// stable event name ("relay.start", "relay.config_warning", "relay.auth",
// "relay.shutdown"), attributes are snake_case, durations are whole
// milliseconds named *_ms, and a line that asks for something to be done
// says which variable in "setting" and what to do in "hint". Secrets never
// appear: see redactors.

// startInfo is what serve knows of this run once it listens.
type startInfo struct {
	URL       string // where relay listens, as a browser opens it
	Dev       bool   // dev mode (resolveDev)
	DevSecret bool   // tokens are verified with a random secret of this run
}

// startupLog writes relay.start, the line that says how this process runs
// (its version, store, address and every setting, secrets redacted), then a
// relay.config_warning for each setting that looks wrong where it runs.
// serve calls it once it listens.
func startupLog(logger *slog.Logger, cfg config, run startInfo) {
	settings := make([]slog.Attr, 0, len(cfg.given))
	var setBy []slog.Attr
	for _, g := range cfg.given {
		key := settingKey(g.setting)
		var v any = g.value
		if redact, ok := redactors[g.setting.env]; ok {
			v = redact(g.value)
		}
		if g.setting.env == "RELAY_JWT_SECRET" && run.DevSecret {
			v = "[random, this run only]"
		}
		settings = append(settings, slog.Any(key, v))
		if g.source != "default" {
			setBy = append(setBy, slog.String(key, g.source))
		}
	}
	attrs := []slog.Attr{
		slog.String("version", relayVersion()),
		slog.String("go_version", runtime.Version()),
		slog.Int("pid", os.Getpid()),
		slog.String("store", storeName(cfg)),
		slog.String("listen", cfg.Addr),
		slog.String("url", run.URL),
		slog.Bool("dev_mode", run.Dev),
	}
	if run.Dev {
		attrs = append(attrs, slog.String("demo_url", run.URL+"/"))
	}
	if cfg.platform != "" {
		attrs = append(attrs, slog.String("platform", cfg.platform))
	}
	attrs = append(attrs, slog.GroupAttrs("settings", settings...), slog.GroupAttrs("set_by", setBy...))
	logger.LogAttrs(context.Background(), slog.LevelInfo, "relay.start", attrs...)

	for _, w := range configWarnings(cfg, run) {
		logger.Warn("relay.config_warning", "setting", w.setting, "hint", w.hint)
	}
}

// configWarning is a setting that looks wrong where relay runs, and what to
// do about it.
type configWarning struct{ setting, hint string }

// configWarnings are the relay.config_warning lines of the startup.
func configWarnings(cfg config, run startInfo) []configWarning {
	var ws []configWarning
	if run.DevSecret {
		ws = append(ws, configWarning{"RELAY_JWT_SECRET", "dev mode: RELAY_JWT_SECRET is not set, so tokens are verified with a random secret for this run only (never printed); set it to your backend's signing key before deploying"})
	}
	if cfg.platform != "" && cfg.RedisURL == "" {
		ws = append(ws, configWarning{"REDIS_URL", severalInstancesHint(cfg.platform)})
	}
	if slices.Contains(cfg.AllowedOrigins, "*") {
		ws = append(ws, configWarning{"RELAY_ALLOWED_ORIGINS", "RELAY_ALLOWED_ORIGINS=*: pages of every site may connect with a token they hold (?token=, Authorization); the relay_token cookie and credentialed CORS are honoured only for the same origin and origins listed by name"})
	}
	if strings.HasPrefix(cfg.platform, "FLY_") && cfg.Limits.TrustProxyHeader == "" {
		ws = append(ws, configWarning{"RELAY_TRUST_PROXY_HEADER", "on Fly every client comes through Fly's proxy, so per-address limits count all clients as one: set RELAY_TRUST_PROXY_HEADER=Fly-Client-IP"})
	}
	return ws
}

// severalInstancesHint is the warning for the memory store where a platform
// may run several instances of relay. Platforms do not tell a process how
// many others run (Fly's machines do not know their count), so it is given
// whenever one is detected without Redis.
func severalInstancesHint(platform string) string {
	one := "run exactly one instance"
	if strings.HasPrefix(platform, "FLY_") {
		one = "run exactly one machine (fly scale count 1; a first fly deploy creates two)"
	}
	return platform + " is set, so a hosting platform runs relay, and it may run several instances, but REDIS_URL is not set: " +
		"each instance keeps its own in-memory event log, so a client connected to one never receives what was published to another, " +
		"and a restart loses every channel's history. Set REDIS_URL to a Redis that every instance shares, or " + one
}
