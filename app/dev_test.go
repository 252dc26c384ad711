package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDevModeNeverByAccident: without RELAY_JWT_SECRET, relay refuses to start
// wherever it could be production, and says what to set.
func TestDevModeNeverByAccident(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		why  string
	}{
		{"a Redis URL", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, "REDIS_URL is set"},
		{"on Fly", map[string]string{"FLY_APP_NAME": "relay-prod"}, "FLY_APP_NAME is set"},
		{"on Kubernetes", map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "KUBERNETES_SERVICE_HOST is set"},
		{"listening beyond this machine", map[string]string{"RELAY_ADDR": "0.0.0.0:0"}, "beyond this machine"},
		{"a platform's PORT", map[string]string{"PORT": "0"}, "beyond this machine"},
		{"RELAY_DEV=false", map[string]string{"RELAY_DEV": "false", "RELAY_ADDR": "127.0.0.1:0"}, "RELAY_DEV=false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, []string{"relay"}, func(k string) string { return c.env[k] }, &stdout, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.why) || !strings.Contains(err.Error(), "set RELAY_JWT_SECRET") {
				t.Fatalf("got %v, want a refusal saying %q and to set RELAY_JWT_SECRET", err, c.why)
			}
			if stdout.Len() != 0 {
				t.Errorf("printed %q before refusing, want nothing", stdout.String())
			}
		})
	}
}

// TestDevModeOnThisMachine: with nothing set, relay runs in dev mode on
// loopback (TestDevModePrintsToken uses the token it prints); it never prints
// its secret, and mints demo tokens for this machine's clients.
func TestDevModeOnThisMachine(t *testing.T) {
	inst := start(t, map[string]string{}) // RELAY_ADDR 127.0.0.1:0, no secret
	out := inst.out.String()
	if strings.Contains(out, "RELAY_JWT_SECRET=") || regexp.MustCompile(`\b[0-9a-f]{64}\b`).MatchString(out) {
		t.Errorf("startup output holds the secret:\n%s", out)
	}
	resp, err := http.Post(inst.url+"/api/dev/token", "application/json", strings.NewReader(`{"user":"bob"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("demo token from this machine: got %d, want 200", resp.StatusCode)
	}
}

// TestDevModeResolution: which settings turn dev mode on, and where an
// automatic dev mode listens.
func TestDevModeResolution(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		dev      bool
		wantAddr string
	}{
		{"nothing set: this machine only", nil, true, devAddr},
		{"a secret: production", map[string]string{"RELAY_JWT_SECRET": testSecret}, false, ":8080"},
		{"a secret and RELAY_DEV", map[string]string{"RELAY_JWT_SECRET": testSecret, "RELAY_DEV": "true"}, true, ":8080"},
		{"explicit dev on a platform", map[string]string{"RELAY_DEV": "true", "FLY_APP_NAME": "demo"}, true, ":8080"},
		{"loopback address", map[string]string{"RELAY_ADDR": "localhost:9000"}, true, "localhost:9000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadConfig(nil, func(k string) string { return c.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			dev, err := cfg.resolveDev()
			if err != nil || dev != c.dev || cfg.Addr != c.wantAddr {
				t.Fatalf("got dev %v, addr %q, err %v; want dev %v on %q", dev, cfg.Addr, err, c.dev, c.wantAddr)
			}
		})
	}
}
