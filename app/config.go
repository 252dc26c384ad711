package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/transport"
)

// config is every setting of `relay serve`. Each comes from an environment
// variable, and a flag of the same meaning overrides it. README.md lists them
// all; keep the two in step.
type config struct {
	Addr      string
	JWTSecret string
	// The other verification keys and the publish keys, as given: see
	// verifierKeys, which reads them (errors there never quote a secret).
	JWTSecretPrevious string
	JWTPublicKey      string // PEM text, or the path of a PEM file
	JWTJWKS           string // the path of a JWKS file, or its JSON
	PublishKeys       string
	RedisURL          string
	RedisPrefix       string
	HistoryEvents     int
	HistoryAge        time.Duration
	MaxPayload        int
	QueueBytes        int           // each stream's budget of unsent live events
	QueueAge          time.Duration // and the longest one may wait
	Heartbeat         time.Duration
	AllowedOrigins    []string
	ShutdownTimeout   time.Duration
	ShutdownSpread    time.Duration // within ShutdownTimeout; see checkShutdownSpread
	StoreTimeout      time.Duration
	// AuthorizeURL, AuthorizeTimeout: the backend authorization hook.
	AuthorizeURL     string
	AuthorizeTimeout time.Duration
	// TokenExpiry is "close" (end a stream at its token's exp) or "keep".
	TokenExpiry string
	// WebhookURL and WebhookSecret: the client-action webhook.
	WebhookURL    string
	WebhookSecret string
	LogLevel      string
	LogFormat     string
	PresenceGrace time.Duration
	TypingTimeout time.Duration
	PresenceTTL   time.Duration
	NotesMax      int
	NotesAge      time.Duration
	MetricsAddr   string // where /metrics is served alone ("": on the main listener)
	// Limits bound what one client may take (RELAY_MAX_CONNS_PER_USER …);
	// its TypingRepeat is set by serve from TypingTimeout.
	Limits transport.Limits
	// Dev is RELAY_DEV as given ("" when unset); see resolveDev.
	Dev string
	// DevRemote lets clients beyond this machine mint demo tokens.
	DevRemote bool

	addrDefault bool    // RELAY_ADDR, PORT and -addr are all unset
	platform    string  // the variable that says a hosting platform runs relay
	given       []given // every setting as loadConfig settled it, in table order
}

// given is one setting as loadConfig settled it: the value, and where it came
// from ("default", the variable's name, or the flag as "-name").
type given struct {
	setting       *setting
	value, source string
}

// platformVars are variables that hosting platforms set: where one is set,
// relay may be in production, and never turns dev mode on by itself.
var platformVars = []string{"FLY_APP_NAME", "FLY_MACHINE_ID", "K_SERVICE", "DYNO", "RENDER",
	"RAILWAY_ENVIRONMENT", "KUBERNETES_SERVICE_HOST", "ECS_CONTAINER_METADATA_URI_V4"}

// devAddr is where an automatic dev mode listens: this machine only.
const devAddr = "127.0.0.1:8080"

// resolveDev settles dev mode, in which relay may run without
// RELAY_JWT_SECRET (tokens are then verified with a random secret) and the
// demo page may mint tokens. It is on when RELAY_DEV=true, off when
// RELAY_DEV=false, and when RELAY_DEV is unset, on only if the secret is unset
// where this cannot be production: no REDIS_URL, no hosting platform, and a
// listen address on this machine (the default address then becomes
// 127.0.0.1:8080). Where it could be production and no secret is set, relay
// refuses to start, saying what to set: it never opens up by itself.
func (c *config) resolveDev() (bool, error) {
	if c.Dev != "" {
		on, _ := strconv.ParseBool(c.Dev)
		if !on && !c.hasJWTKey() {
			return false, fmt.Errorf("RELAY_DEV=false and RELAY_JWT_SECRET is not set: %s", setSecret)
		}
		return on, nil
	}
	if c.hasJWTKey() {
		return false, nil
	}
	var why string
	switch {
	case c.RedisURL != "":
		why = "REDIS_URL is set"
	case c.platform != "":
		why = c.platform + " is set (a hosting platform)"
	case !c.addrDefault && !loopbackAddr(c.Addr):
		why = "relay would listen on " + c.Addr + ", beyond this machine"
	}
	if why != "" {
		return false, fmt.Errorf("RELAY_JWT_SECRET is not set and %s, so this may be production: %s, or RELAY_DEV=true to run the demo with a random secret", why, setSecret)
	}
	if c.addrDefault {
		c.Addr = devAddr
	}
	return true, nil
}

const setSecret = "set RELAY_JWT_SECRET to the key your backend signs tokens with (Django with simplejwt: SIMPLE_JWT[\"SIGNING_KEY\"], by default SECRET_KEY; at least 16 bytes), " +
	"or RELAY_JWT_PUBLIC_KEY / RELAY_JWT_JWKS for RS256 or EdDSA tokens"

// hasJWTKey reports whether any key that verifies tokens is configured.
func (c *config) hasJWTKey() bool {
	return c.JWTSecret != "" || c.JWTPublicKey != "" || c.JWTJWKS != ""
}

// verifierKeys reads the configured keys. Its errors name the variable and
// never quote a secret.
func (c *config) verifierKeys(readFile func(string) ([]byte, error)) (auth.Keys, error) {
	var k auth.Keys
	switch {
	case c.JWTSecret != "":
		k.Secrets = append(k.Secrets, []byte(c.JWTSecret))
		if c.JWTSecretPrevious != "" {
			k.Secrets = append(k.Secrets, []byte(c.JWTSecretPrevious))
		}
	case c.JWTSecretPrevious != "":
		return k, errors.New("RELAY_JWT_SECRET_PREVIOUS is set but RELAY_JWT_SECRET is not: set RELAY_JWT_SECRET to the current secret; " +
			"the previous one is only accepted beside it, while tokens signed with it expire")
	}
	for i, s := range k.Secrets {
		if len(s) < auth.MinSecretLen {
			return k, fmt.Errorf("%s is %d bytes, want at least %d", [...]string{"RELAY_JWT_SECRET", "RELAY_JWT_SECRET_PREVIOUS"}[i], len(s), auth.MinSecretLen)
		}
	}
	if c.JWTPublicKey != "" {
		text, err := inlineOrFile(c.JWTPublicKey, "-----BEGIN", readFile)
		if err != nil {
			return k, fmt.Errorf("RELAY_JWT_PUBLIC_KEY: %w (give the PEM text itself, or the path of a PEM file)", err)
		}
		keys, err := auth.ParsePublicKeys(text)
		if err != nil {
			return k, fmt.Errorf("RELAY_JWT_PUBLIC_KEY: %w", err)
		}
		k.Public = append(k.Public, keys...)
	}
	if c.JWTJWKS != "" {
		text, err := inlineOrFile(c.JWTJWKS, "{", readFile)
		if err != nil {
			return k, fmt.Errorf("RELAY_JWT_JWKS: %w (give the path of a JWKS file, or its JSON)", err)
		}
		keys, err := auth.ParseJWKS(text)
		if err != nil {
			return k, fmt.Errorf("RELAY_JWT_JWKS: %w", err)
		}
		k.Public = append(k.Public, keys...)
	}
	keys, err := auth.ParsePublishKeys(c.PublishKeys)
	if err != nil {
		return k, fmt.Errorf("RELAY_PUBLISH_KEYS: %w", err)
	}
	k.Publish = keys
	return k, nil
}

// inlineOrFile returns v itself when it starts with prefix (PEM or JSON
// given in the variable), else the contents of the file v names. Platforms
// that flatten a secret's newlines into the two characters \n get them back.
func inlineOrFile(v, prefix string, readFile func(string) ([]byte, error)) ([]byte, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, prefix) {
		if !strings.Contains(v, "\n") {
			v = strings.ReplaceAll(v, `\n`, "\n")
		}
		return []byte(v), nil
	}
	return readFile(v)
}

// loopbackAddr reports whether a listen address only takes this machine's
// connections ("localhost:8080", "127.0.0.1:0", "[::1]:80").
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// setting is one row of the configuration table.
type setting struct {
	env, flag, def, usage string
	set                   func(c *config, v string) error
}

var settings = []setting{
	{"RELAY_ADDR", "addr", ":8080", "listen address (PORT, when set and RELAY_ADDR is not, gives :$PORT)",
		func(c *config, v string) error { c.Addr = v; return nil }},
	{"RELAY_METRICS_ADDR", "metrics-addr", "", "listen address of /metrics alone, e.g. :9091 (unset: /metrics on the main listener)",
		func(c *config, v string) error { c.MetricsAddr = v; return nil }},
	{"RELAY_JWT_SECRET", "jwt-secret", "", "HS256 key that verifies tokens (unset: a random one per run, dev only)",
		func(c *config, v string) error { c.JWTSecret = v; return nil }},
	{"RELAY_JWT_SECRET_PREVIOUS", "jwt-secret-previous", "", "the HS256 key RELAY_JWT_SECRET replaced, still accepted while its tokens expire (rotation)",
		func(c *config, v string) error { c.JWTSecretPrevious = v; return nil }},
	{"RELAY_JWT_PUBLIC_KEY", "jwt-public-key", "", "PEM public key(s) that verify RS256 or EdDSA tokens, or the path of a PEM file",
		func(c *config, v string) error { c.JWTPublicKey = v; return nil }},
	{"RELAY_JWT_JWKS", "jwt-jwks", "", "path of a JWKS file (or its JSON) whose keys verify RS256 or EdDSA tokens; a token's kid selects",
		func(c *config, v string) error { c.JWTJWKS = v; return nil }},
	{"RELAY_PUBLISH_KEYS", "publish-keys", "", "publish keys for backends: name=secret:pattern,pattern;name2=… (secrets: 32+ of A-Z a-z 0-9 - _)",
		func(c *config, v string) error { c.PublishKeys = v; return nil }},
	{"REDIS_URL", "redis-url", "", "redis:// or rediss:// URL of the shared event log (unset: in-memory log)",
		func(c *config, v string) error { c.RedisURL = v; return nil }},
	{"RELAY_REDIS_PREFIX", "redis-prefix", "relay:", "prefix of every Redis key and Pub/Sub channel relay uses",
		func(c *config, v string) error { c.RedisPrefix = v; return nil }},
	{"RELAY_HISTORY_MAX_EVENTS", "history-max-events", "10000", "events kept per channel for replay",
		intSetter(func(c *config) *int { return &c.HistoryEvents })},
	{"RELAY_HISTORY_MAX_AGE", "history-max-age", "24h", "how long events are kept for replay",
		durationSetter(func(c *config) *time.Duration { return &c.HistoryAge })},
	{"RELAY_MAX_PAYLOAD", "max-payload", "65536", "largest published event, in bytes",
		intSetter(func(c *config) *int { return &c.MaxPayload })},
	{"RELAY_QUEUE_MAX_BYTES", "queue-max-bytes", "1048576", "live events one stream may hold unsent, in encoded bytes, before it is ended as a slow consumer (it resumes from its cursor)",
		intSetter(func(c *config) *int { return &c.QueueBytes })},
	{"RELAY_QUEUE_MAX_AGE", "queue-max-age", "10s", "longest a live event may wait unsent before its stream is ended as a slow consumer",
		durationSetter(func(c *config) *time.Duration { return &c.QueueAge })},
	{"RELAY_PRESENCE_GRACE", "presence-grace", "5s", "how long a user stays online after their last connection closes (no left/joined flap on reload)",
		durationSetter(func(c *config) *time.Duration { return &c.PresenceGrace })},
	{"RELAY_TYPING_TIMEOUT", "typing-timeout", "6s", "typing ends by itself after this long without a refresh",
		durationSetter(func(c *config) *time.Duration { return &c.TypingTimeout })},
	{"RELAY_PRESENCE_TTL", "presence-ttl", "30s", "a process's hold on its online users; a dead process's users are announced left within 4/3 of it",
		durationSetter(func(c *config) *time.Duration { return &c.PresenceTTL })},
	{"RELAY_NOTIFICATIONS_MAX", "notifications-max", "1000", "notifications kept per user",
		intSetter(func(c *config) *int { return &c.NotesMax })},
	{"RELAY_NOTIFICATIONS_MAX_AGE", "notifications-max-age", "720h", "how long notifications are kept",
		durationSetter(func(c *config) *time.Duration { return &c.NotesAge })},
	{"RELAY_HEARTBEAT", "heartbeat", "15s", "SSE heartbeat and WebSocket ping interval",
		durationSetter(func(c *config) *time.Duration { return &c.Heartbeat })},
	{"RELAY_ALLOWED_ORIGINS", "allowed-origins", "", "comma-separated origins of other sites allowed to connect (empty: same origin only)",
		func(c *config, v string) error { c.AllowedOrigins = splitList(v); return nil }},
	{"RELAY_SHUTDOWN_TIMEOUT", "shutdown-timeout", "4s", "how long a shutdown waits for streams to end (keep under Fly's kill_timeout)",
		durationSetter(func(c *config) *time.Duration { return &c.ShutdownTimeout })},
	{"RELAY_SHUTDOWN_SPREAD", "shutdown-spread", "3s", "a shutdown ends its streams over this window, so their clients reconnect to other machines at a steady rate (0: all at once; at most 300s, and 1s under RELAY_SHUTDOWN_TIMEOUT)",
		func(c *config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("want a duration such as 3s or 1m, or 0 to end every stream at once")
			}
			c.ShutdownSpread = d
			return nil
		}},
	{"RELAY_STORE_TIMEOUT", "store-timeout", "3s", "longest a publish or a stream's opening waits for the store before answering 503 store_unavailable",
		durationSetter(func(c *config) *time.Duration { return &c.StoreTimeout })},
	{"RELAY_AUTHORIZE_URL", "authorize-url", "", "the app's authorization endpoint, asked about channels a token does not cover (empty: such channels are refused)",
		func(c *config, v string) error {
			if v != "" {
				u, err := url.Parse(v)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return fmt.Errorf("want an http:// or https:// URL, like https://app.example.com/relay/authorize")
				}
			}
			c.AuthorizeURL = v
			return nil
		}},
	{"RELAY_AUTHORIZE_TIMEOUT", "authorize-timeout", "2s", "longest relay waits for the authorization endpoint before refusing (403/4003)",
		durationSetter(func(c *config) *time.Duration { return &c.AuthorizeTimeout })},
	{"RELAY_TOKEN_EXPIRY", "token-expiry", "close", "close: end a stream when its token expires (4002); keep: check the token at connect only, as Django Channels did",
		func(c *config, v string) error {
			if v != "close" && v != "keep" {
				return fmt.Errorf("want close or keep")
			}
			c.TokenExpiry = v
			return nil
		}},
	{"RELAY_WEBHOOK_URL", "webhook-url", "", "where relay POSTs client actions the app records itself (mark_read), signed with RELAY_WEBHOOK_SECRET (empty: off)",
		func(c *config, v string) error {
			if v != "" {
				u, err := url.Parse(v)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return fmt.Errorf("want an http:// or https:// URL, like https://app.example.com/relay/webhook")
				}
			}
			c.WebhookURL = v
			return nil
		}},
	{"RELAY_WEBHOOK_SECRET", "webhook-secret", "", "the HMAC-SHA256 key of webhooks' X-Relay-Signature (the app's RELAY_WEBHOOK_SECRET)",
		func(c *config, v string) error { c.WebhookSecret = v; return nil }},
	{"RELAY_MAX_CONNS_PER_USER", "max-conns-per-user", "100", "streams one user may hold open (per relay process)",
		intSetter(func(c *config) *int { return &c.Limits.ConnsPerUser })},
	{"RELAY_MAX_CONNS_PER_IP", "max-conns-per-ip", "2000", "streams one client address (IPv6: its /64) may hold open (per relay process)",
		intSetter(func(c *config) *int { return &c.Limits.ConnsPerIP })},
	{"RELAY_CONNECT_RATE", "connect-rate", "50", "new streams a second one client address may open, on average",
		intSetter(func(c *config) *int { return &c.Limits.ConnectRate })},
	{"RELAY_CONNECT_BURST", "connect-burst", "500", "new streams one client address may open at once",
		intSetter(func(c *config) *int { return &c.Limits.ConnectBurst })},
	{"RELAY_ACTION_RATE", "action-rate", "10", "messages a second one WebSocket connection may send (typing, viewing, mark_read, ping)",
		intSetter(func(c *config) *int { return &c.Limits.ActionRate })},
	{"RELAY_ACTION_BURST", "action-burst", "20", "messages one WebSocket connection may send at once",
		intSetter(func(c *config) *int { return &c.Limits.ActionBurst })},
	{"RELAY_USER_ACTION_RATE", "user-action-rate", "20", "typing, viewing, mark_read and ping a second for one user, over all connections and the HTTP action endpoints",
		intSetter(func(c *config) *int { return &c.Limits.UserActionRate })},
	{"RELAY_USER_ACTION_BURST", "user-action-burst", "50", "actions one user may send at once",
		intSetter(func(c *config) *int { return &c.Limits.UserActionBurst })},
	{"RELAY_ACTION_HARD_LIMIT", "action-hard-limit", "100", "refused messages after which a WebSocket connection is closed with 4029 (refills at RELAY_ACTION_RATE)",
		intSetter(func(c *config) *int { return &c.Limits.ActionHardLimit })},
	{"RELAY_TRUST_PROXY_HEADER", "trust-proxy-header", "", "header with the client's address set by the proxy in front of relay (Fly: Fly-Client-IP); only when every request comes through it",
		func(c *config, v string) error {
			if strings.ContainsFunc(v, func(r rune) bool {
				return !(r == '-' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z')
			}) {
				return fmt.Errorf("want a header name such as Fly-Client-IP")
			}
			c.Limits.TrustProxyHeader = v
			return nil
		}},
	{"RELAY_BODY_TIMEOUT", "body-timeout", "10s", "longest a request body may take to arrive before a 408 (streams have none)",
		durationSetter(func(c *config) *time.Duration { return &c.Limits.BodyTimeout })},
	{"RELAY_LOG_LEVEL", "log-level", "info", "debug, info, warn or error",
		func(c *config, v string) error { c.LogLevel = v; return nil }},
	{"RELAY_LOG_FORMAT", "log-format", "text", "text or json",
		func(c *config, v string) error { c.LogFormat = v; return nil }},
	{"RELAY_DEV_REMOTE", "dev-remote", "false", "dev mode: let clients beyond this machine mint demo tokens (a public demo)",
		func(c *config, v string) error {
			on, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("want true or false")
			}
			c.DevRemote = on
			return nil
		}},
	{"RELAY_DEV", "dev", "", "dev mode: no secret needed (a random one), the demo page may mint tokens for this machine's clients (unset: on only when RELAY_JWT_SECRET, REDIS_URL and any hosting platform are unset, listening on 127.0.0.1)",
		func(c *config, v string) error {
			if _, err := strconv.ParseBool(v); v != "" && err != nil {
				return fmt.Errorf("want true or false")
			}
			c.Dev = v
			return nil
		}},
}

// serveFlags is the flag set of relay serve: a flag per setting, whose
// values it records in flagged, and -version (which run answers before
// serving). Its usage, printed for -h and for a bad flag, is serveUsage.
func serveFlags(out io.Writer) (fs *flag.FlagSet, flagged map[string]string, showVersion *bool) {
	fs = flag.NewFlagSet("relay serve", flag.ContinueOnError)
	fs.SetOutput(out)
	flagged = make(map[string]string)
	for _, s := range settings {
		fs.Func(s.flag, s.usage+" (env "+s.env+", default "+strconv.Quote(s.def)+")", func(v string) error {
			flagged[s.flag] = v
			return nil
		})
	}
	showVersion = fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { serveUsage(fs) }
	return fs, flagged, showVersion
}

// serveUsage is what relay -h prints: the commands, then serve's flags.
func serveUsage(fs *flag.FlagSet) {
	fmt.Fprint(fs.Output(), `relay relays events published by a backend to browsers over Server-Sent Events
and WebSocket, with exact replay by Last-Event-ID (README.md has the details).

Usage:
  relay [serve] [flags]   serve (the default command)
  relay version           print the version (also: relay -version)
  relay token [flags]     print a signed token (relay token -h)
  relay publish [flags]   publish one event to a running relay (relay publish -h)
  relay bench [flags]     measure relay (relay bench -h)

Every setting of serve is an environment variable; the flag of the same
meaning overrides it. Flags of serve:
`)
	fs.PrintDefaults()
}

// loadConfig reads the environment, then the flags in args.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs, flagged, _ := serveFlags(stderr)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q: relay takes flags only (relay -h lists them)", fs.Arg(0))
	}
	for i := range settings {
		s := &settings[i]
		v, src := s.def, "default"
		if e := getenv(s.env); e != "" {
			v, src = e, s.env
		} else if s.env == "RELAY_ADDR" && getenv("PORT") != "" {
			v, src = ":"+getenv("PORT"), "PORT"
		}
		if f, ok := flagged[s.flag]; ok {
			v, src = f, "-"+s.flag
		}
		if s.env == "RELAY_ADDR" {
			c.addrDefault = src == "default"
		}
		if err := s.set(&c, v); err != nil {
			return c, fmt.Errorf("%s=%q: %v", src, v, err)
		}
		c.given = append(c.given, given{setting: s, value: v, source: src})
	}
	if err := c.checkShutdownSpread(); err != nil {
		return c, err
	}
	for _, v := range platformVars {
		if getenv(v) != "" {
			c.platform = v
			break
		}
	}
	if c.WebhookURL != "" && len(c.WebhookSecret) < 16 {
		return c, fmt.Errorf("RELAY_WEBHOOK_URL is set, so RELAY_WEBHOOK_SECRET must be too (at least 16 bytes, the app's RELAY_WEBHOOK_SECRET): unsigned webhooks could be forged")
	}
	return c, nil
}

// Bounds of RELAY_SHUTDOWN_SPREAD: the last stream to end still has
// spreadMargin (a WebSocket's close handshake) before RELAY_SHUTDOWN_TIMEOUT,
// and no window is longer than the longest kill timeout Fly allows.
const (
	spreadMargin = time.Second
	maxSpread    = 300 * time.Second
)

// checkShutdownSpread keeps the spread within the shutdown's deadline. A
// spread the operator set that does not fit is an error; the default
// shrinks to fit a short RELAY_SHUTDOWN_TIMEOUT, as a default should not
// stop relay from starting.
func (c *config) checkShutdownSpread() error {
	var g *given
	for i := range c.given {
		if c.given[i].setting.env == "RELAY_SHUTDOWN_SPREAD" {
			g = &c.given[i]
		}
	}
	fit := max(c.ShutdownTimeout-spreadMargin, 0)
	switch {
	case c.ShutdownSpread <= fit && c.ShutdownSpread <= maxSpread:
		return nil
	case g != nil && g.source == "default":
		c.ShutdownSpread = min(fit, maxSpread)
		g.value = c.ShutdownSpread.String()
		return nil
	case c.ShutdownSpread > maxSpread:
		return fmt.Errorf("RELAY_SHUTDOWN_SPREAD=%s: at most %s (Fly's longest kill_timeout)", c.ShutdownSpread, maxSpread)
	}
	return fmt.Errorf("RELAY_SHUTDOWN_SPREAD=%s does not fit RELAY_SHUTDOWN_TIMEOUT=%s: every stream must end %s before the timeout; shorten the spread to at most %s or lengthen the timeout (and Fly's kill_timeout with it)",
		c.ShutdownSpread, c.ShutdownTimeout, spreadMargin, fit)
}

func intSetter(field func(*config) *int) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive whole number")
		}
		*field(c) = n
		return nil
	}
}

func durationSetter(field func(*config) *time.Duration) func(*config, string) error {
	return func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("want a positive duration such as 15s, 5m or 24h")
		}
		*field(c) = d
		return nil
	}
}

func splitList(v string) []string {
	var out []string
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// redactors say how the startup line shows the settings that hold secrets
// or key material; every other setting is shown as given. A setting whose
// variable names a secret, a key or a URL must have one
// (TestEverySecretSettingIsRedacted).
var redactors = map[string]func(v string) any{
	"RELAY_JWT_SECRET":          redactSecret,
	"RELAY_JWT_SECRET_PREVIOUS": redactSecret,
	"RELAY_JWT_PUBLIC_KEY":      func(v string) any { return redactInline(v, "-----BEGIN", "PEM") },
	"RELAY_JWT_JWKS":            func(v string) any { return redactInline(v, "{", "JWKS JSON") },
	"RELAY_PUBLISH_KEYS":        publishKeyNames,
	"REDIS_URL":                 redactURL,
	"RELAY_AUTHORIZE_URL":       redactURL,
	"RELAY_WEBHOOK_URL":         redactURL,
	"RELAY_WEBHOOK_SECRET":      redactSecret,
	"RELAY_TOKEN_EXPIRY":        func(v string) any { return v }, // close or keep: no secret
}

// redacted stands for a secret in what relay logs.
const redacted = "[redacted]"

// redactSecret says whether a secret is set, and nothing of it.
func redactSecret(v string) any {
	if v == "" {
		return ""
	}
	return redacted
}

// redactInline shows a key setting that names a file as the file's path,
// and one that holds the keys themselves (as inlineOrFile reads it) as
// what it is, without them.
func redactInline(v, prefix, what string) any {
	if v == "" {
		return ""
	}
	if strings.HasPrefix(strings.TrimSpace(v), prefix) {
		return "[inline " + what + ", redacted]"
	}
	return v
}

// publishKeyNames shows RELAY_PUBLISH_KEYS as the names of its keys.
func publishKeyNames(v string) any {
	keys, err := auth.ParsePublishKeys(v)
	if err != nil {
		return redacted
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name
	}
	return names
}

// redactURL shows a Redis URL with its passwords as xxxxx (net/url's
// convention): the one in the user information and any query parameter
// go-redis reads one from (password, sentinel_password). A URL that does not
// parse is not shown at all.
func redactURL(v string) any {
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil {
		return redacted
	}
	if q := u.Query(); len(q) > 0 {
		for k := range q {
			if strings.Contains(strings.ToLower(k), "pass") {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// settingKey is a setting's name in logs: its flag in snake_case.
func settingKey(s *setting) string { return strings.ReplaceAll(s.flag, "-", "_") }
