package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/store/redistest"
)

// TestVersion: relay version, relay -version and relay serve -version print
// the version on stdout and succeed, serving nothing.
func TestVersion(t *testing.T) {
	want := "relay " + relayVersion() + " ("
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}, {"serve", "-version"}, {"-addr", "127.0.0.1:0", "-version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, err := runOnce(t, args...)
			if err != nil {
				t.Fatalf("run: %v, want nil (exit 0)", err)
			}
			if !strings.HasPrefix(stdout, want) || strings.Count(stdout, "\n") != 1 {
				t.Errorf("stdout: got %q, want one line starting %q", stdout, want)
			}
			if stderr != "" {
				t.Errorf("stderr: got %q, want nothing", stderr)
			}
		})
	}
	if _, _, err := runOnce(t, "version", "extra"); err == nil || !strings.Contains(err.Error(), "no arguments") {
		t.Errorf("relay version extra: got %v, want an error saying version takes no arguments", err)
	}
}

// TestHelp: -h is a request, not a mistake: the usage on stdout, exit 0.
// A flag relay does not know is still an error.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-help"}, {"--help"}, {"serve", "-h"}, {"help"}, {"-redis-prefix", "x", "-h"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, err := runOnce(t, args...)
			if err != nil {
				t.Fatalf("run: %v, want nil (exit 0)", err)
			}
			for _, want := range []string{"Usage:", "relay version", "-redis-url", "env REDIS_URL", "-version"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("usage does not mention %q:\n%s", want, stdout)
				}
			}
			if stderr != "" {
				t.Errorf("stderr: got %q, want nothing", stderr)
			}
		})
	}
	for _, cmd := range []string{"token", "publish", "bench"} {
		if _, stderr, err := runOnce(t, cmd, "-h"); err != nil || !strings.Contains(stderr, "Usage of relay "+cmd) {
			t.Errorf("relay %s -h: got %v and %q, want nil and its usage", cmd, err, stderr)
		}
	}
	if _, _, err := runOnce(t, "-no-such-flag"); err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("relay -no-such-flag: got %v, want an error naming the flag", err)
	}
}

// TestStartupLineRedactsSecrets: relay.start lists every setting of the
// configuration table with where it came from, and none of the secret bytes
// (JWT secrets, a publish key, a Redis password) appear anywhere relay writes.
func TestStartupLineRedactsSecrets(t *testing.T) {
	srv := redistest.NewServer(t)
	password := randomHex(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	if err := c.ConfigSet(context.Background(), "requirepass", password).Err(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	secret, previous, pubKey := randomHex(t), randomHex(t), randomHex(t)
	env := map[string]string{
		"RELAY_JWT_SECRET":          secret,
		"RELAY_JWT_SECRET_PREVIOUS": previous,
		"RELAY_PUBLISH_KEYS":        "django=" + pubKey + ":project_*,user_*_notifications",
		"REDIS_URL":                 "redis://default:" + password + "@" + srv.Addr + "/0",
		"RELAY_REDIS_PREFIX":        "startup-test:",
		"RELAY_HEARTBEAT":           "7s",
		"RELAY_LOG_FORMAT":          "json",
	}
	stdout, stderr := serveUntilListening(t, env, "-max-payload", "1000")
	for name, s := range map[string]string{"RELAY_JWT_SECRET": secret, "RELAY_JWT_SECRET_PREVIOUS": previous, "the publish key": pubKey, "the Redis password": password} {
		if strings.Contains(stdout+stderr, s) {
			t.Errorf("%s appears in relay's output:\nstdout:\n%s\nstderr:\n%s", name, stdout, stderr)
		}
	}

	start := logLine(t, stderr, "relay.start")
	got, _ := start["settings"].(map[string]any)
	for i := range settings {
		if key := settingKey(&settings[i]); !hasKey(got, key) {
			t.Errorf("relay.start settings lack %s (%s)", key, settings[i].env)
		}
	}
	if len(got) != len(settings) {
		t.Errorf("relay.start has %d settings, want the table's %d", len(got), len(settings))
	}
	wantSettings := map[string]any{
		"jwt_secret":          redacted,
		"jwt_secret_previous": redacted,
		"jwt_public_key":      "",
		"publish_keys":        []any{"django"},
		"redis_url":           "redis://default:xxxxx@" + srv.Addr + "/0",
		"redis_prefix":        "startup-test:",
		"heartbeat":           "7s",
		"max_payload":         "1000",
		"history_max_age":     "24h",
	}
	for k, want := range wantSettings {
		if g := got[k]; !jsonEqual(g, want) {
			t.Errorf("settings.%s: got %#v, want %#v", k, g, want)
		}
	}
	// set_by names exactly the settings not at their default, and how.
	wantSetBy := map[string]any{"max_payload": "-max-payload"}
	for _, s := range settings {
		if _, ok := env[s.env]; ok {
			wantSetBy[settingKey(&s)] = s.env
		}
	}
	if setBy := start["set_by"]; !jsonEqual(setBy, wantSetBy) {
		t.Errorf("set_by: got %v, want %v", setBy, wantSetBy)
	}
	for k, want := range map[string]any{"version": relayVersion(), "store": "redis", "dev_mode": false} {
		if start[k] != want {
			t.Errorf("relay.start %s: got %v, want %v", k, start[k], want)
		}
	}
	if url, _ := start["url"].(string); !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.Contains(stdout, url) {
		t.Errorf("relay.start url: got %q, want the address relay printed (%q)", url, stdout)
	}
	checkSchema(t, stderr)
}

// TestStartupLineDevMode: in dev mode the startup line says where to open
// the demo, and that the secret is a random one, without it.
func TestStartupLineDevMode(t *testing.T) {
	stdout, stderr := serveUntilListening(t, map[string]string{"RELAY_LOG_FORMAT": "json"})
	start := logLine(t, stderr, "relay.start")
	url, _ := start["url"].(string)
	if start["dev_mode"] != true || url == "" || start["demo_url"] != url+"/" {
		t.Errorf("relay.start: got dev_mode %v, url %q, demo_url %v; want true and the demo at url/", start["dev_mode"], url, start["demo_url"])
	}
	got, _ := start["settings"].(map[string]any)
	if got := got["jwt_secret"]; got != "[random, this run only]" {
		t.Errorf("settings.jwt_secret in dev mode: got %v, want [random, this run only]", got)
	}
	if regexp.MustCompile(`[0-9a-f]{64}`).MatchString(stdout + stderr) {
		t.Errorf("output holds what looks like the random secret:\n%s\n%s", stdout, stderr)
	}
	if ws := warnings(t, stderr, "RELAY_JWT_SECRET"); len(ws) != 1 {
		t.Errorf("got %d warnings about RELAY_JWT_SECRET, want 1: %v", len(ws), ws)
	}
	checkSchema(t, stderr)
}

// TestSeveralInstancesWarning: where a platform may run several instances
// and REDIS_URL is unset, one WARN line says to set it; with Redis, or off
// any platform, none.
func TestSeveralInstancesWarning(t *testing.T) {
	redisURL := redistest.URL(t)
	cases := []struct {
		name string
		env  map[string]string
		want int
	}{
		{"Fly without Redis", map[string]string{"FLY_APP_NAME": "relay-prod", "FLY_MACHINE_ID": "148e2"}, 1},
		{"a Fly machine id alone", map[string]string{"FLY_MACHINE_ID": "148e2"}, 1},
		{"Kubernetes without Redis", map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, 1},
		{"Fly with Redis", map[string]string{"FLY_APP_NAME": "relay-prod", "REDIS_URL": redisURL, "RELAY_REDIS_PREFIX": redistest.Prefix(t)}, 0},
		{"no platform", map[string]string{}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.env["RELAY_JWT_SECRET"] = testSecret
			c.env["RELAY_LOG_FORMAT"] = "json"
			c.env["RELAY_TRUST_PROXY_HEADER"] = "Fly-Client-IP"
			_, stderr := serveUntilListening(t, c.env)
			ws := warnings(t, stderr, "REDIS_URL")
			if len(ws) != c.want {
				t.Fatalf("got %d warnings about REDIS_URL, want %d:\n%s", len(ws), c.want, stderr)
			}
			if c.want == 0 {
				return
			}
			hint, _ := ws[0]["hint"].(string)
			if ws[0]["level"] != "WARN" || !strings.Contains(hint, "Set REDIS_URL") || !strings.Contains(hint, "several instances") {
				t.Errorf("warning: got %v, want a WARN saying to set REDIS_URL because of several instances", ws[0])
			}
			if _, onFly := c.env["FLY_MACHINE_ID"]; onFly && !strings.Contains(hint, "fly scale count 1") {
				t.Errorf("hint on Fly: got %q, want the Fly command for one machine", hint)
			}
		})
	}
}

// TestEverySecretSettingIsRedacted keeps the table and the redactors in step:
// a new setting that holds a secret, a key or a URL needs a redactor.
func TestEverySecretSettingIsRedacted(t *testing.T) {
	secretish := regexp.MustCompile(`SECRET|KEY|URL|PASS|TOKEN`)
	for _, s := range settings {
		if secretish.MatchString(s.env) && s.env != "RELAY_TRUST_PROXY_HEADER" {
			if _, ok := redactors[s.env]; !ok {
				t.Errorf("%s looks like it holds a secret and has no redactor", s.env)
			}
		}
	}
	for env := range redactors {
		if !slices.ContainsFunc(settings, func(s setting) bool { return s.env == env }) {
			t.Errorf("redactor for %s, which is no setting", env)
		}
	}
}

func TestRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"rediss://default:hunter2hunter2@fly-relay.upstash.io:6379", "rediss://default:xxxxx@fly-relay.upstash.io:6379"},
		{"redis://:hunter2hunter2@h:1/0", "redis://:xxxxx@h:1/0"},
		{"redis://h:26379/0?master_name=m&password=hunter2hunter2&sentinel_password=hunter3", "redis://h:26379/0?master_name=m&password=xxxxx&sentinel_password=xxxxx"},
		{"redis://user@h:1/0", "redis://user@h:1/0"},
		{"redis://a:hunter2hunter2@h:1/0\x7f", redacted},
	}
	for _, c := range cases {
		if got := redactURL(c.in); got != c.want {
			t.Errorf("redactURL(%q): got %v, want %v", c.in, got, c.want)
		}
	}
	for _, c := range []struct{ in, want any }{
		{redactInline("-----BEGIN PUBLIC KEY-----\nMCow", "-----BEGIN", "PEM"), "[inline PEM, redacted]"},
		{redactInline("/etc/relay/keys.pem", "-----BEGIN", "PEM"), "/etc/relay/keys.pem"},
		{publishKeyNames("not a key list"), redacted},
	} {
		if c.in != c.want {
			t.Errorf("got %v, want %v", c.in, c.want)
		}
	}
}

// runOnce runs relay with args and an empty environment, for commands that
// return by themselves.
func runOnce(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = run(ctx, append([]string{"relay"}, args...), func(string) string { return "" }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// serveUntilListening starts relay through run (RELAY_ADDR 127.0.0.1:0
// unless env says), waits until it listens, stops it, and returns all it
// wrote.
func serveUntilListening(t *testing.T, env map[string]string, args ...string) (stdout, stderr string) {
	t.Helper()
	if _, ok := env["RELAY_ADDR"]; !ok {
		env["RELAY_ADDR"] = "127.0.0.1:0"
	}
	out, errOut := &syncBuffer{ch: make(chan string, 64)}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"relay"}, args...), func(k string) string { return env[k] }, out, errOut)
	}()
	deadline := time.After(10 * time.Second)
	for listening := false; !listening; {
		select {
		case line := <-out.ch:
			listening = strings.Contains(line, "listening on ")
		case err := <-done:
			t.Fatalf("relay exited before listening: %v\n%s", err, errOut.String())
		case <-deadline:
			t.Fatal("relay did not print its URL within 10s")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v, want nil after a clean shutdown", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not shut down within 20s")
	}
	return out.String(), errOut.String()
}

// logLines are the JSON log lines of stderr whose msg is msg.
func logLines(t *testing.T, stderr, msg string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for line := range strings.Lines(stderr) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if m["msg"] == msg {
			lines = append(lines, m)
		}
	}
	return lines
}

func logLine(t *testing.T, stderr, msg string) map[string]any {
	t.Helper()
	lines := logLines(t, stderr, msg)
	if len(lines) != 1 {
		t.Fatalf("got %d %s lines, want 1:\n%s", len(lines), msg, stderr)
	}
	return lines[0]
}

// warnings are the relay.config_warning lines about setting.
func warnings(t *testing.T, stderr, setting string) []map[string]any {
	t.Helper()
	var ws []map[string]any
	for _, w := range logLines(t, stderr, "relay.config_warning") {
		if w["setting"] == setting {
			ws = append(ws, w)
		}
	}
	return ws
}

// checkSchema: every line of a start and stop is named relay.<event>, with
// snake_case keys all the way down (settings and set_by included).
func checkSchema(t *testing.T, stderr string) {
	t.Helper()
	event := regexp.MustCompile(`^relay\.[a-z_]+$`)
	key := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if !key.MatchString(k) {
				t.Errorf("log key %s%s is not snake_case", prefix, k)
			}
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
			}
		}
	}
	for line := range strings.Lines(stderr) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if msg, _ := m["msg"].(string); !event.MatchString(msg) {
			t.Errorf("msg %q is not a relay.<event> name", msg)
		}
		walk("", m)
	}
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
