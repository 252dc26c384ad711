package transport_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/transport"
)

const foreign = "https://evil.example"

// TestOrigins checks the origin allowlist on SSE, the publish API and the
// WebSocket handshake: with none configured, only same-origin pages and
// requests without an Origin (servers, CLIs) pass.
func TestOrigins(t *testing.T) {
	r := startRelay(t)
	for _, tc := range []struct {
		name, origin string
		allowed      bool
	}{
		{"no Origin", "", true},
		{"same origin", r.url, true},
		{"foreign origin", foreign, false},
		{"same host, another port", "http://127.0.0.1:1", false},
	} {
		header := http.Header{}
		if tc.origin != "" {
			header.Set("Origin", tc.origin)
		}
		t.Run("sse/"+tc.name, func(t *testing.T) {
			c, resp, err := connect(t, sseKind, q(r.url+"/events/notifications", "token", alice(t)), header)
			if err != nil {
				t.Fatal(err)
			}
			checkOrigin(t, c != nil, resp, tc.allowed)
		})
		t.Run("ws/"+tc.name, func(t *testing.T) {
			c, resp, err := connect(t, wsKind, q(r.url+"/ws/notifications/", "token", alice(t)), header)
			if err != nil {
				t.Fatal(err)
			}
			if c != nil {
				c.live(t) // upgraded and live
			}
			if !tc.allowed && c == nil && resp.StatusCode != http.StatusForbidden {
				t.Errorf("handshake: got status %d, want 403", resp.StatusCode)
			}
			if ok := c != nil; ok != tc.allowed {
				t.Errorf("handshake accepted: got %v, want %v", ok, tc.allowed)
			}
		})
		t.Run("publish/"+tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, r.url+"/api/publish",
				strings.NewReader(`{"channel":"project_1_tickets","type":"t"}`))
			req.Header = header.Clone()
			req.Header.Set("Authorization", "Bearer "+publisher(t))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			checkOrigin(t, resp.StatusCode == http.StatusOK, resp, tc.allowed)
		})
	}
	if n := len(r.kept(t, "project_1_tickets")); n != 2 {
		t.Errorf("events stored: got %d, want 2 (the publishes without Origin and from the same origin)", n)
	}
}

func checkOrigin(t *testing.T, served bool, resp *http.Response, allowed bool) {
	t.Helper()
	switch {
	case served != allowed:
		t.Errorf("served: got %v (status %d), want %v", served, statusOf(resp), allowed)
	case !allowed:
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status: got %d, want 403", resp.StatusCode)
		}
		if code := errorJSON(t, resp); code != "origin_not_allowed" {
			t.Errorf("error: got %q, want origin_not_allowed", code)
		}
	}
}

// TestAllowedOrigin checks an origin on the allowlist: CORS headers on SSE
// and the API, an answer to the preflight, and an accepted WebSocket.
func TestAllowedOrigin(t *testing.T) {
	const page = "https://app.example"
	r := startRelay(t, withConfig(func(c *transport.Config) { c.AllowedOrigins = []string{page + "/"} }))
	header := http.Header{"Origin": {page}}

	s, resp := openSSE(t, q(r.url+"/events/notifications", "token", alice(t)), map[string]string{"Origin": page})
	if s == nil {
		t.Fatalf("sse from %s: got status %d, want a stream", page, resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != page {
		t.Errorf("sse Access-Control-Allow-Origin: got %q, want %q", got, page)
	}
	s.close()

	req, _ := http.NewRequest(http.MethodOptions, r.url+"/api/publish", nil)
	req.Header.Set("Origin", page)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		t.Errorf("preflight status: got %d, want 204", resp.StatusCode)
	}
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":      page,
		"Access-Control-Allow-Credentials": "true",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("preflight %s: got %q, want %q", name, got, want)
		}
	}
	for name, want := range map[string]string{
		"Access-Control-Allow-Methods": "POST",
		"Access-Control-Allow-Headers": "Authorization",
	} {
		if got := resp.Header.Get(name); !strings.Contains(got, want) {
			t.Errorf("preflight %s: got %q, want it to list %s", name, got, want)
		}
	}

	req, _ = http.NewRequest(http.MethodPost, r.url+"/api/publish", strings.NewReader(`{"channel":"project_1_tickets","type":"t"}`))
	req.Header.Set("Origin", page)
	req.Header.Set("Authorization", "Bearer "+publisher(t))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != page {
		t.Errorf("publish from %s: got %d, Access-Control-Allow-Origin %q, want 200 and %q",
			page, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), page)
	}

	conn, _, err := websocket.DefaultDialer.Dial(wsURL(q(r.url+"/ws/notifications/", "token", alice(t))), header)
	if err != nil {
		t.Fatalf("ws from %s: %v, want accepted", page, err)
	}
	conn.Close()
}
