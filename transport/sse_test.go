package transport_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/relaydev/relay/transport"
)

func TestSSELiveEnvelope(t *testing.T) {
	r := startRelay(t)
	s, resp := openSSE(t, r.url+"/events/notifications?token="+alice(t), nil)
	if s == nil {
		t.Fatalf("got status %d: %s, want 200", resp.StatusCode, readAll(t, resp.Body))
	}
	for name, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"X-Accel-Buffering": "no",
		"Connection":        "",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	if got := resp.Header.Get("Cache-Control"); got == "" {
		t.Errorf("Cache-Control: got none, want no-cache")
	}
	// The stream starts with a retry hint and the cursor; wait for the cursor.
	for f := range s.frames {
		if f.HasID {
			break
		}
	}
	id := r.mustPublish(t, "user_1_notifications", "notification_message", map[string]any{"title": "hi"})
	f := s.next(t)
	if f.ID != id {
		t.Errorf("id line: got %q, want %q", f.ID, id)
	}
	env := envelope(t, f.Data)
	if env["id"] != id || env["channel"] != "user_1_notifications" || env["type"] != "notification_message" || env["ts"] == nil {
		t.Errorf("envelope: got %v", env)
	}
	if f.Event != "" {
		t.Errorf("event name: got %q, want none (plain message)", f.Event)
	}
}

func TestSSERetryHintFirst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		retry time.Duration
		want  string
	}{
		{"default", 0, strconv.Itoa(int(transport.DefaultRetry.Milliseconds()))},
		{"configured", 750 * time.Millisecond, "750"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRelay(t, withConfig(func(c *transport.Config) { c.Retry = tc.retry }))
			s, resp := openSSE(t, r.url+"/events/projects/1/tickets?token="+alice(t), nil)
			if s == nil {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			if f := s.frame(t); f.Retry != tc.want || f.HasID || f.Data != "" {
				t.Errorf("first frame: got %+v, want retry: %s alone", f, tc.want)
			}
		})
	}
}

func TestSSEHeartbeat(t *testing.T) {
	r := startRelay(t, withConfig(func(c *transport.Config) { c.Heartbeat = 20 * time.Millisecond }))
	s, resp := openSSE(t, r.url+"/events/projects/1/tickets?token="+alice(t), nil)
	if s == nil {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	comments := 0
	for comments < 3 {
		if f := s.frame(t); f.Comment {
			if f.Data != "" || f.HasID || f.Event != "" {
				t.Errorf("heartbeat: got %+v, want a bare comment", f)
			}
			comments++
		}
	}
}

func TestSSENotAcceptable(t *testing.T) {
	r := startRelay(t)
	for _, accept := range []string{"text/html", "image/png"} {
		t.Run(accept, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, r.url+"/events/notifications?token="+alice(t), nil)
			req.Header.Set("Accept", accept)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusNotAcceptable {
				t.Errorf("status: got %d, want 406", resp.StatusCode)
			}
			if code := errorJSON(t, resp); code != "not_acceptable" {
				t.Errorf("error: got %q, want not_acceptable", code)
			}
		})
	}
}

// A stream URL asked for JSON answers the access check a stream would meet,
// so a page whose EventSource closed can learn why.
func TestStreamAccessCheck(t *testing.T) {
	r := startRelay(t)
	tests := []struct {
		name, path, tok string
		status          int
		code            string
	}{
		{"allowed", "/events/projects/1/tickets", alice(t), http.StatusOK, ""},
		{"other project", "/events/projects/9/tickets", alice(t), http.StatusForbidden, "forbidden"},
		{"no token", "/events/notifications", "", http.StatusUnauthorized, "unauthorized"},
		{"bad channel", "/events?channel=a%20b", alice(t), http.StatusBadRequest, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := r.url + tt.path
			if tt.tok != "" {
				url = q(url, "token", tt.tok)
			}
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Accept", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.code != "" {
				if code := errorJSON(t, resp); code != tt.code {
					t.Errorf("error: got %q, want %q", code, tt.code)
				}
				return
			}
			var body struct{ Channels []string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Channels) != 1 || body.Channels[0] != "project_1_tickets" {
				t.Errorf("body: got %+v (%v), want the channel project_1_tickets", body, err)
			}
		})
	}
}
