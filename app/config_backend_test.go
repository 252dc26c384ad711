package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestBackendSettings: the backend API's settings, their defaults and their
// refusals.
func TestBackendSettings(t *testing.T) {
	load := func(env map[string]string) (config, error) {
		return loadConfig(nil, func(k string) string { return env[k] }, io.Discard)
	}
	cfg, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TokenExpiry != "close" || cfg.AuthorizeTimeout != 2*time.Second || cfg.AuthorizeURL != "" || cfg.WebhookURL != "" {
		t.Errorf("defaults: expiry %q, timeout %v, authorize %q, webhook %q", cfg.TokenExpiry, cfg.AuthorizeTimeout, cfg.AuthorizeURL, cfg.WebhookURL)
	}
	cfg, err = load(map[string]string{"RELAY_TOKEN_EXPIRY": "keep", "RELAY_AUTHORIZE_URL": "http://app:8000/relay/authorize"})
	if err != nil || cfg.TokenExpiry != "keep" || cfg.AuthorizeURL != "http://app:8000/relay/authorize" {
		t.Errorf("got %q %q %v", cfg.TokenExpiry, cfg.AuthorizeURL, err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"expiry", map[string]string{"RELAY_TOKEN_EXPIRY": "never"}, "RELAY_TOKEN_EXPIRY"},
		{"authorize url", map[string]string{"RELAY_AUTHORIZE_URL": "app/relay"}, "RELAY_AUTHORIZE_URL"},
		{"webhook without secret", map[string]string{"RELAY_WEBHOOK_URL": "https://app/relay/webhook"}, "RELAY_WEBHOOK_SECRET"},
		{"timeout", map[string]string{"RELAY_AUTHORIZE_TIMEOUT": "0s"}, "RELAY_AUTHORIZE_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := load(tc.env); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
